"""The mapping table of real Modal's public names: what each becomes under modalc.

Runs on the client (and in tests): pure data and a Markdown renderer, no
import of the real ``modal`` package. ``tests/test_modal_oracle.py`` reads
the real package's ``modal.__all__`` (the version pinned in pyproject's
``oracle`` extra) and fails, naming it, for any name without a row here, for
a row that no longer names a real one, and for a row whose status disagrees
with the compat SDK (``works`` needs the SDK to implement it; ``refused``
needs it absent or raising on use). ``docs/mapping.md`` holds the rendering
between its ``parity-table`` markers, checked by the same test; the tables of
members and keywords one level down are in ``compiler/parity_members.py``.
``python3 -m compiler.parity`` prints the counts.
"""

from __future__ import annotations

WORKS, BECOMES, NO_EFFECT, REFUSED = "works", "becomes", "no effect", "refused"
STATUSES = (WORKS, BECOMES, NO_EFFECT, REFUSED)

# name -> (status, what it is on Nomad / why refused)
TOP_LEVEL: dict[str, tuple[str, str]] = {
    "App": (WORKS, "the app: one Nomad job per function (see above)"),
    "Client": (REFUSED, "Modal's API client; there is no Modal server (error on use)"),
    "CloudBucketMount": (BECOMES, "a Nomad CSI volume of an S3 CSI plugin (`--s3-csi-plugin`); build writes its "
                         "volume spec, deploy registers it"),
    "Cls": (WORKS, "a class: one job per class, methods dispatched in the allocation"),
    "Cluster": (REFUSED, "multi-node clusters (modal.experimental); not in the compat SDK"),
    "Cron": (BECOMES, "a Nomad periodic job (cron, time_zone)"),
    "Dict": (REFUSED, "lives in Modal's cloud (error on use)"),
    "Environment": (REFUSED, "Modal environments; use a Nomad namespace (`--namespace`); not in the compat SDK"),
    "Error": (WORKS, "the base of modalc's exceptions"),
    "FilePatternMatcher": (WORKS, "fnmatch-based path matcher"),
    "Function": (WORKS, "a dispatchable Nomad batch job"),
    "FunctionCall": (WORKS, "a dispatched job (`fc-<job ID>`)"),
    "Image": (BECOMES, "a Dockerfile built by `modalc build`"),
    "NetworkFileSystem": (BECOMES, "a host (or CSI) volume, as a Volume"),
    "Period": (BECOMES, "a Nomad periodic cron when exact, sub-minute included; otherwise a build error"),
    "Probe": (REFUSED, "sandbox readiness probes; sandboxes are cloud-only; not in the compat SDK"),
    "Proxy": (REFUSED, "Modal's static-IP proxies (error on use)"),
    "Queue": (REFUSED, "lives in Modal's cloud (error on use)"),
    "Retries": (BECOMES, "retried per input inside the allocation, with Modal's backoff (Nomad restarts off)"),
    "Sandbox": (REFUSED, "lives in Modal's cloud (error on use)"),
    "SandboxSnapshot": (REFUSED, "lives in Modal's cloud (error on use)"),
    "SchedulerPlacement": (NO_EFFECT, "placement by `--datacenter/--node-pool`; noted by build"),
    "Secret": (BECOMES, "a Nomad Variable read by a template block"),
    "Server": (BECOMES, "`@app.server` (Modal 1.6): a Nomad service job (port, service with a TCP check); "
               "`get_url`, `from_name`"),
    "Tunnel": (REFUSED, "use a web endpoint (error on use)"),
    "Volume": (BECOMES, "a Nomad host (or CSI) volume"),
    "Workspace": (REFUSED, "Modal workspaces; no Nomad equivalent; not in the compat SDK"),
    "__version__": (WORKS, "the compat SDK's version (`1.0.0+modalc`)"),
    "asgi_app": (BECOMES, "a Nomad service job with a port, service and check"),
    "batched": (WORKS, "dynamic batching inside the allocation"),
    "billing": (REFUSED, "Modal billing reports; no Nomad equivalent; not in the compat SDK"),
    "clustered": (REFUSED, "multi-node clusters; use `.map`/`.spawn`; not in the compat SDK"),
    "concurrent": (WORKS, "input concurrency inside the allocation"),
    "current_function_call_id": (WORKS, "`fc-<dispatched job ID>`"),
    "current_input_id": (WORKS, "the input's ID inside the allocation"),
    "enable_output": (WORKS, "streamed logs with prefixes"),
    "enter": (WORKS, "runs once per allocation"),
    "exit": (WORKS, "runs when the allocation stops"),
    "experimental": (WORKS, "a few no-ops; the rest an error on use"),
    "fastapi_endpoint": (BECOMES, "a Nomad service job with a port, service and check"),
    "forward": (REFUSED, "use a web endpoint (error on use)"),
    "interact": (NO_EFFECT, "no interactive terminal in an allocation"),
    "is_local": (WORKS, "False inside allocations"),
    "method": (WORKS, "a class method, dispatched in the allocation"),
    "parameter": (WORKS, "a class parameter, sent with the call"),
    "sessioned": (REFUSED, "sessions (Modal 1.6) are not implemented; not in the compat SDK"),
    "types": (REFUSED, "Modal's typed-argument module; not in the compat SDK"),
    "web_endpoint": (BECOMES, "a Nomad service job with a port, service and check"),
    "web_server": (BECOMES, "a Nomad service job with a port, service and check"),
    "wsgi_app": (BECOMES, "a Nomad service job with a port, service and check"),
}

