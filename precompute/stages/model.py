"""The model stage: resolve a requested model, extract its features with the cost of doing so, export it.

:func:`compute_model` takes a ``precompute.pipeline.ModelRequest`` and returns the model's index record
(``schema.ModelEntry``): it resolves the request into a ``schema.ModelConfig`` (:func:`resolve_model`: the weights
actually used, input size, pooling, quantisation), extracts the layers whose stored features are not sound
(:func:`extract`: one pass over the dataset, locally, on Dask, or in a child process of the fork server with
``--model-processes``), measures the model's cost (parameters, size, GFLOPs, speed) and exports it for the browser
(``precompute.stages.export``), then runs the layer stage over every layer (``precompute.stages.layer``).
"""

from __future__ import annotations

import logging
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precompute import artifacts as art
from precompute.backbones import Backbone, ResolvedWeights, count_flops, get_backbone, resolve_weights
from precompute.datasets import load_batches
from precompute.extract import bounded_batch_size, extract_to_files
from precompute.forkserver import child_setup, in_child
from precompute.models import FeatureModel, load_feature_model
from precompute.run_summary import utc_now
from precompute.runtimes import device_name
from precompute.schema import ArtifactIndex, LayerEntry, ModelConfig, ModelCost, ModelEntry, WeightsInfo
from precompute.stages.context import RunContext
from precompute.stages.export import export_in_child, export_only, export_tfjs, tfjs_sound
from precompute.stages.layer import compute_layers
from precompute.staleness import model_is_current

log = logging.getLogger(__name__)


def resolve_model(
    run: RunContext, request: Any, manifest: pd.DataFrame
) -> tuple[Backbone, ResolvedWeights, ModelConfig, list[str]]:
    """``(backbone, weights, config, layers)`` of a ``precompute.pipeline.ModelRequest`` in ``run``'s settings."""
    cfg = run.config
    backbone = get_backbone(request.backbone)
    weights = resolve_weights(backbone, request.weights, seed=cfg.seed)
    layers = list(request.layers or weights.default_layers or backbone.default_layers)
    config = ModelConfig(
        backbone=backbone.name,
        weights_source=weights.source,
        weights_file=weights.keras_arg if weights.source in ("file", "nsfwjs") else None,
        seed=weights.seed,
        input_size=cfg.input_size if cfg.input_size and not backbone.fixed_input_size else backbone.input_size,
        pooling="flatten" if backbone.flatten else cfg.pooling,
        quantize=request.quantize,
        calibration=_calibration_name(run, manifest) if request.quantize == "int8full" else None,
    )
    return backbone, weights, config, layers


def compute_model(run: RunContext, request: Any, manifest: pd.DataFrame, labeled: bool) -> ModelEntry:
    """A requested model's features, cost, export and layer products, each redone only when stale."""
    cfg, root, ds = run.config, run.root, run.dataset
    backbone, weights, config, layers = resolve_model(run, request, manifest)
    key = config.name
    entry = art.read_index(root).datasets[ds].models.get(key)
    if entry and not model_is_current(entry, config):
        log.info("%s: parameters changed since the last run, recomputing", key)
        entry = None
    stale = cfg.force or entry is None
    todo = [name for name in layers if stale or not _features_sound(run, key, name, entry)]
    run.report_model(key, status="running", weights=weights.description, reason=weights.reason, layers=layers)
    # The TF.js export holds every layer stored for the model: those of earlier runs, then this run's new ones.
    stored = [] if stale or entry is None else entry.layer_names()
    export_layers = stored + [name for name in layers if name not in stored]
    isolated = cfg.model_processes and cfg.engine == "local"  # in a child process (precompute.forkserver)
    if todo:
        with run.clock.time("extraction"):
            (extract_in_child if isolated else extract)(
                run, backbone, weights, config, todo, manifest, fresh=stale, export_layers=export_layers
            )
    elif cfg.tfjs and not tfjs_sound(run, key, export_layers):
        (export_in_child if isolated else export_only)(run, key, config, backbone, export_layers)
    # New features make everything derived from them stale, whatever the disk holds.
    compute_layers(run, key, layers, todo, manifest, labeled)
    run.report_model(key, status="done")
    return art.read_index(root).datasets[ds].models[key]


