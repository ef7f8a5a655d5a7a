"""One function of the graph → one Nomad job (the IR).

Runs on the client. This is the only place where options are validated and
defaulted; every error carries the decorator's file:line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent_runtime.jobnames import job_id as job_id  # re-exported: the compiler names jobs with it
from agent_runtime.sdk.objects import CloudBucketMount, NetworkFileSystem, Volume

from ..blob_store import BLOB_META
from ..errors import UserError
from ..graph import AppGraph, FunctionNode
from ..ir import (
    CODE_DIR,
    PAYLOAD_FILE,
    SPEC_FORMAT_VERSION,
    TASK_NAME,
    BucketVolume,
    Driver,
    DriverConfig,
    FunctionJob,
    Group,
    Job,
    JobType,
    Parameterized,
    Reschedule,
    Resources,
    Restart,
    Task,
    VolumeMount,
    VolumeRequest,
)
from . import resources as res
from .app_secrets import app_secrets
from .buckets import DEFAULT_S3_CSI_PLUGIN, lower_bucket
from .files import code_templates, secret_templates
from .gpu import lower_gpu
from .images import lower_image
from .schedule import lower_schedule

KILL_TIMEOUT_S = 10
RESULT_DIR = "${NOMAD_ALLOC_DIR}/data"
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

@dataclass(frozen=True, slots=True, kw_only=True)
class BuildOptions:
    """What the command line decides about the emitted jobs."""

    driver: Driver = Driver.DOCKER
    image_registry: str | None = None
    datacenters: tuple[str, ...] = ("*",)
    namespace: str | None = None
    region: str | None = None
    node_pool: str | None = None
    # "deploy": schedules become periodic jobs; "run": every function is dispatchable.
    mode: str = "deploy"
    default_python: str = "3.11"
    # "host": group volumes are Nomad host volumes (static or dynamic); "csi": CSI volumes.
    volume_type: str = "host"
    # The Nomad ID of the S3 CSI plugin that mounts modal.CloudBucketMount buckets (lower/buckets.py).
    s3_csi_plugin: str = DEFAULT_S3_CSI_PLUGIN
    # The blob store of the jobs' large call inputs (``--blob-url``, compiler/blob_store.py), recorded in their
    # meta for callers and ``modalc app stop``: ``s3://bucket[/prefix]``, or None.
    blob_url: str | None = None


def _env(node: FunctionNode, extra: dict[str, str]) -> tuple[tuple[str, str], ...]:
    env = node.options.get("env") or {}
    if not isinstance(env, dict):
        raise UserError(f"env= must be a dict of strings, got {type(env).__name__}", location=node.location)
    out = dict(extra)
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_KEY.match(key):
            raise UserError(f"env key {key!r} is not a valid environment variable name", location=node.location,
                            hint="use letters, digits and '_', not starting with a digit")
        if key.startswith("MODALC_") or key.startswith("NOMAD_"):
            raise UserError(f"env key {key!r} is reserved", location=node.location,
                            hint="MODALC_* and NOMAD_* are set by modalc and Nomad")
        if not isinstance(value, str):
            raise UserError(f"env[{key!r}] must be a string, got {type(value).__name__}", location=node.location,
                            hint=f"write {key}={str(value)!r}")
        out[key] = value
    return tuple(sorted(out.items()))


def volume_request(name: str, source: str, volume_type: str) -> VolumeRequest:
    """The group ``volume`` block: a host volume, or a CSI volume every allocation may write."""
    if volume_type == "csi":
        return VolumeRequest(name=name, type="csi", source=source, read_only=False,
                             access_mode="multi-node-multi-writer", attachment_mode="file-system", per_alloc=False)
    return VolumeRequest(name=name, type="host", source=source, read_only=False)


def _volumes(node: FunctionNode, opts: BuildOptions) -> tuple[tuple[VolumeRequest, ...], tuple[VolumeMount, ...],
                                                                tuple[BucketVolume, ...]]:
    requests: dict[str, VolumeRequest] = {}
    mounts: list[VolumeMount] = []
    buckets: dict[str, BucketVolume] = {}
    volumes = dict(node.options.get("volumes") or {})
    volumes.update({p: v for p, v in dict(node.options.get("network_file_systems") or {}).items()})
    for path, volume in sorted(volumes.items(), key=lambda kv: str(kv[0])):
        path = str(path)
        if not isinstance(volume, (Volume, NetworkFileSystem, CloudBucketMount)):
            raise UserError(f"volumes[{path!r}] must be a modal.Volume, got {type(volume).__name__}",
                            location=node.location)
        if not path.startswith("/") or path == "/":
            raise UserError(f"volume mount path {path!r} must be an absolute path below /", location=node.location)
        if isinstance(volume, CloudBucketMount):
            request, bucket = lower_bucket(volume, path, opts.s3_csi_plugin, node.location)
            requests.setdefault(request.name, request)
            buckets.setdefault(bucket.id, bucket)
            mounts.append(VolumeMount(volume=request.name, destination=path, read_only=request.read_only))
            continue
        name = re.sub(r"[^A-Za-z0-9_-]", "-", volume.name)
        read_only = bool(getattr(volume, "mount_read_only", False))
        requests.setdefault(name, volume_request(name, volume.name, opts.volume_type))
        mounts.append(VolumeMount(volume=name, destination=path, read_only=read_only))
    return (tuple(requests[k] for k in sorted(requests)), tuple(mounts),
            tuple(buckets[k] for k in sorted(buckets)))


def _unsupported(node: FunctionNode) -> None:
    opts = node.options
    if opts.get("proxy") is not None:
        raise UserError("proxy= (modal.Proxy) is not supported by modalc", location=node.location,
                        hint="give the Nomad clients a static egress IP (NAT) instead")
    if opts.get("mounts"):
        raise UserError("mounts= was removed in Modal 1.0", location=node.location,
                        hint="use image.add_local_dir()/add_local_file()/add_local_python_source()")
    if opts.get("cloud_bucket_mounts"):
        raise UserError("cloud_bucket_mounts= is not supported by modalc (nor by Modal 1.x)", location=node.location,
                        hint="pass the modal.CloudBucketMount in volumes={path: ...}: it becomes a CSI volume "
                        "(a host volume also works if you mount the bucket on the Nomad clients)")


def _network_mode(node: FunctionNode, opts: BuildOptions) -> str | None:
    """``block_network=True``: docker's ``network_mode = "none"``; refused where it cannot be enforced."""
    if not node.options.get("block_network"):
        return None
    if opts.driver is not Driver.DOCKER:
        raise UserError("block_network=True cannot be enforced with --driver raw_exec: the task shares the node's "
                        "network", location=node.location,
                        hint="use the docker driver (network_mode = \"none\"), or drop block_network=")
    if node.web is not None or any(node.options.get(k) for k in ("min_containers", "buffer_containers",
                                                                  "scaledown_window")):
        raise UserError("block_network=True cannot be combined with a web endpoint or warm containers: "
                        "they serve over the network", location=node.location,
                        hint="drop block_network= from this function")
    return "none"


