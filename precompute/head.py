"""A head trained on a dataset's labels over a frozen layer's pooled features, and its honest, held-out scores.

The head is a linear map ``z = x @ kernel + bias`` from a layer's stored features ``x`` (n, dim) to ``z``
(n, head_dim), searched by cosine like any layer. A linear map is one Keras ``Dense`` layer: it is appended to the
backbone's feature model for uploads (Keras and LiteRT) and to its TF.js export (the browser's private mode), and
a browser can go on training it with TF.js ``fit``. Two ways to fit it (``HEAD_KINDS``):

- ``lda``: shrinkage linear discriminant analysis (scikit-learn, ``solver="eigen"``, Ledoit-Wolf shrinkage):
  the directions that separate the classes relative to their spread within, at most ``n_classes - 1`` of them;
- ``proxy``: a Dense projection trained in Keras with a normalised-softmax (proxy) loss: each class has a
  learned proxy, and the cosine of an image's projection to its class proxy, scaled, goes through a softmax
  cross-entropy (Movshovitz-Attias et al. 2017; Zhai & Wu 2019), with weight decay; the projection starts
  from the LDA directions, so the loss refines them.

Honest scores (:func:`evaluate_head`): nothing trained ever sees a query. Each class is split in two halves
(seeded, stratified: ``sklearn.model_selection.StratifiedKFold``); the head is trained on one half's labels and
queried with the other half's images, then the halves swap, so every image is a query exactly once, for a head
that never saw it. Two protocols:

- ``headline`` (the user's situation: part of the collection is labeled, new images are searched against all of
  it): the gallery is the whole collection less the query;
- ``strict``: queries and gallery both from the held-out half.

The frozen base is scored on exactly the same queries and galleries, so head and base are compared query by query
(``precompute.stats.paired_comparison``). :func:`check_no_leak` is called on every fold, with the rows the head
was actually fitted on: a query among them raises :class:`LeakError`.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> labels = np.repeat(np.arange(4), 10)
>>> features = rng.normal(size=(40, 16)) + labels[:, None]
>>> head = fit_head(features, labels, HeadSettings(kind="lda"))
>>> head.transform(features).shape
(40, 3)
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HEAD_KINDS: dict[str, str] = {
    "lda": "shrinkage linear discriminant analysis (scikit-learn), at most n_classes - 1 dimensions",
    "proxy": "a Dense projection trained in Keras with a normalised-softmax (proxy) loss, started from LDA",
}
PROTOCOLS = ("headline", "strict")
# The learning curve's labels per class; "half" is every label of the training half.
CURVE_POINTS: tuple[int | str, ...] = (1, 2, 5, 10, "half")
HEADLINE_SCORES = ("precision@1", "precision@5", "precision@15", "rwp@15", "ap")
METRIC = "cosine"
# Bump when the training code changes what a head computes, so that stored heads are retrained.
HEAD_VERSION = 1
# What `--train-head` needs of a dataset: each class at least this many images (one per half).
MIN_CLASS_IMAGES = 2


class HeadInputError(ValueError):
    """A dataset or layer a head cannot be trained on; the message names what is missing and the fix."""


class LeakError(AssertionError):
    """A held-out query was among the rows a head was trained on."""


@dataclass(frozen=True)
class HeadSettings:
    """How a head is trained; any change retrains it (``precompute.staleness``).

    kind : a name of ``HEAD_KINDS``
    dim : output width of a ``proxy`` head (``lda``: n_classes - 1)
    epochs, learning_rate, weight_decay, scale : the proxy head's full-batch Adam training and its softmax scale
    seed : the seed of the halves, the learning curve's label draws and the Keras initialisation
    """

    kind: str = "lda"
    dim: int = 64
    epochs: int = 150
    learning_rate: float = 1e-3
    weight_decay: float = 1e-3
    scale: float = 16.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise ValueError(f"Unknown head kind {self.kind!r}; valid: {', '.join(HEAD_KINDS)}.")
        if self.dim < 1 or self.epochs < 1:
            raise ValueError(f"dim and epochs must be at least 1, got dim={self.dim}, epochs={self.epochs}.")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "version": HEAD_VERSION}


@dataclass
class LinearHead:
    """``z = x @ kernel + bias``: kernel float32 (dim, head_dim), bias float32 (head_dim,)."""

    kernel: np.ndarray
    bias: np.ndarray
    train_seconds: float = 0.0
    classes: list[str] = field(default_factory=list)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Head features (n, head_dim) float32 of base features (n, dim), computed in float64."""
        out = np.asarray(features, dtype=np.float64) @ self.kernel.astype(np.float64) + self.bias.astype(np.float64)
        return out.astype(np.float32)

    @property
    def n_params(self) -> int:
        return int(self.kernel.size + self.bias.size)

    @property
    def dim(self) -> int:
        return int(self.kernel.shape[1])


