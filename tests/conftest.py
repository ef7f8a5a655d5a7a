"""Fixtures shared by the test modules. Runs on the client (the test process)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nomad_double import NomadDouble

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def double(tmp_path: Path) -> Iterator[NomadDouble]:
    """A started Nomad test double whose allocations run this checkout's runtime."""
    d = NomadDouble(root_dir=tmp_path / "double",
                    extra_env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)})
    d.start()
    try:
        yield d
    finally:
        d.stop()
