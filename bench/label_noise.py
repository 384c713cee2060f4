"""Label-mistake flags against planted mistakes: flip a seeded share of the labels, run the pipeline's detection.

For each dataset folder (default: the two embedded datasets, ``data/openclipart-200`` and
``data/fashion-mnist-200``), this reads the features of the layers the pipeline learns from
(:func:`precompute.label_issues.evidence_layers`: the deepest layer of each trained model) out of an artifacts root,
flips ``--fraction`` of the labels to another class, chosen at random (one seed per repeat, for both the images and
their new class), runs :func:`precompute.label_issues.detect_label_issues` (what the pipeline runs, with the same
seed for its folds) and counts the flags that name a flipped image. The features do not depend on the labels (no
backbone is trained on them), so the stored ones are the features of the flipped dataset too.

Precision and recall are pooled over the seeds (flags naming a flipped image / all flags; flipped images flagged /
all flipped). A flag on an image whose *original* label is wrong counts against precision: the figure is a lower
bound. One line per dataset::

    openclipart-200: label-mistake flags precision 0.86 recall 0.62 (5 seeds, 5 % flipped)

A folder whose dataset is not in the artifacts root is computed first, into a temporary folder, with the
default models (minutes). Tune on other seeds than the ones reported (``--seeds 100,101,102,103,104``).

    python -m bench label_noise
    python -m bench label_noise --data data/openclipart-200 --artifacts artifacts --verbose
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = (ROOT / "data" / "openclipart-200", ROOT / "data" / "fashion-mnist-200")
DEFAULT_SEEDS = (0, 1, 2, 3, 4)


@dataclass
class NoiseResult:
    dataset: str
    seeds: list[int]
    fraction: float
    n_flipped: int
    n_flagged: int
    n_hits: int
    evidence: list[str]
    per_seed: list[dict]

    @property
    def precision(self) -> float:
        return self.n_hits / self.n_flagged if self.n_flagged else float("nan")

    @property
    def recall(self) -> float:
        return self.n_hits / self.n_flipped if self.n_flipped else float("nan")

    def line(self) -> str:
        return (
            f"{self.dataset}: label-mistake flags precision {self.precision:.2f} recall {self.recall:.2f} "
            f"({len(self.seeds)} seeds, {100 * self.fraction:g} % flipped)"
        )


def flip_labels(labels: Sequence[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``round(fraction * n)`` labels (at least one) changed to another class at random: (new labels, flipped rows)."""
    labels = np.asarray(labels, dtype=object).astype(str)
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(labels), size=max(1, round(fraction * len(labels))), replace=False))
    noisy = labels.copy()
    for row in rows:
        noisy[row] = rng.choice(classes[classes != labels[row]])
    return noisy, rows


def measure(root: Path, dataset: str, seeds: Sequence[int], fraction: float) -> NoiseResult:
    """Flags against flipped labels for one dataset of an artifacts root (see the module docstring)."""
    from precompute import artifacts as art
    from precompute.label_issues import detect_label_issues, evidence_layers

    entry = art.read_index(root).datasets[dataset]
    if not entry.labeled:
        raise ValueError(f"{dataset} in {root} has no labels: there is nothing to flip.")
    layers = evidence_layers(entry)
    if not layers:
        raise ValueError(f"{dataset} in {root} has no trained model computed; confident learning needs one.")
    features = [art.read_array(art.features_path(root, dataset, model, layer)) for model, layer in layers]
    labels = art.read_table(art.manifest_path(root, dataset))["label"].astype(str).to_numpy()
    per_seed = []
    for seed in seeds:
        noisy, flipped = flip_labels(labels, fraction, seed)
        flagged = detect_label_issues(features, noisy, seed=seed)["id"].to_numpy()
        hits = int(np.isin(flagged, flipped).sum())
        per_seed.append({"seed": int(seed), "flipped": len(flipped), "flagged": len(flagged), "hits": hits})
    return NoiseResult(
        dataset,
        [int(s) for s in seeds],
        fraction,
        sum(r["flipped"] for r in per_seed),
        sum(r["flagged"] for r in per_seed),
        sum(r["hits"] for r in per_seed),
        [f"{m}/{layer}" for m, layer in layers],
        per_seed,
    )


def _artifacts_for(folder: Path, root: Path, stack: contextlib.ExitStack) -> tuple[Path, str]:
    """(artifacts root, dataset name) holding ``folder``: ``root`` when it has it, else a fresh default run."""
    from precompute import artifacts as art
    from precompute.datasets import dataset_name

    name = dataset_name(folder)
    with contextlib.suppress(art.ArtifactError, FileNotFoundError):
        if name in art.read_index(root).datasets:
            return root, name
    from precompute.pipeline import run

    out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="label-noise-")))
    print(f"{name} is not in {root}: computing it with the default models into {out} (minutes)", file=sys.stderr)
    run(folder, out=out, progress=False)
    return out, name


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds {text!r} is not a comma-separated list of integers") from None
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds needs at least one seed")
    return seeds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench label_noise", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        default=list(DEFAULT_DATA),
        metavar="FOLDER",
        help="dataset folders (default: the two embedded datasets)",
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Path(os.environ.get("SISP_ARTIFACTS", "artifacts")),
        help="artifacts root holding their features (default: ./artifacts or $SISP_ARTIFACTS)",
    )
    parser.add_argument("--seeds", type=_seeds, default=list(DEFAULT_SEEDS), help="comma-separated (default 0..4)")
    parser.add_argument("--fraction", type=float, default=0.05, help="share of labels flipped (default 0.05)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--verbose", action="store_true", help="a line per seed as well")
    args = parser.parse_args(argv)
    if not 0 < args.fraction < 1:
        parser.error(f"--fraction {args.fraction} is not between 0 and 1")
    for folder in args.data:
        if not folder.is_dir():
            parser.error(f"--data {folder} is not a folder")
    results = []
    with contextlib.ExitStack() as stack:
        for folder in args.data:
            root, name = _artifacts_for(folder, args.artifacts, stack)
            result = measure(root, name, args.seeds, args.fraction)
            results.append(result)
            print(result.line(), flush=True)
            if args.verbose:
                print(f"  evidence: {', '.join(result.evidence)}")
                for r in result.per_seed:
                    print(f"  seed {r['seed']}: {r['hits']} of {r['flagged']} flags on the {r['flipped']} flipped")
    if args.json:
        args.json.write_text(
            json.dumps([{**asdict(r), "precision": r.precision, "recall": r.recall} for r in results], indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
