"""The Nomad ACL policy that lets an app's jobs read exactly their secrets (``modalc build --acl-policy``).

Runs on the client. The policy grants ``read`` on the Variable
``modalc/secrets/<name>`` of each ``Secret.from_name`` the app's functions use,
in the jobs' namespace, and nothing else; the text is what ``hclfmt`` prints.
Attach it to each job as a workload-associated policy, e.g.
``nomad acl policy apply -namespace default -job <job id> <app>-secrets <app>.policy.hcl``.
"""

from __future__ import annotations

import json

from .graph import AppGraph
from .ir import CompiledApp
from .lower.files import secret_path
from .preflight import named_secrets


def policy_file_name(app_name: str) -> str:
    return f"{app_name}.policy.hcl"


def policy_hcl(graph: AppGraph, compiled: CompiledApp, namespace: str | None) -> str | None:
    """The policy's HCL, or None when the app reads no named secret."""
    names = sorted({s.name for s in named_secrets(graph, compiled)})
    if not names:
        return None
    jobs = ", ".join(fn.job.id for fn in compiled.functions)
    paths = "\n\n".join(f"    path {json.dumps(secret_path(n))} {{\n      capabilities = [\"read\"]\n    }}"
                        for n in names)
    return (f"# modalc: lets the jobs of app {json.dumps(compiled.app_name)} ({jobs}) read their secrets.\n"
            f"# Attach it to each job: nomad acl policy apply -namespace {namespace or 'default'} -job <job id> "
            f"{compiled.app_name}-secrets {policy_file_name(compiled.app_name)}\n"
            f"namespace {json.dumps(namespace or 'default')} {{\n  variables {{\n{paths}\n  }}\n}}\n")