def lower_function(node: FunctionNode, graph: AppGraph, opts: BuildOptions) -> FunctionJob:
    loc = node.location
    o: dict[str, Any] = node.options
    _unsupported(node)
    devices = lower_gpu(o.get("gpu"), loc)
    memory, memory_max = res.memory_mib(o.get("memory"), loc)
    resources = Resources(cpu_mhz=res.cpu_mhz(o.get("cpu"), loc), memory_mib=memory, memory_max_mib=memory_max,
                          devices=devices)
    timeout = res.timeout_s(o.get("timeout"), loc)
    retries = res.retry_policy(o.get("retries"), loc)
    periodic = lower_schedule(o.get("schedule"), loc) if opts.mode == "deploy" else None
    if o.get("schedule") is not None and opts.mode != "deploy":
        lower_schedule(o.get("schedule"), loc)  # still validated in run mode
    disk = res.ephemeral_disk_mib(o.get("ephemeral_disk"), loc)
    group_volumes, mounts, buckets = _volumes(node, opts)
    app_paths = app_secrets(graph) if opts.mode == "deploy" else None
    templates = code_templates(graph.sources) + secret_templates(o.get("secrets") or (), loc, mode=opts.mode,
                                                                 app_paths=app_paths)

    image_ref: str | None = None
    build = None
    if opts.driver is Driver.DOCKER:
        image_ref, build = lower_image(node.image, registry=opts.image_registry,
                                       default_python=opts.default_python, location=loc, sources=graph.sources)
    args = ["-m", "agent_runtime", "--code", f"${{NOMAD_TASK_DIR}}/{CODE_DIR}", "--module", node.module,
            "--qualname", node.qualname, "--result-dir", RESULT_DIR, "--timeout", str(timeout)]
    args += list(retries.args())
    if periodic:
        args += ["--no-input"]
    else:
        args += ["--call", f"${{NOMAD_TASK_DIR}}/{PAYLOAD_FILE}"]
    if node.is_generator:
        args += ["--generator"]
    config = DriverConfig(image=image_ref, command="python" if opts.driver is Driver.DOCKER else "python3",
                          args=tuple(args), network_mode=_network_mode(node, opts))
    extra_env = {"MODALC_IN_CONTAINER": "1", "MODALC_IMAGE": node.image.recipe_key, "PYTHONUNBUFFERED": "1"}
    task = Task(
        name=TASK_NAME,
        driver=opts.driver,
        config=config,
        env=_env(node, extra_env),
        resources=resources,
        dispatch_payload_file=None if periodic else PAYLOAD_FILE,
        templates=templates,
        volume_mounts=mounts,
        kill_timeout_s=KILL_TIMEOUT_S,
        identity_file=True,  # every function may call others (the Task API always needs a credential)
    )
    group = Group(
        name=re.sub(r"[^A-Za-z0-9_-]", "-", node.tag),
        count=1,
        tasks=(task,),
        # Retries live in the runtime (per input, with Modal's backoff); Nomad must not
        # restart or reschedule a failed task a second time. Lost allocations are still
        # replaced by Nomad, which the reschedule policy does not govern.
        restart=Restart(attempts=0, mode="fail"),
        reschedule=Reschedule(attempts=0, unlimited=False),
        ephemeral_disk_mib=disk,
        volumes=group_volumes,
    )
    meta = {"modalc_app": graph.app_name, "modalc_function": node.tag, "modalc_format": SPEC_FORMAT_VERSION}
    max_containers = o.get("max_containers")
    if max_containers is not None:
        if isinstance(max_containers, bool) or not isinstance(max_containers, int) or max_containers < 1:
            raise UserError(f"max_containers={max_containers!r} must be a positive integer", location=loc)
        meta["modalc_max_containers"] = str(max_containers)
    if opts.blob_url and not periodic:  # a periodic job takes no calls
        meta[BLOB_META] = opts.blob_url
    job = Job(
        id=job_id(graph.app_name, node.tag),
        type=JobType.BATCH,
        datacenters=opts.datacenters,
        namespace=opts.namespace,
        region=opts.region,
        node_pool=opts.node_pool,
        meta=tuple(sorted(meta.items())),
        periodic=periodic,
        parameterized=None if periodic else Parameterized(payload="required", meta_required=(),
                                                          meta_optional=("modalc_call",)),
        groups=(group,),
    )
    return FunctionJob(tag=node.tag, job=job, module=node.module, qualname=node.qualname, image=build,
                       is_generator=node.is_generator, input_groups=input_groups(node),
                       batch_waits=batch_waits(node), bucket_volumes=buckets)


