"""Compare's Adapted section: the pure builders (playground/adapted.py), fast."""

from __future__ import annotations

import pandas as pd

from playground import adapted


def test_the_sentence_names_the_labels_the_scores_and_the_interval():
    rows = pd.DataFrame(
        [
            {
                "model": "a+head",
                "layer": "l",
                "labels": 200,
                "base precision@5": 0.503,
                "head precision@5": 0.592,
                "difference precision@5": 0.089,
                "interval precision@5": "[0.052, 0.127]",
            },
            {
                "model": "b+head",
                "layer": "l",
                "labels": 200,
                "base precision@5": 0.6,
                "head precision@5": 0.58,
                "difference precision@5": -0.02,
                "interval precision@5": "[-0.050, 0.010]",
            },
        ]
    )
    assert adapted.adapted_sentence(rows) == (
        "A head trained on your 200 labels (a+head, l) lifts held-out "
        "precision@5 from 0.50 to 0.59 (+0.09 [0.052, 0.127])."
    )
    assert adapted.adapted_sentence(pd.DataFrame()) is None


def test_learning_curve_figure_has_base_and_head_with_intervals():
    curve = [
        {"labels_per_class": p, "base": 0.5, "base_ci": [0.45, 0.55], "head": h, "head_ci": [h - 0.05, h + 0.05]}
        for p, h in ((1, 0.44), (5, 0.54), ("half", 0.63))
    ]
    figure = adapted.learning_curve_figure(curve, "t")
    assert [trace.name for trace in figure.data] == ["frozen base", "head"]
    assert list(figure.data[1].x) == ["1", "5", "half"]
    assert list(figure.data[1].error_y.array) == [0.05, 0.05, 0.05] or all(
        abs(v - 0.05) < 1e-9 for v in figure.data[1].error_y.array
    )
