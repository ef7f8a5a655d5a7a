"""IR → canonical HCL job specs, through the jinja2 templates in ``templates/``.

Runs on the client. One filter, ``hcl``, quotes and escapes every value:
HCL string escapes, and ``${`` → ``$${`` / ``%{`` → ``%%{`` so that Nomad
never interpolates user text (exact runtime references such as
``${NOMAD_TASK_DIR}`` are left as written: jobspec2 keeps them as literal
text either way). Templates use ``[[ ]]``/``[% %]`` so Nomad's own ``{{ }}``
passes through.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import jinja2

from .hcl_format import format_hcl
from .ir import BucketVolume, Job, JobType

_RUNTIME_REF = re.compile(r"\$\{(?:NOMAD_[A-Za-z0-9_]+|(?:device|attr|meta|node)(?:\.[A-Za-z0-9_-]+)+)\}")
# HCL string escapes; other control characters as \uNNNN (JSON's \b and \f are not HCL).
_ESCAPES = {c: f"\\u{c:04x}" for c in [*range(0x20), 0x7F]} | {
    ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
# Heredoc values are rendered as placeholders and put back after formatting: the
# formatter then never walks the (large, identical across jobs) embedded sources.
_HEREDOCS: dict[str, int] = {}
_HEREDOC_TEXTS: list[str] = []
_PLACEHOLDER = re.compile("\x00heredoc(\\d+)\x00")


def _escape_interpolation(text: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _RUNTIME_REF.finditer(text):
        out.append(text[pos:m.start()].replace("${", "$${").replace("%{", "%%{"))
        out.append(m.group(0))
        pos = m.end()
    out.append(text[pos:].replace("${", "$${").replace("%{", "%%{"))
    return "".join(out)


def hcl_string(text: str) -> str:
    body = text.translate(_ESCAPES)
    if "${" in body or "%{" in body:
        body = _escape_interpolation(body)
    return f'"{body}"'


def hcl_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return hcl_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(hcl_value(v) for v in value) + "]"
    raise TypeError(f"no HCL form for {type(value).__name__}")


def heredoc(text: str) -> str:
    """A heredoc whose marker appears on no line of ``text``; a quoted string when ``text``
    does not end with a newline (a heredoc's value always does)."""
    if not text.endswith("\n"):
        return hcl_string(text)
    index = _HEREDOCS.get(text)
    if index is None:
        index = _HEREDOCS[text] = len(_HEREDOC_TEXTS)
        _HEREDOC_TEXTS.append(_heredoc_text(text))
    return f"\x00heredoc{index}\x00"


def _heredoc_text(text: str) -> str:
    lines = {line.strip() for line in text.split("\n")}
    marker, n = "EOT", 0
    while marker in lines:
        n += 1
        marker = f"EOT{n}"
    body = text.replace("${", "$${").replace("%{", "%%{")
    return f"<<{marker}\n{body}{marker}"


def duration(seconds: int) -> str:
    return hcl_string(f"{seconds}s")


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("templates", ""),
        block_start_string="[%",
        block_end_string="%]",
        variable_start_string="[[",
        variable_end_string="]]",
        comment_start_string="[#",
        comment_end_string="#]",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["hcl"] = hcl_value
    env.filters["heredoc"] = heredoc
    env.filters["duration"] = duration
    return env


TEMPLATES = {JobType.BATCH: "batch.nomad.hcl.j2", JobType.SERVICE: "service.nomad.hcl.j2"}


def emit_hcl(job: Job) -> str:
    """The job's canonical HCL, from the template for its kind of job."""
    text = format_hcl(_environment().get_template(TEMPLATES[job.type]).render(job=job))
    return _PLACEHOLDER.sub(lambda m: _HEREDOC_TEXTS[int(m.group(1))], text)


def emit_many(jobs: Sequence[Job]) -> dict[str, str]:
    return {job.id: emit_hcl(job) for job in jobs}


VOLUME_SUFFIX = ".volume.hcl"


def emit_volume(volume: BucketVolume, namespace: str | None) -> str:
    """The canonical HCL volume specification of an S3 bucket's CSI volume (``nomad volume register``)."""
    return format_hcl(_environment().get_template("csi_volume.hcl.j2").render(volume=volume, namespace=namespace))
