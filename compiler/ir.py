"""The intermediate representation: Nomad jobs as frozen dataclasses.

Runs on the client. Standard library only, no I/O, no defaults that matter:
lowering fills every field; the HCL and JSON emitters and the local backend
only read them. Units are in the field names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

Pairs = tuple[tuple[str, str], ...]

SPEC_FORMAT_VERSION = "1"
PAYLOAD_FILE = "call.pkl"
CODE_DIR = "code"
TASK_NAME = "main"
RPC_PORT = "rpc"  # the port label of a warm worker's call channel


class JobType(enum.Enum):
    BATCH = "batch"
    SERVICE = "service"


class Driver(enum.Enum):
    DOCKER = "docker"
    RAW_EXEC = "raw_exec"


@dataclass(frozen=True, slots=True, kw_only=True)
class Constraint:
    attribute: str
    operator: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Affinity:
    attribute: str
    operator: str
    value: str
    weight: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    name: str
    count: int
    constraints: tuple[Constraint, ...] = ()
    affinities: tuple[Affinity, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    cpu_mhz: int
    memory_mib: int
    memory_max_mib: int | None
    devices: tuple[Device, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    """A file Nomad renders into the task directory before the task starts."""

    destination: str
    data: str
    left_delimiter: str | None
    right_delimiter: str | None
    env: bool
    change_mode: str
    perms: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeMount:
    volume: str
    destination: str
    read_only: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeRequest:
    name: str
    type: str  # "host" | "csi"
    source: str
    read_only: bool
    # CSI only (None for host volumes): how the volume is claimed.
    access_mode: str | None = None
    attachment_mode: str | None = None
    per_alloc: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketVolume:
    """A CSI volume backed by an S3 bucket (``modal.CloudBucketMount``), written as ``<id>.volume.hcl``.

    The operator registers it (``nomad volume register``) before the jobs that claim it run;
    ``secret`` names the Modal secret holding its credentials: never its values."""

    id: str
    plugin_id: str
    bucket: str
    read_only: bool
    access_mode: str
    mount_flags: tuple[str, ...]
    secret: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Port:
    """A dynamic port of the group's network; ``to`` maps it into a container (docker)."""

    label: str
    to: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRestart:
    """``check_restart``: restart the task after ``limit`` failed checks in a row, not before ``grace_s``."""

    limit: int
    grace_s: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    type: str  # "http" | "tcp"
    path: str | None
    interval_s: int
    timeout_s: int
    restart: CheckRestart | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """A service registration; modalc uses Nomad's own service catalog (``provider = "nomad"``)."""

    name: str
    port: str
    provider: str
    tags: tuple[str, ...]
    checks: tuple[Check, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Restart:
    attempts: int
    mode: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reschedule:
    attempts: int
    unlimited: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DriverConfig:
    image: str | None  # docker only
    command: str
    args: tuple[str, ...]
    ports: tuple[str, ...] = ()  # docker: the group's port labels mapped into the container
    network_mode: str | None = None  # docker: "none" for block_network=True


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    name: str
    driver: Driver
    config: DriverConfig
    env: Pairs
    resources: Resources
    dispatch_payload_file: str | None
    templates: tuple[Template, ...]
    volume_mounts: tuple[VolumeMount, ...]
    kill_timeout_s: int
    # identity { file = true }: the task's workload identity in ${NOMAD_SECRETS_DIR}/nomad_token, which
    # authenticates calls made inside the allocation to the Task API (agent_runtime/nested/nomad_channel.py).
    identity_file: bool
    # shutdown_delay: between removing the task's service registrations and the kill signal (@app.server's
    # exit_grace_period: requests in flight finish, no new ones are routed to it).
    shutdown_delay_s: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    name: str
    count: int
    tasks: tuple[Task, ...]
    restart: Restart
    reschedule: Reschedule | None
    ephemeral_disk_mib: int | None
    volumes: tuple[VolumeRequest, ...]
    # Allocations that listen (web endpoints, warm workers): ports and Nomad-native services.
    network_ports: tuple[Port, ...] = ()
    services: tuple[Service, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Periodic:
    crons: tuple[str, ...]
    time_zone: str
    prohibit_overlap: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Parameterized:
    payload: str  # "optional" | "required" | "forbidden"
    meta_required: tuple[str, ...]
    meta_optional: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    id: str
    type: JobType
    datacenters: tuple[str, ...]
    namespace: str | None
    region: str | None
    node_pool: str | None
    meta: Pairs
    periodic: Periodic | None
    parameterized: Parameterized | None
    groups: tuple[Group, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextFile:
    """A file copied into an image's build context: ``source`` on this machine (or its bytes in
    ``data``, for files modalc writes), ``path`` in the context."""

    source: str
    path: str
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        with open(self.source, "rb") as fh:
            return fh.read()


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildSecret:
    """A ``Secret.from_name`` a ``run_function`` build step reads: a BuildKit build secret (``id`` = name)."""

    name: str
    required_keys: tuple[str, ...]
    location: tuple[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageBuild:
    """A built image: a Dockerfile and the files it copies, named by content."""

    tag: str
    dockerfile: str
    context: tuple[ContextFile, ...]
    # run_function steps: the build secrets they mount (values given by `modalc image build`, never in the
    # context), the GPU one asks for (``gpu=`` as written; the builder must give the step a GPU), build notes.
    build_secrets: tuple[BuildSecret, ...] = ()
    gpu: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Warm:
    """How the client keeps warm workers of a function (``compiler/warm_pool.py``); set for every
    warm-capable function (run and deploy mode)."""

    min_containers: int
    max_containers: int
    buffer_containers: int
    scaledown_window_s: int
    max_inputs: int  # concurrent calls per worker (@modal.concurrent max_inputs, else 1)
    service: str  # the Nomad service the workers register (port label RPC_PORT)
    timeout_s: int  # per attempt, enforced by the worker
    retries: int  # Modal's retry policy, applied by the client across workers
    backoff: float
    initial_delay_s: float
    max_delay_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionJob:
    """One compiled function: its job and what the client needs to call it."""

    tag: str  # the function's (or class's) name in the app
    job: Job
    module: str  # the user's module, as the runtime imports it
    qualname: str
    image: ImageBuild | None
    is_generator: bool
    # How many inputs one allocation runs at once, per method ("" for a function), when more than one
    # (@modal.concurrent max_inputs, @modal.batched max_batch_size): a .map's chunks hold at least that many.
    input_groups: tuple[tuple[str, int], ...] = ()
    # @modal.batched methods ("" for a function) and their wait_ms: the client gathers concurrent calls of
    # one into a single call of up to max_batch_size inputs, waiting at most wait_ms for it to fill.
    batch_waits: tuple[tuple[str, int], ...] = ()
    # The S3 bucket CSI volumes (modal.CloudBucketMount) its group claims: their volume specs.
    bucket_volumes: tuple[BucketVolume, ...] = ()

    def group_size(self, method: str | None) -> int:
        """How many inputs one allocation runs at once for ``method`` (None: the function)."""
        return dict(self.input_groups).get(method or "", 1)

    def batch_wait_ms(self, method: str | None) -> int | None:
        """``wait_ms`` of a ``@modal.batched`` method (None: the function); None when it is not batched."""
        return dict(self.batch_waits).get(method or "")
    # Warm workers that serve calls over HTTP (min/max/buffer_containers, scaledown_window, @modal.concurrent).
    warm: Warm | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledApp:
    app_name: str
    functions: tuple[FunctionJob, ...]
    warnings: tuple[str, ...]
