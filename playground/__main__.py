"""``playground`` / ``python -m playground``: precompute the embedded datasets if needed, then serve the app."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
# The embedded datasets, the default (shown first) first: drawings where ImageNet features matter, then
# Fashion-MNIST, where raw pixels are nearly as good.
DEFAULT_DATA = (DATA_DIR / "openclipart-200", DATA_DIR / "fashion-mnist-200")
DEFAULT_ARTIFACTS = "artifacts"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="playground",
        description="Serve the Semantic Image Search Playground over precomputed artifacts. With no arguments, "
        "precomputes the embedded datasets first if the artifacts lack them.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    parser.add_argument(
        "--artifacts",
        default=os.environ.get("SISP_ARTIFACTS", DEFAULT_ARTIFACTS),
        help="artifacts root (default: $SISP_ARTIFACTS or ./artifacts)",
    )
    parser.add_argument(
        "--data", action="append", type=Path,
        help="dataset folder to precompute when missing; repeat for several "
        f"(default: {', '.join(str(path) for path in DEFAULT_DATA)})",
    )
    parser.add_argument(
        "--no-precompute", action="store_true", help="serve what the artifacts hold; never run the precompute pipeline"
    )
    args = parser.parse_args(argv)
    args.data = args.data or list(DEFAULT_DATA)
    return args


def ensure_dataset(artifacts: Path, data: Path) -> None:
    """Run the precompute pipeline (default models, progress bars) when the index lacks ``data``'s dataset."""
    from precompute.artifacts import read_index
    from precompute.datasets import dataset_name

    name = dataset_name(data)
    entry = read_index(artifacts)["datasets"].get(name)
    if entry and entry.get("models"):
        return
    if not data.is_dir():
        print(
            f"playground: {name} is not in {artifacts} and {data} does not exist; serving what is there.",
            file=sys.stderr,
        )
        return
    from precompute.pipeline import run

    print(f"playground: computing {name} from {data} into {artifacts} (first run only)...", file=sys.stderr)
    run(data, artifacts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    artifacts = Path(args.artifacts)
    if not args.no_precompute:
        for data in args.data:
            ensure_dataset(artifacts, data)
    from playground.app import create_app

    app = create_app(artifacts)
    print(f"playground: serving {artifacts.resolve()} at http://{args.host}:{args.port}/", file=sys.stderr)
    app.run(host=args.host, port=args.port, debug=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
