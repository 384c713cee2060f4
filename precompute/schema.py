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
          StoredModelConfig            what rebuilds the feature model (the staleness key of its features)
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

import dataclasses
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

R = TypeVar("R", bound="Record")


class SchemaError(ValueError):
    """A value of the index that does not fit the schema; ``path`` is where (``datasets/x/n_images``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or '(top level)'}: {problem}")
        self.path = path
        self.problem = problem


# ------------------------------------------------------------------------------------------- converters
# A converter checks one JSON value and returns the value the record holds: ``convert(value, path)``. Records
# are built by their own from_dict; mappings and lists by the converters below.

Converter = Callable[[Any, str], Any]


def _join(path: str, key: str) -> str:
    return f"{path}/{key}" if path else key


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SchemaError(path, f"expected an integer, got {_describe(value)}")
    return int(value)


def _float(value: Any, path: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SchemaError(path, f"expected a number, got {_describe(value)}")
    return value.item() if hasattr(value, "item") else value  # numpy scalars as Python numbers


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise SchemaError(path, f"expected a string, got {_describe(value)}")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool | numbers.Integral):
        raise SchemaError(path, f"expected true or false, got {_describe(value)}")
    return bool(value)


def _json(value: Any, path: str) -> Any:
    """Any JSON value, kept as it is (records of other files: the skipped files, FAISS parameters)."""
    return value


def _nullable(convert: Converter) -> Converter:
    def check(value: Any, path: str) -> Any:
        return None if value is None else convert(value, path)

    return check


def _mapping(convert: Converter, what: str = "mapping") -> Converter:
    """A JSON object with string keys; each value checked by ``convert``. ``what`` names it in errors."""

    def check(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            name = path.rsplit("/", 1)[-1] or "index"
            raise SchemaError(path, f"holds no {name!r} {what} (got {_describe(value)})")
        return {str(key): convert(item, _join(path, str(key))) for key, item in value.items()}

    return check


def _list(convert: Converter) -> Converter:
    def check(value: Any, path: str) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise SchemaError(path, f"expected a list, got {_describe(value)}")
        return [convert(item, f"{path}/{i}") for i, item in enumerate(value)]

    return check


def _interval(value: Any, path: str) -> list[float | None]:
    """A 95 % interval: ``[low, high]``, each a number or null (no finite bound)."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise SchemaError(path, f"expected an interval [low, high], got {_describe(value)}")
    return [_nullable(_float)(bound, f"{path}/{i}") for i, bound in enumerate(value)]


# Fast paths for the mappings an index holds thousands of (a summary and its intervals per metric of every layer):
# one type test per value, and the path of a value built only when it fails.
_NUMBERS = (int, float)


def _scores(value: Any, path: str) -> dict[str, float | None]:
    """A summary: score name -> mean over queries, or null where undefined."""
    if type(value) is dict and all(item is None or type(item) in _NUMBERS for item in value.values()):
        return dict(value)
    return _mapping(_nullable(_float), "mapping of scores")(value, path)


def _intervals(value: Any, path: str) -> dict[str, list[float | None]]:
    """Intervals of a summary: score name -> [low, high]."""
    if type(value) is dict and all(
        type(item) is list and len(item) == 2 and all(b is None or type(b) in _NUMBERS for b in item)
        for item in value.values()
    ):
        return {key: list(item) for key, item in value.items()}
    return _mapping(_interval, "mapping of intervals")(value, path)


def _record(cls: type[Record]) -> Converter:
    return lambda value, path: cls.from_dict(value, path)


