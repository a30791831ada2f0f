"""The HTTP API: the ticket loop for departments, managers, agents and analysts, and Open311 GeoReport v2.

`create_app` is imported on first use, so that `api.cli` (wired into the `hotline` command line) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["create_app"]

if TYPE_CHECKING:
    from api.app import create_app
else:

    def __getattr__(name: str) -> Any:
        if name == "create_app":
            from api.app import create_app

            return create_app
        raise AttributeError(f"module 'api' has no attribute {name!r}")
