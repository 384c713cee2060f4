"""The ``--train-head`` stage: train a head on a dataset's labels over stored layer features, store it as a model.

For each requested ``MODEL/LAYER`` (or ``best``: the best layer of the best model by the stored cosine rwp@15)
the stage

1. checks everything before it writes anything (:meth:`HeadStage.plan`): the dataset is stored and labeled, has at
   least 2 classes and no class of a single image, the model and the layer are computed and their features sound;
   each failure is a :class:`precompute.head.HeadInputError` naming the dataset, what is missing and the command
   that fixes it;
2. scores the head honestly (``precompute.head.cross_validate``, both protocols, and the learning curve) and
   trains the final head on every label;
3. stores it as the model ``<model>+head`` (``precompute.schema.HEAD_SUFFIX``), layer name kept: the head's weights
   (``head.npz``), its features (the base features through the head: no forward pass), rankings (cosine), UMAP
   and duplicates like any model, and its TF.js export (the backbone's with a Dense layer per head). Its stored
   scores are the cross-validated ones (headline protocol); its rankings have seen the labels.

A head is retrained only when its base features (SHA-256 of the file), the labels or the settings change.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precompute import artifacts as art
from precompute.feedback import Pairs, read_pairs, training_set
from precompute.head import (
    HeadInputError,
    HeadSettings,
    LinearHead,
    check_trainable,
    compare,
    cross_validate,
    fit_head,
    head_layer_name,
    learning_curve,
    read_heads,
    summary_line,
    write_heads,
)
from precompute.models import checked_config
from precompute.schema import (
    HEAD_SUFFIX,
    ArtifactIndex,
    HeadLayer,
    LayerEntry,
    MetricEntry,
    ModelConfig,
    ModelEntry,
    TfjsExport,
)
from precompute.stages.layer import layer_products

log = logging.getLogger(__name__)

BEST = "best"
HEAD_FILE = "head.npz"
# The score ``best`` picks the base by, under the metric heads are searched with.
BEST_BY = ("cosine", "rwp@15")


def parse_head_requests(text: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """``"efficientnet-lite2/top_conv,mobilenetv2/block_13_expand"`` or ``"best"`` to checked requests."""
    if text is None:
        return ()
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    for part in parts:
        if part != BEST and (part.count("/") != 1 or not all(part.split("/"))):
            raise ValueError(
                f"--train-head takes MODEL/LAYER[,MODEL/LAYER...] or best, got {part!r} "
                "(e.g. efficientnet-lite2/top_conv)."
            )
    return tuple(parts)


def head_model_name(model: str) -> str:
    return f"{model}{HEAD_SUFFIX}"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_labels(labels: np.ndarray) -> str:
    return hashlib.sha256("\n".join(map(str, labels)).encode()).hexdigest()


class HeadStage:
    """The head stage of one run (``precompute.pipeline.Run``): :meth:`plan` checks, :meth:`execute` trains."""

    def __init__(self, run: Any) -> None:  # a precompute.pipeline.Run (not imported: the pipeline imports this)
        self.run = run
        self.root: Path = run.root
        self.dataset: str = run.dataset
        self.settings = HeadSettings(kind=run.config.head_kind, seed=run.config.seed)
        self.pairs: Pairs | None = None  # the page's marks (--pairs), read and checked by plan()

    # ------------------------------------------------------------------------------------------ checks
    def _fix(self, what: str) -> str:
        folder = self.run.config.dataset_dir
        return f"precompute {folder} --out {self.root} {what}"

    def plan(self) -> list[tuple[str, str]]:
        """The (model, layer) pairs to train, checked against the stored index; a HeadInputError otherwise."""
        ds = self.dataset
        index = art.read_index(self.root)
        entry = index.datasets.get(ds)
        if entry is None:
            raise HeadInputError(
                f"{ds}: not precomputed in {self.root} yet, so there are no features to train a "
                f"head on; run `{self._fix('--backbones MODEL')}` first."
            )
        if not entry.labeled:
            check_trainable(None, ds)
        check_trainable(_stored_labels(self.root, ds), ds)
        pairs: list[tuple[str, str]] = []
        for request in self.run.config.train_heads:
            model, layer = self._best(index) if request == BEST else request.split("/")
            self._check_pair(index, model, layer)
            if (model, layer) not in pairs:
                pairs.append((model, layer))
        if self.run.config.head_pairs:
            self.pairs = read_pairs(self.run.config.head_pairs, ds, entry.fingerprint, entry.n_images)
            log.info(
                "%s: %d marked pairs from %s added to the heads' training",
                ds,
                len(self.pairs.query),
                self.run.config.head_pairs,
            )
        return pairs

    def _best(self, index: ArtifactIndex) -> tuple[str, str]:
        metric, score = BEST_BY
        best: tuple[float, str, str] | None = None
        for key, model in index.datasets[self.dataset].models.items():
            if model.trained_heads or model.config.quantize:
                continue
            for name, layer in model.layers.items():
                value = layer.metrics.get(metric).score(score) if metric in layer.metrics else None
                if value is not None and (best is None or value > best[0]):
                    best = (value, key, name)
        if best is None:
            raise HeadInputError(
                f"{self.dataset}: --train-head best needs stored {metric} scores and there are none; "
                f"run `{self._fix('--backbones MODEL')}` first."
            )
        return best[1], best[2]

    def _check_pair(self, index: ArtifactIndex, model: str, layer: str) -> None:
        ds = self.dataset
        models = index.datasets[ds].models
        stored = sorted(k for k, m in models.items() if not m.trained_heads)
        if model.endswith(HEAD_SUFFIX) or (model in models and models[model].trained_heads):
            raise HeadInputError(
                f"{ds}: {model} is itself a trained head; train on its base model instead "
                f"(--train-head {model.removesuffix(HEAD_SUFFIX)}/{layer})."
            )
        if model not in models:
            raise HeadInputError(
                f"{ds}: no model {model!r} is computed (stored: {', '.join(stored) or 'none'}); "
                f"compute it with `{self._fix(f'--backbones {model}')}`, or pick a stored one."
            )
        entry = models[model]
        if entry.config.quantize:
            raise HeadInputError(
                f"{ds}: {model} is a LiteRT {entry.config.quantize} variant; train the head on its "
                f"float model ({entry.config.backbone})."
            )
        if layer not in entry.layers:
            raise HeadInputError(
                f"{ds}: {model} has no layer {layer!r} computed (stored: "
                f"{', '.join(entry.layer_names())}); compute it with "
                f"`{self._fix(f'--backbones {model} --layers {layer}')}` "
                f"(`precompute --list-layers {entry.backbone}` lists valid names)."
            )
        path = art.features_path(self.root, ds, model, layer)
        problem = art.check_matrix(path, index.datasets[ds].n_images, entry.layers[layer].dim)
        if problem:
            raise HeadInputError(
                f"{ds}: the features of {model}/{layer} ({art.relative(self.root, path)}) {problem}; "
                f"recompute them with `{self._fix(f'--backbones {model} --layers {layer}')}`."
            )

    # ------------------------------------------------------------------------------------------ work
    def execute(self, pairs: list[tuple[str, str]], manifest: pd.DataFrame) -> list[str]:
        """Train (or reuse) each head, store its model; the summary line of each head, in request order."""
        labels = check_trainable(manifest["label"].to_numpy(), self.dataset)
        by_model: dict[str, list[str]] = {}
        for model, layer in pairs:
            by_model.setdefault(model, []).append(layer)
        lines = {}
        for model, layers in by_model.items():
            for layer, line in self._train_model(model, layers, manifest, labels).items():
                lines[(model, layer)] = line
        return [lines[pair] for pair in pairs]

    def _train_model(self, model: str, layers: list[str], manifest: pd.DataFrame, labels: np.ndarray) -> dict[str, str]:
        root, ds, run = self.root, self.dataset, self.run
        key = head_model_name(model)
        index = art.read_index(root)
        base = index.datasets[ds].models[model]
        old = index.datasets[ds].models.get(key)
        old_heads = dict(old.trained_heads or {}) if old and old.config.backbone == base.config.backbone else {}
        head_path = art.dataset_dir(root, ds) / key / HEAD_FILE
        stored_heads: dict[str, LinearHead] = {}
        if old_heads and head_path.is_file():
            try:
                stored_heads = read_heads(head_path, old.config.head_sha256)
            except (OSError, ValueError) as exc:
                log.warning("%s: %s; retraining its heads", key, exc)
                old_heads = {}
        labels_sha = _sha256_labels(labels)
        if self.pairs is not None:  # other marks, another head
            labels_sha = hashlib.sha256(f"{labels_sha}+{self.pairs.sha256()}".encode()).hexdigest()
        records: dict[str, HeadLayer] = {}
        heads: dict[str, LinearHead] = {}
        trained: list[str] = []
        # Layers of an earlier run stay, when their base layer is still stored and their head still current.
        for layer in [*[name for name in old_heads if name in base.layers and name not in layers], *layers]:
            features_path = art.features_path(root, ds, model, layer)
            features_sha = _sha256_file(features_path)
            previous = old_heads.get(layer)
            if (
                previous is not None
                and layer in stored_heads
                and not run.config.force
                and previous.features_sha256 == features_sha
                and previous.labels_sha256 == labels_sha
                and previous.head_settings == self.settings.to_dict()
                and previous.base_model == model
                and self._layer_sound(old, key, layer)
            ):
                records[layer], heads[layer] = previous, stored_heads[layer]
                continue
            if layer not in layers:  # an earlier head gone stale: retrained only when asked for
                continue
            features = art.read_array(features_path)
            records[layer], heads[layer] = self._train_layer(model, layer, features, labels, features_sha, labels_sha)
            trained.append(layer)
        if trained or old is None or set(records) != set(old_heads):
            self._store(model, key, base, records, heads, head_path, manifest, trained)
        else:
            log.info("%s: heads current (%s), nothing to train", key, ", ".join(records))
        run.report_model(
            key,
            status="done" if trained else "current",
            layers=list(records),
            weights=f"{base.weights.description if base.weights else model} + heads trained on {len(labels)} labels",
        )
        return {layer: summary_line(ds, key, layer, records[layer].heldout["headline"]) for layer in layers}

    def _layer_sound(self, old: ModelEntry | None, key: str, layer: str) -> bool:
        if old is None or layer not in old.layers:
            return False
        path = art.features_path(self.root, self.dataset, key, layer)
        n_images = art.read_index(self.root).datasets[self.dataset].n_images
        return art.check_matrix(path, n_images, old.layers[layer].dim) is None and "cosine" in old.layers[layer].metrics

    def _train_layer(
        self, model: str, layer: str, features: np.ndarray, labels: np.ndarray, features_sha: str, labels_sha: str
    ) -> tuple[HeadLayer, LinearHead]:
        settings = self.settings
        log.info(
            "%s/%s: scoring a %s head on held-out halves, then training it on all %d labels",
            model,
            layer,
            settings.kind,
            len(labels),
        )
        start = time.perf_counter()
        results = cross_validate(features, labels, settings, top_n=self.run.config.top_n)
        evaluation = {protocol: compare(result, seed=settings.seed) for protocol, result in results.items()}
        curve = learning_curve(features, labels, settings, top_n=self.run.config.top_n)
        evaluation_seconds = time.perf_counter() - start
        head = fit_head(*training_set(features, labels, self.pairs), settings)
        self._cv_scores[(model, layer)] = results["headline"].head
        record = HeadLayer(
            head_kind=settings.kind,
            head_settings=settings.to_dict(),
            base_model=model,
            input_dim=int(features.shape[1]),
            head_dim=head.dim,
            n_params=head.n_params,
            fit_seconds=round(head.train_seconds, 3),
            heldout_seconds=round(evaluation_seconds, 2),
            features_sha256=features_sha,
            labels_sha256=labels_sha,
            n_labels=len(labels),
            heldout=evaluation,
            learning_curve=curve,
        )
        log.info("%s", summary_line(self.dataset, head_model_name(model), layer, evaluation["headline"]))
        return record, head

    @property
    def _cv_scores(self) -> dict[tuple[str, str], pd.DataFrame]:
        if not hasattr(self, "_cv"):
            self._cv: dict[tuple[str, str], pd.DataFrame] = {}
        return self._cv

    def _store(
        self,
        model: str,
        key: str,
        base: ModelEntry,
        records: dict[str, HeadLayer],
        heads: dict[str, LinearHead],
        head_path: Path,
        manifest: pd.DataFrame,
        trained: list[str],
    ) -> None:
        root, ds, run = self.root, self.dataset, self.run
        sha = write_heads(head_path, heads)
        config = replace(checked_config(base.config), head_file=art.relative(root, head_path), head_sha256=sha)
        layers = [name for name in base.layer_names() if name in heads]
        for layer in trained:
            features = art.read_array(art.features_path(root, ds, model, layer))
            art.write_array(art.features_path(root, ds, key, layer), heads[layer].transform(features))
        tfjs = self._export(key, config, layers) if run.config.tfjs else None
        cost = replace(
            base.cost, extra={**base.cost.extra, "head_params": int(sum(h.n_params for h in heads.values()))}
        )

        def change(index: ArtifactIndex) -> None:
            models = index.datasets[ds].models
            old = models.get(key)
            entry = ModelEntry(
                backbone=base.backbone,
                description=f"{base.description} + a head trained on this dataset's labels",
                weights=base.weights,
                config=config,
                cost=cost,
                tfjs=tfjs,
                trained_heads=records,
            )
            for layer in layers:
                kept = old.layers.get(layer) if old is not None and layer not in trained else None
                base_layer = base.layers[layer]
                entry.layers[layer] = kept or LayerEntry(
                    dim=heads[layer].dim,
                    features=art.relative(root, art.features_path(root, ds, key, layer)),
                    n_params=(base_layer.n_params or 0) + heads[layer].n_params,
                    gflops=base_layer.gflops,
                    metrics={},
                )
            models[key] = entry

        art.update_index(root, change)
        # Rankings, UMAP and duplicates like any model's, by cosine (the metric the head is trained for).
        products = type(run)(replace(run.config, metrics=("cosine",), models=[], train_heads=(), head_pairs=None))
        products.dataset = ds
        labeled = True
        for order, layer in enumerate(layers):
            layer_products(products, key, layer, order, manifest, labeled, refresh=layer in trained)
            if layer in trained:
                self._store_cv_scores(key, layer, self._cv_scores[(model, layer)])

    def _store_cv_scores(self, key: str, layer: str, scores: pd.DataFrame) -> None:
        """Replace the head model's in-collection scores by the cross-validated ones (headline protocol): every
        image scored as a held-out query of a head that never saw it."""
        from precompute.stats import bootstrap_ci

        root, ds, seed = self.root, self.dataset, self.run.config.seed
        path = art.scores_path(root, ds, key, layer, "cosine")
        scores = scores.copy()
        scores.index.name = "query"
        art.write_table(path, scores)
        columns = [c for c in scores.columns if c != "label"]
        intervals = bootstrap_ci(scores[columns].to_numpy(dtype=np.float64), seed=seed)
        summary = scores[columns].mean()
        summary["n_queries"] = len(scores)

        def change(index: ArtifactIndex) -> None:
            metric: MetricEntry = index.datasets[ds].models[key].layers[layer].metrics["cosine"]
            metric.summary = {k: (None if pd.isna(v) else round(float(v), 5)) for k, v in summary.items()}
            metric.summary_ci = {
                c: [None if not np.isfinite(v) else round(float(v), 5) for v in intervals[:, i]]
                for i, c in enumerate(columns)
            }
            metric.extra["scores_protocol"] = (
                "held-out: seeded stratified halves, the head trained on one half's "
                "labels, the other half's images as queries against the whole "
                "collection less the query, then swapped"
            )

        art.update_index(root, change)

    def _export(self, key: str, config: ModelConfig, layers: list[str]) -> TfjsExport:
        """The TF.js export of the backbone with the heads on top (``precompute.tfjs_export``)."""
        import keras

        from precompute.backbones import get_backbone
        from precompute.models import build_keras_feature_model
        from precompute.schema_export import EXPORTER_VERSION
        from precompute.tfjs_export import NotExportableError, export_feature_model

        root, ds = self.root, self.dataset
        folder = art.tfjs_dir(root, ds, key)
        start = time.perf_counter()
        keras.backend.clear_session()
        absolute = replace(config, head_file=str(root / config.head_file))
        try:
            backbone = get_backbone(config.backbone)
            _, feature_model = build_keras_feature_model(absolute, layers, backbone)
            heads = {
                layer: {
                    "dense": head_layer_name(layer),
                    "input": f"the pooled output of {layer}",
                    "units": int(feature_model.get_layer(head_layer_name(layer)).units),
                }
                for layer in layers
            }
            spec = export_feature_model(
                feature_model,
                layers,
                backbone.preprocess,
                config.input_size,
                folder,
                self.run.config.tfjs,
                head={
                    "layers": heads,
                    "note": "each output is Dense(pooled layer features): the head, trainable further with TF.js fit",
                },
            )
        except NotExportableError as exc:
            log.warning("%s: no TF.js export: %s", key, exc)
            return TfjsExport(reason=str(exc), version=EXPORTER_VERSION)
        finally:
            keras.backend.clear_session()
        seconds = time.perf_counter() - start
        return TfjsExport(
            variant_bytes={name: files.bytes for name, files in spec.variants.items()},
            export=art.relative(root, art.tfjs_export_path(root, ds, key)),
            version=EXPORTER_VERSION,
            export_seconds=round(seconds, 2),
        )


def _stored_labels(root: Path, dataset: str) -> np.ndarray | None:
    manifest = art.read_manifest(root, dataset)
    labels = manifest["label"]
    return None if labels.isna().any() else labels.to_numpy()


def stored_head_lines(root: Path, dataset: str | None = None) -> list[str]:
    """The summary line of every stored head (of ``dataset``, or of every dataset), from the index alone."""
    index = art.read_index(root)
    lines = []
    for name, entry in index.datasets.items():
        if dataset is not None and name != dataset:
            continue
        for key, model in entry.models.items():
            for layer, record in (model.trained_heads or {}).items():
                if "headline" in record.heldout:
                    lines.append(summary_line(name, key, layer, record.heldout["headline"]))
    return lines


__all__ = ["BEST", "HEAD_FILE", "HeadStage", "head_model_name", "parse_head_requests", "stored_head_lines"]
