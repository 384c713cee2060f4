"""The tables of a dataset, built from the artifact index and the score and duplicate files.

Comparison tables carry each mean score's 95 % bootstrap interval over queries (``<score> low`` and
``<score> high`` columns) where the artifacts hold one; artifacts written before intervals were stored
simply lack those columns. :func:`compare_to_best` tests each model's best layer against the best
configuration query by query; :func:`answer` finds the best configuration and the cheapest one that the paired
test cannot tell from it; :func:`family_table` sets each model's parameters beside its best score. Duplicates
and label issues are in ``playground.duplicate_tables``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from playground.store import MissingArtifact, Store
from precompute.schema import ModelCost

# Two parameter counts of one model, named the same way in every table and chart (issue #24): the network the model
# runs (up to its deepest computed layer: what the size chart plots) and the whole model it was cut from.
PARAMS_RUN = "parameters run"
PARAMS_WHOLE = "parameters (whole model)"
COST_COLUMNS = {
    "n_params": PARAMS_WHOLE,
    "gflops_per_image": "GFLOPs/image",
    "ms_per_image": "ms/image",
    "images_per_second": "images/s",
}
# Per model only (cost_table): the size of what runs (the .tflite file on LiteRT, so a float16/int8 variant
# shows its 2x/4x smaller file) and the runtime that measured the speed.
MODEL_COST_COLUMNS = {"model_mb": "model MB", "runtime": "runtime"}


# Cost of the network up to a layer (the sub-model that computes it), from the layer's index entry.
LAYER_COST_COLUMNS = {"gflops": "layer GFLOPs", "n_params": "layer parameters"}
# Besides the cheapest configuration the paired test cannot tell from the best, the answer names the cheapest one
# that reaches this share of the best score (when it is cheaper still).
NEAR_BEST_SHARE = 0.95
# The trade-off line names the cheapest configuration that reaches this share of the best score, when no cheaper
# one reaches NEAR_BEST_SHARE (issue #24: "93 % of the best rwp@15 at 45 % of its GFLOPs").
TRADE_OFF_SHARE = 0.9


# What compare_to_best says of a model.
BEST, NOT_DISTINGUISHABLE, BELOW, ABOVE = "best", "not distinguishable", "below", "above"
NOT_COMPARABLE = "not comparable"
# What a paired test adds to a row (NaN for the best itself and where not comparable).
_TEST_COLUMNS = ("difference", "difference low", "difference high", "p_value", "n_queries")


def interval_columns(score: str) -> tuple[str, str]:
    """Names of the columns holding the bounds of ``score``'s bootstrap interval."""
    return f"{score} low", f"{score} high"


def summary_table(store: Store, dataset: str) -> pd.DataFrame:
    """One row per computed (model, layer, metric) with every summary score and the model's costs.

    Columns: model, layer, order, dim, metric, the summary scores (rwp@15, precision@k, ..., ap; none
    for an unlabeled dataset), each followed by ``<score> low`` and ``<score> high``, the bounds of its
    95 % bootstrap interval over queries (only where the artifacts hold intervals; NaN for a row without
    one), then parameters, GFLOPs/image, ms/image, images/s of the whole model.
    """
    rows = []
    for model in store.models(dataset):
        cost = store.model(dataset, model).cost
        for layer in store.layers(dataset, model):
            layer_entry = store.layer(dataset, model, layer)
            for metric, result in layer_entry.metrics.items():
                summary = {k: v for k, v in (result.summary or {}).items() if k != "n_queries"}
                for name, bounds in (result.summary_ci or {}).items():
                    if name in summary and bounds is not None and len(bounds) == 2:
                        summary.update(zip(interval_columns(name), (_as_float(v) for v in bounds), strict=True))
                row = {
                    "model": model,
                    "layer": layer,
                    "order": layer_entry.position,
                    "dim": layer_entry.dim,
                    "metric": metric,
                    **summary,
                }
                row.update({label: cost.value(key) for key, label in COST_COLUMNS.items()})
                rows.append(row)
    return _order_columns(pd.DataFrame(rows))


