"""The export stage: the TF.js export of a model, for the browser (``precompute.tfjs_export`` writes it).

:func:`export_tfjs` writes a model's export over the layers stored for it, from its Keras base, and returns the
index record (``schema.TfjsExport``): the bytes per variant, or why there is none. An export does not depend on the
images, so the same model's export under another dataset of the root is linked rather than written twice
(:func:`tfjs_twin`). :func:`tfjs_sound` says whether a stored export is current and whole; :func:`export_only`
exports a model whose features are current (the model stage calls it; in a child process with
``--model-processes``, through :func:`export_in_child`).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from precompute import artifacts as art
from precompute.backbones import Backbone
from precompute.forkserver import child_setup, in_child
from precompute.schema import ArtifactIndex, ModelConfig, TfjsExport
from precompute.schema_export import EXPORTER_VERSION
from precompute.stages.context import RunContext
from precompute.staleness import tfjs_is_current
from precompute.tfjs_export import NotExportableError

log = logging.getLogger(__name__)


def tfjs_sound(run: RunContext, key: str, layers: list[str]) -> bool:
    """Whether the model's TF.js export is current (``staleness.tfjs_is_current``), over ``layers``, with every file
    of every variant on disk at its recorded size."""
    entry = art.read_index(run.root).datasets[run.dataset].models.get(key)
    if not tfjs_is_current(entry, tuple(run.config.tfjs), EXPORTER_VERSION):
        return False
    return not entry.tfjs.variant_bytes or _export_files_sound(
        run.root, run.dataset, key, entry.tfjs, layers, warn=True
    )


def _export_files_sound(
    root: Path, dataset: str, key: str, record: TfjsExport, layers: list[str], warn: bool = False
) -> bool:
    """Whether the export folder of ``dataset``'s ``key`` covers ``layers`` and holds every recorded file."""
    from precompute.readers.tfjs import read_export_spec

    folder = art.tfjs_dir(root, dataset, key)
    try:
        spec = read_export_spec(folder)
    except (OSError, ValueError, KeyError) as exc:
        if warn:
            log.warning("%s/export.json is unreadable (%s): exporting again", art.relative(root, folder), exc)
        return False
    if list(spec.layers) != list(layers):
        return False
    for variant, size in record.variant_bytes.items():
        files = spec.variants.get(variant)
        paths = [folder / variant / name for name in (files.files if files else ())]
        if not paths or not all(p.is_file() for p in paths) or sum(p.stat().st_size for p in paths) != size:
            if warn:
                log.warning("%s/%s is incomplete: exporting again", art.relative(root, folder), variant)
            return False
    return True


def tfjs_twin(run: RunContext, key: str, config: ModelConfig, layers: list[str]) -> Path | None:
    """The export folder of the same model (same config, layers, variants and exporter) under another dataset of
    this root, if one is sound: the export does not depend on the images, so it is linked."""
    index = art.read_index(run.root)
    for dataset, dataset_entry in index.datasets.items():
        entry = dataset_entry.models.get(key)
        if (
            dataset == run.dataset
            or entry is None
            or entry.config != config
            or entry.tfjs is None
            or not entry.tfjs.variant_bytes
            or not tfjs_is_current(entry, tuple(run.config.tfjs), EXPORTER_VERSION)
        ):
            continue
        if _export_files_sound(run.root, dataset, key, entry.tfjs, layers):
            return art.tfjs_dir(run.root, dataset, key)
    return None


def export_tfjs(
    run: RunContext, key: str, config: ModelConfig, backbone: Backbone, base: Any, layers: list[str]
) -> TfjsExport:
    """Write the TF.js export of the model over ``layers`` from its Keras ``base``; the record for the index.

    A model TF.js cannot load gets a record with the reason (logged) and no files; so does a LiteRT quantised
    variant, whose features come from a model TF.js does not run (its float model's export serves it).
    """
    from precompute.extract import build_feature_model
    from precompute.tfjs_export import export_feature_model, link_export

    folder = art.tfjs_dir(run.root, run.dataset, key)
    if config.quantize:
        shutil.rmtree(folder, ignore_errors=True)
        return TfjsExport(
            reason=f"a LiteRT {config.quantize} model: TF.js runs the float model's export, not this one's weights",
            version=EXPORTER_VERSION,
        )
    start = time.perf_counter()
    flatten = config.pooling == "flatten"
    twin = tfjs_twin(run, key, config, layers)
    try:
        if twin is not None:  # another dataset's export of this very model: hard links, no second copy
            spec = link_export(twin, folder)
        else:
            feature_model = build_feature_model(base, layers, "avg" if flatten else config.pooling, flatten=flatten)
            spec = export_feature_model(
                feature_model, layers, backbone.preprocess, config.input_size, folder, run.config.tfjs
            )
    except NotExportableError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        log.warning("%s: no TF.js export: %s", key, exc)
        return TfjsExport(reason=str(exc), version=EXPORTER_VERSION)
    seconds = time.perf_counter() - start
    log.info(
        "%s: TF.js export (%s) %s in %.1f s",
        key,
        ", ".join(f"{name} {files.bytes / 1e6:.1f} MB" for name, files in spec.variants.items()),
        f"linked from {art.relative(run.root, twin)}" if twin else "written",
        seconds,
    )
    return TfjsExport(
        variant_bytes={name: files.bytes for name, files in spec.variants.items()},
        export=art.relative(run.root, art.tfjs_export_path(run.root, run.dataset, key)),
        version=EXPORTER_VERSION,
        export_seconds=round(seconds, 2),
    )


def export_only(run: RunContext, key: str, config: ModelConfig, backbone: Backbone, layers: list[str]) -> TfjsExport:
    """The TF.js export of a model whose features are current: builds its Keras base, exports, records."""
    import keras

    from precompute.models import build_keras_feature_model

    keras.backend.clear_session()
    # Linked from another dataset's export of the same model, it needs no Keras model.
    base = None if tfjs_twin(run, key, config, layers) else build_keras_feature_model(config, layers, backbone)[0]
    record = export_tfjs(run, key, config, backbone, base, layers)

    def change(index: ArtifactIndex) -> None:
        index.datasets[run.dataset].models[key].tfjs = record

    art.update_index(run.root, change)
    del base
    keras.backend.clear_session()
    return record


def export_in_child(run: RunContext, key: str, config: ModelConfig, backbone: Backbone, layers: list[str]) -> None:
    """:func:`export_only` in a child process of the fork server (``precompute.forkserver``)."""
    in_child(
        _export_model, type(run), run.config, key, config, backbone, layers, logging.getLogger().getEffectiveLevel()
    )


def _export_model(
    run_class: type,
    run_config: Any,
    key: str,
    config: ModelConfig,
    backbone: Backbone,
    layers: list[str],
    log_level: int = logging.INFO,
) -> None:
    """The child's side of :func:`export_in_child`: the run's context rebuilt from its configuration."""
    child_setup(log_level)
    export_only(run_class(run_config), key, config, backbone, layers)


__all__ = ["export_in_child", "export_only", "export_tfjs", "tfjs_sound", "tfjs_twin"]
