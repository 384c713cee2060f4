"""``playground`` / ``python -m playground``: precompute the embedded datasets if needed, then serve the app.

The precompute runs in a child process (``playground --precompute-only``), so the serving process never
imports TensorFlow for it: the server holds the app and its cached artifacts only, until an upload needs a
backbone. The app is served by waitress (``playground.server``), or by Dash's development server with ``--dev``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from precompute import interrupt
from precompute.locations import (
    data_dir,
    default_artifacts_root,
    describe_default_artifacts,
    package_version,
    source_root,
)

# The embedded datasets (the clone's data/, or the installed package's copy), the default (shown first) first:
# drawings where ImageNet features matter, then Fashion-MNIST, where raw pixels are nearly as good.
DEFAULT_DATA = (data_dir() / "openclipart-200", data_dir() / "fashion-mnist-200")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="playground",
        description="Serve the Semantic Image Search Playground over precomputed artifacts. With no arguments, "
        "precomputes the embedded datasets first if the artifacts lack them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    parser.add_argument(
        "--allow-host", action="append", default=[], metavar="NAME",
        help="a host name browsers may use to reach the app, besides localhost, 127.0.0.1, ::1 and the --host "
        "address; repeat for several; '.example.org' allows its subdomains. Other names get a 400",
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=default_artifacts_root(),
        help=f"artifacts root (default here: {describe_default_artifacts().replace('%', '%%')})",
    )
    parser.add_argument(
        "--data", action="append", type=Path,
        help="dataset folder to precompute when missing; repeat for several "
        f"(default: {', '.join(str(path) for path in DEFAULT_DATA)})",
    )
    parser.add_argument(
        "--backbones", metavar="LIST",
        help="comma-separated models for precomputing a missing dataset, as precompute --backbones takes them (e.g. "
        "pixels,efficientnet-lite0; default: precompute's auto list, every backbone whose weights can be had here)",
    )
    parser.add_argument(
        "--no-precompute", action="store_true", help="serve what the artifacts hold; never run the precompute pipeline"
    )
    parser.add_argument(
        "--precompute-only", action="store_true",
        help="precompute the --data datasets the artifacts lack, then exit without serving (what the main command "
        "runs in a child process)",
    )
    parser.add_argument(
        "--dev", action="store_true",
        help="serve with Dash's development server (Werkzeug, a thread per connection) instead of waitress; "
        "for debugging only",
    )
    args = parser.parse_args(argv)
    args.data = args.data or list(DEFAULT_DATA)
    return args


def needs_precompute(artifacts: Path, data: Path) -> bool:
    """Whether the index lacks ``data``'s dataset or any model of it; an unreadable index counts as lacking it
    (the pipeline then says what is wrong with it)."""
    from precompute.artifacts import ArtifactError, read_index
    from precompute.datasets import dataset_name

    try:
        entry = read_index(artifacts).datasets.get(dataset_name(data))
    except (ArtifactError, OSError):
        return True
    return entry is None or not entry.models


def ensure_dataset(artifacts: Path, data: Path, backbones: list[str] | None = None) -> None:
    """Run the precompute pipeline (default models, progress bars) when the index lacks ``data``'s dataset."""
    from precompute.datasets import dataset_name

    if not needs_precompute(artifacts, data):
        return
    name = dataset_name(data)
    if not data.is_dir():
        print(
            f"playground: {name} is not in {artifacts} and {data} does not exist; serving what is there.",
            file=sys.stderr,
        )
        return
    from precompute.pipeline import run

    print(f"playground: computing {name} from {data} into {artifacts} (first run only)...", file=sys.stderr)
    # Each model's extraction in a child of its own: one process for all 7 default models peaked at 2.1-2.4 GB.
    run(data, artifacts, models=backbones, model_processes=True)


def precompute_in_child(artifacts: Path, data_dirs: list[Path], backbones: str | None = None) -> int:
    """Run ``ensure_dataset`` for each dataset the artifacts lack, each in a child process of its own; the first
    non-zero exit code (0: all done, or nothing to do). A child imports TensorFlow and exits, so this process never
    loads it; one child per dataset keeps the peak memory that of one dataset (TensorFlow and the allocator do not
    give memory back between datasets: 2.14 GB for both embedded datasets in one process, 1.96 GB for one), and
    within it each model is extracted in a grandchild of its own (``RunConfig.model_processes``), forked from a
    server that imported TensorFlow once, for the same reason between models."""
    # From a clone, the child imports this very checkout, whatever its working directory and sys.path would pick
    # (an installed package is what the child's interpreter imports anyway).
    root = source_root()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root and str(root), os.environ.get("PYTHONPATH")])))
    first_failure = 0
    for data in data_dirs:
        if not needs_precompute(artifacts, data):
            continue
        command = [sys.executable, "-m", "playground", "--precompute-only", "--artifacts", str(artifacts),
                   "--data", str(data), *(["--backbones", backbones] if backbones else [])]
        code = subprocess.run(command, env={**env, interrupt.QUIET_ENV: "1"}, check=False).returncode
        if interrupt.installed() and code in (interrupt.EXIT_CODE, -signal.SIGINT):  # Ctrl-C reached it first
            interrupt.stop()
        first_failure = first_failure or code
    return first_failure


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if argv is None:  # the command, not a call from Python: Ctrl-C prints one line, exits 130, ends the children
        interrupt.install("playground")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    artifacts = Path(args.artifacts)
    if args.precompute_only:
        backbones = [name.strip() for name in (args.backbones or "").split(",") if name.strip()] or None
        for data in args.data:
            ensure_dataset(artifacts, data, backbones)
        return 0
    if not args.no_precompute:
        code = precompute_in_child(artifacts, args.data, args.backbones)
        if code:
            print(f"playground: precompute stopped (exit code {code}); serving what the artifacts hold.",
                  file=sys.stderr)
    from playground.app import create_app, warm_up
    from playground.server import THREADS, allowed_hosts, serve

    hosts = allowed_hosts(args.host, args.allow_host)
    app = create_app(artifacts, hosts)
    server = "Dash's development server" if args.dev else f"waitress, {THREADS} threads"
    print(f"playground: serving {artifacts.resolve()} at http://{args.host}:{args.port}/ ({server}; host names "
          f"allowed: {', '.join(hosts)})", file=sys.stderr)
    if argv is None:
        interrupt.set_message("interrupted; stopped serving.")
    warm_up(app)
    if args.dev:
        app.run(host=args.host, port=args.port, debug=False)
    else:
        serve(app, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
