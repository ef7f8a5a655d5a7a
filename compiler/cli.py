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
from .lower.buckets import DEFAULT_S3_CSI_PLUGIN
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
                  region: str | None, node_pool: str | None, mode: str, volume_type: str = "host",
                  s3_csi_plugin: str | None = None, blob_url: str | None = None) -> BuildOptions:
    """The build's options; the S3 CSI plugin defaults to ``MODALC_S3_CSI_PLUGIN``, else ``s3-csi``. A deploy's
    jobs record their blob store (``--blob-url``, else ``MODALC_BLOB_URL``); a run's backend records its own."""
    import os

    from .blob_store import config_from

    s3_csi_plugin = s3_csi_plugin or os.environ.get("MODALC_S3_CSI_PLUGIN") or DEFAULT_S3_CSI_PLUGIN
    blob = config_from(blob_url) if mode == "deploy" else None
    return BuildOptions(
        driver=Driver(driver), image_registry=image_registry, datacenters=tuple(datacenters) or ("*",),
        namespace=namespace, region=region, node_pool=node_pool, mode=mode,
        default_python=f"{sys.version_info.major}.{sys.version_info.minor}", volume_type=volume_type,
        s3_csi_plugin=s3_csi_plugin, blob_url=blob.url if blob else None,
    )


def volume_type_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--volume-type`` (modal.Volume mounts) and ``--s3-csi-plugin`` (modal.CloudBucketMount mounts)."""
    f = click.option("--s3-csi-plugin", metavar="P", envvar="MODALC_S3_CSI_PLUGIN", default=DEFAULT_S3_CSI_PLUGIN,
                     show_default=True,
                     help="Nomad ID of the S3 CSI plugin (Mountpoint for Amazon S3 CSI driver) that mounts "
                     "modal.CloudBucketMount buckets (env: MODALC_S3_CSI_PLUGIN).")(f)
    return click.option("--volume-type", type=click.Choice(["host", "csi"]), default="host", show_default=True,
                        help="Nomad volume type of modal.Volume mounts (host: static or dynamic host volumes).")(f)


def volume_plugin_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--volume-plugin", metavar="P",
                        help="Plugin that creates create_if_missing volumes on Nomad (host: default mkdir; "
                        "csi: required).")(f)


def blob_url_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--blob-url", metavar="s3://BUCKET/PREFIX",
                        help="S3-compatible store for inputs over Nomad's 16 KiB dispatch payload (default: "
                        "MODALC_BLOB_URL; credentials and endpoint from the AWS_* variables); deployed jobs "
                        "record it for their callers.")(f)


def connection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """How to reach Nomad, like the nomad CLI's flags (each overrides its NOMAD_* variable)."""
    decorators = [
        click.option("--address", metavar="URL", help="Nomad's HTTP API (default: NOMAD_ADDR)."),
        click.option("--token", metavar="T", help="ACL token (default: NOMAD_TOKEN). Never printed."),
        click.option("--ca-cert", metavar="PATH", help="CA bundle to verify Nomad's TLS (default: NOMAD_CACERT)."),
        click.option("--client-cert", metavar="PATH", help="Client certificate (default: NOMAD_CLIENT_CERT)."),
        click.option("--client-key", metavar="PATH", help="Client key (default: NOMAD_CLIENT_KEY)."),
        click.option("--tls-skip-verify", "skip_verify", is_flag=True, default=None,
                     help="Do not verify Nomad's TLS certificate (default: NOMAD_SKIP_VERIFY)."),
    ]
    for decorate in reversed(decorators):
        f = decorate(f)
    return f


