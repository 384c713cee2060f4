"""What the stages share of a run: :class:`RunContext`, the part of ``precompute.pipeline.Run`` they use.

A Protocol rather than the ``Run`` class itself, so that a stage module never imports the pipeline that calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from precompute.run_summary import StageClock


class RunContext(Protocol):
    """One run over one dataset, as its stages see it."""

    config: Any  # the run's precompute.pipeline.RunConfig
    root: Path  # the artifacts root
    dataset: str  # the dataset's name in the index
    report: dict[str, Any]  # report.json as it is being written
    clock: StageClock  # seconds per stage

    def report_model(self, key: str, **fields: Any) -> None:
        """Record a model's outcome in the run's report."""

    def broken(self, path: Path, problem: str | None) -> bool:
        """Log a damaged artifact about to be recomputed; True when there is a problem."""

    def dask_client(self) -> Any:
        """The run's Dask client (``--engine dask``)."""

    def umap_worker(self, processes: int = 1) -> Any:
        """The layer stage's UMAP processes (``precompute.stages.layer.UmapWorker``; how many: the first call's)."""

    def workers_ready(self) -> None:
        """Told that the layer stage's worker processes run, before it queues a layout there."""

    def expect_images(self, n_images: int) -> None:
        """Told how many images the scan is about to decode (the run may start its worker processes' server)."""

    def defer(self, work: Callable[[], None]) -> None:
        """Run ``work`` later in the run, after its models and label checks (the layouts the worker computes
        meanwhile are collected so)."""


__all__ = ["RunContext"]
