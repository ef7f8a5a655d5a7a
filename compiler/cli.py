"""The ``modalc`` command line (click lives only here).

Runs on the client. Every command turns ``ModalcError`` into its message and
exit code (2 for user errors), never a modalc traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from .errors import ModalcError, UserError
from .ir import Driver
from .lower import BuildOptions
from .refs import parse_import_ref


def handle_errors(f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except ModalcError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)

    return wrapper


def placement_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options that decide where and how the emitted jobs run."""
    decorators = [
        click.option("--driver", type=click.Choice(["docker", "raw_exec"]), default="docker", show_default=True,
                     help="Nomad task driver: docker runs built images; raw_exec uses the node's Python."),
        click.option("--image-registry", metavar="R", help="Registry prefix of built images' tags."),
        click.option("--datacenter", "datacenters", multiple=True, metavar="DC",
                     help="Datacenter to run in (repeatable; default: all)."),
        click.option("--namespace", metavar="NS", help="Nomad namespace of the jobs."),
        click.option("--region", metavar="R", help="Nomad region of the jobs."),
        click.option("--node-pool", metavar="P", help="Nomad node pool of the jobs."),
    ]
    for decorate in reversed(decorators):
        f = decorate(f)
    return f


def build_options(driver: str, image_registry: str | None, datacenters: tuple[str, ...], namespace: str | None,
                  region: str | None, node_pool: str | None, mode: str) -> BuildOptions:
    return BuildOptions(
        driver=Driver(driver), image_registry=image_registry, datacenters=tuple(datacenters) or ("*",),
        namespace=namespace, region=region, node_pool=node_pool, mode=mode,
        default_python=f"{sys.version_info.major}.{sys.version_info.minor}",
    )


def show_notes(lines: tuple[str, ...] | list[str]) -> None:
    for line in lines:
        click.echo(f"note: {line}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modalc", prog_name="modalc")
def main() -> None:
    """Compile Modal apps into HashiCorp Nomad jobs, and run them."""


@main.command()
@click.argument("script")
@click.option("-m", "module_mode", is_flag=True, help="Treat SCRIPT as a Python module path.")
@click.option("-o", "--output", "out_dir", metavar="DIR", help="Write one file per job into DIR (default: stdout).")
@click.option("--format", "fmt", type=click.Choice(["hcl", "json", "both"]), default="hcl", show_default=True)
@click.option("--check", is_flag=True, help="Exit 1 with a diff when DIR is not what build would write.")
@click.option("--name", help="App name (default: the App's name, else the script's).")
@placement_options
@handle_errors
def build(script: str, module_mode: bool, out_dir: str | None, fmt: str, check: bool, name: str | None,
          **placement: Any) -> None:
    """Emit canonical Nomad job specs for SCRIPT[::REF]."""
    from .build import check_outputs, write_outputs
    from .phases import CompilerData

    if check and not out_dir:
        raise UserError("--check needs -o DIR: the folder to compare with", hint="modalc build app.py -o deploy/ --check")
    data = CompilerData(parse_import_ref(script, use_module_mode=module_mode),
                        build_options(mode="deploy", **placement), name=name)
    show_notes(data.script.warnings)
    outputs = data.outputs(fmt)
    show_notes(data.compiled.warnings)
    if not outputs:
        raise UserError(f"{script}: the app has no functions to build")
    if out_dir is None:
        click.echo("\n".join(f"# {name}\n{text}" for name, text in outputs.items() if not name.endswith("Dockerfile")),
                   nl=False)
        return
    if check:
        diff = check_outputs(out_dir, outputs, data.graph.app_name)
        if diff:
            click.echo(diff, nl=False)
            click.echo(f"{out_dir} is stale: run `modalc build {script} -o {out_dir}`", err=True)
            sys.exit(1)
        click.echo(f"{out_dir} is current ({len(outputs)} files)", err=True)
        return
    changed, removed = write_outputs(out_dir, outputs, data.graph.app_name)
    for rel in changed:
        click.echo(f"wrote {out_dir.rstrip('/')}/{rel}", err=True)
    for rel in removed:
        click.echo(f"removed {out_dir.rstrip('/')}/{rel}", err=True)
    if not changed and not removed:
        click.echo(f"{out_dir} is already current ({len(outputs)} files)", err=True)
