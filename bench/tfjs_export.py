"""TF.js exports vs Keras: each model's export size per variant and how far TensorFlow.js' features are from Keras'.

For every model of a dataset in an artifacts folder, the feature model over all its stored layers is exported
(``precompute.tfjs_export``, into a temporary folder: the artifacts are not touched), then scikit-image's
photos (and optionally some dataset images) are embedded by Keras and by TensorFlow.js 4.22 in node (CPU backend,
``tests/tfjs_predict.js``), for each variant. Printed per (model, variant): bytes, the largest relative deviation
(max |tfjs - keras| / max |keras| over a layer's outputs, worst layer), the lowest cosine similarity, and the share of
(query, layer) pairs whose top-10 among the layer's stored features (cosine) is identical, in order, and the mean
share of that top-10 found.

    python -m bench tfjs_export --artifacts /tmp/fr --dataset openclipart-200 [--models a,b] [--images 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "camera.png")
TOP_K = 10


def _photos() -> list[Path]:
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    return [folder / name for name in PHOTOS if (folder / name).is_file()]


def _top_k(queries: np.ndarray, features: np.ndarray) -> np.ndarray:
    from precompute.similarity import search_exact

    return search_exact(queries, features, "cosine", TOP_K).indices


def measure_model(root: Path, dataset: str, key: str, n_images: int, variants: tuple[str, ...]) -> list[dict]:
    import keras

    from precompute import artifacts
    from precompute.datasets import load_for_model
    from precompute.extract import run_feature_model
    from precompute.models import checked_config, load_feature_model
    from precompute.tfjs_export import NotExportableError, export_feature_model
    from tests.tfjs_node import predict_in_node

    index = artifacts.read_index(root)
    entry = index.datasets[dataset].models[key]
    config = checked_config(entry.config)
    if config.quantize:
        return [{"model": key, "variant": "-", "note": "LiteRT quantised variant: not exported"}]
    layers = entry.layer_names()
    keras.backend.clear_session()
    model = load_feature_model(config, layers, "keras")
    manifest = artifacts.read_manifest(root, dataset)
    sources = [*_photos(), *[Path(index.datasets[dataset].source) / p for p in manifest["path"].tolist()[:n_images]]]
    pixels = np.stack([load_for_model(p, config.input_size) for p in sources])
    expected = run_feature_model(model.runner, model.preprocess(pixels))
    stored = [artifacts.read_array(artifacts.features_path(root, dataset, key, layer), mmap=True) for layer in layers]
    expected_top = [_top_k(e, s) for e, s in zip(expected, stored, strict=True)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        try:
            spec = export_feature_model(model.runner, layers, model.preprocess, config.input_size, Path(tmp) / "tfjs",
                                        variants)
        except NotExportableError as exc:
            return [{"model": key, "variant": "-", "note": f"not exportable: {exc}"}]
        export_seconds = time.perf_counter() - start
        inputs = spec.transform.apply(pixels)
        for variant in variants:
            got, info = predict_in_node(Path(tmp) / "tfjs" / variant, inputs, timeout=1800)
            pairs = list(zip(expected, got, strict=True))
            rel = max(float(np.abs(e - g).max() / max(np.abs(e).max(), 1e-12)) for e, g in pairs)
            cos = min(float(np.min(np.sum(e * g, 1) / (np.linalg.norm(e, axis=1) * np.linalg.norm(g, axis=1)
                                                          + 1e-30))) for e, g in pairs)
            found = [_top_k(g, s) for g, s in zip(got, stored, strict=True)]
            same = [np.all(f == t, axis=1) for f, t in zip(found, expected_top, strict=True)]
            overlap = [[len(set(a) & set(b)) / TOP_K for a, b in zip(f, t, strict=True)]
                       for f, t in zip(found, expected_top, strict=True)]
            rows.append({"model": key, "variant": variant, "bytes": spec.variants[variant].bytes, "max_rel": rel,
                         "min_cos": cos, "top10_identical": float(np.mean(same)),
                         "top10_overlap": float(np.mean(overlap)), "n_queries": len(sources),
                         "tfjs_ms_per_image": info["predict_ms"] / len(sources),
                         "export_s": round(export_seconds, 2)})
    return rows


def main(argv: list[str] | None = None) -> int:
    from precompute.tfjs_export import VARIANTS, parse_variants

    parser = argparse.ArgumentParser(prog="python -m bench tfjs_export", description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path(os.environ.get("SISP_ARTIFACTS", "artifacts")))
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--models", default=None, help="comma-separated model keys (default: all of the dataset)")
    parser.add_argument("--images", type=int, default=0, help="dataset images added to the photos as queries")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args(argv)
    from precompute import artifacts
    from tests.tfjs_node import tfjs_unavailable

    missing = tfjs_unavailable()
    if missing:
        print(f"TF.js cannot run here: {missing}", file=sys.stderr)
        return 2
    keys = args.models.split(",") if args.models else list(artifacts.read_index(args.artifacts)
                                                            .datasets[args.dataset].models)
    print("| model | variant | bytes | max rel. deviation | min cosine | identical top-10 | top-10 overlap "
          "| TF.js node ms/img |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for key in keys:
        for row in measure_model(args.artifacts, args.dataset, key, args.images, parse_variants(args.variants)):
            if "note" in row:
                print(f"| {row['model']} | - | - | {row['note']} | | | | |", flush=True)
                continue
            print(f"| {row['model']} | {row['variant']} | {row['bytes']:,} | {row['max_rel']:.2e} | "
                  f"{row['min_cos']:.6f} | {row['top10_identical']:.0%} of {row['n_queries']} x layers | "
                  f"{row['top10_overlap']:.1%} | "
                  f"{row['tfjs_ms_per_image']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