def extract(
    run: RunContext,
    backbone: Backbone,
    weights: ResolvedWeights,
    config: ModelConfig,
    layers: list[str],
    manifest: pd.DataFrame,
    fresh: bool,
    export_layers: list[str] | None = None,
) -> ModelEntry:
    """Extract ``layers`` of the model in one pass, measure its cost, export it; record and return its entry."""
    import keras

    cfg, root, ds, key = run.config, run.root, run.dataset, config.name
    input_size, quantize = config.input_size, config.quantize
    keras.backend.clear_session()
    # The one builder, as Dask workers and uploads use it. On LiteRT the model is converted once per (config,
    # layers, quantisation) into the cache; reruns and uploads reuse the file. The Keras base is kept for costs.
    calibration = (lambda: _calibration_images(run, manifest, input_size, backbone)) if quantize == "int8full" else None
    model = load_feature_model(config, layers, cfg.runtime, keep_keras=True, calibration=calibration)
    base, runner, runtime, tflite = model.base, model.runner, model.runtime, model.tflite
    paths = [art.features_path(root, ds, key, name) for name in layers]
    batch_size = bounded_batch_size(base, cfg.batch_size, cfg.activation_budget_mb)
    if batch_size < cfg.batch_size:
        log.info(
            "%s: batches of %d images (not %d) keep its activations within %d MB",
            key,
            batch_size,
            cfg.batch_size,
            cfg.activation_budget_mb,
        )
    if cfg.engine == "dask":
        timing = _extract_on_dask(run, model, manifest, paths, key, batch_size)
    else:
        batches = load_batches(
            Path(cfg.dataset_dir),
            manifest["path"].tolist(),
            input_size,
            batch_size,
            transform=partial(backbone.preprocess, in_place=True),
        )
        timing = extract_to_files(
            runner,
            batches,
            None,  # preprocessed in the decoding threads
            len(manifest),
            paths,
            progress=cfg.progress,
            desc=f"{key} ({len(layers)} layers)",
        )
    n_params = int(base.count_params())
    weights_mb = round(n_params * 4 / 1e6, 2)
    cost = ModelCost(
        n_params=n_params,
        weights_mb=weights_mb,
        # The size of what runs: the .tflite file on LiteRT (float16/int8 variants: 2x/4x smaller).
        model_mb=round(runner.size_mb, 2) if tflite else weights_mb,
        runtime=runtime,
        quantize=quantize,
        conversion_seconds=round(model.conversion_seconds, 2),
        gflops_per_image=round(count_flops(base) / 1e9, 4),
        images_per_second=round(timing.images_per_second, 2),
        ms_per_image=round(timing.ms_per_image, 3),
        batch_size=batch_size,
        layers_in_pass=len(layers),
        wall_seconds=round(timing.wall_seconds, 2),
        engine=cfg.engine,
        device=device_name() if runtime == "keras" else f"CPU ({os.cpu_count()} cores), LiteRT XNNPACK",
        measured=utc_now(),
    )
    layer_costs = {}
    for name in layers:
        sub = keras.Model(base.inputs, base.get_layer(name).output)
        layer_costs[name] = (int(sub.count_params()), round(count_flops(sub) / 1e9, 4))
    # New features make an earlier export stale: redone here, where the Keras base is built, or removed.
    if cfg.tfjs:
        tfjs = export_tfjs(run, key, config, backbone, base, list(export_layers or layers))
    else:
        tfjs = None
        shutil.rmtree(art.tfjs_dir(root, ds, key), ignore_errors=True)
    stored: list[ModelEntry] = []

    def change(index: ArtifactIndex) -> None:
        models = index.datasets[ds].models
        old = None if fresh else models.get(key)
        entry = ModelEntry(
            backbone=backbone.name,
            description=backbone.description,
            weights=WeightsInfo(source=weights.source, description=weights.description, reason=weights.reason),
            config=config,
            cost=cost,
            layers=old.layers if old else {},
            tfjs=tfjs,
        )
        for name, path in zip(layers, paths, strict=True):
            n_params, gflops = layer_costs[name]
            entry.layers[name] = LayerEntry(
                dim=int(np.load(path, mmap_mode="r").shape[1]),
                features=art.relative(root, path),
                n_params=n_params,
                gflops=gflops,
                metrics={},
            )
        models[key] = entry
        stored.append(entry)

    art.update_index(root, change)
    del model, base, runner
    keras.backend.clear_session()
    return stored[-1]


