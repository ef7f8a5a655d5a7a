"""Pytest fixtures for the Nomad test double.

Use with ``from tests.nomad_double.fixtures import nomad_double`` in a test
module (or conftest). The fixture yields a started :class:`NomadDouble` with
its allocation dirs under the test's ``tmp_path`` and stops it (killing every
allocation process) afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .double import NomadDouble


@pytest.fixture
def nomad_double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NomadDouble]:
    """A started Nomad test double without ACLs (set ``.token`` to require one)."""
    root = tmp_path_factory.mktemp("nomad-double")
    double = NomadDouble(root_dir=root)
    double.start()
    try:
        yield double
    finally:
        double.stop()
