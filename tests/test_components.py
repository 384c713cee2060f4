"""Shared components (playground/components.py): closeness, distances and labels as the result cards show them."""

from __future__ import annotations

import numpy as np


def test_closeness_places_each_distance_between_the_farthest_and_the_closest():
    from playground.ranking import closeness

    assert closeness([2.0, 3.0, 6.0]).tolist() == [1.0, 0.75, 0.0]
    assert closeness([5.0, 5.0]).tolist() == [1.0, 1.0]  # ties (or a single result): all full
    assert closeness([]).tolist() == []
    assert closeness([1.0, np.nan, 3.0]).tolist() == [1.0, 0.0, 0.0]


def test_format_distance_keeps_four_significant_digits_without_exponents():
    from playground.components import format_distance

    assert [format_distance(d) for d in (0.35123, 0.0021, 12.314, 999.94, 1234.5, 0.0)] == [
        "0.3512",
        "0.002100",
        "12.31",
        "999.9",
        "1,234",
        "0.000",
    ]
    assert format_distance(float("nan")) == "—"


def test_labels_break_only_after_underscores():
    from dash import html

    from playground.components import label_text

    parts = label_text("computer_hardware")
    assert parts[0] == "computer_" and isinstance(parts[1], html.Wbr) and parts[2] == "hardware"
    assert label_text("hats") == ["hats"] and label_text(None) == []
