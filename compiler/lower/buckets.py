"""``modal.CloudBucketMount`` → a Nomad CSI volume backed by an S3 CSI plugin.

Runs on the client. The plugin is the Mountpoint for Amazon S3 CSI driver
(``s3.csi.aws.com``, the ``mount-s3`` client Modal itself mounts buckets with),
run on the Nomad clients as a node plugin under the ID ``--s3-csi-plugin``
(``MODALC_S3_CSI_PLUGIN``, default ``s3-csi``). Each distinct mount (bucket,
key prefix, endpoint, options, read-only or not) is one CSI volume with a
deterministic ID; the job's group claims it and ``modalc build`` writes its
volume specification (``<id>.volume.hcl``) for ``nomad volume register``.
The CloudBucketMount's arguments become mount-s3 options (``mount_flags``);
its secret's credentials are never in a spec: the plugin reads them at the
driver level (its node task's environment), as the note build prints says.
"""

from __future__ import annotations

import hashlib
import json
import re

from agent_runtime.sdk.objects import CloudBucketMount

from ..errors import UserError
from ..ir import BucketVolume, VolumeRequest

DEFAULT_S3_CSI_PLUGIN = "s3-csi"
READ_ONLY_MODE = "multi-node-reader-only"
READ_WRITE_MODE = "multi-node-multi-writer"
_MAX_ID = 128  # Nomad's limit on a CSI volume ID


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _check(mount: CloudBucketMount, path: str, location: tuple[str, int]) -> None:
    where = f"volumes[{path!r}]: modal.CloudBucketMount({mount.bucket_name!r})"
    if not isinstance(mount.bucket_name, str) or not mount.bucket_name:
        raise UserError(f"volumes[{path!r}]: modal.CloudBucketMount needs a bucket_name", location=location)
    for field in ("bucket_endpoint_url", "key_prefix"):
        value = getattr(mount, field)
        if value is not None and not isinstance(value, str):
            raise UserError(f"{where}: {field}= must be a string, got {type(value).__name__}", location=location)
    if mount.key_prefix and not mount.key_prefix.endswith("/"):
        raise UserError(f"{where}: key_prefix={mount.key_prefix!r} must end in '/'", location=location,
                        hint="it is prefixed to every object path (as in Modal)")
    if mount.requester_pays and mount.secret is None:
        raise UserError(f"{where}: requester_pays=True needs credentials: pass secret=", location=location)
    if mount.oidc_auth_role_arn:
        raise UserError(f"{where}: oidc_auth_role_arn= (Modal's OIDC identity) is not supported by modalc",
                        location=location,
                        hint="give the S3 CSI plugin's node task the role instead (an instance profile, or "
                        "AWS_ROLE_ARN with a web identity token in its environment), and drop oidc_auth_role_arn=")
    secret = mount.secret
    if secret is not None and getattr(secret, "kind", None) != "name":
        raise UserError(f"{where}: secret= must be a modal.Secret.from_name(...): the bucket's credentials go to "
                        "the S3 CSI plugin on the Nomad clients, never into a job spec", location=location,
                        hint="modalc secret create NAME AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=..., then "
                        "secret=modal.Secret.from_name('NAME')")


def _flags(mount: CloudBucketMount) -> tuple[str, ...]:
    """mount-s3 options, as the driver's mount options spell them (``--`` dropped)."""
    flags: list[str] = []
    if mount.key_prefix:
        flags.append(f"prefix {mount.key_prefix}")
    if mount.bucket_endpoint_url:
        flags.append(f"endpoint-url {mount.bucket_endpoint_url}")
    if mount.force_path_style:
        flags.append("force-path-style")
    if mount.requester_pays:
        flags.append("requester-pays")
    flags += ["read-only"] if mount.read_only else ["allow-delete", "allow-overwrite"]
    return tuple(flags)


def volume_id(mount: CloudBucketMount) -> str:
    """``s3-<bucket>[-<prefix>][-ro]-<hash>``: the same mount, the same ID; a different one, another."""
    key = json.dumps([mount.bucket_name, mount.key_prefix or "", mount.bucket_endpoint_url or "",
                      bool(mount.requester_pays), bool(mount.force_path_style), bool(mount.read_only)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    readable = "-".join(p for p in ("s3", _slug(mount.bucket_name), _slug(mount.key_prefix or ""),
                                    "ro" if mount.read_only else "") if p)
    return f"{readable[:_MAX_ID - len(digest) - 1].rstrip('-')}-{digest}"


def lower_bucket(mount: CloudBucketMount, path: str, plugin_id: str,
                 location: tuple[str, int]) -> tuple[VolumeRequest, BucketVolume]:
    """The group's ``volume`` block claiming the bucket's CSI volume, and that volume's specification."""
    _check(mount, path, location)
    vid = volume_id(mount)
    read_only = bool(mount.read_only)
    mode = READ_ONLY_MODE if read_only else READ_WRITE_MODE
    request = VolumeRequest(name=vid, type="csi", source=vid, read_only=read_only, access_mode=mode,
                            attachment_mode="file-system", per_alloc=False)
    secret = mount.secret.name if mount.secret is not None else None
    spec = BucketVolume(id=vid, plugin_id=plugin_id, bucket=mount.bucket_name, read_only=read_only,
                        access_mode=mode, mount_flags=_flags(mount), secret=secret)
    return request, spec


def bucket_notes(volumes: list[BucketVolume]) -> list[str]:
    """What the operator does before the jobs can run: register each volume, give the plugin credentials."""
    notes = []
    for v in volumes:
        creds = (f"; the plugin reads its credentials (the keys of modalc secret {v.secret!r}, e.g. "
                 "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) from its node task's environment") if v.secret else ""
        notes.append(f"bucket {v.bucket!r} is CSI volume {v.id!r} of plugin {v.plugin_id!r} (Mountpoint for "
                     f"Amazon S3 CSI driver): register it before the jobs run: nomad volume register "
                     f"{v.id}.volume.hcl{creds}")
    return notes