# Public methods of real Modal's ``App`` the compat SDK's App does not have: all refused.
APP_MEMBERS: dict[str, tuple[str, str]] = {
    name: (REFUSED, why) for name, why in {
        "app_id": "a deployed app's ID on Modal's server",
        "get_dashboard_url": "Modal's web dashboard; use the Nomad UI",
        "get_tags": "Modal app tags; use Nomad job meta",
        "set_tags": "Modal app tags; use Nomad job meta",
        "info": "Modal's app registry; use `nomad job status`",
        "logs": "Modal's log service; use `nomad alloc logs`",
        "lookup": "Modal's app registry; use `modalc deploy` and `Function.from_name`",
        "registered_web_endpoints": "not in the compat SDK (its web functions are in `registered_functions`)",
        "sandboxes": "sandboxes live in Modal's cloud",
        "stats": "Modal's app statistics; use Nomad's job summary",
        "stop": "Modal's app registry; use `nomad job stop`",
    }.items()
}

BEGIN, END = "<!-- parity-table: begin (generated from compiler/parity.py) -->", "<!-- parity-table: end -->"


def counts() -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for status, _ in TOP_LEVEL.values():
        out[status] += 1
    return out


def render_markdown() -> str:
    """The table as docs/mapping.md shows it, markers included."""
    c = counts()
    lines = [BEGIN, "",
             f"Real Modal's `modal.__all__`: {len(TOP_LEVEL)} names; {c[WORKS]} work, {c[BECOMES]} become a Nomad "
             f"equivalent, {c[NO_EFFECT]} are accepted without effect, {c[REFUSED]} are refused.", "",
             "| `modal.` name | status | on Nomad / reason |", "|---|---|---|"]
    lines += [f"| `{name}` | {status} | {note} |" for name, (status, note) in sorted(TOP_LEVEL.items())]
    lines += ["", "Methods of real Modal's `App` that modalc's `App` does not have:", "",
              "| `App.` method | status | reason |", "|---|---|---|"]
    lines += [f"| `{name}` | {status} | {note} |" for name, (status, note) in sorted(APP_MEMBERS.items())]
    from . import parity_members

    lines += parity_members.render_markdown()
    return "\n".join([*lines, "", END])


def summary() -> str:
    """The counts of every table, as ``python3 -m compiler.parity`` prints them."""
    from . import parity_members

    c_members, c_keywords = parity_members.counts(), parity_members.keyword_counts()
    rows = [("modal.__all__ names", counts()), ("members", c_members), ("keywords with a row", c_keywords)]
    out = [f"{label:<20} {sum(c.values()):>4}: " + ", ".join(f"{c[s]} {s}" for s in STATUSES) for label, c in rows]
    out.append(f"{'App methods refused':<20} {len(APP_MEMBERS):>4} (the rest of real App's methods work)")
    return "\n".join(out)


if __name__ == "__main__":
    print(summary())
