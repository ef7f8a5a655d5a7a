"""Workload identities and ACL policies of the Nomad test double (test-side, runs in the test process).

What Nomad does, and where it says so:
- website/content/docs/concepts/workload-identity.mdx: a task with ``identity { file = true }`` gets its
  token in ``${NOMAD_SECRETS_DIR}/nomad_token``, ``env = true`` sets ``NOMAD_TOKEN``; the identity's
  claims are the namespace, job ID, allocation ID, group and task; a dispatched or periodic child's
  ``nomad_job_id`` claim is the parent's ID (nomad/structs/workload_id.go NewIdentityClaims uses
  ``job.GetIDForWorkloadIdentity()``, which is ParentID when set).
- nomad/auth/auth.go ResolvePoliciesForClaims: the policies applying to an identity are those whose
  JobACL has the claims' namespace and job ID, and whose Group/Task are empty or equal to the claims'.
- website/content/api-docs/task-api.mdx: the Task API always requires authentication, even with ACLs
  disabled, and the anonymous policy is not available through it.
- acl/policy.go: namespace capabilities (``dispatch-job``, ``read-job``, ``submit-job``, ``read-logs``,
  ``read-fs``, ``alloc-lifecycle``, ...) and the ``variables { path "..." { capabilities } }`` block;
  ``policy = "read"/"write"`` expand to capability sets (expandNamespacePolicy).
- website/content/docs/concepts/variables.mdx: a task may read the variables at ``nomad/jobs``,
  ``nomad/jobs/<job>``, ``nomad/jobs/<job>/<group>`` and ``nomad/jobs/<job>/<group>/<task>`` of its
  own namespace without any policy (implicit access).
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

import hcl2  # type: ignore[import-untyped]

# acl/policy.go expandNamespacePolicy
_READ = {"list-jobs", "parse-job", "read-job", "csi-list-volume", "csi-read-volume", "read-job-scaling",
         "list-scaling-policies", "read-scaling-policy", "host-volume-read"}
_WRITE = _READ | {"scale-job", "submit-job", "dispatch-job", "read-logs", "read-fs", "alloc-exec",
                  "alloc-lifecycle", "csi-mount-volume", "csi-write-volume", "submit-recommendation",
                  "host-volume-create", "host-volume-register"}
_POLICY_CAPS = {"deny": {"deny"}, "read": _READ, "write": _WRITE, "scale": {"list-scaling-policies",
                "read-scaling-policy", "read-job-scaling", "scale-job"}}


def _unq(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s


@dataclass
class Rules:
    """Parsed rules: namespace → capabilities, and namespace → [(variable path glob, capabilities)]."""
    namespaces: dict[str, set[str]]
    variables: dict[str, list[tuple[str, set[str]]]]


def parse_rules(text: str) -> Rules:
    """Parse the HCL subset of acl/policy.go that modalc emits; ValueError on anything malformed."""
    try:
        tree = hcl2.loads(text)
    except Exception as exc:  # lark raises many kinds
        raise ValueError(f"Failed to parse ACL Policy: {exc}") from exc
    ns_caps: dict[str, set[str]] = {}
    var_caps: dict[str, list[tuple[str, set[str]]]] = {}
    for block in tree.get("namespace", []):
        for raw_name, body in block.items():
            name = _unq(raw_name)
            caps = {_unq(c) for c in body.get("capabilities", [])}
            if "policy" in body:
                caps |= _POLICY_CAPS.get(_unq(body["policy"]), set())
            ns_caps.setdefault(name, set()).update(caps)
            for vblock in body.get("variables", []):
                for pblock in vblock.get("path", []):
                    for raw_path, pbody in pblock.items():
                        var_caps.setdefault(name, []).append(
                            (_unq(raw_path), {_unq(c) for c in pbody.get("capabilities", [])}))
    return Rules(ns_caps, var_caps)


def policy_applies(policy: dict[str, Any], claims: dict[str, str]) -> bool:
    """nomad/auth/auth.go ResolvePoliciesForClaims: JobACL matches namespace + job ID; Group/Task empty = all."""
    jacl = policy.get("JobACL") or {}
    if not jacl:
        return False
    if (jacl.get("Namespace") or "default") != claims["namespace"] or jacl.get("JobID") != claims["job_id"]:
        return False
    if jacl.get("Group") and jacl["Group"] != claims["group"]:
        return False
    return not (jacl.get("Task") and jacl["Task"] != claims["task"])


def _ns_match(pattern: str, ns: str) -> bool:
    return pattern == ns or ("*" in pattern and fnmatch.fnmatchcase(ns, pattern))  # acl/acl.go glob namespaces


def allowed(policies: list[Rules], ns: str, cap: str) -> bool:
    caps: set[str] = set()
    for r in policies:
        for pat, c in r.namespaces.items():
            if _ns_match(pat, ns):
                caps |= c
    return "deny" not in caps and cap in caps


def variable_allowed(policies: list[Rules], claims: dict[str, str], ns: str, path: str, cap: str) -> bool:
    if ns == claims["namespace"] and cap in ("read", "list"):
        job, group, task = claims["job_id"], claims["group"], claims["task"]
        implicit = {"nomad/jobs", f"nomad/jobs/{job}", f"nomad/jobs/{job}/{group}", f"nomad/jobs/{job}/{group}/{task}"}
        if path in implicit:
            return True
    for r in policies:
        for pat, rules in r.variables.items():
            if not _ns_match(pat, ns):
                continue
            for glob, caps in rules:
                if fnmatch.fnmatchcase(path, glob) and cap in caps and "deny" not in caps:
                    return True
    return False


def required_capability(method: str, path: str) -> str | None:
    """The namespace capability an endpoint needs (acl/policy.go names), None = management only/none needed."""
    if re.fullmatch(r"/v1/job/.+/dispatch", path):
        return "dispatch-job"
    if path.startswith("/v1/client/fs/logs/"):
        return "read-logs"
    if path.startswith("/v1/client/fs/"):
        return "read-fs"
    if re.fullmatch(r"/v1/allocation/.+/stop", path):
        return "alloc-lifecycle"
    if path.startswith(("/v1/job", "/v1/jobs")) and method in ("PUT", "POST", "DELETE"):
        return "submit-job"
    if method == "GET" and path.startswith(("/v1/job", "/v1/allocation", "/v1/evaluation", "/v1/service",
                                            "/v1/client/allocation/")):
        return "read-job"
    if path == "/v1/status/leader":
        return ""
    return None
