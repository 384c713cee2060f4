"""Relevance feedback (issue #23): a query refined from results marked relevant or not.

The browser does this itself (``assets/feedback.js``, nothing sent); this module is the same maths in Python,
number for number, for the benchmark (``python -m bench feedback``), the tests that hold the two together
(``tests/test_feedback.py``) and the server's side of a dataset too big for the browser to search.

Rocchio (Rocchio 1971; Manning, Raghavan and Schütze, *Introduction to Information Retrieval*, ch. 9)::

    q' = (alpha * q + beta * mean(relevant) - gamma * mean(not relevant)) / (alpha + beta - gamma)

with a term only where there are marks. Under cosine every vector is first divided by its L2 norm, so that each
mark counts the same (a zero vector adds nothing); dividing by the weights' sum changes no cosine ranking. Under
the other metrics (euclidean, manhattan, chebyshev, minkowski) the vectors are averaged as they are, and the
division keeps q' an affine combination of them, in the data's own coordinates, where the metric measures.

Exactness: sums run in float64 in a fixed order (mark by mark, as given; a norm's squares with
``np.cumsum``, which adds in order, unlike ``np.sum``'s pairwise blocks) and q' is rounded to float32 once; the
browser does the same, so both rank the same float32 vector through the one exact engine
(:func:`precompute.similarity.search_exact`), ties included.

Examples
--------
>>> features = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
>>> rocchio_query(features[0], features, relevant=[2], not_relevant=[1], metric="euclidean").tolist()
[1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from precompute.similarity import Ranking, parse_metric, search_exact


@dataclass(frozen=True)
class RocchioParams:
    """Rocchio's weights: the query, the mean of the relevant marks, the mean of the others."""

    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 0.5


# The probe (and the page's default): one round on the top 15 of openclipart-200 / efficientnet-lite2 /
# top_conv / cosine lifts mean precision@15 from 0.373 to 0.521 with these.
ROCCHIO = RocchioParams()
# The in-browser head (assets/feedback.js, ``trainHead``): a logistic layer on L2-normalised features, started at
# the Rocchio direction times ``scale`` and fitted with TF.js for ``epochs`` full-batch Adam steps.
HEAD = {"epochs": 30, "learningRate": 0.01, "scale": 10.0}
# The hybrid flow (``trainHybrid``): a server head (precompute/head.py) fine-tuned on the marks; see feedback.js.
HYBRID = {"epochs": 30, "learningRate": 0.01, "headLearningRate": 0.0002, "anchor": 1.0, "scale": 10.0}
# What the page runs by default: the better of the two in `python -m bench feedback` (docs/benchmarks.md).
METHODS = ("rocchio", "head", "hybrid")
DEFAULT_METHOD = "head"


def _norm(row: np.ndarray) -> float:
    """L2 norm summed in order (what the browser computes)."""
    squares = np.asarray(row, dtype=np.float64) ** 2
    return float(np.sqrt(np.cumsum(squares)[-1])) if squares.size else 0.0


def _add_row(acc: np.ndarray, row: np.ndarray, weight: float, cosine: bool) -> None:
    scale = weight
    if cosine:
        length = _norm(row)
        if not length > 0:
            return
        scale = weight / length
    acc += np.asarray(row, dtype=np.float64) * scale


def _mean(ids: Sequence[int], features: np.ndarray, cosine: bool) -> np.ndarray:
    acc = np.zeros(features.shape[1], dtype=np.float64)
    for i in ids:
        _add_row(acc, features[i], 1.0, cosine)
    return acc / len(ids)


def check_marks(relevant: Sequence[int], not_relevant: Sequence[int], n_images: int) -> tuple[list[int], list[int]]:
    """The marks as lists of ints; ValueError naming the first id that is not an image id or marked both ways."""
    rel, nrel = [int(i) for i in relevant], [int(i) for i in not_relevant]
    for what, ids in (("relevant", rel), ("not relevant", nrel)):
        for i in ids:
            if not 0 <= i < n_images:
                raise ValueError(f"{what} mark {i} is not an image id (0..{n_images - 1}).")
    both = sorted(set(rel) & set(nrel))
    if both:
        raise ValueError(f"images {both} are marked both relevant and not relevant.")
    return rel, nrel


