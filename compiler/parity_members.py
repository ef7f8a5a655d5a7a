"""The member tables of real Modal's classes and decorators: what each method and keyword becomes.

Runs on the client (and in tests): pure data, counts and a Markdown
renderer, no import of the real ``modal`` package. ``compiler/parity.py``
holds the table of ``modal.__all__`` names; this module the tables one
level down. ``tests/test_modal_oracle.py`` walks the real package's
``Image``, ``Secret``, ``Volume``, ``Function``, ``FunctionCall``, ``Cls``,
the constructors of ``CloudBucketMount``, ``Retries``, ``Cron`` and
``Period``, and the decorators, and fails, naming it, for a member with no
row in ``MEMBERS``, a row naming no real member, and a member whose row is
not ``refused`` but which the compat SDK lacks or takes with other keyword
names, positions or defaults than the real one — unless ``KEYWORDS`` has a
row for that keyword. ``docs/mapping.md`` holds the rendering.
"""

from __future__ import annotations

from .parity import BECOMES, NO_EFFECT, REFUSED, STATUSES, WORKS

_DOCKERFILE = "a Dockerfile step built by `modalc build`"
_MOUNTED = "works on the mount path where the volume is mounted (a function's or a local run's)"
_WEB = "a Nomad service job with a port, service and check"

