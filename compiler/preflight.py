"""Checks made before anything is submitted: named secrets and their required keys, volumes.

Runs on the client, after compiling and before the first job is registered or
dispatched (``compiler/run.py`` ``app_run`` for ``modalc run`` and
``app.run()``, ``modalc deploy`` in ``cli.py``). Every problem of the app is
reported at once, each at its declaration's file:line:

* each ``Secret.from_name(name, required_keys=[...])`` of a compiled function
  must exist where the backend reads it (the local store, or the Nomad
  Variable ``modalc/secrets/<name>``) and hold every required key;
* on Nomad, each ``Volume.from_name(name)`` must exist as a volume of the
  compiled type (host or CSI); with ``create_if_missing=True`` it is created
  through Nomad's volume API instead (``compiler/volumes.py``). Locally a
  volume is a directory that is made on first use;
* on Nomad, each S3 bucket's CSI volume (``modal.CloudBucketMount``,
  ``compiler/lower/buckets.py``) is registered when it is not yet (its spec
  holds no credential); locally a bucket mount is an error: it needs a Nomad
  cluster with an S3 CSI plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from agent_runtime.sdk.objects import NetworkFileSystem, Secret, Volume

from .errors import ErrorList, UserError
from .graph import AppGraph, FunctionNode
from .ir import CompiledApp

if TYPE_CHECKING:
    from .backends.base import Backend
    from .backends.nomad_api import NomadAPI
    from .secret_backends import SecretBackend
    from .volumes import NomadVolumes

Echo = Callable[[str], None]


def _nodes(graph: AppGraph, compiled: CompiledApp) -> Iterator[FunctionNode]:
    tags = {fn.tag for fn in compiled.functions}
    return (n for n in graph.functions if n.tag in tags)


def named_secrets(graph: AppGraph, compiled: CompiledApp) -> list[Secret]:
    """The ``Secret.from_name`` secrets of the compiled functions, first declaration of each first."""
    out: dict[tuple[str, tuple[str, ...], tuple[str, int]], Secret] = {}
    for node in _nodes(graph, compiled):
        for secret in node.options.get("secrets") or ():
            if isinstance(secret, Secret) and secret.kind == "name":
                out.setdefault((secret.name, secret.required_keys, secret.location), secret)
    return list(out.values())


def _raise(errors: list[UserError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorList(errors)


def check_secrets(graph: AppGraph, compiled: CompiledApp, store: SecretBackend) -> None:
    """Each named secret exists in ``store`` with its required keys; else UserErrors (exit 2)."""
    errors: list[UserError] = []
    cache: dict[str, list[str] | None] = {}
    for secret in named_secrets(graph, compiled):
        if secret.name not in cache:
            cache[secret.name] = store.keys(secret.name)
        keys = cache[secret.name]
        needed = " ".join(f"{k}=..." for k in secret.required_keys) or "KEY=VALUE"
        if keys is None:
            errors.append(UserError(f"secret {secret.name!r} does not exist in {store.where}",
                                    location=secret.location,
                                    hint=f"create it: modalc secret create {secret.name} {needed}"))
            continue
        missing = [k for k in secret.required_keys if k not in keys]
        if missing:
            errors.append(UserError(
                f"secret {secret.name!r} in {store.where} is missing required key"
                f"{'s' if len(missing) > 1 else ''}: {', '.join(missing)}", location=secret.location,
                hint=f"replace it with all its keys: modalc secret create {secret.name} --force "
                f"{' '.join(f'{k}=...' for k in sorted({*keys, *missing}))}"))
    _raise(errors)


def named_volumes(graph: AppGraph, compiled: CompiledApp) -> list[Volume | NetworkFileSystem]:
    """The volumes the compiled functions mount, one per name (create_if_missing if any declaration says so)."""
    out: dict[str, Volume | NetworkFileSystem] = {}
    for node in _nodes(graph, compiled):
        mounted = {**dict(node.options.get("volumes") or {}), **dict(node.options.get("network_file_systems") or {})}
        for volume in mounted.values():
            if not isinstance(volume, (Volume, NetworkFileSystem)):
                continue
            seen = out.get(volume.name)
            if seen is None or (getattr(volume, "create_if_missing", False)
                                and not getattr(seen, "create_if_missing", False)):
                out[volume.name] = volume
    return [out[k] for k in sorted(out)]


def ensure_volumes(graph: AppGraph, compiled: CompiledApp, volumes: NomadVolumes, echo: Echo) -> None:
    """Each mounted volume exists on Nomad, created first when declared with create_if_missing=True."""
    errors: list[UserError] = []
    to_create = []
    for volume in named_volumes(graph, compiled):
        if volumes.find(volume.name) is not None:
            continue
        if getattr(volume, "create_if_missing", False):
            to_create.append(volume)
            continue
        plugin = " --plugin-id P" if volumes.type == "csi" else ""
        errors.append(UserError(
            f"{volumes.type} volume {volume.name!r} does not exist on {volumes.where}", location=volume.location,
            hint=f"create it: modalc volume create {volume.name} --type {volumes.type}{plugin}, or declare it with "
            f"modal.Volume.from_name({volume.name!r}, create_if_missing=True)"))
    _raise(errors)  # before creating anything: a run that cannot start leaves no trace
    for volume in to_create:
        info = volumes.create(volume.name)
        echo(f"created {info.kind} volume {volume.name!r} ({info.detail})")


def compiled_volume_type(compiled: CompiledApp) -> str:
    """The volume type the compiled jobs claim for modal.Volume mounts (``host`` when they mount none)."""
    buckets = {b.id for fn in compiled.functions for b in fn.bucket_volumes}
    types = {v.type for fn in compiled.functions for g in fn.job.groups for v in g.volumes
             if v.source not in buckets}
    return types.pop() if len(types) == 1 else "host"


def check_before_deploy(api: NomadAPI, graph: AppGraph, compiled: CompiledApp, *, volume_plugin: str | None = None,
                        node_pool: str | None = None, echo: Echo = print) -> None:
    """``modalc deploy`` (and ``modalc run`` on Nomad): secrets in Nomad Variables, volumes on Nomad."""
    from .secret_backends import NomadSecrets
    from .volumes import NomadVolumes

    check_secrets(graph, compiled, NomadSecrets(api))
    pool = node_pool or next((fn.job.node_pool for fn in compiled.functions if fn.job.node_pool), None)
    ensure_volumes(graph, compiled, NomadVolumes(api, compiled_volume_type(compiled), plugin_id=volume_plugin,
                                                 node_pool=pool), echo)
    register_buckets(api, compiled, echo)


def register_buckets(api: NomadAPI, compiled: CompiledApp, echo: Echo) -> None:
    """Each bucket's CSI volume exists on Nomad: registered (``PUT /v1/volume/csi/<id>``) when it is not."""
    seen: set[str] = set()
    for fn in compiled.functions:
        for b in fn.bucket_volumes:
            if b.id in seen:
                continue
            seen.add(b.id)
            if api.volume("csi", b.id) is not None:
                continue
            api.register_csi_volume({
                "ID": b.id, "Name": b.id, "ExternalID": b.id, "PluginID": b.plugin_id,
                **({"Namespace": fn.job.namespace} if fn.job.namespace else {}),
                "RequestedCapabilities": [{"AccessMode": b.access_mode, "AttachmentMode": "file-system"}],
                "MountOptions": {"MountFlags": list(b.mount_flags)}, "Context": {"bucketName": b.bucket}})
            echo(f"registered CSI volume {b.id!r} (bucket {b.bucket!r}, plugin {b.plugin_id!r})")