def _group_size(partial: dict[str, Any], location: tuple[str, int]) -> int:
    """``@modal.concurrent(max_inputs=)`` / ``@modal.batched(max_batch_size=)``, checked; 1 without them."""
    concurrent, batched = partial.get("concurrent"), partial.get("batched")
    if concurrent and batched:
        raise UserError("@modal.concurrent and @modal.batched cannot be combined", location=location)
    key, settings = ("max_batch_size", batched) if batched else ("max_inputs", concurrent)
    if not settings:
        return 1
    size = settings.get(key)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise UserError(f"{key}={size!r} must be a positive integer", location=location)
    wait_ms = settings.get("wait_ms", 0)
    if batched and (isinstance(wait_ms, bool) or not isinstance(wait_ms, int) or wait_ms < 0):
        raise UserError(f"wait_ms={wait_ms!r} must be a non-negative integer", location=location)
    return size


def _partials(node: FunctionNode) -> list[tuple[str, dict[str, Any], tuple[str, int]]]:
    """(method, its decorators' settings, where) per method ("" for a function)."""
    if node.kind != "cls":
        return [("", node.partial, node.location)]
    return [(name, {**node.partial, **{k: v for k, v in pf.flags.items() if k == "batched"}}, pf.location)
            for name, pf in getattr(node.obj, "methods", {}).items()]


def input_groups(node: FunctionNode) -> tuple[tuple[str, int], ...]:
    """Per method ("" for a function): how many inputs an allocation runs at once, when more than one."""
    sizes = ((name, _group_size(partial, where)) for name, partial, where in _partials(node))
    return tuple(sorted((name, size) for name, size in sizes if size > 1))


def batch_waits(node: FunctionNode) -> tuple[tuple[str, int], ...]:
    """Per ``@modal.batched`` method ("" for a function): its ``wait_ms`` (checked by ``input_groups``)."""
    return tuple(sorted((name, int(partial["batched"].get("wait_ms") or 0))
                        for name, partial, _ in _partials(node) if partial.get("batched")))
