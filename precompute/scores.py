"""Retrieval scores of stored rankings, per query, per class, and for a random ranking.

Every image of a labeled dataset is a query; its stored neighbours (the query itself excluded) are its
results, and the results that share its label are the relevant ones. A query whose label has ``n_c``
images therefore has ``R = n_c - 1`` relevant items among the ``n_images - 1`` candidates.

The scores (``SCORE_NAMES`` holds a one-line description of each):

- ``rwp@15``: the reference tool's rank-weighted precision over the top 15 results.
- ``precision@k``, ``recall@k``: the usual set scores of the top ``k`` results.
- ``ndcg@k``: normalised discounted cumulative gain with binary relevance.
- ``ap``: average precision over the stored depth ``N``, normalised by ``min(R, N)``.

All of them are computed for all queries at once from one ``(n_queries, N)`` relevance matrix; there is no
loop over queries, so 70,000 queries x 50 neighbours take well under a second.

Ties
----
Results at the same distance are tied: the engine lists them in index order, which is an arbitrary choice,
and scoring that order would favour whatever comes first in the manifest (classes early in the alphabet).
Given the stored distances, every score is instead the *expected* score over all orders of each tie group
(McSherry and Najork, "Computing information retrieval performance measures efficiently in the presence of
tied scores", ECIR 2008). For a group of ``g`` items holding ``r`` relevant ones, at positions ``a..b``
(1-based), with ``H`` relevant items ranked before it:

- each position is relevant with probability ``r / g``, so precision, recall, rwp@15 and nDCG (linear in
  the relevance of each position) use ``r / g`` in place of 0 or 1;
- AP is not linear: ``E[rel_i * hits_i] = (r / g) (H + 1) + (i - a) r (r - 1) / (g (g - 1))``, because two
  positions of the group are both relevant with probability ``r (r - 1) / (g (g - 1))``.

The group at the cut-off can reach beyond the ``N`` stored neighbours; the ranking engine counts the tied
items outside (``tied_beyond``) and how many share the query's class (``tied_beyond_same``), so that group's
``g`` and ``r`` are exact too. A ranking in which every distance ties scores exactly the random baseline.

Queries whose label has no other image (``R == 0``) have nothing to retrieve: ``recall@k``, ``ndcg@k``
and ``ap`` are undefined (NaN) for them, while ``precision@k`` and ``rwp@15`` are 0 (every result is
wrong). Means in :func:`summarize_scores` skip the NaNs, so the ``__all__`` row of ``ap`` is the mAP over
the queries that have at least one relevant item.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 15)
# The reference tool ranks by a precision over 15 results with linearly decreasing weights.
RWP_DEPTH = 15
# Index value of the row that averages over all queries in summaries and baselines.
ALL_LABEL = "__all__"

# Score families, in column order, with the line the README and the app show for each. The families
# marked with "@k" give one column per cut-off k (``precision@5``); the others give one column.
SCORE_NAMES: dict[str, str] = {
    f"rwp@{RWP_DEPTH}": (
        f"Rank-weighted precision of the top {RWP_DEPTH}: result i (0-based) weighs ({RWP_DEPTH}-i)/{RWP_DEPTH}; "
        "the weight of same-class results over the total weight (1 = all same class)."
    ),
    "precision@k": "Fraction of the top k results that share the query's label.",
    "recall@k": "Fraction of the query's other same-label images found in the top k results.",
    "ndcg@k": (
        "Discounted gain 1/log2(rank+1) of the same-label results in the top k, over the best possible "
        "(1 = all relevant results ranked first)."
    ),
    "ap": (
        "Average precision over the stored neighbours: the mean of precision@i at the rank i of each "
        "same-label result, over min(relevant, stored) (1 = every stored slot is a same-label image)."
    ),
}
_PER_K = tuple(name[: -len("@k")] for name in SCORE_NAMES if name.endswith("@k"))


def score_columns(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    """Names of the score columns for cut-offs ``ks``, in the order the tables use.

    Examples
    --------
    >>> score_columns((1, 5))
    ['rwp@15', 'precision@1', 'precision@5', 'recall@1', 'recall@5', 'ndcg@1', 'ndcg@5', 'ap']
    """
    ks = _check_ks(ks, depth=None)
    columns: list[str] = []
    for name in SCORE_NAMES:
        if name.endswith("@k"):
            columns += [f"{name[: -len('@k')]}@{k}" for k in ks]
        else:
            columns.append(name)
    return columns


def cutoffs_within(depth: int) -> list[int]:
    """The cut-offs of ``DEFAULT_KS`` that fit in ``depth`` stored neighbours (``[depth]`` where none does): those a
    run scores its rankings at, and so the score columns it stores (:func:`score_columns`).

    Examples
    --------
    >>> cutoffs_within(50), cutoffs_within(8)
    ([1, 5, 10, 15], [1, 5])
    """
    return [k for k in DEFAULT_KS if k <= depth] or [depth]


# ---------------------------------------------------------------------------------------------- public


def compute_query_scores(
    neighbors: np.ndarray,
    labels: Sequence | np.ndarray | pd.Series,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    distances: np.ndarray | None = None,
    tied_beyond: np.ndarray | None = None,
    tied_beyond_same: np.ndarray | None = None,
) -> pd.DataFrame:
    """Score every query's stored ranking against the dataset labels.

    Parameters
    ----------
    neighbors : int array, shape (n_queries, N)
        Row ``i`` lists dataset row indices ranked best first for query ``i`` (which is dataset row ``i``),
        with the query itself already excluded and no index repeated.
    labels : array-like, shape (n_images,)
        Class label of each dataset row (strings or ints); ``n_images == n_queries``. No missing values.
    ks : sequence of int, default (1, 5, 10, 15)
        Cut-offs for ``precision@k``, ``recall@k`` and ``ndcg@k``; each ``1 <= k <= N``.
    distances : float array, shape (n_queries, N), optional
        The distance of each listed neighbour, non-decreasing along each row. With it, equal distances form
        tie groups and every score is its expectation over all orders of each group (see the module notes);
        without it, the listed order is taken as strict.
    tied_beyond, tied_beyond_same : int arrays, shape (n_queries,), optional
        Candidates beyond the N listed that tie with the N-th distance, and how many of them share the
        query's label (:class:`precompute.similarity.Ranking` gives both); only with ``distances``.
        Default: none.

    Returns
    -------
    pandas.DataFrame, shape (n_queries, 2 + 3 * len(ks))
        Index ``query`` (the dataset row), column ``label`` and the columns of :func:`score_columns`,
        float64. ``rwp@15`` uses the first ``min(15, N)`` results with the weights of the top 15
        (``(15 - i) / 15``), normalised by the sum of those weights. ``ap`` is AP@N normalised by
        ``min(R, N)``: it equals the full average precision whenever all ``R`` relevant items are within
        the ``N`` stored neighbours (always the case when ``N == n_images - 1``), and is higher than it
        otherwise, because relevant items beyond ``N`` are not penalised. Queries with ``R == 0`` get NaN
        for recall, ndcg and ap, and 0 for precision and rwp.

    Raises
    ------
    ValueError
        If the shapes disagree, an index is out of range, a query lists itself or an index twice, a
        label is missing or equals ``"__all__"``, labels mix strings and numbers, a ``k`` is outside
        ``1..N``, distances decrease along a row, or the tie counts are negative or impossible.

    Examples
    --------
    >>> neighbors = np.array([[1, 2, 3], [0, 3, 2], [3, 0, 1], [2, 1, 0]])
    >>> scores = compute_query_scores(neighbors, ["a", "a", "b", "b"], ks=(1, 3))
    >>> scores[["precision@1", "recall@3", "ap"]].to_numpy().tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]

    Query 0's first two results tie, one of them relevant: its precision@1 is the expected 0.5.

    >>> ties = compute_query_scores(np.array([[2, 1], [0, 2], [0, 1]]), ["a", "a", "b"], ks=(1,),
    ...                             distances=np.array([[1.0, 1.0], [0.5, 0.7], [0.2, 0.3]]))
    >>> ties["precision@1"].tolist()
    [0.5, 1.0, 0.0]
    """
    labels_array, codes, _, class_counts = _check_labels(labels)
    neighbors = _check_neighbors(neighbors, n_images=len(codes))
    ks = _check_ks(ks, depth=neighbors.shape[1])

    relevant = codes[neighbors] == codes[:, None]
    n_relevant = class_counts[codes] - 1
    if distances is None:
        if tied_beyond is not None or tied_beyond_same is not None:
            raise ValueError("tied_beyond and tied_beyond_same need the distances of the listed neighbours.")
        expected = relevant.astype(np.float64), None
    else:
        tied_beyond, tied_beyond_same = _check_ties(distances, neighbors.shape, tied_beyond, tied_beyond_same)
        expected = _tie_expectations(relevant, np.asarray(distances), tied_beyond, tied_beyond_same)
        if np.any(expected[0].sum(axis=1) > n_relevant + 1e-9):
            raise ValueError("tied_beyond_same counts more same-label items than the labels hold.")
    scores = _score_relevance(*expected, n_relevant, ks)

    table = pd.DataFrame({"label": labels_array, **scores})
    table.index.name = "query"
    return table


def summarize_scores(query_scores: pd.DataFrame) -> pd.DataFrame:
    """Mean of each score per class and over all queries.

    Parameters
    ----------
    query_scores : pandas.DataFrame, shape (n_queries, n_columns)
        A table from :func:`compute_query_scores`: a ``label`` column and score columns.

    Returns
    -------
    pandas.DataFrame, shape (n_classes + 1, 1 + n_scores)
        Index ``label``: the class labels as strings, sorted by the original label values, then
        ``"__all__"``. Columns ``n_queries`` (int) and the score columns in their input order. Means skip
        NaN, so a class whose label has a single image has NaN recall, ndcg and ap, and the ``__all__`` row
        averages over queries (each query counts once; it is not a mean of class means).

    Raises
    ------
    ValueError
        If the table is empty, has no ``label`` column, or no score column.

    Examples
    --------
    >>> neighbors = np.array([[1, 2], [0, 2], [0, 1]])
    >>> summary = summarize_scores(compute_query_scores(neighbors, ["a", "a", "b"], ks=(1,)))
    >>> summary[["n_queries", "precision@1"]].to_dict("index")
    {'a': {'n_queries': 2, 'precision@1': 1.0}, 'b': {'n_queries': 1, 'precision@1': 0.0}, \
'__all__': {'n_queries': 3, 'precision@1': 0.6666666666666666}}
    """
    if not isinstance(query_scores, pd.DataFrame) or "label" not in query_scores.columns:
        raise ValueError("query_scores must be a DataFrame with a 'label' column, as compute_query_scores returns.")
    if query_scores.empty:
        raise ValueError("query_scores has no rows: there is nothing to summarise.")
    columns = [column for column in query_scores.columns if _is_score_column(column)]
    if not columns:
        raise ValueError(
            f"query_scores has no score column (got {list(query_scores.columns)}); "
            f"expected names from score_columns(), built from {list(SCORE_NAMES)}."
        )
    grouped = query_scores.groupby("label", sort=True)[columns]
    per_class = grouped.mean()
    per_class.insert(0, "n_queries", grouped.size())
    overall = query_scores[columns].mean()
    overall["n_queries"] = len(query_scores)
    return _with_all_row(per_class, overall)


def random_baseline(
    labels: Sequence | np.ndarray | pd.Series,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    depth: int | None = None,
) -> pd.DataFrame:
    """Expected scores of a uniformly random ranking, per class and over all queries.

    Every score is an exact expectation in closed form, not a Monte Carlo estimate. For a query with
    ``R`` relevant items among ``M = n_images - 1`` candidates, position ``i`` of a random ranking is
    relevant with probability ``p = R / M`` and two positions both are with ``q = R (R - 1) / (M (M - 1))``:

    - ``precision@k`` and ``rwp@15``: ``p`` (a weighted mean of per-position precisions).
    - ``recall@k``: ``k / M`` (``k <= N <= M``, so it never exceeds 1).
    - ``ndcg@k``: ``p * sum_{i<=k} 1/log2(i+1)`` over the ideal DCG of ``min(k, R)`` relevant items.
    - ``ap``: ``(p * H_N + q * (N - H_N)) / min(R, N)`` with ``H_N`` the N-th harmonic number, from
      ``E[rel_i * precision@i] = (p + (i - 1) q) / i``.

    Parameters
    ----------
    labels : array-like, shape (n_images,)
        Class label of each dataset row; at least 2 rows, no missing values.
    ks : sequence of int, default (1, 5, 10, 15)
        Cut-offs, as for :func:`compute_query_scores`; each ``1 <= k <= depth``.
    depth : int, optional
        The number ``N`` of stored neighbours the scores being compared were computed from; only ``ap``
        depends on it. Defaults to the full ranking, ``n_images - 1``.

    Returns
    -------
    pandas.DataFrame, shape (n_classes + 1, 1 + n_scores)
        The same index and columns as :func:`summarize_scores`, so the two tables can be subtracted.
        ``__all__`` weighs each class by its number of queries and skips the NaN of classes with a single
        image, as the query means of :func:`summarize_scores` do.

    Raises
    ------
    ValueError
        If a label is missing or equals ``"__all__"``, labels mix strings and numbers, there are fewer
        than 2 images, ``depth`` is outside ``1..n_images - 1`` or a ``k`` is outside ``1..depth``.

    Examples
    --------
    >>> baseline = random_baseline(["a", "a", "b", "b", "b"], ks=(1,))
    >>> baseline.loc[["a", "__all__"], ["precision@1", "recall@1"]].to_numpy().tolist()
    [[0.25, 0.25], [0.4, 0.25]]
    """
    _, codes, classes, class_counts = _check_labels(labels)
    n_candidates = len(codes) - 1
    if n_candidates < 1:
        raise ValueError(f"random_baseline needs at least 2 images, got {len(codes)}.")
    if depth is None:
        depth = n_candidates
    elif not _is_int(depth) or not 1 <= depth <= n_candidates:
        raise ValueError(f"depth must be an integer between 1 and n_images - 1 = {n_candidates}, got {depth!r}.")
    ks = _check_ks(ks, depth=depth)

    expected = _expected_scores(class_counts - 1, n_candidates, depth, ks)
    per_class = pd.DataFrame(expected, index=pd.Index(classes, name="label"))
    per_class.insert(0, "n_queries", class_counts)

    # The mean over queries of each score, as summarize_scores takes it: classes weighted by their
    # size, classes whose score is NaN left out of both sums.
    weights = np.where(per_class.isna(), 0.0, class_counts[:, None])
    totals = weights.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (per_class.fillna(0.0).to_numpy() * weights).sum(axis=0) / totals
    overall = pd.Series(np.where(totals > 0, means, np.nan), index=per_class.columns)
    overall["n_queries"] = len(codes)
    return _with_all_row(per_class, overall)


# ---------------------------------------------------------------------------------------------- checks


def _is_int(value: object) -> bool:
    # bool is an int subclass, but True as a cut-off is a bug, not 1.
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_ks(ks: Sequence[int], depth: int | None) -> tuple[int, ...]:
    """Return ``ks`` as a sorted tuple of distinct ints in ``1..depth``, else raise ValueError."""
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Sequence | np.ndarray) or len(ks) == 0:
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks!r}.")
    limit = "" if depth is None else f" and at most the number of stored neighbours N = {depth}"
    for k in ks:
        if not _is_int(k) or k < 1 or (depth is not None and k > depth):
            raise ValueError(f"Invalid cut-off k = {k!r} in ks = {tuple(ks)}: each k must be an integer >= 1{limit}.")
    return tuple(sorted({int(k) for k in ks}))


def _check_labels(
    labels: Sequence | np.ndarray | pd.Series,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate labels; return them as an array (n,), their class codes (n,), the sorted classes and sizes."""
    labels_array = np.asarray(labels)
    if labels_array.ndim != 1:
        raise ValueError(f"labels must be one-dimensional (n_images,), got shape {labels_array.shape}.")
    missing = np.flatnonzero(pd.isna(labels_array))
    if missing.size:
        raise ValueError(
            f"{missing.size} labels are missing (first at row {missing[0]}); scores need a label for every image."
        )
    codes, classes = pd.factorize(labels_array, sort=True)
    # A mix would not sort (pandas then keeps the order found) and 1 and "1" would name one summary row.
    if len({isinstance(label, str) for label in classes}) > 1:
        raise ValueError(f"labels must be all strings or all numbers, got a mix: {list(classes)[:10]}.")
    if any(str(label) == ALL_LABEL for label in classes):
        raise ValueError(f"The label {ALL_LABEL!r} is reserved for the row over all queries; rename that class.")
    return labels_array, codes, np.asarray(classes), np.bincount(codes, minlength=len(classes))