# "Owner.member" -> (status, what it is on Nomad / why refused). Owners are the compat SDK's names;
# ``Owner.__init__`` is a constructor's keywords, ``modal.<name>`` a decorator.
MEMBERS: dict[str, tuple[str, str]] = {
    # -- Image ----------------------------------------------------------------
    "Image.add_local_dir": (BECOMES, "copied into the image (`COPY`), files matching `ignore` left out"),
    "Image.add_local_file": (BECOMES, "copied into the image (`COPY`)"),
    "Image.add_local_python_source": (BECOMES, "the modules copied into the image's /root (`COPY`)"),
    "Image.apt_install": (BECOMES, _DOCKERFILE),
    "Image.build": (REFUSED, "builds on Modal; images are built by `modalc build`"),
    "Image.cmd": (BECOMES, "the Dockerfile's `CMD`"),
    "Image.debian_slim": (BECOMES, "a `python:<version>-slim-bookworm` base"),
    "Image.dockerfile_commands": (BECOMES, "the commands, verbatim, in the Dockerfile"),
    "Image.entrypoint": (BECOMES, "the Dockerfile's `ENTRYPOINT`"),
    "Image.env": (BECOMES, "the Dockerfile's `ENV`"),
    "Image.from_aws_ecr": (BECOMES, "a `FROM` of that registry; the Nomad clients pull it"),
    "Image.from_dockerfile": (BECOMES, "that Dockerfile, built by `modalc build`"),
    "Image.from_gcp_artifact_registry": (BECOMES, "a `FROM` of that registry; the Nomad clients pull it"),
    "Image.from_id": (REFUSED, "Modal's image IDs (not in the compat SDK)"),
    "Image.from_name": (REFUSED, "Modal's published images (not in the compat SDK)"),
    "Image.from_registry": (BECOMES, "a `FROM` of that image; the Nomad clients pull it"),
    "Image.from_scratch": (REFUSED, "not in the compat SDK; use `from_registry` or `from_dockerfile`"),
    "Image.hydrate": (WORKS, "returns the image (nothing to look up)"),
    "Image.imports": (WORKS, "import failures are kept on the client, raised in the image's container"),
    "Image.logs": (REFUSED, "Modal's build logs; `modalc build` streams them"),
    "Image.micromamba": (BECOMES, "a micromamba base image"),
    "Image.micromamba_install": (BECOMES, _DOCKERFILE),
    "Image.pip_install": (BECOMES, _DOCKERFILE),
    "Image.pip_install_from_pyproject": (BECOMES, _DOCKERFILE),
    "Image.pip_install_from_requirements": (BECOMES, _DOCKERFILE),
    "Image.pip_install_private_repos": (REFUSED, "not in the compat SDK; use `run_commands` with a git URL"),
    "Image.pipe": (WORKS, "`func(image, *args, **kwargs)`"),
    "Image.poetry_install_from_file": (REFUSED, "not in the compat SDK; use `pip_install_from_pyproject`"),
    "Image.publish": (REFUSED, "Modal's published images; push with `modalc build --push`"),
    "Image.run_commands": (BECOMES, _DOCKERFILE),
    "Image.run_function": (BECOMES, "a build step running the function in the image being built"),
    "Image.shell": (BECOMES, "the Dockerfile's `SHELL`"),
    "Image.uv_pip_install": (BECOMES, _DOCKERFILE),
    "Image.uv_sync": (REFUSED, "not in the compat SDK; use `uv_pip_install`"),
    "Image.workdir": (BECOMES, "the Dockerfile's `WORKDIR`"),
    # -- Secret ---------------------------------------------------------------
    "Secret.from_dict": (BECOMES, "a Nomad Variable: run-scoped in `modalc run`, and in build/deploy (values never "
                         "in the spec)"),
    "Secret.from_dotenv": (BECOMES, "a run-scoped Nomad Variable in `modalc run`; refused by build/deploy"),
    "Secret.from_local_environ": (BECOMES, "a run-scoped Nomad Variable in `modalc run`; refused by build/deploy"),
    "Secret.from_name": (BECOMES, "a Nomad Variable read by a template block (`modalc secret create`)"),
    "Secret.info": (REFUSED, "Modal's secret registry; use `modalc secret list`"),
    "Secret.name": (WORKS, "the name given to `from_name`"),
    "Secret.objects": (REFUSED, "Modal's secret registry; use `modalc secret list/create/delete`"),
    "Secret.update": (REFUSED, "Modal's secret registry; use `modalc secret create`"),
    # -- Volume ---------------------------------------------------------------
    "Volume.batch_upload": (WORKS, _MOUNTED),
    "Volume.commit": (NO_EFFECT, "a no-op: the volume is a shared directory, writes are visible at once"),
    "Volume.copy_files": (WORKS, _MOUNTED),
    "Volume.ephemeral": (REFUSED, "an error on use; declare a named volume with `from_name`"),
    "Volume.from_id": (REFUSED, "Modal's volume IDs (not in the compat SDK)"),
    "Volume.from_name": (BECOMES, "a Nomad host (or CSI) volume of that name"),
    "Volume.info": (REFUSED, "Modal's volume registry; use `modalc volume list`"),
    "Volume.iterdir": (WORKS, _MOUNTED),
    "Volume.listdir": (WORKS, _MOUNTED),
    "Volume.name": (WORKS, "the volume's name"),
    "Volume.objects": (REFUSED, "Modal's volume registry; use `modalc volume list/create/delete`"),
    "Volume.read_file": (WORKS, _MOUNTED),
    "Volume.read_file_into_fileobj": (WORKS, _MOUNTED),
    "Volume.read_only": (BECOMES, "a `volume_mount` with `read_only = true`"),
    "Volume.reload": (NO_EFFECT, "a no-op: the volume is a shared directory, always current"),
    "Volume.remove_file": (WORKS, _MOUNTED),
    "Volume.rename": (REFUSED, "an error on use; host volumes are named in the Nomad client configuration"),
    "Volume.with_mount_options": (BECOMES, "the `volume_mount`'s options (`read_only`)"),
    # -- Function -------------------------------------------------------------
    "Function.app": (WORKS, "the App it was declared on (None when looked up by name)"),
    "Function.autoscaler": (REFUSED, "Modal's autoscaler; use `nomad job scale`"),
    "Function.experimental_spawn_map": (REFUSED, "not in the compat SDK; use `spawn_map`"),
    "Function.for_each": (WORKS, "inputs dispatched to the function's Nomad job"),
    "Function.from_id": (REFUSED, "Modal's function IDs (not in the compat SDK); use `from_name`"),
    "Function.from_name": (WORKS, "a function of an app deployed by `modalc deploy`"),
    "Function.get_current_stats": (REFUSED, "Modal's queue statistics; use `nomad job status`"),
    "Function.get_web_url": (WORKS, "the Nomad service's address"),
    "Function.info": (REFUSED, "Modal's function registry; use `nomad job status`"),
    "Function.local": (WORKS, "runs the Python function in this process"),
    "Function.logs": (REFUSED, "Modal's log service; use `nomad alloc logs`"),
    "Function.map": (WORKS, "inputs dispatched to the function's Nomad job, in chunks"),
    "Function.metrics": (REFUSED, "Modal's metrics; use Nomad's telemetry"),
    "Function.remote": (WORKS, "a dispatched Nomad job (or a warm worker's input)"),
    "Function.remote_gen": (WORKS, "a dispatched job streaming its values back"),
    "Function.spawn": (WORKS, "a dispatched job; its `FunctionCall` is `fc-<job ID>`"),
    "Function.spawn_map": (WORKS, "one dispatched job per input"),
    "Function.starmap": (WORKS, "inputs dispatched to the function's Nomad job, in chunks"),
    "Function.stats": (REFUSED, "Modal's statistics; use `nomad job status`"),
    "Function.update_autoscaler": (REFUSED, "Modal's autoscaler; use `nomad job scale`"),
    "Function.with_batching": (REFUSED, "not for functions yet; `Cls.with_batching` works"),
    "Function.with_concurrency": (REFUSED, "not for functions yet; `Cls.with_concurrency` works"),
    "Function.with_options": (REFUSED, "not for functions yet; `Cls.with_options` works"),
    # -- FunctionCall ---------------------------------------------------------
    "FunctionCall.cancel": (BECOMES, "stops the dispatched Nomad job"),
    "FunctionCall.from_id": (WORKS, "the call of that `fc-<job ID>`"),
    "FunctionCall.gather": (WORKS, "the calls' results, in order"),
    "FunctionCall.get": (WORKS, "waits for the dispatched job's result"),
    "FunctionCall.get_call_graph": (REFUSED, "Modal's call graph (not in the compat SDK)"),
    "FunctionCall.iter": (REFUSED, "a call's values one by one (not in the compat SDK); use `remote_gen`"),
    "FunctionCall.logs": (REFUSED, "Modal's log service; use `nomad alloc logs`"),
    "FunctionCall.num_inputs": (REFUSED, "not in the compat SDK (a `FunctionCall` is one input)"),
    # -- Cls ------------------------------------------------------------------
    "Cls.from_name": (WORKS, "a class of an app deployed by `modalc deploy`"),
    "Cls.with_batching": (WORKS, "a variant of the class batching its inputs: its own Nomad job"),
    "Cls.with_concurrency": (WORKS, "a variant of the class with that input concurrency: its own Nomad job"),
    "Cls.with_options": (BECOMES, "a variant of the class with those resources: its own Nomad job"),
    # -- constructors ---------------------------------------------------------
    "CloudBucketMount.__init__": (BECOMES, "a Nomad CSI volume"),
    "Cron.__init__": (BECOMES, "a Nomad periodic job (`cron`, `time_zone`)"),
    "Period.__init__": (BECOMES, "a Nomad periodic cron when exact; otherwise a build error"),
    "Retries.__init__": (BECOMES, "retried per input inside the allocation, with Modal's backoff"),
    # -- decorators -----------------------------------------------------------
    "modal.asgi_app": (BECOMES, _WEB),
    "modal.batched": (WORKS, "dynamic batching inside the allocation"),
    "modal.concurrent": (WORKS, "input concurrency inside the allocation"),
    "modal.enter": (WORKS, "runs once per allocation, before the first input"),
    "modal.exit": (WORKS, "runs when the allocation stops"),
    "modal.fastapi_endpoint": (BECOMES, _WEB),
    "modal.method": (WORKS, "a class method, dispatched in the allocation"),
    "modal.parameter": (WORKS, "a class parameter, sent with each call"),
    "modal.web_endpoint": (BECOMES, _WEB + " (the deprecated name of `fastapi_endpoint`)"),
    "modal.web_server": (BECOMES, _WEB),
    "modal.wsgi_app": (BECOMES, _WEB),
}