def _order_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Each score followed by its interval bounds, costs last (rows without intervals would put them last)."""
    fixed = ["model", "layer", "order", "dim", "metric"]
    columns = [c for c in fixed if c in table.columns]
    for name in score_names(table):
        columns += [name] + [c for c in interval_columns(name) if c in table.columns]
    columns += [c for c in COST_COLUMNS.values() if c in table.columns]
    return table[columns]


def _as_float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def score_names(table: pd.DataFrame) -> list[str]:
    """Score columns of a summary table, in their stored order (interval bounds excluded)."""
    fixed = {"model", "layer", "order", "dim", "metric", *COST_COLUMNS.values()}
    scores = [c for c in table.columns if c not in fixed]
    bounds = {column for name in scores for column in interval_columns(name)}
    return [c for c in scores if c not in bounds]


def _with_bounds(table: pd.DataFrame, score: str) -> list[str]:
    """``score`` and, when the table holds them, its interval columns."""
    return [score] + [c for c in interval_columns(score) if c in table.columns]


def layer_scores(table: pd.DataFrame, metric: str, score: str) -> pd.DataFrame:
    """Rows of one metric: model, layer, order, score value (and its interval bounds when stored), sorted by
    model then network order."""
    if table.empty or score not in table.columns:
        return pd.DataFrame(columns=["model", "layer", "order", score])
    part = table[table["metric"] == metric][["model", "layer", "order", *_with_bounds(table, score)]]
    model_rank = {model: i for i, model in enumerate(dict.fromkeys(table["model"]))}  # the index's model order
    part = part.assign(_rank=part["model"].map(model_rank)).sort_values(["_rank", "order"], kind="stable")
    return part.drop(columns="_rank").reset_index(drop=True)


def best_layers(table: pd.DataFrame, metric: str, score: str) -> pd.DataFrame:
    """Each model's best layer under ``metric`` by ``score``: index model, columns layer and score (and the
    score's interval bounds when stored)."""
    part = layer_scores(table, metric, score).dropna(subset=[score])
    if part.empty:
        return pd.DataFrame(columns=["layer", score])
    best = part.loc[part.groupby("model", sort=False)[score].idxmax()]
    return best.set_index("model")[["layer", *_with_bounds(part, score)]]


def metric_model_table(table: pd.DataFrame, score: str, intervals: bool = False) -> pd.DataFrame:
    """Best ``score`` over layers for each metric (rows) and model (columns); NaN where not computed.

    With ``intervals``, each model column is followed by ``<model> low`` and ``<model> high``: the interval
    of the layer that scored best (only when the table holds intervals).
    """
    if table.empty or score not in table.columns:
        return pd.DataFrame()
    models = list(dict.fromkeys(table["model"]))
    scored = table.dropna(subset=[score])
    best = scored.loc[scored.groupby(["metric", "model"], sort=False)[score].idxmax()]
    pivot = best.pivot(index="metric", columns="model", values=score)
    pivot = pivot.reindex(index=list(dict.fromkeys(table["metric"])), columns=models)
    pivot.columns.name = "model"
    low, high = interval_columns(score)
    if not intervals or low not in table.columns:
        return pivot
    bounds = {bound: best.pivot(index="metric", columns="model", values=bound).reindex_like(pivot)
              for bound in (low, high)}
    columns = {}
    for model in models:
        columns[model] = pivot[model]
        columns.update(zip(interval_columns(model), (bounds[low][model], bounds[high][model]), strict=True))
    return pd.DataFrame(columns, index=pivot.index)


def _summary(store: Store, dataset: str, summary: pd.DataFrame | None) -> pd.DataFrame:
    """``summary`` when the caller built it already (one render builds it once), else :func:`summary_table`."""
    return summary_table(store, dataset) if summary is None else summary