def _check_neighbors(neighbors: np.ndarray, n_images: int) -> np.ndarray:
    """Validate a ranking matrix against the number of images; return it as an integer array."""
    neighbors = np.asarray(neighbors)
    if neighbors.ndim != 2 or not np.issubdtype(neighbors.dtype, np.integer):
        raise ValueError(
            f"neighbors must be a 2-D integer array (n_queries, N), got {neighbors.dtype} with shape {neighbors.shape}."
        )
    n_queries, depth = neighbors.shape
    if n_queries != n_images:
        raise ValueError(
            f"neighbors has {n_queries} rows but labels has {n_images}: query i must be dataset row i, "
            "so the two must match."
        )
    if depth == 0:
        raise ValueError("neighbors has no columns (N = 0): there is no ranking to score.")
    low, high = int(neighbors.min()), int(neighbors.max())
    if low < 0 or high >= n_images:
        bad = low if low < 0 else high
        raise ValueError(f"neighbors holds index {bad}, outside the dataset rows 0..{n_images - 1}.")
    queries, ranks = np.nonzero(neighbors == np.arange(n_queries)[:, None])
    if queries.size:
        raise ValueError(
            f"{queries.size} queries list themselves among their neighbours (first: query {queries[0]} at "
            f"rank {ranks[0]}); exclude the query from its own ranking before scoring."
        )
    ordered = np.sort(neighbors, axis=1)
    repeated = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
    if repeated.size:
        raise ValueError(
            f"{repeated.size} queries list a neighbour more than once (first: query {repeated[0]}); "
            "each row must hold distinct indices."
        )
    return neighbors