def refuse_buckets_locally(graph: AppGraph, compiled: CompiledApp) -> None:
    """A CloudBucketMount has no local form: a clear error rather than an empty directory."""
    errors = [UserError(f"{fn.tag}: modal.CloudBucketMount({b.bucket!r}) needs a Nomad cluster with an S3 CSI plugin",
                        location=next((n.location for n in graph.functions if n.tag == fn.tag), None),
                        hint=f"run on Nomad (NOMAD_ADDR) with plugin {b.plugin_id!r} (--s3-csi-plugin), or mount a "
                        "modal.Volume instead for a local run")
              for fn in compiled.functions for b in fn.bucket_volumes]
    _raise(errors)


def check_before_run(backend: Backend, graph: AppGraph, compiled: CompiledApp, *, volume_plugin: str | None = None,
                     echo: Echo = print) -> None:
    """``modalc run``: the checks for the backend the run uses (nothing is submitted yet)."""
    from .backends.nomad import NomadBackend

    if isinstance(backend, NomadBackend):
        check_before_deploy(backend.api, graph, compiled, volume_plugin=volume_plugin, echo=echo)
        return
    from .secret_backends import LocalSecrets

    refuse_buckets_locally(graph, compiled)
    check_secrets(graph, compiled, LocalSecrets())