# ------------------------------------------------------------------------------------------- checks


def check_trainable(labels: Sequence[Any] | np.ndarray | None, dataset: str, layer_hint: str = "") -> np.ndarray:
    """The labels as a string array, or a :class:`HeadInputError` naming the dataset, what is missing and the fix.

    Refused: no labels (an unlabeled dataset), fewer than 2 classes, a class with fewer than ``MIN_CLASS_IMAGES``.
    """
    fix_folders = "put the images in one sub-folder per class and rerun precompute on the folder"
    if labels is None or len(labels) == 0 or pd.isna(pd.Series(list(labels), dtype=object)).any():
        raise HeadInputError(
            f"{dataset}: the images have no labels, so there is nothing to train a head on{layer_hint}; {fix_folders}."
        )
    values = np.asarray([str(v) for v in labels])
    classes, counts = np.unique(values, return_counts=True)
    if len(classes) < 2:
        raise HeadInputError(
            f"{dataset}: a head needs at least 2 classes, the dataset has {len(classes)} "
            f"({', '.join(classes)}); {fix_folders} (at least two of them)."
        )
    small = [f"{c} ({n} image)" for c, n in zip(classes, counts, strict=True) if n < MIN_CLASS_IMAGES]
    if small:
        raise HeadInputError(
            f"{dataset}: every class needs at least {MIN_CLASS_IMAGES} images (one to train on, one "
            f"to test on), and {', '.join(small)} has fewer; add images to it or remove that "
            "sub-folder, then rerun."
        )
    return values


def check_no_leak(trained_rows: np.ndarray, query_rows: np.ndarray) -> None:
    """Raise :class:`LeakError` when a query row is among the rows a head was trained on."""
    leaked = np.intersect1d(np.asarray(trained_rows), np.asarray(query_rows))
    if leaked.size:
        raise LeakError(
            f"{leaked.size} held-out queries were in the training set (rows {leaked[:10].tolist()}"
            f"{'...' if leaked.size > 10 else ''}): their scores would not be held out."
        )


# ------------------------------------------------------------------------------------------- fitting


def fit_head(features: np.ndarray, labels: np.ndarray, settings: HeadSettings) -> LinearHead:
    """Train a head of ``settings.kind`` on ``features`` (n, dim) and their ``labels`` (n,)."""
    start = time.perf_counter()
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    kernel, bias = _fit_lda(x, y)
    if settings.kind == "proxy":
        kernel, bias = _fit_proxy(x, y, settings, kernel, bias)
    # One scale for the whole map, so that the training features have unit root-mean-square: rankings by cosine
    # or euclidean are unchanged, and float32 errors of a forward pass stay small in absolute terms too.
    rms = float(np.sqrt(np.mean((x @ kernel + bias) ** 2))) or 1.0
    kernel, bias = kernel / rms, bias / rms
    return LinearHead(
        kernel.astype(np.float32), bias.astype(np.float32), time.perf_counter() - start, [str(c) for c in np.unique(y)]
    )


