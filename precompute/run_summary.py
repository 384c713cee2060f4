"""What a precompute run reports: the seconds of each stage, and the table it ends with.

:class:`StageClock` adds up the wall seconds of each stage (scan, extraction, rankings per metric, scores, UMAP,
duplicates) for ``report.json`` (``stage_seconds``) and the line printed at the end of a run
(:func:`format_stage_seconds`); UMAP seconds are those of the layouts themselves (in the layer stage's worker,
beside the rankings, where one runs). :func:`summarize_run` is the closing table: one row per (model, layer) of a
dataset, from the artifact index.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from precompute import artifacts as art

STAGES = ("scan", "extraction", "rankings", "scores", "umap", "duplicates", "label checks")


def package_versions() -> dict[str, str]:
    """The versions of Python and of the packages a run's results depend on, as the index records them."""
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("tensorflow-cpu", "tensorflow", "keras", "numpy", "scikit-learn", "umap-learn", "pandas",
                    "faiss-cpu", "ai-edge-litert", "semantic-image-search-playground"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    return versions


def jsonable(value: Any) -> Any:
    """``value`` (a run's configuration as a dict) with tuples as lists and paths as strings, for report.json."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def utc_now() -> str:
    """The time now, as the report and the index record it (UTC, to the second)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class StageClock:
    """Wall seconds per stage; rankings per metric. ``with clock.time("umap"): ...`` or ``clock.add(...)``."""

    def __init__(self) -> None:
        self.seconds: dict[str, Any] = {stage: 0.0 for stage in STAGES}
        self.seconds["rankings"] = {}

    def add(self, stage: str, seconds: float, metric: str | None = None) -> None:
        if stage not in STAGES:
            raise ValueError(f"Unknown stage {stage!r}; stages: {', '.join(STAGES)}.")
        if stage == "rankings":
            self.seconds[stage][metric] = self.seconds[stage].get(metric, 0.0) + seconds
        else:
            self.seconds[stage] += seconds

    @contextlib.contextmanager
    def time(self, stage: str, metric: str | None = None) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start, metric)

    def to_dict(self) -> dict[str, Any]:
        """Rounded to 0.1 s: ``{"scan": .., "extraction": .., "rankings": {metric: ..}, ...}``."""
        return {
            stage: ({m: round(s, 1) for m, s in value.items()} if isinstance(value, dict) else round(value, 1))
            for stage, value in self.seconds.items()
        }


def format_stage_seconds(seconds: dict[str, Any]) -> str:
    """One line for the run summary: ``scan 2 s, extraction 63 s, rankings 41 s (cosine 6, ...), ...``."""
    parts = []
    for stage in STAGES:
        value = seconds.get(stage)
        if isinstance(value, dict):
            total = sum(value.values())
            inner = ", ".join(f"{metric} {s:.0f}" for metric, s in value.items())
            parts.append(f"{stage} {total:.0f} s" + (f" ({inner})" if inner else ""))
        elif value is not None:
            parts.append(f"{stage} {value:.0f} s")
    return ", ".join(parts)




def summarize_run(root: Path, dataset: str, score: str = "rwp@15") -> pd.DataFrame:
    """One row per (model, layer): dims, images/s, the best score over metrics and its 95 % interval.

    Columns: model, layer, dim, images/s, ``best <score>``, ``95% CI`` (``[low, high]`` as text, empty where
    none is stored) and ``best metric``; layers in network order. Raises KeyError for a dataset not in the index.
    """
    index = art.read_index(root)
    rows = []
    for key, model in index.datasets[dataset].models.items():
        for layer, entry in sorted(model.layers.items(), key=lambda item: item[1].position):
            best_metric, best, interval = None, None, None
            for metric, result in entry.metrics.items():
                value = result.score(score)
                if value is not None and (best is None or value > best):
                    best_metric, best = metric, value
                    interval = result.interval(score)
            rows.append({"model": key, "layer": layer, "dim": entry.dim,
                         "images/s": model.cost.images_per_second,
                         f"best {score}": best, "95% CI": _format_interval(interval), "best metric": best_metric})
    return pd.DataFrame(rows)


def _format_interval(interval: list[float | None] | None) -> str:
    if not interval or None in interval:
        return ""
    return f"[{interval[0]:.3f}, {interval[1]:.3f}]"


__all__ = ["STAGES", "StageClock", "format_stage_seconds", "jsonable", "package_versions", "summarize_run",
           "utc_now"]
