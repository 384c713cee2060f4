"""How far two precompute runs of the same dataset differ: Keras vs LiteRT runtimes, and float32 vs quantised models.

    python -m bench runtime_artifacts runtimes KERAS_ROOT LITERT_ROOT DATASET
    python -m bench runtime_artifacts quantized ROOT DATASET

``runtimes``: per (model, layer, metric) the largest relative feature difference, the share of stored neighbour
positions that differ, how many of those are near-ties (the two distances within 1e-3 relative of each other: a
swap the 1e-4 feature tolerance can cause), and the change of the mean rwp@15 and AP.
``quantized``: per model with ``-float16`` / ``-int8`` variants, each variant's file size, speed, its features'
relative difference to the float32 model and the change of mean rwp@15 and AP, per layer and at the best layer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from precompute import artifacts as art
from precompute.schema import LayerEntry, ModelEntry

NEAR_TIE = 1e-3


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12))


def _summary(layer: LayerEntry, metric: str, score: str) -> float:
    value = layer.metrics[metric].score(score)
    return float(np.nan if value is None else value)


def _runtime(model: ModelEntry) -> str:
    return model.cost.runtime or "keras"  # older indexes: the Keras runtime


def compare_runtimes(root_a: Path, root_b: Path, dataset: str) -> pd.DataFrame:
    models_a = art.read_index(root_a).datasets[dataset].models
    models_b = art.read_index(root_b).datasets[dataset].models
    rows = []
    for key in sorted(set(models_a) & set(models_b)):
        for name, layer_a in models_a[key].layers.items():
            layer_b = models_b[key].layers[name]
            diff = _relative(art.read_array(root_a / layer_a.features), art.read_array(root_b / layer_b.features))
            for metric in layer_a.metrics:
                ids_a, dist_a = art.read_neighbors(root_a / layer_a.metrics[metric].neighbors)
                ids_b, _ = art.read_neighbors(root_b / layer_b.metrics[metric].neighbors)
                differ = ids_a != ids_b
                gaps = np.abs(np.diff(dist_a.astype(np.float64), axis=1))
                close = gaps <= NEAR_TIE * np.maximum(np.abs(dist_a[:, 1:]), 1e-9)
                near = np.zeros_like(differ)
                near[:, 1:] |= close
                near[:, :-1] |= close
                rows.append({"model": key, "runtimes": f"{_runtime(models_a[key])} vs {_runtime(models_b[key])}",
                             "layer": name, "metric": metric,
                             "feature_rel_diff": diff, "positions_differ": float(differ.mean()),
                             "queries_differ": float(differ.any(axis=1).mean()),
                             "differ_not_near_tie": int((differ & ~near).sum()),
                             "d_rwp@15": _summary(layer_b, metric, "rwp@15") - _summary(layer_a, metric, "rwp@15"),
                             "d_ap": _summary(layer_b, metric, "ap") - _summary(layer_a, metric, "ap")})
    return pd.DataFrame(rows)


def compare_quantized(root: Path, dataset: str, metric: str = "cosine") -> pd.DataFrame:
    models = art.read_index(root).datasets[dataset].models
    rows = []
    for key, model in models.items():
        quantize = model.config.quantize
        base = models.get(key.removesuffix(f"-{quantize}")) if quantize else None
        if base is None:
            continue
        for name, layer in model.layers.items():
            ref = base.layers[name]
            rows.append({"model": key.removesuffix(f"-{quantize}"), "quantize": quantize, "layer": name,
                         "model_mb": model.cost.model_mb, "float32_mb": base.cost.model_mb,
                         "images_per_second": model.cost.images_per_second,
                         "float32_images_per_second": base.cost.images_per_second,
                         "feature_rel_diff": _relative(art.read_array(root / ref.features),
                                                       art.read_array(root / layer.features)),
                         "rwp@15": _summary(layer, metric, "rwp@15"), "float32_rwp@15": _summary(ref, metric, "rwp@15"),
                         "ap": _summary(layer, metric, "ap"), "float32_ap": _summary(ref, metric, "ap")})
    table = pd.DataFrame(rows)
    if len(table):
        table["d_rwp@15"] = table["rwp@15"] - table["float32_rwp@15"]
        table["d_ap"] = table["ap"] - table["float32_ap"]
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    runtimes = sub.add_parser("runtimes")
    runtimes.add_argument("root_a", type=Path)
    runtimes.add_argument("root_b", type=Path)
    runtimes.add_argument("dataset")
    quantized = sub.add_parser("quantized")
    quantized.add_argument("root", type=Path)
    quantized.add_argument("dataset")
    quantized.add_argument("--metric", default="cosine")
    args = parser.parse_args(argv)
    with pd.option_context("display.width", 220, "display.max_rows", 500, "display.max_columns", 30):
        if args.what == "runtimes":
            table = compare_runtimes(args.root_a, args.root_b, args.dataset)
            print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
            print(f"\n{len(table)} (model, layer, metric): max feature difference {table.feature_rel_diff.max():.2g}; "
                  f"stored positions that differ {table.positions_differ.mean():.4%} (mean), queries with any "
                  f"difference {table.queries_differ.mean():.2%}; differences that are not near-ties: "
                  f"{table.differ_not_near_tie.sum()}; |d rwp@15| max {table['d_rwp@15'].abs().max():.2g}, "
                  f"|d ap| max {table['d_ap'].abs().max():.2g}")
        else:
            table = compare_quantized(args.root, args.dataset, args.metric)
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            if len(table):
                best = table.loc[table.groupby(["model", "quantize"])["float32_rwp@15"].idxmax()]
                print("\nAt each model's best float32 layer (" + args.metric + "):")
                print(best[["model", "quantize", "layer", "model_mb", "float32_mb", "images_per_second",
                            "float32_images_per_second", "rwp@15", "float32_rwp@15", "d_rwp@15", "d_ap"]]
                      .to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