def _fit_lda(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shrinkage LDA's projection as ``(kernel, bias)``, centred on the training mean.

    The within-class covariance is the pooled one shrunk towards a scaled identity by Ledoit-Wolf's estimate
    (``sklearn.covariance.ledoit_wolf_shrinkage`` of the within-class residuals): ``W = (1 - a) S + a mu I``.
    The discriminant directions solve ``B v = lambda W v`` for the between-class scatter ``B = M^T M`` (rows of
    ``M``: the centred class means weighted by the square roots of the class priors), normalised so that
    ``v^T W v = 1`` as scikit-learn's ``eigen`` solver does. With n images far fewer than the feature width D, it is
    solved in n x n and C x C algebra (Woodbury's identity for ``W^-1``, and ``v = W^-1 M^T u`` for the eigenvectors
    ``u`` of ``M W^-1 M^T``) rather than scikit-learn's D x D generalised eigenproblem: 0.1 s instead of 40 s for
    D = 1408 on this 2-core machine, the same directions.
    """
    from sklearn.covariance import ledoit_wolf_shrinkage

    classes, codes = np.unique(y, return_inverse=True)
    n, width_d = x.shape
    if n == len(classes):  # one image per class: no spread within classes to estimate; class means only
        return _class_mean_projection(x, y)
    mean = x.mean(axis=0)
    class_means = np.stack([x[codes == c].mean(axis=0) for c in range(len(classes))])
    residuals = x - class_means[codes]
    priors = np.bincount(codes) / n
    shrinkage = float(ledoit_wolf_shrinkage(residuals, assume_centered=True))
    scatter_trace = float((residuals**2).sum()) / n
    ridge = shrinkage * scatter_trace / width_d  # a * mu
    m = np.sqrt(priors)[:, None] * (class_means - mean)

    def solve(rhs: np.ndarray) -> np.ndarray:  # W^-1 rhs, rhs (D, k), by Woodbury over the residuals' n rows
        if shrinkage >= 1.0 or ridge <= 0:
            return rhs / max(ridge, 1e-12)
        scale = (1.0 - shrinkage) / n
        if n > width_d:  # more images than dimensions: W itself is the smaller system
            return np.linalg.solve(scale * (residuals.T @ residuals) + ridge * np.eye(width_d), rhs)
        inner = np.eye(n) * (ridge / scale) + residuals @ residuals.T
        return (rhs - residuals.T @ np.linalg.solve(inner, residuals @ rhs)) / ridge

    w_inv_mt = solve(m.T)  # (D, C)
    small = m @ w_inv_mt  # (C, C), symmetric
    values, vectors = np.linalg.eigh((small + small.T) / 2)
    order = np.argsort(values)[::-1][: min(len(classes) - 1, width_d)]
    directions = w_inv_mt @ vectors[:, order]  # (D, C-1)
    # v^T W v = v^T B v / lambda = (u^T M W^-1 M^T)^2 ... = lambda for v = W^-1 M^T u, so divide by sqrt(lambda).
    directions /= np.sqrt(np.maximum(values[order], 1e-300))
    return directions, -mean @ directions


def _class_mean_projection(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projection onto the span of the centred class means (LDA with an identity within-class covariance)."""
    mean = x.mean(axis=0)
    means = np.stack([x[y == c].mean(axis=0) for c in np.unique(y)]) - mean
    _, s, vt = np.linalg.svd(means, full_matrices=False)
    width = max(1, int((s > s[0] * 1e-9).sum())) if s.size and s[0] > 0 else 1
    kernel = vt[:width].T
    return kernel, -mean @ kernel


def _fit_proxy(
    x: np.ndarray, y: np.ndarray, settings: HeadSettings, lda_kernel: np.ndarray, lda_bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A Dense(dim) projection trained with a normalised-softmax loss over learned class proxies (Keras).

    Inputs are standardised (the statistics are folded into the returned kernel and bias); the first columns of
    the kernel start as the (standardised) LDA directions, the others small random ones.
    """
    import keras

    keras.utils.set_random_seed(settings.seed)
    classes, codes = np.unique(y, return_inverse=True)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = ((x - mean) / std).astype(np.float32)
    dim = settings.dim
    rng = np.random.default_rng(settings.seed)
    init = rng.normal(scale=0.01, size=(x.shape[1], dim))
    start = lda_kernel * std[:, None]  # the LDA map in standardised coordinates
    start = start / (np.linalg.norm(start, axis=0, keepdims=True) + 1e-12)
    width = min(dim, start.shape[1])
    init[:, :width] = start[:, :width]

    inputs = keras.Input((x.shape[1],))
    projection = keras.layers.Dense(dim, name="projection")
    z = projection(inputs)
    logits = _ProxyLogits(len(classes), settings.scale, name="proxies")(z)
    model = keras.Model(inputs, logits)
    projection.set_weights([init.astype(np.float32), np.zeros(dim, np.float32)])
    # Full batch, one traced step called epochs times: fit() compiles and runs far more machinery per head than the
    # training needs (measured under load 14 on this 2-core machine: fit 10-70 s, eager 35 s, this 5 s).
    import tensorflow as tf

    optimizer = keras.optimizers.AdamW(settings.learning_rate, weight_decay=settings.weight_decay)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    inputs_t, targets = tf.constant(xs), tf.constant(codes.astype(np.int32))
    variables = model.trainable_variables
    optimizer.build(variables)

    @tf.function
    def step() -> None:
        with tf.GradientTape() as tape:
            value = loss(targets, model(inputs_t, training=True))
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables, strict=True))

    for _ in range(settings.epochs):
        step()
    w, b = (np.asarray(v, dtype=np.float64) for v in projection.get_weights())
    kernel = w / std[:, None]
    return kernel, b - mean @ kernel


def _proxy_layer_class() -> type:
    import keras

    class ProxyLogits(keras.layers.Layer):
        """Scaled cosine of each embedding to each class proxy (training only; never exported)."""

        def __init__(self, n_classes: int, scale: float, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.n_classes, self.scale = n_classes, scale

        def build(self, input_shape: Any) -> None:
            self.proxies = self.add_weight(
                shape=(int(input_shape[-1]), self.n_classes), initializer="glorot_normal", name="proxies"
            )

        def call(self, z: Any) -> Any:
            ops = keras.ops
            z = z / (ops.norm(z, axis=-1, keepdims=True) + 1e-12)
            p = self.proxies / (ops.norm(self.proxies, axis=0, keepdims=True) + 1e-12)
            return self.scale * ops.matmul(z, p)

    return ProxyLogits


def _ProxyLogits(n_classes: int, scale: float, name: str) -> Any:  # noqa: N802 - a layer constructor
    return _proxy_layer_class()(n_classes, scale, name=name)


# ------------------------------------------------------------------------------------------- storage and Keras


def head_layer_name(layer: str) -> str:
    """The Keras (and TF.js) name of the Dense layer of ``layer``'s head: ``top_conv__head``."""
    return f"{layer}__head"


def write_heads(path: str | Path, heads: dict[str, LinearHead]) -> str:
    """Store heads (layer -> head) as one ``.npz`` (``<layer>/kernel``, ``<layer>/bias``), atomically; returns the
    file's SHA-256 (the stored model config records it, so that a changed file is noticed)."""
    from precompute.artifacts import atomic_path

    path = Path(path)
    arrays = {}
    for layer, head in heads.items():
        arrays[f"{layer}/kernel"] = head.kernel.astype(np.float32)
        arrays[f"{layer}/bias"] = head.bias.astype(np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_heads(path: str | Path, sha256: str | None = None) -> dict[str, LinearHead]:
    """The heads of :func:`write_heads`; a ValueError when the file's SHA-256 is not ``sha256`` (when given)."""
    data = Path(path).read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(
            f"The head file {path} changed since its model was stored (SHA-256 mismatch); rerun "
            "precompute with --train-head to retrain it."
        )
    with np.load(io.BytesIO(data)) as arrays:
        layers = sorted({name.rsplit("/", 1)[0] for name in arrays.files})
        return {layer: LinearHead(arrays[f"{layer}/kernel"], arrays[f"{layer}/bias"]) for layer in layers}


def append_heads(feature_model: Any, layers: Sequence[str], heads: dict[str, LinearHead]) -> Any:
    """``feature_model`` (one pooled output per layer) with each layer's head as a Dense layer on its output.

    The result is a plain functional model (GlobalAveragePooling2D -> Dense), which LiteRT converts and TF.js loads
    as is; a browser finds each head by :func:`head_layer_name` and may train it further with TF.js ``fit``.
    """
    import keras

    missing = [layer for layer in layers if layer not in heads]
    if missing:
        raise ValueError(f"The head file has no head for layer(s) {', '.join(missing)}; it has {', '.join(heads)}.")
    outputs = []
    for layer, tensor in zip(layers, feature_model.outputs, strict=True):
        head = heads[layer]
        dense = keras.layers.Dense(head.dim, name=head_layer_name(layer), dtype="float32")
        outputs.append(dense(tensor))
        dense.set_weights([np.asarray(head.kernel, np.float32), np.asarray(head.bias, np.float32)])
    return keras.Model(feature_model.inputs[0], outputs, name=f"{feature_model.name}_head")


# ------------------------------------------------------------------------------------------- protocol


def split_halves(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Fold of each image (0 or 1): a seeded split of each class in two halves (``StratifiedKFold``)."""
    from sklearn.model_selection import StratifiedKFold

    folds = np.empty(len(labels), dtype=np.int8)
    splitter = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        folds[test] = fold
    return folds


def take_per_class(rows: np.ndarray, labels: np.ndarray, per_class: int | str, seed: int = 0) -> np.ndarray:
    """At most ``per_class`` rows of each class among ``rows`` (seeded draw); ``"half"``: all of them."""
    rows = np.asarray(rows)
    if per_class == "half":
        return np.sort(rows)
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels[rows]):
        members = rows[labels[rows] == c]
        keep.append(rng.permutation(members)[: int(per_class)])
    return np.sort(np.concatenate(keep))


def _query_scores(
    features: np.ndarray, labels: np.ndarray, query_rows: np.ndarray, gallery_rows: np.ndarray, top_n: int
) -> pd.DataFrame:
    """Per-query scores (project's tie-aware scores) of ``query_rows`` searched by cosine among ``gallery_rows``
    (the query itself excluded); the queries must be gallery rows. Index: the dataset row of each query."""
    from precompute.scores import compute_query_scores, cutoffs_within
    from precompute.similarity import rank_neighbors_exact

    gallery_rows = np.asarray(gallery_rows)
    sub_labels = labels[gallery_rows]
    groups = pd.factorize(sub_labels, sort=True)[0]
    depth = min(top_n, len(gallery_rows) - 1)
    ranking = rank_neighbors_exact(features[gallery_rows], METRIC, depth, groups=groups)
    scores = compute_query_scores(
        ranking.indices,
        sub_labels,
        ks=cutoffs_within(depth),
        distances=ranking.distances,
        tied_beyond=ranking.tied_beyond,
        tied_beyond_same=ranking.tied_beyond_same,
    )
    scores.index = gallery_rows
    return scores.loc[np.asarray(query_rows)]


@dataclass
class FoldResult:
    """Per-query scores of head and base on one protocol, over every image (each a query once)."""

    head: pd.DataFrame
    base: pd.DataFrame


def cross_validate(
    features: np.ndarray,
    labels: np.ndarray,
    settings: HeadSettings,
    per_class: int | str = "half",
    protocols: Sequence[str] = PROTOCOLS,
    top_n: int = 50,
    fit: Callable[[np.ndarray, np.ndarray, HeadSettings], LinearHead] = fit_head,
    split: Callable[[np.ndarray, int], np.ndarray] = split_halves,
    train_rows_of: Callable[..., np.ndarray] = take_per_class,
    base_cache: dict[tuple[str, int], pd.DataFrame] | None = None,
) -> dict[str, FoldResult]:
    """Held-out per-query scores of a head and of the frozen base, by protocol (see the module notes).

    ``fit``, ``split`` and ``train_rows_of`` are the steps, replaceable in tests; whatever they return, the rows
    ``fit`` actually receives are checked against the fold's queries (:func:`check_no_leak`). ``base_cache`` (a dict
    shared between calls on the same features, labels and seed) keeps the frozen base's scores per fold.
    """
    features = np.asarray(features)
    labels = np.asarray([str(v) for v in labels])
    rows = np.arange(len(labels))
    folds = split(labels, settings.seed)
    parts: dict[str, dict[str, list[pd.DataFrame]]] = {p: {"head": [], "base": []} for p in protocols}
    for fold in (0, 1):
        queries = rows[folds == fold]
        train = train_rows_of(rows[folds != fold], labels, per_class, settings.seed + fold)
        seen: list[np.ndarray] = []

        def guarded_fit(x: np.ndarray, y: np.ndarray, train: np.ndarray = train, seen: list = seen) -> LinearHead:
            seen.append(train)
            return fit(x, y, settings)

        head = guarded_fit(features[train], labels[train])
        check_no_leak(np.concatenate(seen), queries)
        projected = head.transform(features)
        for protocol in protocols:
            gallery = rows if protocol == "headline" else queries
            parts[protocol]["head"].append(_query_scores(projected, labels, queries, gallery, top_n))
            key = (protocol, fold)
            if base_cache is None or key not in base_cache:  # the base does not learn: one ranking per fold
                base = _query_scores(features, labels, queries, gallery, top_n)
                if base_cache is None:
                    parts[protocol]["base"].append(base)
                    continue
                base_cache[key] = base
            parts[protocol]["base"].append(base_cache[key])
    return {
        p: FoldResult(pd.concat(v["head"]).sort_index(), pd.concat(v["base"]).sort_index()) for p, v in parts.items()
    }


def compare(result: FoldResult, scores: Sequence[str] = HEADLINE_SCORES, seed: int = 0) -> dict[str, Any]:
    """Means with 95 % bootstrap intervals of head and base, and the paired difference (interval, Wilcoxon p),
    per score: ``{score: {"base": m, "base_ci": [l, h], "head": ..., "head_ci": ..., "difference": d, "ci": [l, h],
    "p_value": p, "distinguishable": bool}}``."""
    from precompute.stats import bootstrap_ci, paired_comparison

    out: dict[str, Any] = {}
    for score in scores:
        if score not in result.head.columns:
            continue
        a = result.head[score].to_numpy(dtype=np.float64)
        b = result.base[score].to_numpy(dtype=np.float64)
        paired = paired_comparison(a, b, seed=seed)
        out[score] = {
            "base": _r(np.nanmean(b)),
            "base_ci": [_r(v) for v in bootstrap_ci(b, seed=seed)],
            "head": _r(np.nanmean(a)),
            "head_ci": [_r(v) for v in bootstrap_ci(a, seed=seed)],
            "difference": _r(paired["mean_difference"]),
            "ci": [_r(v) for v in paired["ci"]],
            "p_value": float(f"{paired['p_value']:.3g}"),
            "distinguishable": paired["distinguishable"],
            "n_queries": paired["n_queries"],
        }
    return out


def learning_curve(
    features: np.ndarray,
    labels: np.ndarray,
    settings: HeadSettings,
    points: Sequence[int | str] = CURVE_POINTS,
    score: str = "precision@5",
    top_n: int = 50,
    protocol: str = "headline",
) -> list[dict[str, Any]]:
    """Held-out ``score`` of head and base (headline protocol) with ``per_class`` labels of each class of the
    training half, for each point; points above the smallest half are capped there (and said so)."""
    labels = np.asarray([str(v) for v in labels])
    smallest_half = int(pd.Series(labels).value_counts().min()) // 2
    base_cache: dict[tuple[str, int], pd.DataFrame] = {}
    curve = []
    for point in points:
        per_class = point if point == "half" else min(int(point), max(smallest_half, 1))
        result = cross_validate(features, labels, settings, per_class, (protocol,), top_n, base_cache=base_cache)[
            protocol
        ]
        row = compare(result, (score,), seed=settings.seed)[score]
        curve.append(
            {
                "labels_per_class": point,
                **{k: row[k] for k in ("base", "base_ci", "head", "head_ci", "difference", "ci", "p_value")},
            }
        )
    return curve


def summary_line(dataset: str, model: str, layer: str, comparison: dict[str, Any], score: str = "precision@5") -> str:
    """The line a script reads: ``<dataset> <model>/<layer>: held-out precision@5 base 0.503 head 0.592 difference
    +0.089 [0.052, 0.127]`` (``model`` is the head model's name, ``<backbone>+head``)."""
    row = comparison[score]
    low, high = row["ci"]
    return (
        f"{dataset} {model}/{layer}: held-out {score} base {row['base']:.3f} head {row['head']:.3f} "
        f"difference {row['difference']:+.3f} [{low:.3f}, {high:.3f}]"
    )


def _r(value: float) -> float | None:
    value = float(value)
    return round(value, 5) if np.isfinite(value) else None


__all__ = [
    "CURVE_POINTS",
    "HEADLINE_SCORES",
    "HEAD_KINDS",
    "MIN_CLASS_IMAGES",
    "PROTOCOLS",
    "FoldResult",
    "HeadInputError",
    "HeadSettings",
    "LeakError",
    "LinearHead",
    "check_no_leak",
    "append_heads",
    "check_trainable",
    "head_layer_name",
    "read_heads",
    "write_heads",
    "compare",
    "cross_validate",
    "fit_head",
    "learning_curve",
    "split_halves",
    "summary_line",
    "take_per_class",
]
