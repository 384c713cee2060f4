"""Trained heads (precompute --train-head): one held-out summary line per stored head, or a full measurement.

``python -m bench head [--artifacts DIR]`` prints, for every head the index holds, the line ``precompute
--train-head`` ends with (headline protocol)::

    <dataset> <model>+head/<layer>: held-out precision@5 base 0.503 head 0.592 difference +0.089 [0.052, 0.127]

``--measure DATASET MODEL/LAYER`` instead trains and scores heads on the stored features of that layer, without
storing anything: each kind of ``precompute.head.HEAD_KINDS`` (or ``--kinds``) on both protocols, precision@1/5/15,
rwp@15 and mAP with paired intervals, the learning curve (``--curve``), the final head's training seconds, and the
machine's load before and after (what docs/benchmarks.md records).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def measure(root: Path, dataset: str, pair: str, kinds: list[str], curve: bool) -> dict:
    from precompute import artifacts as art
    from precompute.head import HeadSettings, compare, cross_validate, fit_head, learning_curve

    model, layer = pair.split("/")
    features = art.read_array(art.features_path(root, dataset, model, layer))
    labels = art.read_manifest(root, dataset)["label"].astype(str).to_numpy()
    out: dict = {
        "dataset": dataset,
        "model": model,
        "layer": layer,
        "n_images": len(labels),
        "dim": int(features.shape[1]),
        "load_before": _load(),
        "kinds": {},
    }
    for kind in kinds:
        settings = HeadSettings(kind=kind)
        start = time.perf_counter()
        results = cross_validate(features, labels, settings)
        row = {p: compare(r) for p, r in results.items()}
        row["evaluation_seconds"] = round(time.perf_counter() - start, 2)
        seconds = []
        for _ in range(3):
            head = fit_head(features, labels, settings)
            seconds.append(round(head.train_seconds, 3))
        row["train_seconds"] = seconds
        row["head_params"] = head.n_params
        row["output_dim"] = head.dim
        if curve:
            row["curve"] = learning_curve(features, labels, settings)
        out["kinds"][kind] = row
        line = row["headline"]["precision@5"]
        strict = row["strict"]["precision@5"]
        print(
            f"{dataset} {model}/{layer} [{kind}]: headline P@5 {line['base']:.3f} -> {line['head']:.3f} "
            f"({line['difference']:+.3f} [{line['ci'][0]:.3f}, {line['ci'][1]:.3f}], p {line['p_value']:.2g}); "
            f"strict {strict['base']:.3f} -> {strict['head']:.3f} ({strict['difference']:+.3f} "
            f"[{strict['ci'][0]:.3f}, {strict['ci'][1]:.3f}]); train {min(seconds)}-{max(seconds)} s",
            flush=True,
        )
        if curve:
            for point in row["curve"]:
                print(
                    f"    {point['labels_per_class']!s:>5} labels/class: base {point['base']:.3f} head "
                    f"{point['head']:.3f} {point['head_ci']} difference {point['difference']:+.3f} {point['ci']}",
                    flush=True,
                )
    out["load_after"] = _load()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench head", description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path(os.environ.get("SISP_ARTIFACTS", "artifacts")))
    parser.add_argument(
        "--measure",
        nargs=2,
        metavar=("DATASET", "MODEL/LAYER"),
        help="train and score heads on the stored features (stores nothing)",
    )
    parser.add_argument("--kinds", default="lda,proxy", help="head kinds to measure (default lda,proxy)")
    parser.add_argument("--curve", action="store_true", help="also the learning curve (1, 2, 5, 10, half labels)")
    parser.add_argument("--json", type=Path, help="write the measurement here")
    args = parser.parse_args(argv)
    from precompute import artifacts as art

    if args.measure:
        result = measure(args.artifacts, args.measure[0], args.measure[1], args.kinds.split(","), args.curve)
        print(f"load before {result['load_before']}, after {result['load_after']}")
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        return 0
    from precompute.stages.head import stored_head_lines

    try:
        lines = stored_head_lines(args.artifacts)
    except art.ArtifactError as exc:
        print(f"python -m bench head: {exc}", file=sys.stderr)
        return 2
    if not lines:
        print(
            f"No trained head in {args.artifacts}; train one with precompute DATASET --train-head MODEL/LAYER.",
            file=sys.stderr,
        )
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
