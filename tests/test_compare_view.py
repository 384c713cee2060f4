"""The Compare view's rendering (playground/views/compare.py): the answer and the verdicts in words, intervals,
winners in bold, and a chart's click opening Search."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from playground.state import parse_url, resolve_selection
from playground.tables import cost_table, summary_table
from playground.views.compare import (
    COMPARE_COST_GRAPH,
    COMPARE_FAMILY_GRAPH,
    COMPARE_HEATMAP,
    COMPARE_LAYERS,
    render_compare,
)
from tests.helpers import find_class, text_of

PIXELS, LITE = "pixels", "efficientnet-lite0-random"


def test_compare_of_an_unlabeled_dataset_shows_costs_only(store):
    sel = resolve_selection(store, {"view": "compare", "dataset": "shapes-flat"})
    out = render_compare(store, sel, "rwp@15")
    assert out["score"] is None and out["cost"] is not None
    assert "no labels" in text_of(out["message"])


def test_verdicts_in_words():
    from playground.tables import ABOVE, BELOW, BEST, NOT_COMPARABLE, NOT_DISTINGUISHABLE
    from playground.views.compare import render_verdicts, verdict_text

    def row(model, verdict, difference=np.nan, low=np.nan, high=np.nan, p=np.nan):
        return {
            "model": model,
            "layer": "l",
            "metric": "cosine",
            "rwp@15": 0.4,
            "rwp@15 low": 0.35,
            "rwp@15 high": 0.45,
            "verdict": verdict,
            "difference": difference,
            "difference low": low,
            "difference high": high,
            "p_value": p,
            "n_queries": 200,
        }

    verdicts = pd.DataFrame(
        [
            row("a", BEST),
            row("b", NOT_DISTINGUISHABLE, 0.012, -0.01, 0.034, 0.27),
            row("c", BELOW, 0.052, 0.031, 0.074, 0.00031),
            row("d", NOT_COMPARABLE),
            row("e", ABOVE, -0.05, -0.07, -0.03, 0.001),
        ]
    )
    texts = [verdict_text(r) for _, r in verdicts.iterrows()]
    assert texts[0] == "best"
    assert texts[1] == "not distinguishable from the best (difference 0.012 [-0.010, 0.034], p = 0.27)"
    assert texts[2] == "below the best (difference 0.052 [0.031, 0.074], p = 0.00031)"
    assert texts[3].startswith("not comparable")
    assert texts[4] == "above the best on the queries both scored (difference -0.050 [-0.070, -0.030], p = 0.001)"
    best = pd.Series(
        {"model": "a", "layer": "l", "metric": "cosine", "rwp@15": 0.388, "rwp@15 low": 0.351, "rwp@15 high": 0.425}
    )
    headline, table = render_verdicts(best, verdicts, "cosine", "rwp@15")
    assert text_of(headline) == (
        "Best by rwp@15: a / l / cosine, 0.388 [0.351, 0.425] (95 % bootstrap interval over queries). "
        "Not distinguishable from it: b (l). Below it: c."
    )
    assert "0.400 [0.350, 0.450]" in text_of(table)
    only = render_verdicts(best, verdicts.iloc[:1], "cosine", "rwp@15")[0]
    assert text_of(only).endswith("It is the only model.")


def test_compare_view_shows_intervals_and_the_paired_test(trust):
    store, _ = trust
    sel = resolve_selection(store, {"view": "compare", "dataset": "shapes", "metric": "cosine"})
    out = render_compare(store, sel, "rwp@15")
    headline = text_of(out["headline"])
    best = summary_table(store, "shapes").sort_values("rwp@15").iloc[-1]
    assert headline.startswith(f"Best by rwp@15: {best['model']} / {best['layer']} / {best['metric']}, ")
    assert f"{best['rwp@15']:.3f} [{best['rwp@15 low']:.3f}, {best['rwp@15 high']:.3f}]" in headline
    verdicts = text_of(out["verdicts"])
    assert "best" in verdicts and ("below the best (difference" in verdicts or "not distinguishable" in verdicts)
    assert re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", text_of(out["table"]))  # metric x model table
    assert re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", text_of(out["cost"]))
    lines = [trace for trace in out["layers"].data if trace.mode == "lines+markers"]
    rows = summary_table(store, "shapes").query("model == 'pixels' and metric == 'cosine'").sort_values("order")
    assert list(lines[0].error_y.array) == pytest.approx((rows["rwp@15 high"] - rows["rwp@15"]).tolist())
    assert list(lines[0].error_y.arrayminus) == pytest.approx((rows["rwp@15"] - rows["rwp@15 low"]).tolist())
    assert out["cost_figure"].data[0].error_y.array is not None


def test_compare_of_a_single_configuration_names_it(trust, artifacts_copy):
    index = json.loads((artifacts_copy / "index.json").read_text())
    models = index["datasets"]["shapes"]["models"]
    del models[LITE]
    layers = models[PIXELS]["layers"]
    for name in ("pixels_16x16", "pixels_32x32"):
        del layers[name]
    layers["pixels_8x8"]["metrics"] = {"cosine": layers["pixels_8x8"]["metrics"]["cosine"]}
    (artifacts_copy / "index.json").write_text(json.dumps(index))
    store, _ = trust
    out = render_compare(store, resolve_selection(store, {"view": "compare", "dataset": "shapes"}), "rwp@15")
    assert "pixels / pixels_8x8 / cosine" in text_of(out["headline"])
    assert text_of(out["headline"]).endswith("It is the only model.")


def test_answer_in_words():
    from playground.tables import BEST, NOT_DISTINGUISHABLE, Answer
    from playground.views.compare import percent_of, render_answer, share_words
    from precompute.schema import ModelCost

    assert [share_words(r) for r in (0.5, 0.34, 0.25, 0.42, 0.95)] == [
        "half the",
        "a third of the",
        "a quarter of the",
        "42 % of the",
        "95 % of the",
    ]
    assert [percent_of(v, 1.0) for v in (0.97, 0.996, 1.0)] == ["97 %", "99.6 %", "100 %"]
    best = pd.Series(
        {
            "model": "efficientnet-lite2",
            "layer": "top_conv",
            "metric": "cosine",
            "rwp@15": 0.4,
            "rwp@15 low": 0.37,
            "rwp@15 high": 0.43,
            "layer GFLOPs": 1.54,
            "layer parameters": 4.86e6,
        }
    )
    cheapest = pd.Series(
        {
            "model": "efficientnet-lite0",
            "layer": "top_conv",
            "metric": "cosine",
            "rwp@15": 0.388,
            "layer GFLOPs": 0.77,
            "layer parameters": 3.41e6,
            "verdict": NOT_DISTINGUISHABLE,
            "difference": 0.012,
            "difference low": -0.004,
            "difference high": 0.028,
            "p_value": 0.21,
            "n_queries": 200,
        }
    )
    result = Answer("rwp@15", best, 0.095, ModelCost(ms_per_image=41.23, layers_in_pass=8), cheapest, None, 0.95, 12)
    text = text_of(render_answer(result))
    assert "efficientnet-lite2 / top_conv / cosine, rwp@15 0.400 [0.370, 0.430], 4.2x a random ranking (0.095)" in text
    assert (
        "1.54 GFLOPs per image and 4.9M parameters up to top_conv; 41.2 ms/image for efficientnet-lite2's pass"
    ) in text
    assert (
        "efficientnet-lite0 / top_conv / cosine reaches 97 % of the best (0.388) at half the FLOPs (0.77 vs 1.54 "
        "GFLOPs) and 70 % of the parameters (3.4M vs 4.9M); the paired test cannot tell it from the best "
        "(difference 0.012 [-0.004, 0.028], p = 0.21)"
    ) in text
    alone = Answer(
        "rwp@15", best, None, ModelCost(), pd.concat([best, pd.Series({"verdict": BEST})]), None, 0.95, 30, 5
    )
    text = text_of(render_answer(alone))
    assert "random ranking" not in text and "falls below the best" in text
    assert "30 tested, 5 more clearly below by their intervals" in text
    assert render_answer(None) is None


def test_compare_view_opens_with_the_answer_and_the_family_figure(store):
    out = render_compare(store, resolve_selection(store, {"view": "compare", "dataset": "shapes"}), "rwp@15")
    text = text_of(out["answer"])
    assert text.startswith("Best: ") and "Its cost: " in text and "As good, cheaper: " in text
    assert [trace.name for trace in out["family"].data] == ["EfficientNet-Lite (random)"]
    flat = render_compare(store, resolve_selection(store, {"view": "compare", "dataset": "shapes-flat"}), None)
    assert flat["answer"] is None and "unlabeled" in flat["family"].layout.annotations[0].text


def test_compare_layers_are_named_per_model_and_winners_are_bold(store):
    from dash import html

    from playground.figures import MODEBAR_ROOM

    best = summary_table(store, "shapes").sort_values("rwp@15", kind="stable").iloc[-1]
    sel = resolve_selection(store, {"view": "compare", "dataset": "shapes", "metric": best["metric"]})
    out = render_compare(store, sel, "rwp@15")
    figure = out["layers"]
    lines = {trace.name: trace for trace in figure.data if trace.mode == "lines+markers"}
    assert list(lines) == [PIXELS, LITE]
    for model, trace in lines.items():  # Keras names in network order, each model on its own axis
        assert list(trace.x) == store.layers("shapes", model)
        axis = figure.layout["xaxis" if trace.xaxis == "x" else "xaxis" + trace.xaxis[1:]]
        assert axis.type == "category" and list(axis.categoryarray) == store.layers("shapes", model)
        assert sum(text.startswith("<b>") for text in axis.ticktext) == 1  # the model's best layer in bold
    assert lines[PIXELS].xaxis != lines[LITE].xaxis
    titles = [a.text for a in figure.layout.annotations if a.text in (PIXELS, LITE) or "★ best" in a.text]
    assert f"<b>{best['model']} ★ best</b>" in titles and len(titles) == 2
    stars = [trace for trace in figure.data if trace.mode == "markers+text"]
    assert all(text.startswith("<b>") for trace in stars for text in trace.text)
    # Every Compare figure's title sits below the toolbar's row.
    for name in ("layers", "heatmap", "cost_figure", "family"):
        title = out[name].layout.title
        assert title.yref == "container" and title.pad.t >= MODEBAR_ROOM and title.yanchor == "top", name
        assert out[name].layout.margin.t > MODEBAR_ROOM, name
    # Winners in bold in the tables: each model's best metric, the best model's row and cost.
    winners = find_class(out["table"], "winner")
    assert len(winners) == 2 and all(isinstance(cell.children, html.Strong) for cell in winners)
    assert best["model"] in text_of(find_class(out["verdicts"], "winner"))
    assert text_of(find_class(out["cost"], "winner")).startswith(best["model"])
    heat = out["heatmap"].data[0]
    assert all(sum("<b>" in text for text in row[:-1]) >= 1 for row in heat.text)  # a winner per class
    assert not any("<b>" in row[-1] for row in heat.text)  # never the random ranking


def test_a_click_on_a_compare_chart_opens_that_configuration_in_search(store):
    from playground.views.compare import search_target

    sel = resolve_selection(store, {"view": "compare", "dataset": "shapes", "metric": "euclidean", "query": 5, "k": 9})
    out = render_compare(store, sel, "rwp@15")

    def click(figure, trace, point):
        custom = figure.data[trace].customdata[point]
        return {"points": [{"curveNumber": trace, "pointNumber": point, "customdata": list(custom)}]}

    pathname, search = search_target(click(out["layers"], 0, 2), sel.to_dict())
    assert pathname == "/search"
    request = parse_url(pathname, search)
    assert request == {
        "view": "search",
        "dataset": "shapes",
        "model": PIXELS,
        "layer": "pixels_32x32",
        "metric": "euclidean",
        "query": "5",
        "k": "9",
    }
    opened = resolve_selection(store, request)
    assert (opened.view, opened.model, opened.layer, opened.metric, opened.query) == (
        "search",
        PIXELS,
        "pixels_32x32",
        "euclidean",
        5,
    ) and not opened.notices
    # The family figure's point carries its own best metric; the cost figure's and the heatmap's the bar's.
    family = out["family"].data[0]
    _, search = search_target(click(out["family"], 0, 0), sel.to_dict())
    assert f"model={family.customdata[0][0]}" in search and f"metric={family.customdata[0][2]}" in search
    _, search = search_target(click(out["cost_figure"], 0, 1), sel.to_dict())
    best_layer = cost_table(store, "shapes", "euclidean", "rwp@15").loc[1, "best layer"]
    assert f"model={LITE}&layer={best_layer}&metric=euclidean" in search
    heat = out["heatmap"].data[0]  # Dash's click data of a heatmap cell: its x and y, no customdata
    _, search = search_target({"points": [{"curveNumber": 0, "x": heat.x[0], "y": heat.y[0]}]}, sel.to_dict())
    assert f"model={PIXELS}&layer=" in search and "metric=euclidean" in search
    random_column = {"points": [{"curveNumber": 0, "x": heat.x[-1], "y": heat.y[0]}]}  # the random ranking's
    assert heat.x[-1] == "random" and search_target(random_column, sel.to_dict()) is None
    assert search_target(None, sel.to_dict()) is None and search_target({"points": []}, sel.to_dict()) is None
    assert search_target(click(out["layers"], 0, 0), None) is None  # no dataset selected


def test_compare_click_callback_writes_the_url(playground_artifacts):
    from playground import ids
    from playground.app import create_app

    app = create_app(playground_artifacts)
    clicks = [
        (key, c)
        for key, c in app.callback_map.items()
        if {i["id"] for i in c["inputs"]} == {COMPARE_LAYERS, COMPARE_FAMILY_GRAPH, COMPARE_COST_GRAPH, COMPARE_HEATMAP}
    ]
    assert len(clicks) == 1 and {i["property"] for i in clicks[0][1]["inputs"]} == {"clickData"}
    # Duplicate outputs (allow_duplicate) of the controller's URL: the URL is resolved like any link.
    assert clicks[0][0].startswith(f"..{ids.URL}.pathname@") and f"...{ids.URL}.search@" in clicks[0][0]


def test_compare_builds_each_derived_table_once_per_render(store, monkeypatch):
    from playground import tables

    calls = {"summary_table": 0, "best_layers": 0, "metric_model_table": 0}
    for name in calls:
        real = getattr(tables, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(tables, name, counted)
    render_compare(store, resolve_selection(store, {"view": "compare", "dataset": "shapes"}), "rwp@15")
    assert calls == {"summary_table": 1, "best_layers": 1, "metric_model_table": 1}
