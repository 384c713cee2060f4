"""Why efficientnet-lite0 on LiteRT is slower against Keras than the issue measured: one factor at a time.

    python -m bench litert_probe [--backbone efficientnet-lite0] [--size 224] [--images 32] [--rounds 3]

Converts the feature model for 1, 4 (the issue's) and 8 (the default) stored layers, and the 8-layer model
without its pooling (maps out, pooled in NumPy), then times each on the same random images: img/s, best of
``--rounds`` alternating rounds, after one untimed call, for each threads x batch x interpreter setting. Also
counts the ops of each ``.tflite`` (a pre-BatchNorm output keeps its BatchNorm unfolded: MUL/ADD ops). Prints a
table and the load average; nothing is stored. Conversions read stored linear convolutions out in NumPy
(``precompute.readouts.plan_readouts``, which removes those MUL/ADD ops); ``--no-readout`` converts as before them.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batches", default="1,16,32")
    parser.add_argument("--no-readout", action="store_true", help="convert without the NumPy readouts")
    args = parser.parse_args()

    import keras
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from bench.speed import pick_layers
    from precompute.backbones import ResolvedWeights, build_base, get_backbone
    from precompute.extract import build_feature_model, run_feature_model
    from precompute.runtimes import LiteRTModel, convert_to_tflite

    backbone = get_backbone(args.backbone)
    base = build_base(backbone, ResolvedWeights("random", None, "random", seed=0), args.size)
    all_layers = list(backbone.default_layers)
    images = np.random.default_rng(0).uniform(0, 255, (args.images, args.size, args.size, 3)).astype(np.float32)
    batch_all = np.asarray(backbone.preprocess(images.copy()), dtype=np.float32)
    variants = {"1 layer (top)": [all_layers[-1]], "4 layers (issue)": pick_layers(all_layers, 4),
                "8 layers (default)": all_layers}
    folder = Path(tempfile.mkdtemp())
    models = {}
    for name, layers in variants.items():
        models[name] = build_feature_model(base, layers, "avg")
    # The same 8 layers, maps out (no GlobalAveragePooling in the graph): pooling then costs a NumPy mean.
    maps = keras.Model(base.inputs, [base.get_layer(n).output for n in all_layers])
    models["8 layers, maps out"] = maps

    def rate(call, batch_size: int) -> float:
        call(batch_all[:batch_size])  # warm-up at this shape
        best = 0.0
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for i in range(0, len(batch_all), batch_size):
                call(batch_all[i : i + batch_size])
            best = max(best, len(batch_all) / (time.perf_counter() - t0))
        return best

    print(f"load before: {os.getloadavg()}")
    rows = []
    for name, model in models.items():
        path = folder / f"{len(rows)}.tflite"
        convert_to_tflite(model, path, readout=not args.no_readout)
        ops = collections.Counter(op["op_name"] for op in
                                  Interpreter(model_path=str(path))._get_ops_details())  # noqa: SLF001
        op_text = ", ".join(f"{k} {v}" for k, v in ops.most_common(6))
        pool = name.endswith("maps out")
        keras_ips = rate(lambda b, m=model: run_feature_model(m, b), 16)
        rows.append((name, "keras (TF graph)", "-", 16, keras_ips, op_text))
        for threads in [int(t) for t in args.threads.split(",")]:
            for batch_size in [int(b) for b in args.batches.split(",")]:
                lite = LiteRTModel(path, num_threads=threads, invoke_batch=batch_size)  # one invoke per batch
                call = (lambda b, m=lite: [o.mean(axis=(1, 2)) for o in m(b)]) if pool else lite
                rows.append((name, "litert XNNPACK", threads, batch_size, rate(call, batch_size), ""))
        if name.startswith("8 layers (default)"):  # the same file without XNNPACK (the builtin kernels)
            plain = Interpreter(model_path=str(path), num_threads=2,
                                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            runner = plain.get_signature_runner()
            rows.append((name, "litert no XNNPACK", 2, 16, rate(lambda b, r=runner: r(images=b), 16), ""))
        print(f"{name}: done, load {os.getloadavg()[0]:.2f}", flush=True)
    print("\n| model | runtime | threads | batch | img/s | ops (most common) |\n|---|---|---:|---:|---:|---|")
    for name, runtime, threads, batch_size, ips, op_text in rows:
        print(f"| {name} | {runtime} | {threads} | {batch_size} | {ips:.1f} | {op_text} |")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