# What every Modal object inherits from ``_Object``, for the owners not overriding it above.
_OBJECT_MEMBERS = {
    "client": (REFUSED, "Modal's API client; there is no Modal server"),
    "get_dashboard_url": (REFUSED, "Modal's web dashboard; use the Nomad UI"),
    "hydrate": (WORKS, "returns the object (nothing to look up)"),
    "object_id": (REFUSED, "Modal's object IDs (not in the compat SDK)"),
}
MEMBERS["FunctionCall.object_id"] = (WORKS, "`fc-<dispatched job ID>`")
for _owner in ("Image", "Secret", "Volume", "Function", "FunctionCall", "Cls"):
    for _name, _row in _OBJECT_MEMBERS.items():
        MEMBERS.setdefault(f"{_owner}.{_name}", _row)

_GPU = (NO_EFFECT, "ignored: images are built without a GPU")
_FORCE = (NO_EFFECT, "ignored: the container builder's cache decides")
_STEP_ENV = (REFUSED, "a build step's own environment is an error; use `Image.env(...)` before the step")
_STEP_SECRETS = (NO_EFFECT, "ignored: build steps do not see secrets; put credentials in the builder's config")
_CLIENT = (NO_EFFECT, "ignored: there is no Modal client")
_ENV_NAME = (NO_EFFECT, "ignored: use a Nomad namespace (`--namespace`)")
_VERSION = (NO_EFFECT, "ignored: one version of a deployed app, the Nomad job's")
_BUILDER = {"force_build": _FORCE, "gpu": _GPU, "env": _STEP_ENV, "secrets": _STEP_SECRETS}
_CUSTOM_DOMAINS = (NO_EFFECT, "ignored: the URL is the Nomad service's address")
_PROXY_AUTH = (REFUSED, "True is an error: no proxy authenticates requests in front of a Nomad service")
_WEB_KEYWORDS = {"custom_domains": _CUSTOM_DOMAINS, "requires_proxy_auth": _PROXY_AUTH}

