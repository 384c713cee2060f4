"""The dataset stage: scan the folder into a manifest (or reuse the stored one), its duplicates and baseline.

:func:`prepare_dataset` returns the dataset's index record and its manifest: the stored ones when the folder is
unchanged (``staleness.dataset_is_current``) and the manifest sound, else a new scan, which drops every model
computed on the old manifest. :func:`write_duplicates` stores the exact and perceptual-hash duplicate pairs
(``precompute.duplicates``), :func:`write_baseline` the scores of a random ranking (labeled datasets).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from precompute import artifacts as art
from precompute.datasets import DatasetError, build_manifest, folder_fingerprint
from precompute.run_summary import utc_now
from precompute.schema import ArtifactIndex, Baseline, BaselineParams, DatasetDuplicates, DatasetEntry
from precompute.scores import cutoffs_within
from precompute.stages.context import RunContext
from precompute.staleness import baseline_is_current, dataset_is_current

log = logging.getLogger(__name__)


def prepare_dataset(run: RunContext) -> tuple[DatasetEntry, pd.DataFrame]:
    """The dataset's record and manifest, scanned again only when needed;"""
    root, ds, cfg = run.root, run.dataset, run.config
    entry = art.read_index(root).datasets.get(ds)
    _check_identity(run, entry)
    path = art.manifest_path(root, ds)
    fingerprint = folder_fingerprint(cfg.dataset_dir, exclude=[root], content=cfg.hash_files)
    if entry and not cfg.force and dataset_is_current(entry, fingerprint):
        manifest = _valid_manifest(run, entry)
        if manifest is not None:
            run.report["skipped_files"] = entry.skipped_files
            labeled = entry.labeled
            _repair_thumbnails(run, manifest)
            pairs = readable_table(art.duplicates_path(root, ds)) if entry.duplicates is not None else None
            if pairs is None:
                write_duplicates(run, manifest, labeled)
            else:
                run.report["duplicates"] = {
                    **entry.duplicates.to_dict(),
                    "pairs": _pair_records(pairs, manifest, labeled),
                }
            return art.read_index(root).datasets[ds], manifest
    if entry:
        log.info(
            "%s: the folder changed since the last run (or --force, or a broken manifest): rescanning, "
            "models recomputed",
            ds,
        )
    # Thumbnails are named by row id: those of an older manifest must not outlive it; nor may model folders.
    shutil.rmtree(art.thumbs_dir(root, ds), ignore_errors=True)
    for key in entry.models if entry else {}:
        shutil.rmtree(art.dataset_dir(root, ds) / art.check_name(key, "model name"), ignore_errors=True)
    manifest, skipped, labeled = build_manifest(
        cfg.dataset_dir, art.thumbs_dir(root, ds), progress=cfg.progress, exclude=[root], on_listed=run.expect_images
    )
    art.write_table(path, manifest)
    run.report["skipped_files"] = skipped
    labels = manifest["label"]
    class_counts = labels.value_counts().sort_index().to_dict() if labeled else {}

    def change(index: ArtifactIndex) -> None:
        old = index.datasets.get(ds)
        index.datasets[ds] = DatasetEntry(
            source=run.report["source"],
            n_images=len(manifest),
            labeled=labeled,
            classes=sorted(class_counts),
            class_counts={str(k): int(v) for k, v in class_counts.items()},
            manifest=art.relative(root, path),
            thumbs=art.relative(root, art.thumbs_dir(root, ds)),
            report=art.relative(root, art.report_path(root, ds)),
            skipped_files=skipped,
            created=old.created if old and old.created else utc_now(),
            fingerprint=fingerprint,
            # A new manifest invalidates every model (and the baseline) computed on the old one.
            models={},
        )

    art.update_index(root, change)
    write_duplicates(run, manifest, labeled)
    return art.read_index(root).datasets[ds], manifest


