"""The Nomad test double's volumes and node endpoints (not Nomad; see README.md).

Serves ``GET /v1/volumes?type=csi|host``, ``GET /v1/volume/<csi|host>/<id>``,
``PUT /v1/volume/csi/<id>/create`` and ``PUT /v1/volume/csi/<id>`` (register;
both with body ``{"Volumes": [...]}``),
``PUT /v1/volume/host/create`` (body ``{"Volume": {...}}``, dynamic host
volumes, Nomad >= 1.10), ``DELETE /v1/volume/<csi|host>/<id>/delete``,
``GET /v1/nodes`` and ``GET /v1/node/<id>`` (its ``HostVolumes``: the static
ones in ``host_volumes`` plus the dynamic ones created here). Request shapes
follow Nomad's Volumes HTTP API docs; the double's own simplifications: CSI
creation only succeeds for a plugin in ``csi_plugins``, host creation only for
``mkdir`` (Nomad's built-in plugin), every dynamic host volume lands on the one
node, and no volume is actually mounted into tasks.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable
from typing import Any

Route = tuple[int, Any, dict[str, str]]


class Volumes:
    """Volume and node state of one NomadDouble (guarded by the double's lock)."""

    def __init__(self, lock: threading.Condition, bump: Callable[[], int], node_id: str,
                 error: Callable[[int, str], Exception]):
        self._lock = lock
        self._bump = bump
        self.node_id = node_id
        self._error = error  # the double's HTTPError(status, text)
        self.csi_plugins: set[str] = {"double-csi"}
        self.host_volumes: dict[str, str] = {}  # static host volumes of the node: name -> host path
        self.csi: dict[tuple[str, str], dict[str, Any]] = {}
        self.host: dict[tuple[str, str], dict[str, Any]] = {}

    def route(self, method: str, path: str, ns: str, q: Callable[..., str | None],
              data: Callable[[], Any]) -> Route | None:
        """Answer ``path`` if it is a volume or node endpoint, else None."""
        if path == "/v1/volumes":
            return self._list(ns, q("type"))
        if path.startswith("/v1/volume/"):
            return self._volume(method, path[len("/v1/volume/"):], ns, data)
        if path == "/v1/nodes":
            return 200, [self._node_stub()], {}
        if path.startswith("/v1/node/"):
            if path[len("/v1/node/"):] != self.node_id:
                raise self._error(404, "node not found")
            return 200, self._node(), {}
        return None

    def _table(self, type_: str | None) -> dict[tuple[str, str], dict[str, Any]]:
        if type_ == "csi":
            return self.csi
        if type_ == "host":
            return self.host
        raise self._error(400, f"unsupported volume type: {type_!r}")

    def _list(self, ns: str, type_: str | None) -> Route:
        table = self._table(type_)
        with self._lock:
            out = [copy.deepcopy(v) for (vns, _), v in sorted(table.items()) if ns == "*" or vns == ns]
        return 200, out, {}

    def _volume(self, method: str, rest: str, ns: str, data: Callable[[], Any]) -> Route:
        type_, _, rest = rest.partition("/")
        table = self._table(type_)
        if type_ == "host" and rest == "create":
            if method not in ("PUT", "POST"):
                raise self._error(405, "Invalid method")
            return self._create_host(ns, data())
        vid, _, action = rest.partition("/")
        with self._lock:
            if action == "" and method == "GET":
                vol = table.get((ns, vid))
                if vol is None:
                    raise self._error(404, "volume not found")
                return 200, copy.deepcopy(vol), {}
            if action == "create" and type_ == "csi" and method in ("PUT", "POST"):
                return self._create_csi(ns, vid, data())
            if action == "" and type_ == "csi" and method in ("PUT", "POST"):
                return self._create_csi(ns, vid, data(), register=True)
            if action == "delete" and method == "DELETE":
                if table.pop((ns, vid), None) is None:
                    raise self._error(404, "volume not found")
                self._bump()
                return 200, b"", {}
        raise self._error(405, "Invalid method")

    def _capabilities(self, vol: dict[str, Any]) -> None:
        caps = vol.get("RequestedCapabilities")
        if not isinstance(caps, list) or not caps or not all(
                isinstance(c, dict) and c.get("AccessMode") and c.get("AttachmentMode") for c in caps):
            raise self._error(400, "volume validation failed: must include at least one capability block")

    def _create_csi(self, ns: str, vid: str, body: Any, register: bool = False) -> Route:
        """``create`` (the plugin makes the storage), or ``register`` (it exists: ExternalID names it)."""
        vols = body.get("Volumes") if isinstance(body, dict) else None
        if not isinstance(vols, list) or len(vols) != 1 or not isinstance(vols[0], dict):
            raise self._error(400, "request must hold one volume in Volumes")
        vol = vols[0]
        if vol.get("ID") != vid:
            raise self._error(400, "volume ID does not match the URL")
        if not vol.get("Name"):
            raise self._error(400, "volume validation failed: missing volume name")
        if vol.get("PluginID") not in self.csi_plugins:
            raise self._error(400, f"plugin {vol.get('PluginID')!r} not found")
        self._capabilities(vol)
        if register and not vol.get("ExternalID"):
            raise self._error(400, "volume validation failed: missing external ID")
        if (ns, vid) in self.csi:
            raise self._error(400, f"volume {vid!r} already exists")
        idx = self._bump()
        stored = {**vol, "Namespace": ns, "Schedulable": True,
                  "ExternalID": vol["ExternalID"] if register else f"ext-{vid}",
                  "CreateIndex": idx, "ModifyIndex": idx}
        self.csi[(ns, vid)] = stored
        return 200, {"Volumes": [copy.deepcopy(stored)], "Warnings": "", "Index": idx}, {}

    def _create_host(self, ns: str, body: Any) -> Route:
        vol = body.get("Volume") if isinstance(body, dict) else None
        if not isinstance(vol, dict) or not vol.get("Name"):
            raise self._error(400, "volume validation failed: missing name")
        if vol.get("PluginID", "mkdir") != "mkdir":
            raise self._error(400, f"no such host volume plugin {vol.get('PluginID')!r} on any node")
        self._capabilities(vol)
        with self._lock:
            if any(v["Name"] == vol["Name"] for (vns, _), v in self.host.items() if vns == ns):
                raise self._error(400, f"host volume {vol['Name']!r} already exists")
            idx = self._bump()
            vid = str(uuid.uuid4())
            stored = {**vol, "ID": vid, "Namespace": ns, "PluginID": vol.get("PluginID", "mkdir"),
                      "NodeID": self.node_id, "NodePool": vol.get("NodePool") or "default", "State": "ready",
                      "HostPath": f"/opt/nomad/data/host_volumes/{vid}", "CreateIndex": idx, "ModifyIndex": idx}
            self.host[(ns, vid)] = stored
        return 200, {"Volume": copy.deepcopy(stored), "Warnings": ""}, {}

    def _node_stub(self) -> dict[str, Any]:
        return {"ID": self.node_id, "Name": "double-node", "Datacenter": "dc1", "NodePool": "default",
                "Status": "ready", "SchedulingEligibility": "eligible"}

    def _node(self) -> dict[str, Any]:
        with self._lock:
            volumes = {name: {"Name": name, "Path": path, "ReadOnly": False}
                       for name, path in self.host_volumes.items()}
            volumes.update({v["Name"]: {"Name": v["Name"], "Path": v["HostPath"], "ReadOnly": False, "ID": v["ID"]}
                            for v in self.host.values()})
        return {**self._node_stub(), "HostVolumes": volumes}