# "Owner.member" -> {keyword: (status, note)}: the keywords of a member that the compat SDK does not take
# as real Modal does (or takes and ignores). A keyword without a row must have the real one's name,
# position and default in the compat SDK. A ``refused`` keyword may be missing from it.
KEYWORDS: dict[str, dict[str, tuple[str, str]]] = {
    "App.__init__": {"include_source": (NO_EFFECT, "modalc always ships the app's source file")},
    "App.deploy": {"client": _CLIENT, "tag": (NO_EFFECT, "ignored: the deployed jobs carry the app's name"),
                   "strategy": (NO_EFFECT, "ignored: the jobs' Nomad `update` block decides (rolling)")},
    "App.run": {"client": _CLIENT, "name": (NO_EFFECT, "ignored: the run's jobs are named after the app")},
    "Image.add_local_dir": {"copy": (NO_EFFECT, "files are always copied into the image at build"),
                            "ignore": (WORKS, "glob patterns left out of the copy (a callable is not applied)")},
    "Image.add_local_file": {"copy": (NO_EFFECT, "files are always copied into the image at build")},
    "Image.add_local_python_source": {"copy": (NO_EFFECT, "files are always copied into the image at build"),
                                      "ignore": (NO_EFFECT, "ignored: the modules are copied whole but for .pyc files")},
    "Image.apt_install": _BUILDER,
    "Image.debian_slim": {"force_build": _FORCE},
    "Image.dockerfile_commands": {**_BUILDER, "ignore": (NO_EFFECT, "ignored: the context is the files named"),
                                  "build_args": (REFUSED, "an error when given; write the values into the "
                                                 "commands")},
    "Image.from_aws_ecr": {"force_build": _FORCE, "secret": (NO_EFFECT, "ignored: log the Nomad clients' and "
                                                             "the builder's Docker into the registry")},
    "Image.from_dockerfile": {**_BUILDER, "ignore": (NO_EFFECT, "ignored: the context is the whole context_dir"),
                              "build_args": (REFUSED, "an error when given; write the values into the Dockerfile"),
                              "registry_secret": (NO_EFFECT, "ignored: log the builder's Docker into the "
                                                  "registry")},
    "Image.from_gcp_artifact_registry": {"force_build": _FORCE, "secret": (NO_EFFECT, "ignored: log the Nomad "
                                         "clients' and the builder's Docker into the registry")},
    "Image.from_registry": {"force_build": _FORCE, "secret": (NO_EFFECT, "ignored: log the Nomad clients' and "
                                                              "the builder's Docker into the registry")},
    "Image.micromamba": {"force_build": _FORCE},
    "Image.micromamba_install": _BUILDER,
    "Image.pip_install": _BUILDER,
    "Image.pip_install_from_pyproject": _BUILDER,
    "Image.pip_install_from_requirements": _BUILDER,
    "Image.run_commands": {**_BUILDER, "volumes": (REFUSED, "an error when given: build steps mount no volumes")},
    "Image.run_function": {
        "secrets": (WORKS, "the secrets' values in the build step's environment"),
        "volumes": (WORKS, "the volumes mounted in the build step"),
        "gpu": (WORKS, "the build step run on a GPU node"),
        "env": _STEP_ENV,
        "network_file_systems": (REFUSED, "an error when given"),
        "cpu": (NO_EFFECT, "ignored: the builder's resources"),
        "memory": (NO_EFFECT, "ignored: the builder's resources"),
        "cloud": (NO_EFFECT, "ignored: no cloud placement on Nomad"),
        "region": (NO_EFFECT, "ignored: no region placement on Nomad"),
        "force_build": _FORCE,
        "include_source": (NO_EFFECT, "ignored: the function's module is always in the build context"),
    },
    "Image.uv_pip_install": _BUILDER,
    "Secret.from_dotenv": {"client": _CLIENT},
    "Secret.from_name": {"client": _CLIENT, "environment_name": _ENV_NAME},
    "Volume.from_name": {"client": _CLIENT, "environment_name": _ENV_NAME, "version": _VERSION,
                         "create_options": (NO_EFFECT, "ignored: the host or CSI volume's own options")},
    "Volume.with_mount_options": {"sub_path": (REFUSED, "an error when given: a Nomad volume_mount has no "
                                               "sub-path")},
    "Function.from_name": {"client": _CLIENT, "environment_name": _ENV_NAME, "version": _VERSION},
    "Cls.from_name": {"client": _CLIENT, "environment_name": _ENV_NAME, "version": _VERSION},
    "FunctionCall.cancel": {"terminate_containers": (NO_EFFECT, "the job is stopped either way")},
    "FunctionCall.from_id": {"client": _CLIENT},
    "FunctionCall.get": {"index": (REFUSED, "anything but 0 is an error: a FunctionCall is one input")},
    "CloudBucketMount.__init__": {"force_path_style": (WORKS, "the CSI volume's path-style addressing")},
    "modal.enter": {"snap": (NO_EFFECT, "memory snapshots: the method still runs once per allocation")},
    "modal.fastapi_endpoint": {**_WEB_KEYWORDS, "docs": (WORKS, "FastAPI's /docs page")},
    "modal.asgi_app": _WEB_KEYWORDS,
    "modal.wsgi_app": _WEB_KEYWORDS,
    "modal.web_server": _WEB_KEYWORDS,
}