def _check_ties(
    distances: np.ndarray, shape: tuple[int, int], tied_beyond: np.ndarray | None, tied_beyond_same: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate distances and tie counts against the ranking's shape; return the counts (zeros by default)."""
    distances = np.asarray(distances)
    if distances.shape != shape:
        raise ValueError(f"distances has shape {distances.shape}, the neighbours {shape}; they must match.")
    if not np.isfinite(distances).all():
        raise ValueError("distances hold NaN or inf; score a complete ranking.")
    falling = np.flatnonzero((np.diff(distances, axis=1) < 0).any(axis=1))
    if falling.size:
        raise ValueError(f"{falling.size} rows of distances decrease (first: query {falling[0]}); "
                         "neighbours must be listed best first.")
    counts = []
    for name, value in (("tied_beyond", tied_beyond), ("tied_beyond_same", tied_beyond_same)):
        value = np.zeros(shape[0], dtype=np.int64) if value is None else np.asarray(value)
        if value.shape != (shape[0],) or not np.issubdtype(value.dtype, np.integer) or (value < 0).any():
            raise ValueError(f"{name} must hold one integer >= 0 per query ({shape[0]}), got {value.dtype} "
                             f"with shape {value.shape}.")
        counts.append(value.astype(np.int64))
    if (counts[1] > counts[0]).any():
        raise ValueError("tied_beyond_same exceeds tied_beyond: the same-label ties are a part of all ties.")
    return counts[0], counts[1]


def _is_score_column(column: object) -> bool:
    if not isinstance(column, str):
        return False
    family, _, k = column.rpartition("@")
    return column in SCORE_NAMES or (family in _PER_K and k.isdigit())


# ---------------------------------------------------------------------------------------------- maths


def _discounts(length: int) -> np.ndarray:
    """DCG discount of ranks 1..length: ``1 / log2(rank + 1)``, shape (length,)."""
    return 1.0 / np.log2(np.arange(2, length + 2))


def _ideal_dcg(n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Best DCG@k for each query, with ``min(k, R)`` relevant items first; NaN where R == 0."""
    cumulative = np.concatenate([[np.nan], np.cumsum(_discounts(k))])
    return cumulative[np.minimum(n_relevant, k)]


def _rwp_weights(depth: int) -> np.ndarray:
    """Weights ``(15 - i) / 15`` of the first ``min(15, depth)`` results, shape (min(15, depth),)."""
    return (RWP_DEPTH - np.arange(min(RWP_DEPTH, depth))) / RWP_DEPTH


def _score_relevance(
    relevant: np.ndarray, relevant_hits: np.ndarray | None, n_relevant: np.ndarray, ks: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """All scores from a (possibly expected) relevance matrix.

    ``relevant`` is float (n, N): 0/1, or the probability that each position is relevant (tie groups);
    ``relevant_hits`` float (n, N) holds ``E[rel_i * hits_i]`` for AP (None: ``relevant * hits``, exact
    for 0/1 relevance); ``n_relevant`` int (n,) holds R per query. Returns float64 (n,) arrays keyed by
    column name, in :func:`score_columns` order.
    """
    depth = relevant.shape[1]
    hits = np.cumsum(relevant, axis=1)  # hits[:, i] = (expected) relevant results in the top i + 1
    if relevant_hits is None:
        relevant_hits = relevant * hits
    # Dividing by R = 0 gives the documented NaN (0 / 0) for recall, ndcg and ap; silence it here only.
    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = np.where(n_relevant > 0, n_relevant, np.nan)
        weights = _rwp_weights(depth)
        scores = {f"rwp@{RWP_DEPTH}": relevant[:, : len(weights)] @ weights / weights.sum()}
        scores |= {f"precision@{k}": hits[:, k - 1] / k for k in ks}
        scores |= {f"recall@{k}": hits[:, k - 1] / denominator for k in ks}
        discounts = _discounts(max(ks))
        scores |= {f"ndcg@{k}": relevant[:, :k] @ discounts[:k] / _ideal_dcg(n_relevant, k) for k in ks}
        scores["ap"] = (relevant_hits / np.arange(1, depth + 1)).sum(axis=1) / np.minimum(denominator, depth)
    return scores


def _tie_expectations(
    relevant: np.ndarray, distances: np.ndarray, tied_beyond: np.ndarray, tied_beyond_same: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``E[rel_i]`` and ``E[rel_i * hits_i]`` (n, N) over all orders of each tie group (see the module notes)."""
    n, depth = relevant.shape
    rel = relevant.astype(np.float64)
    starts = np.ones((n, depth), dtype=bool)
    starts[:, 1:] = distances[:, 1:] != distances[:, :-1]
    # One id per (query, group) over the whole matrix, so bincount sums each group at once.
    group = np.cumsum(starts, axis=1) - 1 + (np.arange(n) * depth)[:, None]
    size = np.bincount(group.ravel(), minlength=n * depth).astype(np.float64)
    n_rel = np.bincount(group.ravel(), weights=rel.ravel(), minlength=n * depth)
    last = group[:, -1]  # only the group at the cut can reach beyond the listed neighbours
    size[last] += tied_beyond
    n_rel[last] += tied_beyond_same
    g, r = size[group], n_rel[group]
    expected = r / g
    position = np.arange(depth)
    start = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    before = np.take_along_axis(np.cumsum(rel, axis=1) - rel, start, axis=1)  # relevant in earlier groups
    with np.errstate(invalid="ignore", divide="ignore"):
        both = np.where(g > 1, r * (r - 1) / (g * (g - 1)), 0.0)
    return expected, expected * (before + 1.0) + (position - start) * both


def _expected_scores(
    n_relevant: np.ndarray, n_candidates: int, depth: int, ks: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Closed-form expected scores of a random ranking (see :func:`random_baseline`).

    ``n_relevant`` int (n_classes,) holds R per class, ``n_candidates`` is M = n_images - 1 and ``depth`` N;
    returns float64 (n_classes,) arrays keyed by column name, in :func:`score_columns` order.
    """
    r = n_relevant.astype(np.float64)
    p = r / n_candidates
    # With M == 1 no pair of positions exists (and R <= 1 makes the numerator 0 anyway).
    q = r * (r - 1) / (n_candidates * (n_candidates - 1)) if n_candidates > 1 else np.zeros_like(r)
    undefined = np.where(n_relevant > 0, 1.0, np.nan)  # NaN where R == 0, as for the query scores
    harmonic = np.sum(1.0 / np.arange(1, depth + 1))
    discounts = np.cumsum(_discounts(max(ks)))
    scores = {f"rwp@{RWP_DEPTH}": p}
    scores |= {f"precision@{k}": p for k in ks}
    scores |= {f"recall@{k}": undefined * (k / n_candidates) for k in ks}
    scores |= {f"ndcg@{k}": p * discounts[k - 1] / _ideal_dcg(n_relevant, k) for k in ks}
    with np.errstate(invalid="ignore", divide="ignore"):
        scores["ap"] = (p * harmonic + q * (depth - harmonic)) / np.minimum(r, depth) * undefined
    return scores


def _with_all_row(per_class: pd.DataFrame, overall: pd.Series) -> pd.DataFrame:
    """Stack class rows and the ``__all__`` row; the index becomes strings so parquet can store it."""
    per_class.index = per_class.index.map(str)
    table = pd.concat([per_class, overall.to_frame(ALL_LABEL).T[per_class.columns]])
    table.index.name = "label"
    return table.astype({"n_queries": np.int64})
