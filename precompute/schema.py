"""The artifact index (``index.json``) as typed records: the only code that knows its keys.

``precompute.artifacts.read_index`` / ``write_index`` turn the file into an :class:`ArtifactIndex` and back;
the pipeline, the app and the tools read and change these objects, never the JSON dicts. The tree::

    ArtifactIndex                      schema_version, versions (package -> version), datasets
      DatasetEntry                     per dataset: source folder, n_images, labels, fingerprint, files
        DatasetDuplicates              exact / perceptual-hash duplicate counts (duplicates.parquet)
        LabelIssues                    confident-learning label issues (label_issues.parquet)
        Baseline                       scores of a random ranking: BaselineParams, summary
        ModelEntry                     per model key (``vgg16``, ``efficientnet-lite0-random``, ...)
          WeightsInfo                  where the weights came from, and why
          ModelConfig                  what rebuilds the feature model (the staleness key of its features)
          ModelCost                    parameters, size, GFLOPs, speed as measured, runtime and device
          TfjsExport                   the TF.js export: bytes per variant, or why there is none
          LayerEntry                   per layer: dim, features file, cost up to the layer, UMAP
            UmapParams
            LayerDuplicates            feature near-duplicates of the layer and their thresholds
            MetricEntry                per metric: rankings (exact or FAISS), scores, summary and 95 % intervals
              BootstrapParams

Every record has ``from_dict(data, path="")`` and ``to_dict()``; ``from_dict(x.to_dict()) == x``. Reading
checks each field's type and raises :class:`SchemaError`, whose message names the field by its path in the
file (``datasets/shapes/models/pixels/layers/pixels_8x8/dim: expected an integer, got str 'x'``).

Compatibility (same schema version, files written by earlier releases keep loading):

- fields added over time (``ties``, ``bootstrap``, ``summary_ci``, ``duplicates``, ``baseline``, ``runtime``...)
  are optional: absent, they read as None, and the staleness rules (``precompute.staleness``) recompute what
  they describe;
- keys this code does not know are kept in each record's ``extra`` and written back unchanged, so a newer
  writer's additions survive an older one's update.

Bump ``precompute.artifacts.SCHEMA_VERSION`` (artifacts owns the file names and the version) when a change would
make an older reader misread a file (a renamed or retyped field); ``read_index`` refuses other versions and
``precompute --force`` starts a new index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The converters and field specs of the records below (private to the two modules).
from precompute.records import (
    Record,
    SchemaError,
    _bool,
    _extra,
    _float,
    _int,
    _intervals,
    _join,
    _json,
    _list,
    _mapping,
    _record,
    _scores,
    _spec,
    _str,
)


@dataclass(kw_only=True)
class UmapParams(Record):
    """How a layer's 2-D layout was computed; another value recomputes it."""

    n_neighbors: int = _spec(_int, required=True)
    min_dist: float = _spec(_float, required=True)
    metric: str = _spec(_str, required=True)
    seed: int | None = _spec(_int, keep_none=True)
    # Where the layout's neighbours came from: "euclidean ranking" (the layer's stored one,
    # precompute.stages.layer); absent: UMAP's own search. A record, not a parameter: it never makes a layout stale.
    neighbors: str | None = _spec(_str)
    extra: dict[str, Any] = _extra()


@dataclass(kw_only=True)
class BootstrapParams(Record):
    """How the 95 % intervals of a summary were drawn (``precompute.stats.bootstrap_params``)."""

    method: str = _spec(_str, required=True)
    n_resamples: int = _spec(_int, required=True)
    level: float = _spec(_float, required=True)
    seed: int = _spec(_int, required=True)
    extra: dict[str, Any] = _extra()


