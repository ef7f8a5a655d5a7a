"""Named volumes: directories under ``$MODALC_HOME/volumes`` locally, host or CSI volumes on Nomad.

Runs on the client. Used by ``modalc volume create/list/delete`` and by the
pre-submission check that creates a ``Volume.from_name(..., create_if_missing=True)``
volume (``compiler/preflight.py``). On Nomad:

* ``csi``: the volume ID is the name; ``PUT /v1/volume/csi/<name>/create``
  with one volume requesting ``multi-node-multi-writer`` / ``file-system``
  (what the emitted job claims); the CSI plugin must implement the Controller
  interface. Deleted with ``DELETE /v1/volume/csi/<name>/delete``.
* ``host``: a host volume is either static (a ``host_volume`` block in a Nomad
  client's configuration, seen in ``GET /v1/node/<id>`` ``HostVolumes``) or
  dynamic (Nomad >= 1.10, ``GET /v1/volumes?type=host``). modalc creates
  dynamic ones with ``PUT /v1/volume/host/create`` (plugin ``mkdir`` unless
  ``--plugin-id``) and deletes them by their ID; a static one can only be
  removed from the client configuration.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from typing import Any

from .backends.nomad_api import NomadAPI
from .errors import UserError
from .home import subdir

VOLUME_TYPES = ("host", "csi")
DEFAULT_HOST_PLUGIN = "mkdir"
CSI_ACCESS_MODE = "multi-node-multi-writer"
HOST_ACCESS_MODE = "single-node-multi-writer"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    kind: str  # "local" | "csi" | "host (dynamic)" | "host (static)"
    detail: str


def check_name(name: str) -> str:
    if not _NAME.match(name) or name in (".", ".."):
        raise UserError(f"volume name {name!r} is not valid", hint="use letters, digits, '.', '-' and '_'")
    return name


class LocalVolumes:
    """Directories under ``$MODALC_HOME/volumes`` (what the local backend links at mount paths)."""

    where = "this machine"

    def _dir(self, name: str) -> str:
        return os.path.join(subdir("volumes"), check_name(name))

    def find(self, name: str) -> VolumeInfo | None:
        path = self._dir(name)
        return VolumeInfo(name, "local", path) if os.path.isdir(path) else None

    def create(self, name: str) -> VolumeInfo:
        path = self._dir(name)
        if os.path.isdir(path):
            raise UserError(f"volume {name!r} already exists ({path})")
        os.makedirs(path)
        return VolumeInfo(name, "local", path)

    def list(self) -> list[VolumeInfo]:
        root = subdir("volumes")
        return [VolumeInfo(n, "local", os.path.join(root, n)) for n in sorted(os.listdir(root))
                if os.path.isdir(os.path.join(root, n))]

    def delete(self, name: str) -> None:
        path = self._dir(name)
        if not os.path.isdir(path):
            raise UserError(f"volume {name!r} does not exist on {self.where}", hint="modalc volume list shows them")
        shutil.rmtree(path)


class NomadVolumes:
    """Volumes of one type in the API's namespace, through Nomad's volume API."""

    def __init__(self, api: NomadAPI, volume_type: str = "host", *, plugin_id: str | None = None,
                 node_pool: str | None = None):
        if volume_type not in VOLUME_TYPES:
            raise UserError(f"volume type {volume_type!r} is not host or csi")
        self.api = api
        self.type = volume_type
        self.plugin_id = plugin_id
        self.node_pool = node_pool
        self.where = f"Nomad ({api.settings.address}, namespace {api.settings.namespace!r})"

    def _static_host(self, name: str) -> dict[str, Any] | None:
        for stub in self.api.nodes():
            found = (self.api.node(stub["ID"]).get("HostVolumes") or {}).get(name)
            if found is not None and not found.get("ID"):  # dynamic ones carry their volume ID
                return {"Name": name, "Node": stub.get("Name") or stub["ID"], **found}
        return None

    def _dynamic_host(self, name: str) -> dict[str, Any] | None:
        return next((v for v in self.api.volumes("host") if v.get("Name") == name), None)

    def find(self, name: str) -> VolumeInfo | None:
        check_name(name)
        if self.type == "csi":
            vol = self.api.volume("csi", name)
            return None if vol is None else VolumeInfo(name, "csi", f"plugin {vol.get('PluginID', '?')}")
        dyn = self._dynamic_host(name)
        if dyn is not None:
            return VolumeInfo(name, "host (dynamic)", f"ID {dyn.get('ID')} on node {dyn.get('NodeID', '?')}")
        static = self._static_host(name)
        if static is not None:
            return VolumeInfo(name, "host (static)", f"{static.get('Path', '?')} on node {static['Node']}")
        return None

    def create(self, name: str) -> VolumeInfo:
        check_name(name)
        if self.find(name) is not None:
            raise UserError(f"volume {name!r} already exists on {self.where}")
        ns = self.api.settings.namespace
        if self.type == "csi":
            if not self.plugin_id:
                raise UserError(f"creating CSI volume {name!r} needs the CSI plugin's ID",
                                hint="pass --plugin-id P (a CSI plugin with a controller), or create the volume "
                                "with `nomad volume create`")
            self.api.create_csi_volume({
                "ID": name, "Name": name, "Namespace": ns, "PluginID": self.plugin_id,
                "RequestedCapabilities": [{"AccessMode": CSI_ACCESS_MODE, "AttachmentMode": "file-system"}]})
            return VolumeInfo(name, "csi", f"plugin {self.plugin_id}")
        spec: dict[str, Any] = {
            "Name": name, "Namespace": ns, "PluginID": self.plugin_id or DEFAULT_HOST_PLUGIN,
            "RequestedCapabilities": [{"AccessMode": HOST_ACCESS_MODE, "AttachmentMode": "file-system"}]}
        if self.node_pool:
            spec["NodePool"] = self.node_pool
        answer = self.api.create_host_volume(spec)
        vol = answer.get("Volume") or {}
        return VolumeInfo(name, "host (dynamic)", f"ID {vol.get('ID', '?')} on node {vol.get('NodeID', '?')}")

    def list(self) -> list[VolumeInfo]:
        if self.type == "csi":
            return [VolumeInfo(v.get("ID", "?"), "csi", f"plugin {v.get('PluginID', '?')}")
                    for v in self.api.volumes("csi")]
        out = [VolumeInfo(v.get("Name", "?"), "host (dynamic)", f"ID {v.get('ID')} on node {v.get('NodeID', '?')}")
               for v in self.api.volumes("host")]
        dynamic = {v.name for v in out}
        for stub in self.api.nodes():
            for name, hv in sorted((self.api.node(stub["ID"]).get("HostVolumes") or {}).items()):
                if name not in dynamic and not hv.get("ID"):
                    out.append(VolumeInfo(name, "host (static)", f"{hv.get('Path', '?')} on node "
                                          f"{stub.get('Name') or stub['ID']}"))
        return sorted(out, key=lambda v: v.name)

    def delete(self, name: str) -> None:
        check_name(name)
        if self.type == "csi":
            if self.api.volume("csi", name) is None:
                raise UserError(f"CSI volume {name!r} does not exist on {self.where}",
                                hint="modalc volume list --type csi shows them")
            self.api.delete_volume("csi", name)
            return
        dyn = self._dynamic_host(name)
        if dyn is not None:
            self.api.delete_volume("host", str(dyn["ID"]))
            return
        if self._static_host(name) is not None:
            raise UserError(f"host volume {name!r} is a static host volume (a host_volume block in a Nomad "
                            "client's configuration)", hint="remove it from the client configuration instead")
        raise UserError(f"host volume {name!r} does not exist on {self.where}", hint="modalc volume list shows them")
