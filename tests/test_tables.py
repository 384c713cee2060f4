"""The derived tables (playground/tables.py): the summary with costs and intervals, per-class scores, duplicate
pairs, the paired test against the best, and the answer (the cheapest configuration as good as the best)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from playground.state import resolve_selection
from playground.store import Store
from playground.tables import class_breakdown, cost_table, summary_table
from playground.views.compare import render_compare
from tests.helpers import text_of

PIXELS, LITE = "pixels", "efficientnet-lite0-random"


def test_summary_table_has_every_combination_and_costs(store):
    table = summary_table(store, "shapes")
    assert len(table) == (3 + len(store.layers("shapes", LITE))) * 4
    assert {"rwp@15", "ap", "parameters (whole model)", "GFLOPs/image", "ms/image", "images/s"} <= set(table.columns)


def test_class_breakdown_and_costs(store):
    breakdown = class_breakdown(store, "shapes", "cosine", "rwp@15")
    assert list(breakdown.index) == ["circle", "square", "triangle"]
    assert "random" in breakdown.columns and len(breakdown.columns) == 3
    costs = cost_table(store, "shapes", "cosine", "rwp@15")
    assert list(costs["model"]) == [PIXELS, LITE]
    assert costs.loc[1, "parameters (whole model)"] > 0


def test_duplicate_pairs_put_pairs_whose_labels_differ_first(trust):
    from playground.duplicate_tables import duplicate_pairs, duplicates_of

    store, pair = trust
    pairs = duplicate_pairs(store, "shapes", PIXELS, "pixels_8x8")
    assert list(zip(pairs["b"], pairs["kind"], strict=True)) == [
        (pair["other"], "near"),
        (pair["first"], "exact"),
        (pair["first"], "feature"),
        (pair["second"], "feature"),
    ]
    assert pairs["cross_class"].tolist() == [True, False, False, False]
    labels = store.labels("shapes")
    assert pairs.loc[0, "label_b"] == labels[pair["other"]] != pairs.loc[0, "label_a"]
    assert len(duplicate_pairs(store, "shapes")) == 2  # the dataset's hash pairs only
    partners = duplicates_of(pairs, pair["first"])
    assert list(partners) == [0] and [row["kind"] for row in partners[0]] == ["exact", "feature"]
    assert [row["kind"] for row in duplicates_of(pairs, 0)[pair["first"]]] == ["exact", "feature"]


def test_summary_table_carries_the_intervals(trust):
    from playground.tables import score_names

    store, _ = trust
    table = summary_table(store, "shapes")
    columns = list(table.columns)
    assert columns[columns.index("rwp@15") : columns.index("rwp@15") + 3] == ["rwp@15", "rwp@15 low", "rwp@15 high"]
    assert columns[-4:] == ["parameters (whole model)", "GFLOPs/image", "ms/image", "images/s"]
    assert "rwp@15 low" not in score_names(table) and "ap" in score_names(table)
    assert (table["rwp@15 low"] <= table["rwp@15"]).all() and (table["rwp@15"] <= table["rwp@15 high"]).all()
    entry = store.metric("shapes", PIXELS, "pixels_16x16", "euclidean").summary_ci["ap"]
    row = table[(table["layer"] == "pixels_16x16") & (table["metric"] == "euclidean")].iloc[0]
    assert [row["ap low"], row["ap high"]] == pytest.approx(entry)
    assert "rwp@15 low,rwp@15 high" in table.to_csv(index=False).splitlines()[0]  # the CSV download


def test_older_artifacts_have_no_interval_columns(old_store):
    from playground.tables import metric_model_table

    table = summary_table(old_store, "shapes")
    assert not [c for c in table.columns if c.endswith((" low", " high"))]
    assert list(metric_model_table(table, "rwp@15", intervals=True).columns) == [PIXELS, LITE]
    sel = resolve_selection(old_store, {"view": "compare", "dataset": "shapes"})
    out = render_compare(old_store, sel, "rwp@15")
    assert "no interval stored" in text_of(out["headline"])
    assert all(trace.error_y.array is None for trace in out["layers"].data)


def test_compare_to_best_runs_the_paired_test_on_per_query_scores(trust):
    from playground.tables import BELOW, BEST, NOT_DISTINGUISHABLE, compare_to_best
    from precompute.stats import paired_comparison

    store, _ = trust
    best, verdicts = compare_to_best(store, "shapes", "cosine", "rwp@15")
    table = summary_table(store, "shapes")
    assert best["rwp@15"] == table["rwp@15"].max()
    assert list(verdicts["model"]) == [PIXELS, LITE]
    reference = store.scores("shapes", best["model"], best["layer"], best["metric"])["rwp@15"]
    assert (verdicts["verdict"] == BEST).sum() <= 1
    for _, row in verdicts.iterrows():
        if (row["model"], row["layer"], "cosine") == (best["model"], best["layer"], best["metric"]):
            assert row["verdict"] == BEST
            continue
        other = store.scores("shapes", row["model"], row["layer"], "cosine")["rwp@15"]
        expected = paired_comparison(reference.to_numpy(), other.reindex(reference.index).to_numpy())
        assert row["difference"] == pytest.approx(expected["mean_difference"])
        assert [row["difference low"], row["difference high"]] == pytest.approx(expected["ci"])
        assert row["p_value"] == pytest.approx(expected["p_value"])
        assert row["verdict"] == (BELOW if expected["distinguishable"] else NOT_DISTINGUISHABLE)
        assert not expected["distinguishable"] or expected["ci"][0] > 0  # the best is not beaten


def _cost_order(store, dataset, score):
    """Every scored configuration with its layer's cost, cheapest first: an independent re-derivation."""
    rows = []
    for model in store.models(dataset):
        for layer in store.layers(dataset, model):
            entry = store.layer(dataset, model, layer)
            for metric, result in entry.metrics.items():
                rows.append(
                    (
                        (entry.gflops, entry.n_params, -result.summary[score]),
                        (model, layer, metric),
                        result.summary[score],
                    )
                )
    return [(key, value) for _, key, value in sorted(rows, key=lambda r: r[0])]