def counts() -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for status, _ in MEMBERS.values():
        out[status] += 1
    return out


def keyword_counts() -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for rows in KEYWORDS.values():
        for status, _ in rows.values():
            out[status] += 1
    return out


def app_counts(real_methods: list[str]) -> dict[str, int]:
    """The statuses of real ``App``'s methods: ``parity.APP_MEMBERS``'s rows, ``works`` for the rest."""
    from .parity import APP_MEMBERS

    out = dict.fromkeys(STATUSES, 0)
    for name in real_methods:
        out[APP_MEMBERS.get(name, (WORKS, ""))[0]] += 1
    return out


def render_markdown() -> list[str]:
    """The member tables as docs/mapping.md shows them (inside parity.render_markdown's markers)."""
    c = counts()
    lines = ["", f"Members of real Modal's classes and decorators: {len(MEMBERS)}; {c[WORKS]} work, "
             f"{c[BECOMES]} become a Nomad equivalent, {c[NO_EFFECT]} are accepted without effect, {c[REFUSED]} "
             "are refused.", "", "| member | status | on Nomad / reason |", "|---|---|---|"]
    lines += [f"| `{name}` | {status} | {note} |" for name, (status, note) in sorted(MEMBERS.items())]
    k = keyword_counts()
    lines += ["", f"Keywords of those members that differ from real Modal's: {sum(k.values())}; {k[WORKS]} work, "
              f"{k[BECOMES]} become a Nomad equivalent, {k[NO_EFFECT]} are accepted without effect, {k[REFUSED]} are "
              "refused. Every other keyword is taken with real Modal's name, position and default.", "",
              "| member | keyword | status | on Nomad / reason |", "|---|---|---|---|"]
    lines += [f"| `{name}` | `{kw}` | {status} | {note} |" for name, rows in sorted(KEYWORDS.items())
              for kw, (status, note) in sorted(rows.items())]
    return lines