def _spec(convert: Converter, *, required: bool = False, keep_none: bool = False, what: str | None = None,
          **kwargs: Any) -> Any:
    """A record field read by ``convert``.

    required : absent from the file is an error (``what`` names it in the message).
    keep_none : written as ``null`` when None (the writer always wrote the key); else a None field is left out.
    """
    if not required and "default" not in kwargs and "default_factory" not in kwargs:
        kwargs["default"] = None
    return field(metadata={"convert": convert, "required": required, "keep_none": keep_none, "what": what},
                 **kwargs)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, dict):
        return {key: item if type(item) in _SCALARS else _dump(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [item if type(item) in _SCALARS else _dump(item) for item in value]
    return value


@dataclass(kw_only=True)
class Record:
    """Base of the index records: checked ``from_dict``, ``to_dict``, unknown keys kept in ``extra``."""

    # Each subclass declares its fields with _spec and, last, ``extra``: the keys this version does not know,
    # written back unchanged.

    @classmethod
    def _fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if f.name != "extra"]

    @classmethod
    def _specs(cls) -> tuple[_FieldSpec, ...]:
        specs = _SPECS.get(cls)
        if specs is None:  # once per class: from_dict runs for every entry of a large index
            specs = _SPECS[cls] = tuple(
                _FieldSpec(f.name, f.metadata["convert"], f.metadata["required"], f.metadata["keep_none"],
                           f.metadata["what"], _default_of(f))
                for f in cls._fields()
            )
        return specs

    @classmethod
    def from_dict(cls: type[R], data: Any, path: str = "") -> R:
        """The record of one JSON object, checked; SchemaError names the first field that does not fit."""
        if not isinstance(data, dict):
            raise SchemaError(path, f"expected an object ({cls.__name__}), got {_describe(data)}")
        values: dict[str, Any] = {}
        absent = []
        for spec in cls._specs():
            name = spec.name
            if name not in data:
                if spec.required:
                    what = f" {spec.what}" if spec.what else ""
                    raise SchemaError(path, f"has no{what} ({name!r} is missing)")
                absent.append(name)
                continue
            value = data[name]
            if value is None:
                if spec.required:
                    raise SchemaError(_join(path, name), "is null, expected a value")
                values[name] = None
                continue
            values[name] = spec.convert(value, f"{path}/{name}" if path else name)
        extra = {key: value for key, value in data.items() if key not in values and key not in absent} \
            if len(data) > len(values) else {}
        record = cls(**values, extra=extra)  # type: ignore[call-arg]
        record._check(path)
        if absent:  # keys an older writer left out are left out again (not written as null)
            record.__dict__["_absent"] = frozenset(absent)
        return record

    def _check(self, path: str) -> None:
        """Checks across fields or of ranges, after the types (a subclass's hook); raise SchemaError."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this record (plain dicts, lists and scalars), in field order, extra keys last."""
        out: dict[str, Any] = {}
        absent = self.__dict__.get("_absent", ())
        for spec in self._specs():
            value = getattr(self, spec.name)
            if value is None and not spec.keep_none:
                continue
            if absent and spec.name in absent and value == spec.default:
                continue
            out[spec.name] = _dump(value)
        if self.extra:
            out.update(self.extra)
        return out


class _FieldSpec(NamedTuple):
    name: str
    convert: Converter
    required: bool
    keep_none: bool
    what: str | None
    default: Any


_SPECS: dict[type, tuple[_FieldSpec, ...]] = {}


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def _extra() -> Any:
    return field(default_factory=dict, compare=True, repr=False)


# ------------------------------------------------------------------------------------------------ records


@dataclass(kw_only=True)
class UmapParams(Record):
    """How a layer's 2-D layout was computed; another value recomputes it."""

    n_neighbors: int = _spec(_int, required=True)
    min_dist: float = _spec(_float, required=True)
    metric: str = _spec(_str, required=True)
    seed: int | None = _spec(_int, keep_none=True)
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


@dataclass(kw_only=True)
class StoredModelConfig(Record):
    """What rebuilds a feature model (``precompute.extract.load_extractor``); a change recomputes its features.

    ``quantize`` is written only for LiteRT variants and ``calibration`` only for ``int8full``, so float32 models
    keep the config of earlier versions.
    """

    backbone: str = _spec(_str, required=True, what="backbone")
    weights_source: str | None = _spec(_str, keep_none=True)
    weights_file: str | None = _spec(_str, keep_none=True)
    seed: int | None = _spec(_int, keep_none=True)
    input_size: int | None = _spec(_int, keep_none=True)
    pooling: str | None = _spec(_str, keep_none=True)
    quantize: str | None = _spec(_str)
    # int8full only: which images calibrated it ("<dataset>: <n> images, seed <s>")
    calibration: str | None = _spec(_str)
    # A trained head (precompute.head) only: its weights file, relative to the artifacts root, and their SHA-256;
    # the feature model is the backbone's with one Dense layer per layer on top (``<backbone>+head``).
    head_file: str | None = _spec(_str)
    head_sha256: str | None = _spec(_str)
    extra: dict[str, Any] = _extra()


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
    """A model's TF.js layers export (``precompute.ports.tfjs_export``), or why it has none.

    ``variant_bytes`` maps each written variant (``float32``, ``float16``, ``uint16``, ``uint8``) to its bytes on disk
    (``model.json`` and its shards); empty with a ``reason`` when the model cannot be exported (a layer TF.js
    cannot load, a LiteRT-only variant). ``export`` is ``export.json``'s path relative to the artifacts root;
    ``version`` the exporter's (``EXPORTER_VERSION``: another one redoes the export).
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
    config: StoredModelConfig = _spec(_record(StoredModelConfig), required=True, what="model config")
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
    "DatasetEntry", "HeadLayer", "LayerDuplicates", "LayerEntry", "MetricEntry", "StoredModelConfig", "ModelCost",
    "ModelEntry",
    "Record", "SchemaError", "TfjsExport", "UmapParams", "WeightsInfo",
]