def test_configurations_are_ordered_by_the_cost_of_their_layer(store):
    from playground.tables import configurations

    table = configurations(store, "shapes", "rwp@15")
    assert len(table) == len(summary_table(store, "shapes")) == 44  # 3 + 8 layers x 4 metrics
    costs = table[["layer GFLOPs", "layer parameters"]].to_numpy()
    assert (np.diff(costs[:, 0]) >= 0).all()
    for (model, layer), part in table.groupby(["model", "layer"]):
        entry = store.layer("shapes", model, layer)
        assert (part["layer GFLOPs"] == entry.gflops).all() and (part["layer parameters"] == entry.n_params).all()
    assert (table.loc[table["model"] == PIXELS, "layer GFLOPs"] == 0).all()  # raw pixels: no network at all


def test_answer_is_the_cheapest_configuration_the_paired_test_cannot_tell_from_the_best(store):
    from playground.tables import BEST, NOT_DISTINGUISHABLE, answer
    from precompute.stats import paired_comparison

    result = answer(store, "shapes", "rwp@15")
    table = summary_table(store, "shapes")
    assert result.best["rwp@15"] == table["rwp@15"].max()
    reference = store.scores("shapes", result.best["model"], result.best["layer"], result.best["metric"])["rwp@15"]
    best_key = (result.best["model"], result.best["layer"], result.best["metric"])
    cheapest_key = (result.cheapest["model"], result.cheapest["layer"], result.cheapest["metric"])
    order = [key for key, _ in _cost_order(store, "shapes", "rwp@15")]
    n_cheaper = order.index(cheapest_key)
    assert result.n_tested + result.n_ruled_out == n_cheaper + (cheapest_key != best_key)
    assert n_cheaper <= order.index(best_key)
    for key in order[: order.index(cheapest_key)]:  # everything cheaper is below the best, query by query
        other = store.scores("shapes", *key)["rwp@15"]
        test = paired_comparison(reference.to_numpy(), other.reindex(reference.index).to_numpy())
        assert test["distinguishable"] and test["ci"][0] > 0, key
    if cheapest_key == best_key:
        assert result.cheapest["verdict"] == BEST and np.isnan(result.cheapest["difference"])
    else:
        assert result.cheapest["verdict"] == NOT_DISTINGUISHABLE
    baseline = store.baseline_summary("shapes")["rwp@15"]
    assert result.multiple_of_random == pytest.approx(result.best["rwp@15"] / baseline)
    assert result.model_cost == store.model("shapes", result.best["model"]).cost


