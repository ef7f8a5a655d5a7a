"""``modal.config``: Modal's settings object and logger, for apps that read them.

Runs on the client and inside allocations; standard library only, loaded on
first use. modalc has no Modal profile or token: ``config.get(key)`` reads
``MODAL_<KEY>`` from the environment, else Modal's default, else None.
"""

from __future__ import annotations

import logging
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_DEFAULTS: dict[str, Any] = {"loglevel": "WARNING", "environment": None, "server_url": None,
                             "token_id": None, "token_secret": None, "traceback": False}


class Config:
    """A read-only view of ``MODAL_*`` environment variables."""

    def get(self, key: str, profile: str | None = None, use_env: bool = True) -> Any:
        value = os.environ.get(f"MODAL_{key.upper()}") if use_env else None
        return value if value is not None else _DEFAULTS.get(key)

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def to_dict(self) -> dict[str, Any]:
        return {key: self.get(key) for key in _DEFAULTS}


config = Config()
logger = logging.getLogger("modal-client")