def open_index(run: RunContext) -> None:
    """Check the index before any work; with --force, set a broken one aside; clear stale temporary files."""
    try:
        art.read_index(run.root)
    except art.ArtifactError as exc:
        if not run.config.force:
            raise art.ArtifactError(
                f"{exc} To start a new index, rerun with --force: the unreadable one is "
                "kept beside it as index.json.broken-<time>."
            ) from None
        kept = art.set_aside_index(run.root)
        run.report["dropped_from_index"] = []  # filled in by dropped_from_index, once the new index is written
        log.warning(
            "%s; --force: it is kept as %s and a new index is started: it will hold only what this run "
            "computes. Computed models on disk now: %s",
            exc,
            kept.name if kept else "-",
            ", ".join(art.models_on_disk(run.root)) or "none",
        )
    removed = art.remove_stale_temporaries(art.dataset_dir(run.root, run.dataset))
    # Index temporaries of other runs sharing the root may be in flight: only old ones go.
    removed += art.remove_stale_temporaries(run.root, older_than_seconds=600, recursive=False)
    if removed:
        log.info("removed %d temporary files left by an interrupted run", len(removed))


def dropped_from_index(root: Path) -> list[str]:
    """After --force over an unreadable index: the computed models on disk that the new index leaves out."""
    index = art.read_index(root)
    held = {f"{name}/{model}" for name, entry in index.datasets.items() for model in entry.models}
    dropped = [name for name in art.models_on_disk(root) if name not in held]
    if dropped:
        log.warning(
            "the new index leaves out %d computed model(s), their files kept on disk; the app shows "
            "them again once recomputed (`precompute DATASET_DIR --out ...`): %s",
            len(dropped),
            ", ".join(dropped),
        )
    return dropped


def check_folder_unchanged(run: RunContext) -> None:
    """Heads alone train on stored features: refuse when the folder changed since they were computed."""
    from precompute.head import HeadInputError

    entry = art.read_index(run.root).datasets.get(run.dataset)
    if entry is None:
        return  # HeadStage.plan says what to run
    fingerprint = folder_fingerprint(run.config.dataset_dir, exclude=[run.root], content=run.config.hash_files)
    if not dataset_is_current(entry, fingerprint):
        raise HeadInputError(
            f"{run.dataset}: the folder {run.config.dataset_dir} changed since its features "
            f"were computed; recompute them first (precompute {run.config.dataset_dir} --out "
            f"{run.root} --backbones MODEL), then train the head."
        )


def _check_identity(run: RunContext, entry: DatasetEntry | None) -> None:
    """Refuse to replace a stored dataset of the same name that came from another folder (unless --force)."""
    if not entry or entry.source in (None, run.report["source"]) or run.config.force:
        return
    raise DatasetError(
        f"The artifacts in {run.root} already hold a dataset named {run.dataset!r}, computed from "
        f"{entry.source}; this run is for {run.report['source']}. Give this one another name with "
        f"--name NAME, or replace the stored one with --force."
    )


def _valid_manifest(run: RunContext, entry: DatasetEntry) -> pd.DataFrame | None:
    """The stored manifest if it is readable and agrees with the index, else None (and why, in the log)."""
    path = art.manifest_path(run.root, run.dataset)
    manifest = readable_table(path)
    problem = None
    if manifest is None:
        problem = "is missing or unreadable"
    elif len(manifest) != entry.n_images or list(manifest["id"]) != list(range(len(manifest))):
        problem = f"has {len(manifest)} rows, the index says {entry.n_images}"
    elif not {"content_hash", "phash"} <= set(manifest.columns):
        problem = "lacks the image hashes of this version"  # an older run: rescan once
    if problem:
        log.warning("%s %s: rescanning the dataset", art.relative(run.root, path), problem)
        return None
    return manifest


def _repair_thumbnails(run: RunContext, manifest: pd.DataFrame) -> None:
    """Write the thumbnails that are missing or empty (a deleted ``thumbs/``, a truncated file)."""
    from precompute.datasets import write_thumbnails

    folder = art.thumbs_dir(run.root, run.dataset)
    paths = {int(i): art.thumb_path(run.root, run.dataset, int(i)) for i in manifest["id"]}
    missing = [i for i, path in paths.items() if not path.is_file() or path.stat().st_size == 0]
    if missing:
        log.warning("%s: %d thumbnails missing, writing them again", art.relative(run.root, folder), len(missing))
        write_thumbnails(run.config.dataset_dir, manifest, folder, missing)