def _clone_scores(root: Path, source: tuple[str, str, str], target: tuple[str, str, str], change) -> None:
    """Give configuration ``target`` the per-query rwp@15 of ``source`` passed through ``change``, its mean and a
    matching summary in the index: a cheap configuration whose relation to the best is known."""
    from precompute import artifacts as art
    from precompute.stats import bootstrap_ci

    scores = art.read_table(art.scores_path(root, "shapes", *source))
    scores["rwp@15"] = change(scores["rwp@15"].to_numpy())
    art.write_table(art.scores_path(root, "shapes", *target), scores)
    index = json.loads((root / "index.json").read_text())
    model, layer, metric = target
    entry = index["datasets"]["shapes"]["models"][model]["layers"][layer]["metrics"][metric]
    entry["summary"]["rwp@15"] = float(scores["rwp@15"].mean())
    entry["summary_ci"]["rwp@15"] = bootstrap_ci(scores["rwp@15"].to_numpy()).tolist()
    (root / "index.json").write_text(json.dumps(index))


def _best_key(store):
    best = summary_table(store, "shapes").sort_values("rwp@15", kind="stable").iloc[-1]
    return best["model"], best["layer"], best["metric"]


def test_answer_finds_a_cheap_copy_of_the_best(artifacts_copy):
    from playground.tables import NOT_DISTINGUISHABLE, answer
    from playground.views.compare import render_answer

    store = Store(artifacts_copy)
    best = _best_key(store)
    cheap = (PIXELS, "pixels_8x8", "euclidean")  # no network: 0 GFLOPs
    # The best's per-query scores, one query a little lower: the same configuration to any test on 24 queries.
    _clone_scores(artifacts_copy, best, cheap, lambda v: v - np.eye(1, len(v), int(np.argmax(v)))[0] * 0.01)
    result = answer(store, "shapes", "rwp@15")
    assert (result.best["model"], result.best["layer"], result.best["metric"]) == best
    assert (result.cheapest["model"], result.cheapest["layer"], result.cheapest["metric"]) == cheap
    assert result.cheapest["verdict"] == NOT_DISTINGUISHABLE and result.cheapest["difference low"] <= 0
    assert result.near is None  # the cheapest answer already is within 5 %
    text = text_of(render_answer(result))
    assert f"{PIXELS} / pixels_8x8 / euclidean reaches 99." in text and "% of the best" in text
    assert "with no network at all (0 GFLOPs against" in text and "the paired test cannot tell it" in text


def test_answer_names_a_cheaper_configuration_within_the_stated_share(artifacts_copy):
    from playground.tables import BELOW, NEAR_BEST_SHARE, answer

    store = Store(artifacts_copy)
    best = _best_key(store)
    cheap = (PIXELS, "pixels_8x8", "euclidean")
    # 2 % below the best on every query: distinguishable (the difference never varies), but within 5 %.
    _clone_scores(artifacts_copy, best, cheap, lambda v: v * 0.98)
    result = answer(store, "shapes", "rwp@15")
    assert result.share == NEAR_BEST_SHARE
    assert (result.near["model"], result.near["layer"], result.near["metric"]) == cheap
    assert result.near["verdict"] == BELOW
    assert result.near["rwp@15"] >= NEAR_BEST_SHARE * result.best["rwp@15"]
    with pytest.raises(ValueError, match="share must be in"):
        answer(store, "shapes", "rwp@15", share=1.5)


