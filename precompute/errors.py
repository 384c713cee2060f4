"""Errors shared by the registry and the weight ports, in a module of their own so that neither imports the other."""

from __future__ import annotations


class WeightsUnavailableError(RuntimeError):
    """The requested weights cannot be loaded here (no network, missing file or package)."""


__all__ = ["WeightsUnavailableError"]
