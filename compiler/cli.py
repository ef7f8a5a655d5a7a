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


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("script")
@click.argument("entrypoint_args", nargs=-1, type=click.UNPROCESSED)
@click.option("-m", "module_mode", is_flag=True, help="Treat SCRIPT as a Python module path.")
@click.option("-q", "--quiet", is_flag=True, help="Don't show progress indicators.")
@click.option("-d", "--detach", is_flag=True, help="Keep the app's jobs running after modalc exits (Nomad).")
@click.option("-n", "--name", help="Name of the ephemeral app (default: the App's name).")
@click.option("-w", "--write-result", metavar="PATH", help="Write the return value (str or bytes) to PATH.")
@click.option("--local", is_flag=True, help="Run on this machine even when NOMAD_ADDR is set.")
@handle_errors
def run(script: str, entrypoint_args: tuple[str, ...], module_mode: bool, quiet: bool, detach: bool,
        name: str | None, write_result: str | None, local: bool) -> None:
    """Run SCRIPT[::REF]: the local entrypoint here, each remote call as a job."""
    from .phases import CompilerData
    from .run import app_run, call_entrypoint, run_main_entrypoint
    from .run import write_result as write_result_file

    ref = parse_import_ref(script, use_module_mode=module_mode)
    data = CompilerData(ref, build_options("docker", None, (), None, None, None, mode="run"), name=name,
                        skip_unsupported=True, select_ref=False)
    show_notes(data.script.warnings)
    runnable = data.runnable
    result: list[Any] = []
    argv = list(entrypoint_args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    with app_run(data.compiled, data.graph, local=local, quiet=quiet, detach=detach):
        code = run_main_entrypoint(lambda: result.append(
            call_entrypoint(runnable, argv, prog=f"modalc run {script}", detach=detach)))
    if code:
        sys.exit(code)
    if write_result and result:
        write_result_file(write_result, result[0])


@main.group()
def secret() -> None:
    """Manage named secrets (the local store; Nomad Variables when NOMAD_ADDR is set)."""


@secret.command("create")
@click.argument("name")
@click.argument("pairs", nargs=-1)
@click.option("--from-dotenv", type=click.Path(exists=True, dir_okay=False), help="Read KEY=VALUE lines from a file.")
@click.option("--force", is_flag=True, help="Replace an existing secret.")
@handle_errors
def secret_create(name: str, pairs: tuple[str, ...], from_dotenv: str | None, force: bool) -> None:
    """Create secret NAME from KEY=VALUE pairs."""
    from . import secret_store

    items = secret_store.parse_dotenv(from_dotenv) if from_dotenv else {}
    items.update(secret_store.parse_pairs(pairs))
    secret_store.create(name, items, force=force)
    click.echo(f"created secret {name!r} with keys: {', '.join(sorted(items))}")


@secret.command("list")
@handle_errors
def secret_list() -> None:
    """List secrets and their keys (never their values)."""
    from . import secret_store

    for name in secret_store.names():
        click.echo(f"{name}\t{', '.join(secret_store.keys(name))}")


@secret.command("delete")
@click.argument("name")
@handle_errors
def secret_delete(name: str) -> None:
    """Delete secret NAME."""
    from . import secret_store

    secret_store.delete(name)
    click.echo(f"deleted secret {name!r}")
