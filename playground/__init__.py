"""The Dash app over precomputed artifacts: search, upload, embeddings and compare views."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def create_app(artifacts_root: str | Path = "artifacts") -> Any:
    """Build the app; see :func:`playground.app.create_app` (imported on call: Dash loads only when used)."""
    from playground.app import create_app as _create_app

    return _create_app(artifacts_root)


__all__ = ["create_app"]