def test_clearly_below_needs_a_gap_wider_than_both_intervals():
    from playground.tables import _clearly_below

    best = pd.Series({"rwp@15": 0.40, "rwp@15 low": 0.37, "rwp@15 high": 0.43})  # width 0.06
    other = {"rwp@15 low": 0.0, "rwp@15 high": 0.0}
    for mean, width, expected in ((0.30, 0.04, False), (0.29, 0.04, True), (0.20, 0.2, False)):
        row = pd.Series({"rwp@15": mean, "rwp@15 low": mean - width / 2, "rwp@15 high": mean + width / 2})
        assert _clearly_below(row, best, "rwp@15") is expected, (mean, width)
    assert not _clearly_below(pd.Series({"rwp@15": 0.0}), best, "rwp@15")  # no interval stored: test it
    assert not _clearly_below(pd.Series({"rwp@15": 0.0, **other, "rwp@15 high": np.nan}), best, "rwp@15")


def test_family_table_and_figure(store):
    from playground.figures import family_figure
    from playground.tables import family_table, model_family

    table = family_table(store, "shapes", "rwp@15")
    summary = summary_table(store, "shapes")
    assert list(table["model"]) == [PIXELS, LITE]
    for _, row in table.iterrows():  # the best over every layer and metric of the model
        assert row["rwp@15"] == summary.loc[summary["model"] == row["model"], "rwp@15"].max()
        deepest = store.layers("shapes", row["model"])[-1]  # the network the model runs, up to its deepest layer
        assert row["parameters"] == store.layer("shapes", row["model"], deepest).n_params
    assert model_family(store, "shapes", LITE) == "EfficientNet-Lite (random)"  # untrained: not the ImageNet curve
    assert model_family(store, "shapes", PIXELS) == PIXELS

    made = pd.DataFrame(
        {
            "model": ["efficientnet-lite2", "efficientnet-lite0", "efficientnet-lite1", "mobilenetv2-nsfwjs", "pixels"],
            "family": ["EfficientNet-Lite"] * 3 + ["mobilenetv2-nsfwjs", "pixels"],
            "parameters": [4.87e6, 3.41e6, 4.19e6, 2.26e6, 0],
            "layer": ["top_conv"] * 3 + ["block_10_project", "pixels_16x16"],
            "metric": ["cosine"] * 5,
            "rwp@15": [0.42, 0.40, 0.41, 0.23, 0.16],
            "rwp@15 low": [0.39, 0.37, 0.38, 0.21, 0.14],
            "rwp@15 high": [0.45, 0.43, 0.44, 0.25, 0.17],
        }
    )
    fig = family_figure(made, "rwp@15", baseline=0.095)
    lite, mobilenet = fig.data
    assert lite.name == "EfficientNet-Lite" and lite.mode == "lines+markers+text"
    assert list(lite.x) == [3.41e6, 4.19e6, 4.87e6] and list(lite.y) == [0.40, 0.41, 0.42]  # smallest first
    assert list(lite.error_y.array) == pytest.approx([0.03] * 3)
    assert mobilenet.mode == "markers+text" and list(mobilenet.x) == [2.26e6]
    assert fig.layout.xaxis.type == "log"
    lines = sorted(shape.y0 for shape in fig.layout.shapes)  # pixels (no parameters) and random as lines
    assert lines == pytest.approx([0.095, 0.16])
    assert "No scores" in family_figure(made.iloc[:0], "rwp@15").layout.annotations[0].text