def rocchio_query(
    query: np.ndarray,
    features: np.ndarray,
    relevant: Sequence[int],
    not_relevant: Sequence[int],
    metric: str,
    params: RocchioParams = ROCCHIO,
) -> np.ndarray:
    """The refined query, float32 (dim,): see the module docstring.

    Parameters
    ----------
    query : array (dim,), the query's features (a dataset row or an upload's vector)
    features : array (n, dim), the layer's features
    relevant, not_relevant : image ids (rows of ``features``), in the order they were marked
    metric : a metric name (``precompute.similarity``); cosine normalises, the others do not
    """
    features = np.asarray(features)
    query = np.asarray(query).reshape(-1)
    if query.shape[0] != features.shape[1]:
        raise ValueError(f"Query dim {query.shape[0]} != dataset dim {features.shape[1]}.")
    parse_metric(metric)
    rel, nrel = check_marks(relevant, not_relevant, len(features))
    cosine = metric == "cosine"
    out = np.zeros(features.shape[1], dtype=np.float64)
    _add_row(out, query, params.alpha, cosine)
    total = params.alpha
    if rel:
        out += params.beta * _mean(rel, features, cosine)
        total += params.beta
    if nrel:
        out -= params.gamma * _mean(nrel, features, cosine)
        total -= params.gamma
    return (out / total).astype(np.float32)


def refine(
    query: np.ndarray,
    features: np.ndarray,
    relevant: Sequence[int],
    not_relevant: Sequence[int],
    metric: str,
    k: int,
    exclude: int | None = None,
    params: RocchioParams = ROCCHIO,
) -> Ranking:
    """Top ``k`` for the Rocchio query, ``exclude`` (the query's own row) left out: what the browser shows."""
    vector = rocchio_query(query, features, relevant, not_relevant, metric, params)
    n = len(features) - (exclude is not None)
    return search_exact(
        vector, features, metric, top_n=min(k, n), exclude=None if exclude is None else np.array([exclude])
    )


