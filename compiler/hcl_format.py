"""Canonical HCL layout, as HashiCorp's ``hclfmt`` (``nomad fmt``) prints it.

Runs on the client. The templates only have to produce the right lines; this
pass fixes what hclwrite's formatter decides: indentation by brace depth
(two spaces), no blank line after ``{`` or before ``}``, at most one blank
line in a row, and ``=`` aligned across each run of consecutive attribute
lines (a heredoc value stays part of its attribute's line).
"""

from __future__ import annotations

import re

_ASSIGN = re.compile(r'^([A-Za-z_][A-Za-z0-9_-]*|"(?:[^"\\]|\\.)*")\s*=\s*(.*)$')
_HEREDOC = re.compile(r"<<-?([A-Za-z_][A-Za-z0-9_-]*)$")


def _logical_lines(text: str) -> list[list[str]]:
    """Split into logical lines: a heredoc attribute carries its body and end marker."""
    out: list[list[str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        group = [line]
        m = _HEREDOC.search(line)
        if m:
            marker = m.group(1)
            # Fast path: the emitter writes the end marker alone on its line, and no body line
            # strips to it, so the first exact match ends the heredoc.
            try:
                end = lines.index(marker, i + 1)
            except ValueError:
                end = i + 1
                while end < len(lines) and lines[end].strip() != marker:
                    end += 1
            if end > i + 1:  # the body as one string: joined again unchanged at the end
                group.append("\n".join(lines[i + 1:end]))
            group.append(marker)
            i = end
        out.append(group)
        i += 1
    return out


def format_hcl(text: str) -> str:
    logical = _logical_lines(text.strip("\n"))
    # Blank lines: none after "{", none before "}", never two in a row.
    kept: list[list[str]] = []
    for group in logical:
        if group[0] == "":
            if not kept or kept[-1][0] == "" or kept[-1][0].endswith("{"):
                continue
        elif group[0].startswith("}") and kept and kept[-1][0] == "":
            kept.pop()
        kept.append(group)
    # Indentation by depth, then "=" alignment per run of attribute lines.
    depth = 0
    rows: list[tuple[int, list[str], re.Match[str] | None]] = []
    for group in kept:
        head = group[0]
        if head.startswith("}"):
            depth -= 1
        rows.append((depth, group, _ASSIGN.match(head) if head else None))
        if head.endswith("{"):
            depth += 1
    out: list[str] = []
    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j][2] is not None:
            j += 1
        run = rows[i:j] if j > i else rows[i:i + 1]
        width = max((len(m.group(1)) for _, _, m in run if m), default=0)
        for d, group, m in run:
            indent = "  " * d
            if m:
                out.append(f"{indent}{m.group(1).ljust(width)} = {m.group(2)}")
            else:
                out.append(f"{indent}{group[0]}" if group[0] else "")
            out.extend(group[1:-1])
            if len(group) > 1:
                out.append(group[-1])
        i = max(j, i + 1)
    return "\n".join(out) + "\n"
