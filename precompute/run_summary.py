"""The table a precompute run ends with: one row per (model, layer) of a dataset, from the artifact index."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from precompute import artifacts as art


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


__all__ = ["summarize_run"]