def head_scores(kernel: np.ndarray, bias: float, features: np.ndarray) -> np.ndarray:
    """A linear head's scores ``w . x / |x| + b`` of every row, float32, summed as the browser sums them."""
    features = np.asarray(features, dtype=np.float64)
    w = np.asarray(kernel, dtype=np.float32).astype(np.float64)
    dots = np.cumsum(features * w, axis=1)[:, -1]
    squares = np.cumsum(features * features, axis=1)[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(squares > 0, dots / np.sqrt(squares) + bias, bias)
    return scores.astype(np.float32)


def hybrid_scores(
    kernel: np.ndarray, bias: np.ndarray, direction: np.ndarray, offset: float, features: np.ndarray
) -> np.ndarray:
    """The hybrid flow's scores (assets/feedback.js ``trainHybrid``) from its fitted weights, float32: the server
    head's outputs ``z = x K + b`` of every row, scaled to length 1, dotted with ``direction``, plus ``offset``.

    ``kernel`` (dim, m) (or flat, row-major as TF.js holds it), ``bias`` (m,), ``direction`` (m,). The browser
    computes this in float32 with TF.js (its backend's order of sums), so the two agree to float32 rounding, not
    bit for bit; rankings agree where scores are not within that rounding of each other.
    """
    features = np.asarray(features, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float32).astype(np.float64).reshape(-1)
    kernel = np.asarray(kernel, dtype=np.float32).astype(np.float64).reshape(features.shape[1], len(bias))
    z = features @ kernel + bias
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    direction = np.asarray(direction, dtype=np.float32).astype(np.float64).reshape(-1)
    return (z @ direction + float(offset)).astype(np.float32)


def rank_by_scores(scores: np.ndarray, k: int, exclude: int | None = None) -> np.ndarray:
    """Ids of the ``k`` highest scores, ties by the lower id, ``exclude`` left out."""
    scores = np.asarray(scores, dtype=np.float32)
    ids = np.arange(len(scores))
    if exclude is not None:
        ids = ids[ids != exclude]
    order = np.lexsort((ids, -scores[ids].astype(np.float64)))
    return ids[order[:k]]


# ------------------------------------------------------------------------------------------- marks as labels
# The page's "Download marks" CSV (assets/feedback_ui.js): a comment line naming the dataset and its fingerprint,
# a header, then one row per mark. ``precompute --train-head ... --pairs FILE`` adds them to the head's training.
PAIRS_HEADER = ("query id", "result id", "relevant")
PAIRS_COMMENT = "# sisp feedback pairs"


class PairsError(ValueError):
    """A pairs CSV that cannot be used; the message names the file, the rows and what is wrong with each."""


@dataclass(frozen=True)
class Pairs:
    """Marks as training pairs: ``query``, ``result`` int arrays and ``relevant`` bool array, one per row."""

    query: np.ndarray
    result: np.ndarray
    relevant: np.ndarray
    dataset: str
    fingerprint: str

    def sha256(self) -> str:
        import hashlib

        rows = "\n".join(f"{q},{r},{int(v)}" for q, r, v in zip(self.query, self.result, self.relevant, strict=True))
        return hashlib.sha256(rows.encode()).hexdigest()


def read_pairs(path: str, dataset: str, fingerprint: str | None, n_images: int, max_listed: int = 10) -> Pairs:
    """Read and check a pairs CSV against the dataset it is meant for; :class:`PairsError` names every bad row.

    Checks, all before anything is used: the comment line names this dataset and its current fingerprint (a CSV of
    another dataset, or of this one before it changed, is refused: its ids may name other images); the header;
    each row's ids are image ids of the dataset (0..n-1), ``relevant`` is 1/0 (or true/false), the result is not
    the query; no pair appears both relevant and not relevant (rows named by their line numbers).
    """
    import csv

    try:
        text = open(path, encoding="utf-8", newline="").read()  # noqa: SIM115 - read whole
    except OSError as exc:
        raise PairsError(f"--pairs {path}: cannot read it ({exc.strerror or exc}).") from exc
    lines = text.splitlines()
    if not lines or not lines[0].startswith(PAIRS_COMMENT):
        raise PairsError(
            f"--pairs {path}: line 1 must be the page's '{PAIRS_COMMENT}: dataset=..., fingerprint=...' "
            "line (download the marks again from the page)."
        )
    meta = dict(
        part.strip().split("=", 1) for part in lines[0][len(PAIRS_COMMENT) :].lstrip(":").split(",") if "=" in part
    )
    if meta.get("dataset") != dataset:
        raise PairsError(
            f"--pairs {path}: made for dataset {meta.get('dataset')!r}, not {dataset!r}; its ids name "
            "another dataset's images. Nothing was changed."
        )
    if fingerprint and meta.get("fingerprint") != fingerprint:
        raise PairsError(
            f"--pairs {path}: stale: made when {dataset} had fingerprint {meta.get('fingerprint')!r}; "
            f"it is now {fingerprint!r} (its images changed), so its ids may name other images. Mark "
            "the results again in the page. Nothing was changed."
        )
    rows = list(csv.reader(lines[1:]))
    if not rows or tuple(c.strip() for c in rows[0]) != PAIRS_HEADER:
        raise PairsError(f"--pairs {path}: line 2 must be the header {','.join(PAIRS_HEADER)}.")
    problems: list[str] = []
    query, result, relevant, seen = [], [], [], {}
    truth = {"1": True, "true": True, "0": False, "false": False}
    for number, row in enumerate(rows[1:], start=3):
        if not row or all(not c.strip() for c in row):
            continue
        cells = [c.strip() for c in row]
        if len(cells) != 3:
            problems.append(f"line {number}: {len(cells)} values, not 3")
            continue
        q, r, v = cells
        bad = [
            f"{name} {value!r} is not an image id of {dataset} (0..{n_images - 1})"
            for name, value in (("query id", q), ("result id", r))
            if not value.isdigit() or int(value) >= n_images
        ]
        if v.lower() not in truth:
            bad.append(f"relevant {v!r} is not 1/0 (or true/false)")
        if not bad and q == r:
            bad.append("the result is the query itself")
        if bad:
            problems.append(f"line {number}: " + "; ".join(bad))
            continue
        key, value = (int(q), int(r)), truth[v.lower()]
        if key in seen and seen[key][1] != value:
            problems.append(
                f"lines {seen[key][0]} and {number}: pair {key[0]},{key[1]} is marked both relevant and not relevant"
            )
            continue
        if key in seen:
            continue
        seen[key] = (number, value)
        query.append(key[0])
        result.append(key[1])
        relevant.append(value)
    if problems:
        listed = "\n  ".join(problems[:max_listed])
        more = f"\n  ... and {len(problems) - max_listed} more" if len(problems) > max_listed else ""
        raise PairsError(
            f"--pairs {path}: {len(problems)} bad row{'s' if len(problems) != 1 else ''}, nothing was "
            f"changed:\n  {listed}{more}"
        )
    if not query:
        raise PairsError(f"--pairs {path}: no pair after the header.")
    return Pairs(np.array(query), np.array(result), np.array(relevant, dtype=bool), dataset, meta.get("fingerprint"))


def training_set(features: np.ndarray, labels: np.ndarray, pairs: Pairs | None) -> tuple[np.ndarray, np.ndarray]:
    """The head's training rows with the marks added: a relevant pair adds the result's features once more under
    the query's label (the user says it belongs there, whatever its own label); a not-relevant pair whose result
    carries the query's label takes that result out of the training rows (the user doubts the label). Without
    pairs, the features and labels unchanged."""
    features, labels = np.asarray(features), np.asarray(labels)
    if pairs is None:
        return features, labels
    keep = np.ones(len(labels), dtype=bool)
    extra_rows, extra_labels = [], []
    for q, r, relevant in zip(pairs.query, pairs.result, pairs.relevant, strict=True):
        if relevant:
            extra_rows.append(r)
            extra_labels.append(labels[q])
        elif labels[r] == labels[q]:
            keep[r] = False
    rows = np.concatenate([np.flatnonzero(keep), np.asarray(extra_rows, dtype=np.int64)])
    return features[rows], np.concatenate([labels[keep], np.asarray(extra_labels, dtype=labels.dtype)])