def extract_in_child(
    run: RunContext,
    backbone: Backbone,
    weights: ResolvedWeights,
    config: ModelConfig,
    layers: list[str],
    manifest: pd.DataFrame,
    fresh: bool,
    export_layers: list[str] | None = None,
) -> None:
    """:func:`extract` in a child process of its own, forked from the fork server (``precompute.forkserver``), which
    exits when the model is done, and so returns its memory to the OS. The child writes the features and the
    model's index entry as :func:`extract` does, while this process waits; its exceptions are raised here."""
    in_child(
        _extract_model,
        type(run),
        run.config,
        backbone,
        weights,
        config,
        layers,
        manifest,
        fresh,
        logging.getLogger().getEffectiveLevel(),
        export_layers,
    )


def _extract_model(
    run_class: type,
    run_config: Any,
    backbone: Backbone,
    weights: ResolvedWeights,
    config: ModelConfig,
    layers: list[str],
    manifest: pd.DataFrame,
    fresh: bool,
    log_level: int,
    export_layers: list[str] | None = None,
) -> None:
    """The child's side of :func:`extract_in_child`: the run's context rebuilt from its configuration."""
    child_setup(log_level)
    extract(run_class(run_config), backbone, weights, config, layers, manifest, fresh, export_layers=export_layers)


def _extract_on_dask(
    run: RunContext, model: FeatureModel, manifest: pd.DataFrame, paths: list[Path], key: str, batch_size: int
) -> Any:
    from precompute.distributed import extract_on_dask

    cfg = run.config
    return extract_on_dask(
        run.dask_client(),
        model.config,
        model.layers,
        cfg.dataset_dir,
        manifest["path"].tolist(),
        paths,
        runtime=model.runtime,
        tflite=model.tflite,
        batch_size=batch_size,
        progress=cfg.progress,
        desc=f"{key} ({len(model.layers)} layers, dask)",
    )


def _features_sound(run: RunContext, key: str, layer: str, entry: ModelEntry) -> bool:
    """Whether a layer's stored features can be reused: indexed, readable, the manifest's rows, finite."""
    layer_entry = entry.layers.get(layer)
    if layer_entry is None:
        return False
    path = art.features_path(run.root, run.dataset, key, layer)
    n_images = art.read_index(run.root).datasets[run.dataset].n_images
    problem = art.check_matrix(path, n_images, layer_entry.dim)
    if problem:
        log.warning("%s %s: extracting it again", art.relative(run.root, path), problem)
    return problem is None


def _calibration_rows(run: RunContext, manifest: pd.DataFrame) -> np.ndarray:
    """The manifest rows that calibrate an int8full conversion: a sample seeded by the run's seed."""
    from precompute.runtimes import CALIBRATION_IMAGES

    n = min(CALIBRATION_IMAGES, len(manifest))
    return np.sort(np.random.default_rng(run.config.seed).choice(len(manifest), n, replace=False))


def _calibration_name(run: RunContext, manifest: pd.DataFrame) -> str:
    """What calibrated an int8full model (stored in its config, so its cached .tflite is per dataset)."""
    return f"{run.dataset}: {len(_calibration_rows(run, manifest))} images, seed {run.config.seed}"


def _calibration_images(run: RunContext, manifest: pd.DataFrame, input_size: int, backbone: Backbone) -> np.ndarray:
    """The calibration sample, loaded and preprocessed as extraction does (the model's float input)."""
    paths = manifest["path"].to_numpy()[_calibration_rows(run, manifest)].tolist()
    batch = np.concatenate(list(load_batches(Path(run.config.dataset_dir), paths, input_size, len(paths))))
    return np.asarray(backbone.preprocess(batch), dtype=np.float32)


__all__ = ["compute_model", "extract", "extract_in_child", "resolve_model"]