@dataclass(kw_only=True)
class MetricEntry(Record):
    """One metric of one layer: its rankings and, on a labeled dataset, its scores.

    ``summary`` maps each score (``rwp@15``, ``precision@k``, ``ap``, ``n_queries``...) to its mean over queries
    (None where undefined); ``summary_ci`` maps each score to its 95 % bootstrap interval ``[low, high]``.
    ``search`` is ``exact`` or ``faiss-<kind>``; then ``index`` names the FAISS file and ``ann_params`` /
    ``index_params`` its parameters.
    """

    neighbors: str = _spec(_str, required=True, what="rankings file")
    top_n: int = _spec(_int, required=True, what="ranking depth")
    search: str = _spec(_str, default="exact")
    index: str | None = _spec(_str)
    ann_params: dict[str, Any] | None = _spec(_mapping(_json))
    index_params: dict[str, Any] | None = _spec(_mapping(_json))
    build_seconds: float | None = _spec(_float)
    rank_seconds: float | None = _spec(_float)
    ties: str | None = _spec(_str)
    n_tied_at_cut: int | None = _spec(_int)
    scores: str | None = _spec(_str)
    summary: dict[str, float | None] | None = _spec(_scores)
    summary_ci: dict[str, list[float | None]] | None = _spec(_intervals)
    bootstrap: BootstrapParams | None = _spec(_record(BootstrapParams))
    extra: dict[str, Any] = _extra()

    @property
    def approximate(self) -> bool:
        """Whether the rankings came from a FAISS index rather than exact search."""
        return self.search.startswith("faiss")

    def score(self, name: str) -> float | None:
        """The summary (mean over queries) of score ``name``, or None (unlabeled, not computed, undefined)."""
        return (self.summary or {}).get(name)

    def interval(self, name: str) -> list[float | None] | None:
        """The 95 % interval ``[low, high]`` of score ``name``, or None where none is stored."""
        return (self.summary_ci or {}).get(name)


@dataclass(kw_only=True)
class LayerDuplicates(Record):
    """Feature near-duplicates of a layer (``<layer>/duplicates.parquet``): the rule's parameters and counts."""

    metric: str | None = _spec(_str)
    ratio: float | None = _spec(_float)
    sigmas: float | None = _spec(_float)
    path: str = _spec(_str, required=True, what="pairs file")
    threshold: float | None = _spec(_float)
    typical_distance: float | None = _spec(_float)
    outlier_bound: float | None = _spec(_float)
    n_pairs: int = _spec(_int, default=0)
    n_cross_class: int = _spec(_int, default=0)
    extra: dict[str, Any] = _extra()


@dataclass(kw_only=True)
class LayerEntry(Record):
    """One layer of a model: its features, the cost of the network up to it, its layout, metrics, duplicates."""

    dim: int = _spec(_int, required=True, what="feature dimension")
    features: str | None = _spec(_str)
    n_params: int | None = _spec(_int)
    gflops: float | None = _spec(_float)
    order: int | None = _spec(_int)  # position in the network (0 = shallowest), set with the layer's products
    umap: str | None = _spec(_str)
    umap_params: UmapParams | None = _spec(_record(UmapParams))
    metrics: dict[str, MetricEntry] = _spec(_mapping(_record(MetricEntry)), default_factory=dict)
    duplicates: LayerDuplicates | None = _spec(_record(LayerDuplicates))
    extra: dict[str, Any] = _extra()

    @property
    def position(self) -> int:
        """``order``, or 0 where not yet set (sorting layers in network order)."""
        return self.order if self.order is not None else 0


@dataclass(kw_only=True)
class WeightsInfo(Record):
    """Where a model's weights came from (``imagenet``, ``random``, ``file``, ``nsfwjs``, ``none``) and why."""

    source: str = _spec(_str, required=True, what="weights source")
    description: str = _spec(_str, default="")
    reason: str = _spec(_str, default="")
    extra: dict[str, Any] = _extra()


# The name of a model with a trained head on top: ``efficientnet-lite2+head``.
HEAD_SUFFIX = "+head"
# Weight sources a model config can hold (resolved: never "auto").
STORED_WEIGHT_SOURCES = ("imagenet", "nsfwjs", "random", "file", "none")


