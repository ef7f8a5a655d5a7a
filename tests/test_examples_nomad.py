"""The realistic examples run against the Nomad test double: an image with local files, named secrets with
required keys, a volume shared between two functions.

``modalc`` runs as a subprocess with NOMAD_ADDR pointing at the double (as in test_nomad_cli.py). The double
runs each task with this machine's Python and does not mount volumes, so the test stands in for the Nomad
client's host volume: it links the example's mount path (/data) to a directory for the duration of the run,
as the local backend does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import modalc_on
from tests.nomad_double import NomadDouble

ROOT = Path(__file__).resolve().parents[1]




def no_run_jobs_left(double: NomadDouble) -> bool:
    return not [j for (_, j), job in double.jobs.items()
                if (job.get("Meta") or {}).get("modalc_ephemeral") == "true" or job.get("ParentID")]


def test_built_image_runs_on_nomad(double: NomadDouble, tmp_path: Path) -> None:
    result = modalc_on(double, tmp_path, "run", "examples/built_image.py", "--name", "nomad")
    assert result.returncode == 0, result.stderr
    # The double has no Docker engine: the image's files (/opt/app/...) are absent, so the function's
    # fallback settings are used; on a real cluster the image carries them (see docs/mapping.md).
    assert "hello, nomad" in result.stdout
    assert no_run_jobs_left(double)


@pytest.fixture
def data_mount(tmp_path: Path) -> Iterator[Path]:
    """/data linked to a directory: the host volume the Nomad client would mount there."""
    if os.path.lexists("/data"):
        pytest.fail("/data exists on this machine; the example mounts its volume there (remove it to run this test)")
    store = tmp_path / "host-volume"
    store.mkdir()
    os.symlink(store, "/data")
    try:
        yield store
    finally:
        os.unlink("/data")


def test_secrets_and_shared_volume_run_on_nomad(double: NomadDouble, tmp_path: Path, data_mount: Path) -> None:
    missing = modalc_on(double, tmp_path, "run", "examples/secrets_volumes.py")
    assert missing.returncode == 2, missing.stderr
    assert "secret 'db-credentials' does not exist" in missing.stderr
    assert "modalc secret create db-credentials DB_USER=... DB_PASSWORD=..." in missing.stderr
    created = modalc_on(double, tmp_path, "secret", "create", "db-credentials", "DB_USER=alice",
                     "DB_PASSWORD=s3cr3t-value")
    assert created.returncode == 0, created.stderr
    assert ("default", "modalc/secrets/db-credentials") in double.variables
    result = modalc_on(double, tmp_path, "run", "examples/secrets_volumes.py", "--rows", "4")
    assert result.returncode == 0, result.stderr
    assert "wrote /data/squares.csv: 4 rows" in result.stdout
    assert "s3cr3t-value" not in result.stdout + result.stderr
    # write_report ran with the secret from the Nomad Variable; read_report read the same volume.
    assert (data_mount / "squares.csv").read_text().startswith("# written by alice\n")
    assert no_run_jobs_left(double)
