"""Function options Nomad has no use for: the notes ``build`` and ``run`` print for them.

Runs on the client. One table: placement options that belong to Modal's
cloud (``cloud=``, ``region=`` …), options whose work modalc does elsewhere
(``serialized=`` …), and the autoscaling options, which act only where a
function runs on warm workers (``modalc run`` and deploy, lower/warm.py) and are notes
otherwise. Errors (``proxy=``, ``cloud_bucket_mounts=``) are in job.py.
docs/mapping.md lists every option and what modalc does with it.
"""

from __future__ import annotations

from ..graph import FunctionNode

# option -> why it has no effect (the note says "<option>= ignored: <why>").
NO_EFFECT = {
    "cloud": "Nomad places jobs by --datacenter/--node-pool, not by cloud",
    "region": "Nomad places jobs by --datacenter/--node-pool; Modal regions do not apply",
    "routing_region": "Nomad has no request routing regions",
    "nonpreemptible": "Nomad nodes are not preempted by a cloud provider",
    "enable_memory_snapshot": "Nomad has no memory snapshots; containers start normally",
    "restrict_modal_access": "there is no Modal control plane to restrict",
    "i6pn": "Nomad networking is configured by the cluster",
    "startup_timeout": "a batch allocation has no startup phase to time out",
    "experimental_options": "Modal experimental options do not apply",
    "serialized": "modalc always ships the source file",
    "include_source": "modalc always ships the source file",
    "min_containers": "Nomad starts one allocation per dispatched call; there is no warm pool to keep",
    "buffer_containers": "Nomad starts one allocation per dispatched call; there is no warm pool to grow",
    "scaledown_window": "each allocation exits when its dispatched call is done",
    "single_use_containers": "every dispatched call already gets a fresh allocation",
    "max_inputs": "every dispatched call already gets a fresh allocation",
}
# Options that warm workers act on (modalc run and deploy), and that a web endpoint's service job uses.
WARM_OPTIONS = frozenset({"min_containers", "buffer_containers", "scaledown_window"})


def feature_notes(node: FunctionNode, *, warm: bool) -> list[str]:
    """One ``file:line: tag: option= ignored: why`` note per option set that has no effect here."""
    acted_on = WARM_OPTIONS if warm else frozenset({"min_containers"}) if node.web is not None else frozenset()
    file, line = node.location
    return [f"{file}:{line}: {node.tag}: {key}= ignored: {why}" for key, why in NO_EFFECT.items()
            if key not in acted_on and node.options.get(key) not in (None, False, 0, {}, (), [])]
