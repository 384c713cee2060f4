"""LiteRT with and without the NumPy readouts of linear layers, against Keras, in alternating rounds of one process.

    python -m bench litert_readout [--backbones efficientnet-lite0,mobilenetv2] [--layers 4,8] [--rounds 8]
                                   [--weights random|imagenet|nsfwjs] [--images-from data/openclipart-200]

For each backbone and layer count: builds the feature model (``bench.speed.pick_layers``), converts it twice,
without (``readout=False``: the conversion of before, each stored pre-BatchNorm output blocks a fold) and with
``precompute.readouts.plan_readouts``, counts each file's ops, checks both runtimes' features against Keras'
(largest difference relative to each layer's largest value), then times Keras one pass (batch 16), LiteRT before
and LiteRT after on the same 32 images, in ``--rounds`` alternating rounds after one untimed call each. Prints
the best and the median round of each, their ratios to Keras, and the load average. Nothing is stored.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="efficientnet-lite0,mobilenetv2")
    parser.add_argument("--layers", default="4,8", help="layer counts (picked shallow to deep)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--weights", default="random", help="random, or a stored source: imagenet, nsfwjs")
    parser.add_argument("--images-from", default=None, help="a folder of images (default: 32 random images)")
    args = parser.parse_args(argv)

    from ai_edge_litert.interpreter import Interpreter

    from bench.speed import pick_layers
    from precompute.backbones import ResolvedWeights, build_base, get_backbone
    from precompute.datasets import load_for_model
    from precompute.extract import build_feature_model, run_feature_model
    from precompute.models import resolve_config_weights
    from precompute.runtimes import LiteRTModel, convert_to_tflite
    from precompute.schema import ModelConfig

    if args.images_from:
        paths = sorted(p for p in Path(args.images_from).rglob("*") if p.suffix.lower() in (".png", ".jpg"))[:32]
        images = np.stack([load_for_model(p.read_bytes(), args.size) for p in paths]).astype(np.float32)
    else:
        images = np.random.default_rng(0).uniform(0, 255, (32, args.size, args.size, 3)).astype(np.float32)
    folder = Path(tempfile.mkdtemp())
    for name in args.backbones.split(","):
        backbone = get_backbone(name)
        weights = (ResolvedWeights("random", None, "random", seed=0) if args.weights == "random"
                   else resolve_config_weights(
                       ModelConfig(backbone=name, weights_source=args.weights, input_size=args.size), backbone))
        base = build_base(backbone, weights, args.size)
        batch = backbone.preprocess(images)
        for n_layers in (int(n) for n in args.layers.split(",")):
            layers = pick_layers(list(backbone.default_layers), n_layers)
            model = build_feature_model(base, layers, "avg")
            chunks = [run_feature_model(model, batch[i : i + 16]) for i in range(0, len(batch), 16)]
            expected = [np.concatenate(parts) for parts in zip(*chunks, strict=True)]
            runners = {"keras": lambda b, m=model: run_feature_model(m, b)}
            print(f"\n{name} ({args.weights} weights), {len(layers)} layers: {', '.join(layers)}")
            for label, readout in (("litert before", False), ("litert after", True)):
                path = folder / f"{name}-{n_layers}-{readout}.tflite"
                convert_to_tflite(model, path, readout=readout)
                lite = LiteRTModel(path)
                ops = collections.Counter(op["op_name"] for op in
                                          Interpreter(model_path=str(path))._get_ops_details())  # noqa: SLF001
                got = lite(batch)
                diffs = [float(np.max(np.abs(e - g)) / np.max(np.abs(e))) for e, g in zip(expected, got, strict=True)]
                kinds = [r.kind for r in lite.readouts] if lite.readouts else ["output"] * len(layers)
                print(f"  {label}: {lite.size_mb:.2f} MB, ops {dict(ops.most_common(6))}, readouts {kinds}, "
                      f"largest relative difference to Keras per layer {' '.join(f'{d:.1e}' for d in diffs)}")
                runners[label] = lite
            rates: dict[str, list[float]] = collections.defaultdict(list)
            for run in runners.values():
                run(batch[:16])
            load_before = os.getloadavg()
            for _ in range(args.rounds):
                for label, run in runners.items():
                    t0 = time.perf_counter()
                    for i in range(0, len(batch), 16):
                        run(batch[i : i + 16])
                    rates[label].append(len(batch) / (time.perf_counter() - t0))
            keras_best, keras_median = max(rates["keras"]), statistics.median(rates["keras"])
            for label, values in rates.items():
                best, median = max(values), statistics.median(values)
                print(f"  {label:<14} img/s best {best:6.1f} ({best / keras_best:.2f}x Keras), "
                      f"median {median:6.1f} ({median / keras_median:.2f}x)")
            print(f"  load {' '.join(f'{v:.2f}' for v in load_before)} -> "
                  f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
