"""Function options that Nomad batch jobs have no use for, beyond ``job.IGNORED``: the notes ``build`` prints.

Runs on the client. ``job.py`` holds the placement options (``cloud=``,
``region=`` …) and the errors (``proxy=``, ``cloud_bucket_mounts=``); these
are the autoscaling and container-lifecycle options, which describe Modal's
warm container pools. On Nomad every call (or ``.map`` chunk) is its own
dispatched allocation, so they have nothing to act on. docs/mapping.md lists
every option and what modalc does with it.
"""

from __future__ import annotations

from ..graph import FunctionNode

# option -> why it has no effect on Nomad (the note says "<option>= ignored: <why>").
NO_EFFECT = {
    "min_containers": "Nomad starts one allocation per dispatched call; there is no warm pool to keep",
    "buffer_containers": "Nomad starts one allocation per dispatched call; there is no warm pool to grow",
    "scaledown_window": "each allocation exits when its dispatched call is done",
    "single_use_containers": "every dispatched call already gets a fresh allocation",
    "max_inputs": "every dispatched call already gets a fresh allocation",
    "block_network": "NOT enforced: the task keeps the cluster's network (restrict egress with the cluster's "
                     "firewall or a Nomad network mode)",
}


def feature_notes(node: FunctionNode) -> list[str]:
    """One ``file:line: tag: option= ignored: why`` note per option set that has no effect on Nomad."""
    file, line = node.location
    return [f"{file}:{line}: {node.tag}: {key}= ignored: {why}" for key, why in NO_EFFECT.items()
            if node.options.get(key) not in (None, False, 0, {}, (), [])]