@dataclass(kw_only=True, frozen=True)
class ModelConfig(Record):
    """A resolved model: all it takes to rebuild its feature model anywhere (``precompute.models``: the pipeline, a
    Dask worker and the app's uploads build from it alike), stored as each model's ``config``; a change recomputes
    its features. Frozen and hashable (``extra`` aside), so that it keys caches as it is.

    ``weights_source`` is one of ``STORED_WEIGHT_SOURCES``; ``weights_file`` the Keras file of a ``file`` or
    ``nsfwjs`` source; ``seed`` that of ``random`` weights; ``pooling`` ``avg``, ``max`` or ``flatten``. ``quantize``
    is written only for LiteRT variants and ``calibration`` only for ``int8full``, so float32 models keep the config
    of earlier versions.
    """

    backbone: str = _spec(_str, required=True, what="backbone")
    weights_source: str | None = _spec(_str, keep_none=True)
    weights_file: str | None = _spec(_str, keep_none=True)
    seed: int | None = _spec(_int, keep_none=True)
    input_size: int | None = _spec(_int, keep_none=True)
    pooling: str | None = _spec(_str, keep_none=True, default="avg")
    quantize: str | None = _spec(_str)
    # int8full only: which images calibrated it ("<dataset>: <n> images, seed <s>")
    calibration: str | None = _spec(_str)
    # A trained head (precompute.head) only: its weights file, relative to the artifacts root, and their SHA-256;
    # the feature model is the backbone's with one Dense layer per layer on top (``<backbone>+head``).
    head_file: str | None = _spec(_str)
    head_sha256: str | None = _spec(_str)
    extra: dict[str, Any] = field(default_factory=dict, repr=False, hash=False)

    @property
    def name(self) -> str:
        """The model's key in the artifacts and the app: ``vgg16`` (ImageNet, a file or no weights),
        ``vgg16-random``, ``mobilenetv2-nsfwjs``, ``efficientnet-lite0-int8``, ``efficientnet-lite2+head``."""
        name = self.backbone
        if self.weights_source not in ("imagenet", "file", "none"):
            name = f"{name}-{self.weights_source}"
        name = f"{name}-{self.quantize}" if self.quantize else name
        return f"{name}{HEAD_SUFFIX}" if self.head_file else name


@dataclass(kw_only=True)
class ModelCost(Record):
    """What a model costs: size, GFLOPs per image, and its one-pass extraction speed as measured."""

    n_params: int | None = _spec(_int, keep_none=True)
    weights_mb: float | None = _spec(_float, keep_none=True)
    model_mb: float | None = _spec(_float)  # the size of what runs (the .tflite file on LiteRT)
    runtime: str | None = _spec(_str)  # keras | litert; absent before LiteRT existed (then keras)
    quantize: str | None = _spec(_str, keep_none=True)
    conversion_seconds: float | None = _spec(_float)
    gflops_per_image: float | None = _spec(_float, keep_none=True)
    images_per_second: float | None = _spec(_float, keep_none=True)
    ms_per_image: float | None = _spec(_float, keep_none=True)
    batch_size: int | None = _spec(_int, keep_none=True)
    layers_in_pass: int | None = _spec(_int, keep_none=True)
    wall_seconds: float | None = _spec(_float, keep_none=True)
    engine: str | None = _spec(_str, keep_none=True)
    device: str | None = _spec(_str, keep_none=True)
    measured: str | None = _spec(_str, keep_none=True)
    extra: dict[str, Any] = _extra()

    def value(self, name: str) -> Any:
        """A cost by its field name (tables list costs by name, e.g. ``images_per_second``); None if unknown."""
        return getattr(self, name) if any(spec.name == name for spec in self._specs()) else self.extra.get(name)