def class_breakdown(store: Store, dataset: str, metric: str, score: str, summary: pd.DataFrame | None = None,
                    best: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-class ``score`` of each model at its best layer (columns ``model (layer)``) and of a random ranking.

    Rows are the classes (from ``summarize_scores`` of each best layer's per-query scores). ``summary`` (the
    dataset's :func:`summary_table`) and ``best`` (its :func:`best_layers` under ``metric`` and ``score``) may be
    passed when already built.
    """
    if best is None:
        best = best_layers(_summary(store, dataset, summary), metric, score)
    columns = {}
    for model, row in best.iterrows():
        try:
            summary = store.class_summary(dataset, model, row["layer"], metric)
        except MissingArtifact:
            continue
        if summary is not None and score in summary.columns:
            columns[f"{model} ({row['layer']})"] = summary[score].drop("__all__", errors="ignore")
    baseline = store.baseline(dataset)
    if baseline is not None and score in baseline.columns:
        columns["random"] = baseline[score].drop("__all__", errors="ignore")
    return pd.DataFrame(columns)


def cost_table(store: Store, dataset: str, metric: str, score: str, summary: pd.DataFrame | None = None,
               best: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per model: its costs beside its best layer and score under ``metric`` (with ``best <score> low`` and
    ``best <score> high`` where intervals are stored). ``summary`` and ``best`` as in :func:`class_breakdown`."""
    if best is None:
        table = _summary(store, dataset, summary)
        best = best_layers(table, metric, score) if score in table.columns else pd.DataFrame()
    rows = []
    for model in store.models(dataset):
        entry = store.model(dataset, model)
        cost = entry.cost
        row = {"model": model, "weights": entry.weights.source if entry.weights else "",
               PARAMS_RUN: _network_parameters(store, dataset, model)}
        row.update({label: cost.value(key) for key, label in COST_COLUMNS.items()})
        # Older indexes lack these: the model ran as its Keras weights.
        fallback = {"model_mb": cost.weights_mb, "runtime": "keras"}
        row.update({label: fallback[key] if cost.value(key) is None else cost.value(key)
                    for key, label in MODEL_COST_COLUMNS.items()})
        if model in best.index:
            row["best layer"] = best.loc[model, "layer"]
            row[f"best {score}"] = best.loc[model, score]
            for bound, name in zip(interval_columns(score), interval_columns(f"best {score}"), strict=True):
                if bound in best.columns:
                    row[name] = best.loc[model, bound]
        rows.append(row)
    table = pd.DataFrame(rows)
    # The answer first: the best layer and score right after the model, the costs after them (at 1000 px the
    # score column was behind a horizontal scroll, issue #24).
    first = [c for c in ("model", "best layer", f"best {score}", *interval_columns(f"best {score}"))
             if c in table.columns]
    return table[first + [c for c in table.columns if c not in first]]


def best_configuration(table: pd.DataFrame, score: str) -> pd.Series | None:
    """The summary-table row with the highest ``score`` over every model, layer and metric (None if unscored)."""
    if table.empty or score not in table.columns or table[score].isna().all():
        return None
    return table.loc[table[score].idxmax()]


def compare_to_best(store: Store, dataset: str, metric: str, score: str, summary: pd.DataFrame | None = None,
                    best_per_model: pd.DataFrame | None = None) -> tuple[pd.Series | None, pd.DataFrame]:
    """Each model's best layer under ``metric`` against the best configuration, tested query by query.

    The best configuration is the (model, layer, metric) with the highest mean ``score`` over the whole
    summary table. Each model's best layer is compared with it by
    :func:`precompute.stats.paired_comparison` on their per-query scores (best minus model, the same
    queries): the 95 % paired bootstrap interval of the mean difference and Wilcoxon's p-value. No
    correction for making several comparisons is applied.

    Returns
    -------
    best : pd.Series or None
        The best configuration's summary-table row (None when nothing is scored).
    verdicts : pd.DataFrame
        One row per model that has a scored layer under ``metric``, in the index's model order. Columns:
        model, layer, metric, ``score``, its interval bounds (when stored), ``verdict`` (``BEST``,
        ``NOT_DISTINGUISHABLE``, ``BELOW``, ``NOT_COMPARABLE``, or ``ABOVE``: better than the best query by
        query, possible only when NaN scores leave the two on different queries), ``difference``, ``difference low``,
        ``difference high``, ``p_value``, ``n_queries`` (NaN for the best itself and where not comparable).

    ``summary`` and ``best_per_model`` (:func:`best_layers` under ``metric``) may be passed when already built.
    """
    table = _summary(store, dataset, summary)
    best = best_configuration(table, score)
    if best is None:
        return None, pd.DataFrame(columns=["model", "layer", "metric", score, "verdict"])
    reference = (best["model"], best["layer"], best["metric"])
    rows = []
    if best_per_model is None:
        best_per_model = best_layers(table, metric, score)
    for model, row in best_per_model.iterrows():
        out = {"model": model, "layer": row["layer"], "metric": metric, **row.drop("layer").to_dict()}
        out.update(dict.fromkeys(_TEST_COLUMNS, np.nan))
        if (model, row["layer"], metric) == reference:
            out["verdict"] = BEST
        else:
            out.update(_paired(store, dataset, reference, (model, row["layer"], metric), score))
        rows.append(out)
    return best, pd.DataFrame(rows)


def _paired(store: Store, dataset: str, best: tuple[str, str, str], other: tuple[str, str, str], score: str
            ) -> dict[str, Any]:
    try:
        result = store.paired_comparison(dataset, best, other, score)
    except (MissingArtifact, ValueError):  # a missing scores file; no query with a finite score in both
        result = None
    if result is None:
        return {"verdict": NOT_COMPARABLE, **dict.fromkeys(_TEST_COLUMNS, np.nan)}
    low, high = result["ci"]
    return {
        "verdict": NOT_DISTINGUISHABLE if not result["distinguishable"] else BELOW if low > 0 else ABOVE,
        "difference": result["mean_difference"],
        "difference low": low,
        "difference high": high,
        "p_value": result["p_value"],
        "n_queries": result["n_queries"],
    }


def configurations(store: Store, dataset: str, score: str, summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every scored (model, layer, metric) with the cost of computing its layer, cheapest first.

    Columns: those of :func:`summary_table`, then ``layer GFLOPs`` and ``layer parameters``: the FLOPs per image
    and the parameters of the network up to that layer (as precompute measured the layer's sub-model; the whole
    model's figures where an older index lacks them). Rows are sorted by layer GFLOPs, then layer parameters, then
    ``score`` from high to low (so the best metric of a layer comes first); rows without a cost come last.
    ``summary``: the dataset's :func:`summary_table`, when already built.
    """
    table = _summary(store, dataset, summary)
    if table.empty or score not in table.columns:
        return table.assign(**{column: pd.Series(dtype=float) for column in LAYER_COST_COLUMNS.values()})
    costs = []
    for model in dict.fromkeys(table["model"]):
        whole = store.model(dataset, model).cost
        for layer in store.layers(dataset, model):
            entry = store.layer(dataset, model, layer)
            costs.append({"model": model, "layer": layer,
                          "layer GFLOPs": _as_float(whole.gflops_per_image if entry.gflops is None else entry.gflops),
                          "layer parameters": _as_float(whole.n_params if entry.n_params is None else entry.n_params)})
    table = table.dropna(subset=[score]).merge(pd.DataFrame(costs), on=["model", "layer"], how="left")
    return table.sort_values(["layer GFLOPs", "layer parameters", score], ascending=[True, True, False],
                             na_position="last", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Answer:
    """What the Compare view answers first: the best configuration, and the cheapest one as good as it.

    Attributes
    ----------
    score : str
        The score compared (e.g. ``rwp@15``).
    best : pd.Series
        The best configuration's row of :func:`configurations` (model, layer, metric, the score, its interval
        bounds when stored, layer GFLOPs and parameters).
    baseline : float or None
        The score of a random ranking (exact expectation), None when not stored.
    model_cost : precompute.schema.ModelCost
        The best model's cost entry of the index (``ms_per_image``, ``layers_in_pass``, ...).
    cheapest : pd.Series
        The cheapest configuration that the paired test cannot tell from the best (or the best itself when
        every cheaper one is below it), with ``verdict``, ``difference``, ``difference low``, ``difference high``,
        ``p_value`` and ``n_queries`` as in :func:`compare_to_best`.
    near : pd.Series or None
        The cheapest configuration whose mean score reaches ``share`` x the best's, when it is cheaper than
        ``cheapest``; with the same test columns.
    share : float
        The share of the best score that ``near`` reaches at least.
    n_tested : int
        Paired tests run to find ``cheapest``.
    n_ruled_out : int
        Cheaper configurations found below the best without a test (:func:`_clearly_below`).
    """

    score: str
    best: pd.Series
    baseline: float | None
    model_cost: ModelCost
    cheapest: pd.Series
    near: pd.Series | None
    share: float
    n_tested: int
    n_ruled_out: int = 0
    trade_off: pd.Series | None = None

    @property
    def multiple_of_random(self) -> float | None:
        """The best score as a multiple of a random ranking's (None without a positive baseline)."""
        if self.baseline is None or not np.isfinite(self.baseline) or self.baseline <= 0:
            return None
        return float(self.best[self.score]) / self.baseline


def answer(store: Store, dataset: str, score: str, share: float = NEAR_BEST_SHARE,
           summary: pd.DataFrame | None = None) -> Answer | None:
    """The best configuration over every model, layer and metric, and the cheapest one as good as it.

    The cheapest is searched in the order of :func:`configurations` (layer GFLOPs, then layer parameters): each
    configuration is compared with the best by :func:`precompute.stats.paired_comparison` on the per-query scores,
    and the first whose 95 % interval of the difference contains 0 (``NOT_DISTINGUISHABLE``; or ``ABOVE``) is the
    answer. The best itself ends the search, so a best that every cheaper configuration falls below is its own
    answer. A configuration whose mean lies further below the best's than both intervals are wide together is
    below it without a test (:func:`_clearly_below`): on big datasets a test costs seconds. The tests are cached
    by the store, so a second call costs little. No correction is made for the
    several comparisons: with many cheap configurations, one may pass by chance (each test has a 5 % false
    "not distinguishable" rate only when the two are equal; a worse one passes more rarely the worse it is).

    Parameters
    ----------
    store, dataset
        Where the artifacts are.
    score : str
        A score column of :func:`summary_table` (e.g. ``rwp@15``).
    share : float in (0, 1]
        ``Answer.near`` is the cheapest configuration whose mean score is at least ``share`` x the best's.
    summary : pd.DataFrame, optional
        The dataset's :func:`summary_table`, when already built.

    Returns
    -------
    Answer or None
        None when nothing is scored (an unlabeled dataset, or ``score`` not stored).
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}.")
    table = configurations(store, dataset, score, summary)
    if table.empty or score not in table.columns:
        return None
    best = table.loc[table[score].idxmax()]
    reference = (best["model"], best["layer"], best["metric"])
    cheapest, near, n_tested, n_ruled_out, trade = None, None, 0, 0, None
    for position, row in table.iterrows():
        key = (row["model"], row["layer"], row["metric"])
        if near is None and row[score] >= share * best[score] and key != reference:
            near = position
        if trade is None and row[score] >= TRADE_OFF_SHARE * best[score] and key != reference:
            trade = position
        if key == reference:
            cheapest = pd.concat([row, pd.Series({"verdict": BEST, **dict.fromkeys(_TEST_COLUMNS, np.nan)})])
            break
        if _clearly_below(row, best, score):
            n_ruled_out += 1
            continue
        result = _paired(store, dataset, reference, key, score)
        n_tested += 1
        if result["verdict"] in (NOT_DISTINGUISHABLE, ABOVE):
            cheapest = pd.concat([row, pd.Series(result)])
            break
    if near is not None and not _cheaper(table.loc[near], cheapest):
        near = None  # it would repeat the answer above, or name a configuration that costs as much
    if near is not None:
        row = table.loc[near]
        near_row = pd.concat([row, pd.Series(_paired(store, dataset, reference,
                                                     (row["model"], row["layer"], row["metric"]), score))])
    else:
        near_row = None
    trade_row = None
    if trade is not None and _cheaper(table.loc[trade], best):
        row = table.loc[trade]
        trade_row = pd.concat([row, pd.Series(_paired(store, dataset, reference,
                                                      (row["model"], row["layer"], row["metric"]), score))])
    baseline = store.baseline_summary(dataset).get(score)
    return Answer(score=score, best=best, baseline=None if baseline is None else float(baseline),
                  model_cost=store.model(dataset, best["model"]).cost, cheapest=cheapest,
                  near=near_row, share=share, n_tested=n_tested, n_ruled_out=n_ruled_out, trade_off=trade_row)


def _clearly_below(row: pd.Series, best: pd.Series, score: str) -> bool:
    """Whether the paired test is certain to put ``row`` below ``best``, judging by their intervals alone.

    True when the gap between the means exceeds the sum of the widths of the two 95 % intervals, i.e. twice the
    sum of their half-widths. The standard deviation of per-query differences is at most the sum of the two
    standard deviations (the triangle inequality), so the paired interval's half-width is at most about the sum
    of the two half-widths: a gap of twice that keeps the paired interval clear of 0 with a factor 2 to spare for
    the bootstrap's noise and skew. False when either interval is not stored.
    """
    low, high = interval_columns(score)
    if low not in row.index or high not in row.index:
        return False
    widths = (best[high] - best[low], row[high] - row[low])
    if any(pd.isna(w) for w in widths):
        return False
    return bool(best[score] - row[score] > sum(widths))


def _cheaper(a: pd.Series, b: pd.Series) -> bool:
    """Whether configuration ``a`` costs strictly less than ``b`` (layer GFLOPs, then layer parameters)."""
    cost_a = (a["layer GFLOPs"], a["layer parameters"])
    cost_b = (b["layer GFLOPs"], b["layer parameters"])
    if any(pd.isna(v) for v in (*cost_a, *cost_b)):
        return False
    return cost_a < cost_b


def model_family(store: Store, dataset: str, model: str) -> str:
    """The curve a model belongs to in the family figure: its backbone's ``family`` (EfficientNet-Lite for
    Lite0/1/2) with the same weights, else the model on its own. Other weights (random, nsfwjs) make another
    family, named with them: ``EfficientNet-Lite (random)``."""
    from precompute.backbones import BACKBONES

    entry = store.model(dataset, model)
    backbone = BACKBONES.get(entry.backbone)
    if backbone is None or backbone.family is None:
        return model
    source = entry.weights.source if entry.weights else ""
    return backbone.family if source in ("imagenet", "file", "") else f"{backbone.family} ({source})"


def family_table(store: Store, dataset: str, score: str, summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each model's best configuration over every layer and metric, beside its size, for the family figure.

    Columns: model, family (:func:`model_family`), parameters, layer, metric, ``score`` and its interval bounds
    (when stored), in the index's model order. ``parameters`` counts the network the model runs: up to its
    deepest computed layer (the most parameters of any of its layers' sub-models; the whole model's count where
    an older index lacks them). That is the whole network for ImageNet models read up to ``top_conv``, and only
    the ImageNet-frozen part of an nsfwjs model. Empty when nothing is scored. ``summary``: the dataset's
    :func:`summary_table`, when already built.
    """
    table = _summary(store, dataset, summary)
    columns = ["model", "family", "parameters", "layer", "metric", score]
    if table.empty or score not in table.columns or table[score].isna().all():
        return pd.DataFrame(columns=columns)
    scored = table.dropna(subset=[score])
    best = scored.loc[scored.groupby("model", sort=False)[score].idxmax()]
    best = best[["model", "layer", "metric", *_with_bounds(table, score)]].reset_index(drop=True)
    best.insert(1, "family", [model_family(store, dataset, model) for model in best["model"]])
    best.insert(2, "parameters", [_network_parameters(store, dataset, model) for model in best["model"]])
    best[PARAMS_WHOLE] = [_as_float(store.model(dataset, model).cost.n_params) for model in best["model"]]
    return best


def significant(value: Any, digits: int = 3) -> str:
    """A measured figure to ``digits`` significant digits, with thousands separators: timings vary by more than
    their fourth digit between runs (``10.950`` -> ``"10.9"``, ``7259.68`` -> ``"7,260"``); "—" for none.

    >>> significant(10.950), significant(6.307), significant(7259.68), significant(0.01234), significant(None)
    ('10.9', '6.31', '7,260', '0.0123', '—')
    """
    number = _as_float(value)
    if not np.isfinite(number):
        return "—"
    if number == 0:
        return "0"
    decimals = digits - 1 - int(np.floor(np.log10(abs(number))))
    return f"{round(number, decimals):,.{max(decimals, 0)}f}"


def _network_parameters(store: Store, dataset: str, model: str) -> float:
    counts = [store.layer(dataset, model, layer).n_params for layer in store.layers(dataset, model)]
    counts = [c for c in counts if c is not None]
    return float(max(counts)) if counts else _as_float(store.model(dataset, model).cost.n_params)
