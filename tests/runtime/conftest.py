"""Fixtures of the runtime tests (the harness itself is ``runtime_harness``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_harness import Shim


@pytest.fixture
def shim(tmp_path: Path) -> Shim:
    return Shim(tmp_path)