@dataclass(kw_only=True)
class TfjsExport(Record):
    """A model's TF.js layers export (``precompute.tfjs_export``), or why it has none.

    ``variant_bytes`` maps each written variant (``float32``, ``float16``, ``uint16``, ``uint8``) to its bytes on disk
    (``model.json`` and its shards); empty with a ``reason`` when the model cannot be exported (a layer TF.js
    cannot load, a LiteRT-only variant). ``export`` is ``export.json``'s path relative to the artifacts root (its
    record: ``precompute.schema_export``); ``version`` the exporter's (``EXPORTER_VERSION``: another redoes it).
    """

    variant_bytes: dict[str, int] = _spec(_mapping(_int, "mapping of byte counts"), default_factory=dict)
    export: str | None = _spec(_str)
    reason: str | None = _spec(_str)
    version: int | None = _spec(_int)
    export_seconds: float | None = _spec(_float)
    extra: dict[str, Any] = _extra()


@dataclass(kw_only=True)
class HeadLayer(Record):
    """The head of one layer (``precompute.head``): how it was trained, on what, and its held-out scores.

    ``heldout`` maps each protocol (``headline``, ``strict``) to ``{score: {base, base_ci, head, head_ci,
    difference, ci, p_value, distinguishable, n_queries}}``; ``learning_curve`` lists the learning curve's points
    (``labels_per_class``, base/head precision@5 with intervals, the difference). ``features_sha256`` and
    ``labels_sha256`` identify what it was trained on (another value retrains it).
    """

    head_kind: str = _spec(_str, required=True, what="head kind")
    head_settings: dict[str, Any] = _spec(_mapping(_json), default_factory=dict)
    base_model: str = _spec(_str, required=True, what="base model")
    input_dim: int = _spec(_int, required=True)
    head_dim: int = _spec(_int, required=True)
    n_params: int = _spec(_int, default=0)
    fit_seconds: float | None = _spec(_float)
    heldout_seconds: float | None = _spec(_float)
    features_sha256: str | None = _spec(_str)
    labels_sha256: str | None = _spec(_str)
    n_labels: int | None = _spec(_int)
    heldout: dict[str, Any] = _spec(_mapping(_json), default_factory=dict)
    learning_curve: list[Any] = _spec(_list(_json), default_factory=list)
    extra: dict[str, Any] = _extra()


@dataclass(kw_only=True)
class ModelEntry(Record):
    """One model of a dataset, under its key (``<backbone>[-<weights>][-<quantize>]``)."""

    backbone: str = _spec(_str, required=True, what="backbone")
    description: str = _spec(_str, default="")
    weights: WeightsInfo | None = _spec(_record(WeightsInfo))
    config: ModelConfig = _spec(_record(ModelConfig), required=True, what="model config")
    cost: ModelCost = _spec(_record(ModelCost), default_factory=ModelCost)
    layers: dict[str, LayerEntry] = _spec(_mapping(_record(LayerEntry)), default_factory=dict)
    tfjs: TfjsExport | None = _spec(_record(TfjsExport))  # absent before exports existed (then redone)
    # A trained head's model (``<backbone>+head``): its head per layer; None for every other model.
    trained_heads: dict[str, HeadLayer] | None = _spec(_mapping(_record(HeadLayer)))
    extra: dict[str, Any] = _extra()

    def layer_names(self) -> list[str]:
        """Layer names in network order (``order``, then name)."""
        return sorted(self.layers, key=lambda name: (self.layers[name].position, name))


@dataclass(kw_only=True)
class DatasetDuplicates(Record):
    """Exact and perceptual-hash duplicate pairs of a dataset (``duplicates.parquet``): counts and threshold."""

    path: str = _spec(_str, required=True, what="pairs file")
    phash_max_distance: int | None = _spec(_int)
    n_pairs: int = _spec(_int, default=0)
    n_exact: int = _spec(_int, default=0)
    n_near: int = _spec(_int, default=0)
    n_cross_class: int = _spec(_int, default=0)
    extra: dict[str, Any] = _extra()