def nomad_settings(*, address: str | None = None, token: str | None = None, namespace: str | None = None,
                   region: str | None = None, ca_cert: str | None = None, client_cert: str | None = None,
                   client_key: str | None = None, skip_verify: bool | None = None) -> Any:
    from .backends.nomad_api import NomadSettings

    return NomadSettings.from_env(address=address, token=token, namespace=namespace, region=region,
                                  ca_cert=ca_cert, client_cert=client_cert, client_key=client_key,
                                  skip_verify=skip_verify or None)


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
@click.option("--acl-policy", is_flag=True, help="Also write <app>.policy.hcl: the ACL policy its jobs need (nested calls, secrets).")
@placement_options
@volume_type_option
@blob_url_option
@handle_errors
def build(script: str, module_mode: bool, out_dir: str | None, fmt: str, check: bool, name: str | None,
          acl_policy: bool, **placement: Any) -> None:
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
    from . import deploy_secrets

    show_notes(deploy_secrets.literal_notes(data.graph, data.compiled))
    for line in deploy_secrets.create_commands(data.graph, data.compiled, placement.get("namespace")):
        click.echo(line if line.startswith(" ") else f"note: {line}", err=True)
    if acl_policy:
        from .acl_policy import policy_file_name, policy_hcl

        policy = policy_hcl(data.graph, data.compiled, placement.get("namespace"))
        outputs = dict(sorted({**outputs, policy_file_name(data.graph.app_name): policy}.items()))
    if not outputs:
        raise UserError(f"{script}: the app has no functions to build",
                        hint="decorate a function with @app.function() (local entrypoints run on the client, "
                        "so they have no job)")
    if out_dir is None:
        click.echo("\n".join(f"# {name}\n{text}" for name, text in outputs.items()
                             if isinstance(text, str)
                             and name.endswith((".nomad.hcl", ".nomad.json", ".policy.hcl", ".volume.hcl"))),
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
    for line in _file_report("wrote", out_dir, changed) + _file_report("removed", out_dir, removed):
        click.echo(line, err=True)
    if not changed and not removed:
        click.echo(f"{out_dir} is already current ({len(outputs)} files)", err=True)


def _file_report(verb: str, out_dir: str, rels: list[str]) -> list[str]:
    """A line per job file; one per image build context (``images/<tag>/``), with its file count."""
    lines: list[str] = []
    contexts: dict[str, list[str]] = {}
    for rel in rels:
        parts = rel.split("/")
        if len(parts) >= 2 and parts[0] == "images":
            contexts.setdefault("/".join(parts[:2]), []).append(rel)
        else:
            lines.append(f"{verb} {out_dir.rstrip('/')}/{rel}")
    for context, files in contexts.items():
        lines.append(f"{verb} {out_dir.rstrip('/')}/{context}/ ({len(files)} file{'s' if len(files) != 1 else ''} "
                     "of an image's build context)")
    return lines


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("script")
@click.argument("entrypoint_args", nargs=-1, type=click.UNPROCESSED)
@click.option("-m", "module_mode", is_flag=True, help="Treat SCRIPT as a Python module path.")
@click.option("-q", "--quiet", is_flag=True, help="Don't show progress indicators.")
@click.option("-d", "--detach", is_flag=True, help="Keep the app's jobs running after modalc exits (Nomad).")
@click.option("-n", "--name", help="Name of the ephemeral app (default: the App's name).")
@click.option("-w", "--write-result", metavar="PATH", help="Write the return value (str or bytes) to PATH.")
@click.option("--local", is_flag=True, help="Run on this machine even when NOMAD_ADDR is set.")
@click.option("--namespace", metavar="NS", help="Nomad namespace (default: NOMAD_NAMESPACE).")
@click.option("--region", metavar="R", help="Nomad region (default: NOMAD_REGION).")
@click.option("--placement-timeout", type=float, metavar="S",
              help="Give up on a call Nomad cannot place after S seconds (default: MODALC_PLACEMENT_TIMEOUT or 300).")
@volume_type_option
@volume_plugin_option
@blob_url_option
@connection_options
@handle_errors
def run(script: str, entrypoint_args: tuple[str, ...], module_mode: bool, quiet: bool, detach: bool,
        name: str | None, write_result: str | None, local: bool, namespace: str | None, region: str | None,
        placement_timeout: float | None, volume_type: str, s3_csi_plugin: str, volume_plugin: str | None,
        blob_url: str | None,
        **connection: Any) -> None:
    """Run SCRIPT[::REF]: the local entrypoint here, each remote call as a job.

    On Nomad whenever an address is configured (NOMAD_ADDR or --address), else (or with --local) on this machine.
    """
    import os

    from .phases import CompilerData
    from .run import app_run, call_entrypoint, run_main_entrypoint
    from .run import write_result as write_result_file

    backend = None
    if not local and (connection.get("address") or os.environ.get("NOMAD_ADDR")):
        from .backends.nomad import NomadBackend
        from .blob_store import config_from

        settings = nomad_settings(namespace=namespace, region=region, **connection)
        backend = NomadBackend(settings, quiet=quiet, placement_timeout=placement_timeout,
                               blob=config_from(blob_url))
    ref = parse_import_ref(script, use_module_mode=module_mode)
    data = CompilerData(ref, build_options("docker", None, (), namespace if backend else None,
                                           region if backend else None, None, mode="run", volume_type=volume_type,
                                           s3_csi_plugin=s3_csi_plugin),
                        name=name,
                        select_ref=False)
    show_notes(data.script.warnings)
    runnable = data.runnable
    result: list[Any] = []
    argv = list(entrypoint_args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    with app_run(data.compiled, data.graph, local=local, quiet=quiet, detach=detach, backend=backend,
                 volume_plugin=volume_plugin, build_options=data.opts):
        code = run_main_entrypoint(lambda: result.append(
            call_entrypoint(runnable, argv, prog=f"modalc run {script}", detach=detach)))
    if code:
        sys.exit(code)
    if write_result and result:
        write_result_file(write_result, result[0])


def store_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Where secrets and volumes live: Nomad when an address is configured, else (or with --local) here."""
    f = click.option("--local", is_flag=True, help="Use this machine's store even when NOMAD_ADDR is set.")(f)
    f = click.option("--region", metavar="R", help="Nomad region (default: NOMAD_REGION).")(f)
    f = click.option("--namespace", metavar="NS", help="Nomad namespace (default: NOMAD_NAMESPACE).")(f)
    return connection_options(f)


def _on_nomad(local: bool, connection: dict[str, Any]) -> bool:
    import os

    return not local and bool(connection.get("address") or os.environ.get("NOMAD_ADDR"))


def _secrets(local: bool, **connection: Any) -> Any:
    from .secret_backends import LocalSecrets, NomadSecrets

    return NomadSecrets(_nomad_api(**connection)) if _on_nomad(local, connection) else LocalSecrets()


@main.group()
def secret() -> None:
    """Manage named secrets (Nomad Variables modalc/secrets/NAME when NOMAD_ADDR is set, else the local store)."""


@secret.command("create")
@click.argument("name")
@click.argument("pairs", nargs=-1)
@click.option("--from-dotenv", type=click.Path(exists=True, dir_okay=False), help="Read KEY=VALUE lines from a file.")
@click.option("--force", is_flag=True, help="Replace an existing secret.")
@store_options
@handle_errors
def secret_create(name: str, pairs: tuple[str, ...], from_dotenv: str | None, force: bool, local: bool,
                  **connection: Any) -> None:
    """Create secret NAME from KEY=VALUE pairs (values are never printed)."""
    from . import secret_store

    items = secret_store.parse_dotenv(from_dotenv) if from_dotenv else {}
    items.update(secret_store.parse_pairs(pairs))
    store = _secrets(local, **connection)
    store.create(name, items, force=force)
    click.echo(f"created secret {name!r} in {store.where} with keys: {', '.join(sorted(items))}")


@secret.command("list")
@store_options
@handle_errors
def secret_list(local: bool, **connection: Any) -> None:
    """List secrets and their keys (never their values)."""
    store = _secrets(local, **connection)
    for name in store.names():
        click.echo(f"{name}\t{', '.join(store.keys(name) or [])}")


@secret.command("delete")
@click.argument("name")
@store_options
@handle_errors
def secret_delete(name: str, local: bool, **connection: Any) -> None:
    """Delete secret NAME."""
    store = _secrets(local, **connection)
    store.delete(name)
    click.echo(f"deleted secret {name!r} from {store.where}")


@main.group()
def volume() -> None:
    """Manage named volumes (Nomad host or CSI volumes when NOMAD_ADDR is set, else $MODALC_HOME/volumes)."""


def _volumes(local: bool, volume_type: str, plugin_id: str | None = None, node_pool: str | None = None,
             **connection: Any) -> Any:
    from .volumes import LocalVolumes, NomadVolumes

    if not _on_nomad(local, connection):
        return LocalVolumes()
    return NomadVolumes(_nomad_api(**connection), volume_type, plugin_id=plugin_id, node_pool=node_pool)


_volume_type = click.option("--type", "volume_type", type=click.Choice(["host", "csi"]), default="host",
                            show_default=True, help="Nomad volume type.")


@volume.command("create")
@click.argument("name")
@_volume_type
@click.option("--plugin-id", metavar="P", help="Plugin that creates it (host: default mkdir; csi: required).")
@click.option("--node-pool", metavar="P", help="Node pool to place a dynamic host volume in.")
@store_options
@handle_errors
def volume_create(name: str, volume_type: str, plugin_id: str | None, node_pool: str | None, local: bool,
                  **connection: Any) -> None:
    """Create volume NAME."""
    volumes = _volumes(local, volume_type, plugin_id, node_pool, **connection)
    info = volumes.create(name)
    click.echo(f"created {info.kind} volume {name!r} on {volumes.where} ({info.detail})")


@volume.command("list")
@_volume_type
@store_options
@handle_errors
def volume_list(volume_type: str, local: bool, **connection: Any) -> None:
    """List volumes."""
    for info in _volumes(local, volume_type, **connection).list():
        click.echo(f"{info.name}\t{info.kind}\t{info.detail}")


@volume.command("delete")
@click.argument("name")
@_volume_type
@store_options
@handle_errors
def volume_delete(name: str, volume_type: str, local: bool, **connection: Any) -> None:
    """Delete volume NAME and its data."""
    volumes = _volumes(local, volume_type, **connection)
    volumes.delete(name)
    click.echo(f"deleted volume {name!r} from {volumes.where}")


def _nomad_api(**connection: Any) -> Any:
    from .backends.nomad_api import NomadAPI

    return NomadAPI(nomad_settings(**connection))


@main.command()
@click.argument("script")
@click.option("-m", "module_mode", is_flag=True, help="Treat SCRIPT as a Python module path.")
@click.option("--name", help="App name (default: the App's name, else the script's).")
@click.option("--rotate-token", is_flag=True,
              help="Give warm functions a new channel token (their running workers are replaced).")
@placement_options
@volume_type_option
@volume_plugin_option
@blob_url_option
@connection_options
@handle_errors
def deploy(script: str, module_mode: bool, name: str | None, rotate_token: bool, driver: str,
           image_registry: str | None, datacenters: tuple[str, ...], namespace: str | None, region: str | None,
           node_pool: str | None, volume_type: str, s3_csi_plugin: str, volume_plugin: str | None,
           blob_url: str | None, **connection: Any) -> None:
    """Register SCRIPT's jobs on Nomad under stable IDs; update them in place."""
    from .nomad_commands import deploy_app, show_endpoints
    from .phases import CompilerData
    from .preflight import check_before_deploy

    data = CompilerData(parse_import_ref(script, use_module_mode=module_mode),
                        build_options(driver, image_registry, datacenters, namespace, region, node_pool,
                                      mode="deploy", volume_type=volume_type, s3_csi_plugin=s3_csi_plugin,
                                      blob_url=blob_url),
                        name=name)
    show_notes(data.script.warnings)
    if not data.compiled.functions:
        raise UserError(f"{script}: the app has no functions to deploy")
    with _nomad_api(namespace=namespace, region=region, **connection) as api:
        check_before_deploy(api, data.graph, data.compiled, volume_plugin=volume_plugin, node_pool=node_pool,
                            echo=lambda line: click.echo(line, err=True))
        from . import deploy_secrets
        from .acl_policy import secret_names

        show_notes(deploy_secrets.literal_notes(data.graph, data.compiled))
        written = deploy_secrets.publish(api, data.graph, data.compiled, click.echo)  # before the jobs read them
        deploy_app(api, data.compiled, click.echo, rotate_token=rotate_token,
                   secrets=tuple(secret_names(data.graph, data.compiled)), variables=tuple(written))
        show_endpoints(api, data.compiled, click.echo)
    click.echo(f"deployed app {data.compiled.app_name!r}: call it with "
               f"modal.Function.from_name({data.compiled.app_name!r}, NAME)", err=True)


@main.command()
@click.argument("script")
@click.option("-m", "module_mode", is_flag=True, help="Treat SCRIPT as a Python module path.")
@click.option("--name", help="App name (default: the App's name, else the script's).")
@handle_errors
def serve(script: str, module_mode: bool, name: str | None) -> None:
    """Serve SCRIPT's web endpoints on this machine; reload when the script (or a module next to it) changes."""
    from .serve import serve as serve_app

    ref = parse_import_ref(script, use_module_mode=module_mode)
    try:
        serve_app(ref, build_options("docker", None, (), None, None, None, mode="run"), name=name,
                  echo=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        click.echo("stopped serving", err=True)


@main.command()
@click.argument("script")
@click.option("-m", "module_mode", is_flag=True, help="Treat SCRIPT as a Python module path.")
@click.option("--name", help="App name (default: the App's name, else the script's).")
@placement_options
@volume_type_option
@blob_url_option
@connection_options
def plan(script: str, module_mode: bool, name: str | None, driver: str, image_registry: str | None,
         datacenters: tuple[str, ...], namespace: str | None, region: str | None, node_pool: str | None,
         volume_type: str, s3_csi_plugin: str, blob_url: str | None, **connection: Any) -> None:
    """Show what `modalc deploy` would change. Exit 0: no change, 1: changes, 255: error."""
    from .nomad_commands import plan_app, show_plan, stale_jobs
    from .phases import CompilerData

    try:
        data = CompilerData(parse_import_ref(script, use_module_mode=module_mode),
                            build_options(driver, image_registry, datacenters, namespace, region, node_pool,
                                          mode="deploy", volume_type=volume_type, s3_csi_plugin=s3_csi_plugin,
                                          blob_url=blob_url),
                            name=name)
        with _nomad_api(namespace=namespace, region=region, **connection) as api:
            planned = plan_app(api, data.compiled)
            stale = stale_jobs(api, data.compiled.app_name, {p.job_id for p in planned})
    except ModalcError as exc:
        exc.show()
        sys.exit(255)
    except KeyboardInterrupt:
        sys.exit(255)
    sys.exit(1 if show_plan(planned, stale, click.echo) else 0)


def app_connection(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--region", metavar="R", help="Nomad region (default: NOMAD_REGION).")(f)
    f = click.option("--namespace", metavar="NS", help="Nomad namespace (default: NOMAD_NAMESPACE).")(f)
    return connection_options(f)


@main.group()
def app() -> None:
    """Inspect and stop apps on Nomad (found by their jobs' modalc_app meta)."""


@app.command("list")
@app_connection
@handle_errors
def app_list(**connection: Any) -> None:
    """List the apps that have jobs on Nomad (deployed and running)."""
    from . import nomad_commands

    with _nomad_api(**connection) as api:
        nomad_commands.app_list(api, click.echo)


@app.command("logs")
@click.argument("app_name", metavar="APP")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new output until Ctrl-C.")
@app_connection
@handle_errors
def app_logs(app_name: str, follow: bool, **connection: Any) -> None:
    """Print the logs of APP's allocations, each line prefixed with [function]."""
    from . import nomad_commands

    with _nomad_api(**connection) as api:
        nomad_commands.app_logs(api, app_name, click.echo, follow=follow)


@app.command("stop")
@click.argument("app_name", metavar="APP")
@click.option("--run", "run_id", metavar="RUN", help="Only the jobs of this run (see modalc app list).")
@blob_url_option
@app_connection
@handle_errors
def app_stop(app_name: str, run_id: str | None, blob_url: str | None, **connection: Any) -> None:
    """Stop and purge every job of APP (deployed and ephemeral, with their dispatched jobs), and the blobs of
    their calls' inputs: in the store the jobs record (``modalc_blob_url``) and in ``--blob-url``'s."""
    from . import nomad_commands
    from .blob_store import config_from

    blob = config_from(blob_url)
    with _nomad_api(**connection) as api:
        code = nomad_commands.app_stop(api, app_name, click.echo, run_id=run_id, blob=blob)
    sys.exit(code)


@app.command("history")
@click.argument("app_name", metavar="APP")
@app_connection
@handle_errors
def app_history(app_name: str, **connection: Any) -> None:
    """Show APP's job versions (deploys) and dispatched calls."""
    from . import nomad_commands

    with _nomad_api(**connection) as api:
        nomad_commands.app_history(api, app_name, click.echo)


@main.group()
def image() -> None:
    """Build the app's container images."""


@image.command("build")
@click.argument("script")
@click.option("-m", "module_mode", is_flag=True, help="Treat SCRIPT as a Python module path.")
@click.option("--push", is_flag=True, help="Push each image after building it (needs --image-registry).")
@click.option("--image-registry", metavar="R", help="Registry prefix of the tags (as for modalc build).")
@click.option("-o", "--output", "out_dir", metavar="DIR", help="Write the build contexts here (default: a temp dir).")
@click.option("--name", help="App name (default: the App's name, else the script's).")
@handle_errors
def image_build(script: str, module_mode: bool, push: bool, image_registry: str | None, out_dir: str | None,
                name: str | None) -> None:
    """Build SCRIPT[::REF]'s images with docker, podman or buildah (the first on the PATH)."""
    from .image_builder import build_images
    from .phases import CompilerData

    data = CompilerData(parse_import_ref(script, use_module_mode=module_mode),
                        build_options("docker", image_registry, (), None, None, None, mode="deploy"), name=name)
    show_notes(data.script.warnings)
    tags = build_images(data.compiled, push=push, out_dir=out_dir, echo=lambda line: click.echo(line, err=True))
    for tag in tags:
        click.echo(tag)
