"""``precompute DATASET_DIR --out DIR ...``: parses arguments and calls the pipeline; no logic of its own."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from pathlib import Path

from precompute import interrupt

# Ctrl-C during the imports below counts too: the command sets its handler up first (see main()).
if __name__ == "__main__" or interrupt.is_command("precompute"):
    interrupt.install("precompute")

from precompute.ann import ANN_KINDS, parse_params  # noqa: E402
from precompute.artifacts import ArtifactError  # noqa: E402
from precompute.backbones import BACKBONES, WEIGHT_SOURCES, WeightsUnavailableError, get_backbone  # noqa: E402
from precompute.datasets import DatasetError  # noqa: E402
from precompute.distributed import ENGINES  # noqa: E402
from precompute.extract import ACTIVATION_BUDGET_MB  # noqa: E402
from precompute.forkserver import keep_freed_memory  # noqa: E402
from precompute.locations import default_artifacts_root, describe_default_artifacts, package_version  # noqa: E402
from precompute.runtimes import QUANTIZATIONS, RUNTIMES, parse_quantizations  # noqa: E402
from precompute.similarity import DEFAULT_METRICS, DEFAULT_MINKOWSKI_P, METRICS, metric_name  # noqa: E402
from precompute.tfjs_export import VARIANTS, parse_variants  # noqa: E402


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _tfjs_variants(text: str) -> tuple[str, ...]:
    try:
        return parse_variants(text)
    except ValueError as exc:  # argparse shows an ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    from precompute.pipeline import AUTO_MODELS

    parser = argparse.ArgumentParser(
        prog="precompute",
        description="Extract features from several CNN backbones and layers of an image folder, then store "
        "neighbour rankings, retrieval scores and UMAP embeddings for the playground app.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Examples:\n"
        "  precompute data/openclipart-200\n"
        "  precompute photos/ --backbones vgg16,efficientnet-lite0:random --metrics cosine,minkowski\n"
        "  precompute photos/ --backbones vgg16 --layers block3_conv3,block5_conv3 --weights ~/vgg16_notop.h5\n"
        "  precompute /shared/photos --engine dask --dask-scheduler tcp://host:8786   (see docs/distributed.md)\n"
        "A dataset is a folder with one sub-folder per class (or a flat folder: unlabeled, no scores).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("dataset_dir", nargs="?", type=Path, help="image folder to process")
    parser.add_argument("--out", type=Path, default=default_artifacts_root(),
                        help=f"artifacts root (default here: {describe_default_artifacts().replace('%', '%%')})")
    parser.add_argument("--name", help="dataset name in the artifacts (default: the folder name)")
    parser.add_argument(
        "--backbones", type=_csv, default=None,
        help="comma-separated BACKBONE[:WEIGHTS] list (e.g. vgg16,efficientnet-lite0:random). Default: auto = "
        f"{','.join(AUTO_MODELS)}, skipping any whose weights cannot be had here (the report says why)",
    )
    parser.add_argument(
        "--weights", default="auto",
        help=f"weights for backbones without ':WEIGHTS': one of {', '.join(WEIGHT_SOURCES)}, or a local weights "
        "file/folder (air-gapped sites). auto = imagenet where downloadable or cached, else the offline source",
    )
    parser.add_argument("--layers", type=_csv, default=None,
                        help="comma-separated layer names (one backbone only); default: the registry's 6-8 layers "
                        "from shallow to deep. `--list-layers BACKBONE` shows every valid name")
    parser.add_argument("--metrics", type=_csv, default=list(DEFAULT_METRICS),
                        help=f"comma-separated metrics from {', '.join(METRICS)} "
                        f"(default: {','.join(DEFAULT_METRICS)})")
    parser.add_argument("--minkowski-p", type=float, default=DEFAULT_MINKOWSKI_P,
                        help="p for the minkowski metric (p >= 1, p != 2; default 3)")
    parser.add_argument("--pooling", choices=["avg", "max"], default="avg",
                        help="how a layer's feature map becomes a vector (default: global average)")
    parser.add_argument("--top-n", type=int, default=50, help="neighbours stored per image (default 50)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="images per forward pass at most (default 32; lowered per model to fit --memory-mb)")
    parser.add_argument("--memory-mb", type=int, default=ACTIVATION_BUDGET_MB,
                        help=f"activation memory of one forward pass, in MB (default {ACTIVATION_BUDGET_MB}): bounds "
                        "extraction memory whatever --batch-size and the backbone")
    parser.add_argument("--input-size", type=int, default=None,
                        help="input side in pixels (default: each backbone's own, e.g. 224)")
    parser.add_argument("--exact-max", type=int, default=20_000, metavar="N",
                        help="exact all-pairs rankings up to N images (default 20000); above, a FAISS index "
                        "per (model, layer, metric) is stored and the rankings come from it (chebyshev stays exact up "
                        "to 5N on layers of 96+ dimensions, where that is faster than FAISS' L-inf index)")
    parser.add_argument("--ann", choices=list(ANN_KINDS), default="hnsw",
                        help="FAISS index kind above --exact-max (default hnsw; flat is exact brute force)")
    parser.add_argument("--ann-params", type=parse_params, default={}, metavar="K=V,...",
                        help="index parameters, e.g. M=32,ef_construction=80,ef_search=128 (hnsw) or "
                        "nlist=1024,nprobe=16 (ivf-flat); defaults: "
                        + "; ".join(f"{kind}: " + ",".join(f"{k}={v}" for k, v in params.items())
                                    for kind, params in ANN_KINDS.items() if params) + " (nlist=0: about 4 sqrt(N))")
    parser.add_argument("--umap-neighbors", type=int, default=15, help="UMAP n_neighbors (default 15)")
    parser.add_argument("--umap-min-dist", type=float, default=0.1, help="UMAP min_dist (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random weights, UMAP and baselines")
    parser.add_argument("--engine", choices=list(ENGINES), default="local",
                        help="where feature extraction runs: local (this process) or dask (a Dask cluster, same "
                        "artifacts; needs the 'distributed' extra, see docs/distributed.md)")
    parser.add_argument("--dask-scheduler", metavar="ADDRESS", default=None,
                        help="Dask scheduler for --engine dask, e.g. tcp://host:8786; workers must see the dataset "
                        "folder at the same path (default: a local cluster started for the run)")
    parser.add_argument("--runtime", choices=list(RUNTIMES), default="auto",
                        help="what runs the forward passes: keras (TensorFlow; the GPU when it sees one), litert "
                        "(the model converted once to LiteRT, XNNPACK; cached in $SISP_CACHE_DIR/litert) or auto "
                        "(default: the GPU if any, else per backbone the one measured faster on CPU). Features "
                        "agree within 1e-4 relative; the index records the runtime and its speed")
    parser.add_argument("--quantize", type=parse_quantizations, default=(), metavar="LIST",
                        help=f"also store quantised LiteRT variants of every model, from {','.join(QUANTIZATIONS)}, "
                        "as models <model>-float16 (float16 weights), <model>-int8 (dynamic-range: int8 weights, "
                        "no calibration) and <model>-int8full (full-integer: int8 weights and activations, calibrated "
                        "on 100 images of the dataset drawn with --seed), each with its file size, speed and scores")
    parser.add_argument("--tfjs", type=_tfjs_variants, default=VARIANTS, metavar="LIST",
                        help=f"TF.js layers exports of every model for private search in the browser, from "
                        f"{','.join(VARIANTS)} (default: all; the TF.js converter's weight quantisations), written "
                        "to <out>/<dataset>/<model>/tfjs/; none skips them")
    parser.add_argument("--train-head", metavar="MODEL/LAYER[,...]|best", default=None,
                        help="train a head on the dataset's labels over a stored layer's features (best: the best "
                        "layer of the best model by the stored scores) and store it as the model <MODEL>+head, with "
                        "held-out scores (docs/heads.md). Without --backbones, only the heads are trained")
    parser.add_argument("--head-kind", choices=["lda", "proxy"], default="proxy",
                        help="how the head is fitted: proxy (a Keras Dense(64) projection trained with a normalised-"
                        "softmax loss, started from LDA; default: it scored better held out) or lda (shrinkage LDA)")
    parser.add_argument("--pairs", metavar="FILE", default=None,
                        help="with --train-head: a CSV of marks downloaded from the page (relevance feedback: query "
                        "id, result id, relevant) added to the heads' training; a CSV of another dataset, a stale "
                        "one or one with bad rows is refused, naming the rows, and nothing is changed")
    parser.add_argument("--force", action="store_true",
                        help="recompute everything instead of resuming; also replaces a stored dataset of the same "
                        "name from another folder, and starts a new index over an unreadable one")
    parser.add_argument("--hash-files", action="store_true",
                        help="also hash every file's bytes to notice changed images (slower; size, times and inode "
                        "are always compared)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--list-backbones", action="store_true", help="list the backbones and exit")
    parser.add_argument("--list-layers", metavar="BACKBONE", help="list every valid layer name of BACKBONE and exit")
    return parser


def _list_layers(name: str) -> None:
    from precompute.backbones import ResolvedWeights, build_base
    from precompute.extract import available_layers

    backbone = get_backbone(name)
    base = build_base(backbone, ResolvedWeights("random", None, "random"), None)
    print(f"{name}: default layers {', '.join(backbone.default_layers)}")
    print("\n".join(available_layers(base)))


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None:  # the command itself, not a call from Python: Ctrl-C prints one line and exits 130
        interrupt.install("precompute")
        keep_freed_memory()  # its processes reuse the memory they free (precompute.forkserver)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.list_backbones:
            for backbone in BACKBONES.values():
                print(f"{backbone.name:20s} {backbone.input_size:4d}px  {backbone.description}")
            return 0
        if args.list_layers:
            _list_layers(args.list_layers)
            return 0
        if args.dataset_dir is None:
            parser.error("DATASET_DIR is required")
        from precompute.pipeline import AUTO_MODELS, ModelRequest, Run, RunConfig, parse_model_request
        from precompute.stages.head import parse_head_requests

        train_heads = parse_head_requests(args.train_head)
        heads_only = bool(train_heads) and args.backbones is None
        auto = not heads_only and (args.backbones is None or args.backbones == ["auto"])
        specs = [] if heads_only else [parse_model_request(s, args.weights)
                                       for s in (AUTO_MODELS if auto else args.backbones)]
        if args.layers:
            if len(specs) != 1:
                parser.error("--layers needs exactly one backbone in --backbones")
            specs = [ModelRequest(specs[0].backbone, specs[0].weights, tuple(args.layers))]
        metrics = tuple(metric_name(m, args.minkowski_p) for m in args.metrics)
        config = RunConfig(
            args.dataset_dir, args.out, specs, auto_models=auto, metrics=metrics, pooling=args.pooling,
            top_n=args.top_n, batch_size=args.batch_size, activation_budget_mb=args.memory_mb,
            input_size=args.input_size,
            exact_search_max=args.exact_max, ann_kind=args.ann, ann_params=args.ann_params,
            umap_neighbors=args.umap_neighbors, umap_min_dist=args.umap_min_dist, seed=args.seed,
            force=args.force, hash_files=args.hash_files, progress=not args.no_progress, name=args.name,
            engine=args.engine, dask_address=args.dask_scheduler, runtime=args.runtime, quantize=args.quantize,
            tfjs=args.tfjs, train_heads=train_heads, head_kind=args.head_kind, head_pairs=args.pairs,
            # The default models, each extracted in a child of its own: in one process they peak over 2 GB.
            model_processes=auto,
        )
        run = Run(config)
        summary = run.execute()
    except (ValueError, DatasetError, WeightsUnavailableError, ArtifactError) as exc:
        print(f"precompute: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder, a vanished file: say which, never a traceback
        print(f"precompute: error: {_os_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("precompute: interrupted; finished files are kept, rerun the same command to resume.", file=sys.stderr)
        return 130
    _print_summary(run, summary)
    return 0


def _os_message(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return (f"no space left on device{where}. Free some space and rerun the same command: finished files are "
                "kept and the interrupted one is recomputed.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write or read{where}: {exc.strerror}. Check the folder's permissions, or choose --out."
    return f"{exc.strerror or exc}{where}."


def _print_summary(run: object, summary: object) -> None:
    import pandas as pd

    report = run.report  # type: ignore[attr-defined]
    print(f"\nDataset {report['dataset']}: artifacts in {run.root}")  # type: ignore[attr-defined]
    for key, model in report["models"].items():
        line = f"  {key}: {model['status']}"
        if model.get("weights"):
            line += f" - weights: {model['weights']}"
        if model.get("reason"):
            line += f" ({model['reason']})"
        print(line)
    if report["skipped_files"]:
        print(f"  {len(report['skipped_files'])} file(s) skipped, see report.json:")
        for item in report["skipped_files"][:10]:
            print(f"    {item['path']}: {item['reason']}")
    duplicates = report.get("duplicates") or {}
    if duplicates.get("n_pairs"):
        print(f"  {duplicates['n_pairs']} duplicate pair(s): {duplicates['n_exact']} identical, {duplicates['n_near']} "
              f"near-identical (perceptual hash within {duplicates['phash_max_distance']} bits); scores count them "
              "as given, see report.json:")
        for pair in sorted(duplicates["pairs"], key=lambda p: not p["labels_differ"])[:10]:
            flag = " (look alike, labels differ)" if pair["labels_differ"] else ""
            print(f"    {pair['a']} = {pair['b']} ({pair['kind']}){flag}")
    issues = report.get("label_issues") or {}
    if issues.get("found"):
        print(f"  {issues['found']} label(s) probably wrong (cleanlab over {', '.join(issues['layers'])}), "
              "see report.json:")
        for issue in issues["issues"][:10]:
            print(f"    {issue['path']}: {issue['label']} -> suggested {issue['suggested']} "
                  f"(confidence {issue['confidence']:.2f})")
    if report.get("stage_seconds"):
        from precompute.run_summary import format_stage_seconds

        print(f"  time per stage: {format_stage_seconds(report['stage_seconds'])}")
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(summary.to_string(index=False) if len(summary) else "(nothing computed)")
    for line in report.get("heads") or []:  # one line per head, headline protocol, for scripts
        print(line)


if __name__ == "__main__":
    sys.exit(main())
