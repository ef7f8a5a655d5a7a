"""The Nomad ACL policy an app's jobs need: call the app's functions from inside, and read their secrets.

Runs on the client. A call made inside an allocation (``agent_runtime/nested``) goes through the Task API
with the task's workload identity, so the job's allocations need, in the job's namespace:
``dispatch-job`` (dispatch the app's parameterized jobs), ``read-job`` (their allocations and evaluations),
``read-logs`` and ``read-fs`` (relay their output, read their results) and ``alloc-lifecycle``
(``FunctionCall.cancel()`` stops the call's allocation). Nothing lets it register or stop jobs. Each
``Secret.from_name`` the app uses adds ``read`` on its Variable ``modalc/secrets/<name>``, each
``Secret.from_dict`` ``read`` on its app-scoped Variable ``modalc/apps/<app>/<id>`` (deploy,
``compiler/deploy_secrets.py``) or run-scoped one ``modalc/runs/<run id>/<id>`` (``compiler/run_secrets.py``).

Nomad attaches a policy to a job with its ``JobACL`` (``nomad acl policy apply -job``): when a workload
identity is resolved, the policies whose ``JobACL`` names the allocation's job are added, and a dispatched
or periodic child is matched by its *parent's* ID (``nomad/acl.go``: ``ResolvePoliciesForClaims`` looks up
``ACLPolicyByJob(alloc.Namespace, alloc.Job.GetIDforWorkloadIdentity())``, which is the ``ParentID`` of a
dispatched child). One policy names one job, so each job gets a policy of its own, ``modalc-<job ID>``,
with the same rules. Nomad's rules are per namespace, not per job: to keep apps from dispatching each
other's jobs, give each app its own namespace (``--namespace``).

``modalc build --acl-policy`` writes the rules with the commands that attach them; ``modalc deploy`` and an
ephemeral ``modalc run`` apply them (``apply``) when their token may, and otherwise print those commands. On
a cluster without ACLs nothing is needed, and nothing is applied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from . import deploy_secrets
from .graph import AppGraph
from .ir import CompiledApp
from .lower.files import secret_path
from .preflight import named_secrets

if TYPE_CHECKING:
    from .backends.nomad_api import NomadAPI

CAPABILITIES = ("dispatch-job", "read-job", "read-logs", "read-fs", "alloc-lifecycle")
POLICY_NAME_MAX = 128  # ^[a-zA-Z0-9-]{1,128}$ (nomad/structs/structs.go: validPolicyName)


def policy_file_name(app_name: str) -> str:
    return f"{app_name}.policy.hcl"


def policy_name(job_id: str) -> str:
    """The policy attached to job ``job_id`` (job IDs are already ``[A-Za-z0-9-]``: lower/job.py)."""
    return f"modalc-{job_id}"[:POLICY_NAME_MAX]


def secret_names(graph: AppGraph, compiled: CompiledApp) -> list[str]:
    return sorted({s.name for s in named_secrets(graph, compiled)})


def policy_rules(namespace: str | None, secrets: Iterable[str], variables: Iterable[str] = ()) -> str:
    """The policy's rules as ``hclfmt`` prints them: ``read`` on the named ``secrets`` and on the Variables
    at ``variables`` (app- and run-scoped secrets)."""
    caps = ", ".join(json.dumps(c) for c in CAPABILITIES)
    readable = [secret_path(n) for n in secrets] + sorted(set(variables))
    paths = "\n\n".join(f"    path {json.dumps(p)} {{\n      capabilities = [\"read\"]\n    }}" for p in readable)
    block = f"\n\n  variables {{\n{paths}\n  }}" if paths else ""
    return f"namespace {json.dumps(namespace or 'default')} {{\n  capabilities = [{caps}]{block}\n}}\n"


def attach_commands(job_ids: Iterable[str], namespace: str | None, path: str) -> list[str]:
    """The ``nomad acl policy apply`` command that attaches the rules in ``path`` to each job."""
    return [f"nomad acl policy apply -namespace {namespace or 'default'} -job {job_id} "
            f"-description 'modalc: calls and secrets of {job_id}' {policy_name(job_id)} {path}"
            for job_id in job_ids]


def policy_hcl(graph: AppGraph, compiled: CompiledApp, namespace: str | None) -> str:
    """The policy file of ``modalc build --acl-policy``: the commands that attach it, then the rules."""
    jobs = [fn.job.id for fn in compiled.functions]
    commands = "\n".join(f"#   {c}" for c in attach_commands(jobs, namespace, policy_file_name(compiled.app_name)))
    return (f"# modalc: lets the jobs of app {json.dumps(compiled.app_name)} call the app's functions from inside\n"
            "# (Task API, workload identity) and read their secrets. Attach it to each job (a token with the\n"
            "# management capability is needed; `modalc deploy` does this when its token may):\n"
            f"{commands}\n"
            f"{policy_rules(namespace, secret_names(graph, compiled), deploy_secrets.paths(graph, compiled))}")


def attach(api: NomadAPI, job_ids: Iterable[str], namespace: str | None, secrets: Iterable[str],
           echo: Callable[[str], None], variables: Iterable[str] = ()) -> list[str]:
    """Apply the policy to each job (``modalc deploy``, ephemeral ``modalc run``); the names of the policies
    written. A token that may not write policies (403) gets the commands printed instead, once; a cluster
    without ACLs (Nomad answers 400 ``ACL support disabled``) needs nothing."""
    from .backends.nomad_api import NomadRejected
    from .errors import ModalcError

    rules = policy_rules(namespace, secrets, variables)
    written: list[str] = []
    jobs = list(job_ids)
    for job_id in jobs:
        try:
            api.put_acl_policy(policy_name(job_id), rules, f"modalc: calls and secrets of {job_id}",
                               job=(namespace or "default", job_id))
        except NomadRejected as exc:
            if "ACL support disabled" in exc.text:
                return written
            raise
        except ModalcError as exc:  # 403: this token may not manage ACL policies (or an agent without them)
            echo(f"note: {exc.message}: the jobs cannot call the app's functions or read its secrets until "
                 "their ACL policy is attached. With a management token, run:")
            for command in attach_commands(jobs, namespace, "<policy file>"):
                echo(f"  {command}")
            echo("  (the policy file: modalc build --acl-policy <script> -o <dir>)")
            return written
        written.append(policy_name(job_id))
    return written


def detach(api: NomadAPI, names: Iterable[str], echo: Callable[[str], None]) -> None:
    """Delete the policies an ephemeral run wrote."""
    from .errors import ModalcError

    for name in names:
        try:
            api.delete_acl_policy(name)
        except ModalcError as exc:
            echo(f"warning: could not delete ACL policy {name}: {exc}\n  delete it with: nomad acl policy delete {name}")