@dataclass(kw_only=True)
class LabelIssues(Record):
    """Likely label mistakes found by confident learning (``label_issues.parquet``, precompute.label_issues):
    the method, the layers it learned from, its parameters and the count."""

    path: str = _spec(_str, required=True, what="label issues file")
    method: str = _spec(_str, default="")
    evidence: list[str] = _spec(_list(_str), default_factory=list)
    n_folds: int | None = _spec(_int)
    max_quality: float | None = _spec(_float)
    n_issues: int = _spec(_int, default=0)
    # sha256 of the evidence layers' features, the labels and the settings (precompute.label_issues.inputs_key)
    inputs_hash: str | None = _spec(_str)
    extra: dict[str, Any] = _extra()


@dataclass(kw_only=True)
class BaselineParams(Record):
    """What the random-ranking baseline depends on; another value recomputes it."""

    depth: int = _spec(_int, required=True)
    ks: list[int] = _spec(_list(_int), required=True)
    n_images: int = _spec(_int, required=True)
    extra: dict[str, Any] = _extra()


@dataclass(kw_only=True)
class Baseline(Record):
    """Scores of a random ranking (labeled datasets): the table's path, its parameters, its overall summary."""

    path: str = _spec(_str, required=True, what="baseline file")
    params: BaselineParams | None = _spec(_record(BaselineParams))
    summary: dict[str, float | None] = _spec(_scores, default_factory=dict)
    extra: dict[str, Any] = _extra()


@dataclass(kw_only=True)
class DatasetEntry(Record):
    """One dataset: where it came from, its images and labels, its files, and every model computed on it."""

    source: str | None = _spec(_str)  # the folder precompute read (absolute); the app serves originals from it
    n_images: int = _spec(_int, required=True, what="image count")
    labeled: bool = _spec(_bool, default=False)
    classes: list[str] = _spec(_list(_str), default_factory=list)
    class_counts: dict[str, int] = _spec(_mapping(_int), default_factory=dict)
    manifest: str | None = _spec(_str)
    thumbs: str | None = _spec(_str)
    report: str | None = _spec(_str)
    skipped_files: list[dict[str, Any]] = _spec(_list(_json), default_factory=list)
    created: str | None = _spec(_str)
    fingerprint: str | None = _spec(_str)
    models: dict[str, ModelEntry] = _spec(_mapping(_record(ModelEntry)), default_factory=dict)
    duplicates: DatasetDuplicates | None = _spec(_record(DatasetDuplicates))
    label_issues: LabelIssues | None = _spec(_record(LabelIssues))
    baseline: Baseline | None = _spec(_record(Baseline))
    extra: dict[str, Any] = _extra()

    def _check(self, path: str) -> None:
        if self.n_images < 0:
            raise SchemaError(_join(path, "n_images"), f"expected an image count >= 0, got {self.n_images}")


@dataclass(kw_only=True)
class ArtifactIndex(Record):
    """The whole index: the schema version, the package versions of the last run, and the datasets."""

    schema_version: int = _spec(_int, required=True, what="schema version")
    datasets: dict[str, DatasetEntry] = _spec(_mapping(_record(DatasetEntry)), default_factory=dict)
    versions: dict[str, str] = _spec(_mapping(_str), default_factory=dict)
    extra: dict[str, Any] = _extra()

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> ArtifactIndex:
        if not isinstance(data, dict):
            raise SchemaError(path, f"is not an artifact index (a JSON {type(data).__name__}, not an object)")
        if "datasets" not in data:
            raise SchemaError(path, "holds no 'datasets' mapping")
        return super().from_dict(data, path)


__all__ = [
    "ArtifactIndex", "Baseline", "BaselineParams", "BootstrapParams", "DatasetDuplicates", "LabelIssues",
    "DatasetEntry", "HEAD_SUFFIX", "HeadLayer", "LayerDuplicates", "LayerEntry", "MetricEntry", "ModelConfig",
    "ModelCost", "ModelEntry", "Record", "STORED_WEIGHT_SOURCES", "SchemaError", "TfjsExport", "UmapParams",
    "WeightsInfo",
]