def write_duplicates(run: RunContext, manifest: pd.DataFrame, labeled: bool) -> DatasetDuplicates:
    """Exact and perceptual-hash duplicate pairs of the dataset: a table, counts in the index, the report."""
    from precompute.duplicates import PHASH_MAX_DISTANCE, hash_pairs

    root, ds = run.root, run.dataset
    pairs = hash_pairs(
        manifest["content_hash"].tolist(),
        manifest["phash"].tolist(),
        manifest["label"].astype(str).tolist() if labeled else None,
    )
    path = art.duplicates_path(root, ds)
    art.write_table(path, pairs)
    summary = DatasetDuplicates(
        path=art.relative(root, path),
        phash_max_distance=PHASH_MAX_DISTANCE,
        n_pairs=len(pairs),
        n_exact=int((pairs["kind"] == "exact").sum()),
        n_near=int((pairs["kind"] == "near").sum()),
        n_cross_class=int(pairs["cross_class"].sum()),
    )

    def change(index: ArtifactIndex) -> None:
        index.datasets[ds].duplicates = summary

    art.update_index(root, change)
    run.report["duplicates"] = {**summary.to_dict(), "pairs": _pair_records(pairs, manifest, labeled)}
    if len(pairs):
        log.warning(
            "%s: %d duplicate pairs (%d exact, %d near, %d across classes: look alike, labels differ); "
            "scores count them as given, see %s",
            ds,
            summary.n_pairs,
            summary.n_exact,
            summary.n_near,
            summary.n_cross_class,
            art.report_path(root, ds),
        )
    return summary


def write_baseline(run: RunContext, manifest: pd.DataFrame) -> Baseline:
    """Scores of a random ranking of a labeled dataset, at the depth the rankings are stored to."""
    from precompute.scores import random_baseline

    path = art.baseline_path(run.root, run.dataset)
    entry = art.read_index(run.root).datasets[run.dataset]
    # Exact expectations of a random ranking at the stored depth, so AP compares like for like; another
    # --top-n changes that depth, and the baseline with it.
    depth = min(run.config.top_n, len(manifest) - 1)
    params = BaselineParams(depth=depth, ks=cutoffs_within(depth), n_images=len(manifest))
    if baseline_is_current(entry, params) and not run.config.force and not run.broken(path, art.check_table(path)):
        return entry.baseline
    baseline = random_baseline(manifest["label"].to_numpy(), ks=params.ks, depth=depth)
    art.write_table(path, baseline)
    stored = Baseline(path=art.relative(run.root, path), params=params, summary=summary_row(baseline))

    def change(index: ArtifactIndex) -> None:
        index.datasets[run.dataset].baseline = stored

    art.update_index(run.root, change)
    return stored


def summary_row(summary: pd.DataFrame) -> dict[str, float]:
    """The overall row of a scores summary, rounded, as the index stores it."""
    row = summary.loc["__all__"]
    return {k: (None if pd.isna(v) else round(float(v), 5)) for k, v in row.items()}


def readable_table(path: Path) -> pd.DataFrame | None:
    """A parquet table, or None when it is missing or cannot be read (a truncated or foreign file)."""
    try:
        return art.read_table(path)
    except Exception:  # pyarrow raises several types for damaged files; any of them means "recompute"
        return None


def _pair_records(pairs: pd.DataFrame, manifest: pd.DataFrame, labeled: bool) -> list[dict[str, Any]]:
    """Duplicate pairs as the report lists them: files, labels, and whether the labels differ."""
    paths = manifest["path"].tolist()
    labels = manifest["label"].astype(str).tolist() if labeled else [None] * len(paths)
    return [
        {
            "a": paths[a],
            "b": paths[b],
            "label_a": labels[a],
            "label_b": labels[b],
            "kind": kind,
            "phash_distance": int(distance),
            "labels_differ": bool(cross),
        }
        for a, b, kind, distance, cross in pairs[["a", "b", "kind", "phash_distance", "cross_class"]].itertuples(
            index=False
        )
    ]


__all__ = [
    "check_folder_unchanged",
    "dropped_from_index",
    "open_index",
    "prepare_dataset",
    "readable_table",
    "summary_row",
    "write_baseline",
    "write_duplicates",
]
