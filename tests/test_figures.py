"""Pure figure builders (playground/figures.py): the class palette, log axes, label placement."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _simulated_lab(colours: list[str], matrix: np.ndarray) -> np.ndarray:
    """CIELAB of sRGB colours as seen with a colour-vision deficiency (Machado, Oliveira & Fernandes 2009)."""
    from skimage.color import rgb2lab

    rgb = np.array([[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in colours])
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    seen = np.clip(linear @ matrix.T, 0, 1)
    srgb = np.where(seen <= 0.0031308, 12.92 * seen, 1.055 * seen ** (1 / 2.4) - 0.055)
    return rgb2lab(srgb[None])[0]


def test_class_palette_is_distinct_for_colour_blind_eyes_and_20_classes():
    from itertools import combinations

    from skimage.color import deltaE_ciede2000

    from playground.map_figure import CLASS_COLOURS, QUERY_COLOUR, class_style

    visions = {  # Machado et al. (2009), severity 1
        "normal": np.eye(3),
        "protanopia": np.array(
            [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]
        ),
        "deuteranopia": np.array(
            [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]
        ),
        "tritanopia": np.array(
            [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]]
        ),
    }
    colours = [*CLASS_COLOURS, "#FFFFFF", QUERY_COLOUR]  # the background and the query's star too
    for name, matrix in visions.items():
        lab = _simulated_lab(colours, matrix)
        smallest = min(
            deltaE_ciede2000(lab[i], lab[j])
            for i, j in combinations(range(len(colours)), 2)
            if not (i >= len(CLASS_COLOURS) and j >= len(CLASS_COLOURS))
        )
        # 30 CIEDE2000 for normal vision with 3:1 contrast on white (issue #24) leaves 6.9 under simulated
        # colour-vision deficiencies (playground/map_figure.py, CLASS_COLOURS).
        assert smallest > (29 if name == "normal" else 6.5), name
    styles = [class_style(i) for i in range(20)]
    assert len(set(styles)) == 20 and len({colour for colour, _ in styles}) == 10


def test_log_axes_say_whole_numbers_with_units():
    import math

    from playground.figures import cost_quality_figure, family_figure, format_count, format_ms, log_ticks

    ticks = log_ticks([math.log10(0.06), math.log10(30)], format_ms)
    assert ticks["ticktext"] == ["0.1 ms", "0.3 ms", "1 ms", "3 ms", "10 ms", "30 ms"]
    assert log_ticks([math.log10(0.08), math.log10(25)], format_ms)["ticktext"] == [
        "0.1 ms",
        "0.3 ms",
        "1 ms",
        "3 ms",
        "10 ms",
    ]  # 1-2-5 would give 8 ticks: 1-3 steps
    dense = log_ticks([math.log10(2e6), math.log10(6e6)], format_count)["ticktext"]
    assert dense == ["2M", "3M", "5M"]
    assert log_ticks([0, 4], format_ms)["ticktext"] == ["1 ms", "10 ms", "100 ms", "1 s", "10 s"]
    assert log_ticks(None, format_ms) == {}
    costs = pd.DataFrame(
        {
            "model": ["pixels", "efficientnet-lite0-random", "big"],
            "parameters (whole model)": [0, 3.4e6, 130e6],
            "GFLOPs/image": [0, 0.4, 15],
            "ms/image": [0.05, 4.0, 120.0],
            "model MB": [0, 13.6, 520],
            "best layer": ["pixels_8x8", "top_conv", "fc2"],
            "best rwp@15": [0.2, 0.3, 0.25],
        }
    )
    fig = cost_quality_figure(costs, "best rwp@15", metric="cosine")
    assert all(text.endswith(("ms", " s")) for text in fig.layout.xaxis.ticktext)
    assert len(fig.layout.xaxis.tickvals) <= 7
    trace = fig.data[0]
    assert list(trace.text) == ["pixels", "<b>efficientnet-lite0-random</b>", "big"]  # the winner in bold
    assert len(trace.textposition) == 3 and trace.cliponaxis is False
    assert trace.textposition[0] != "middle left" and trace.textposition[2] != "middle right"  # kept inside
    assert "marker area: model file size (largest 520.0 MB)" in fig.layout.title.text
    family = pd.DataFrame(
        {
            "model": ["a", "b"],
            "family": ["F", "F"],
            "parameters": [2e6, 5e6],
            "layer": ["l1", "l2"],
            "metric": ["cosine", "cosine"],
            "rwp@15": [0.3, 0.4],
        }
    )
    fig = family_figure(family, "rwp@15")
    assert fig.layout.xaxis.ticktext and all(t.endswith("M") for t in fig.layout.xaxis.ticktext)
    assert list(fig.data[0].text) == ["a", "<b>b</b>"]


def test_labels_are_placed_off_each_other_and_inside_the_plot():
    from playground.figures import place_labels

    # Three models in a cluster (EfficientNet-Lite0/1/2), one alone near the right edge.
    x, y = [0.50, 0.52, 0.55, 0.98], [0.40, 0.41, 0.40, 0.20]
    names = ["efficientnet-lite0", "efficientnet-lite1", "<b>efficientnet-lite2</b>", "inceptionv3-nsfwjs"]
    positions = place_labels(x, y, names, [0, 1], [0, 0.5])
    assert len(set(positions[:3])) == 3  # the cluster's names go three different ways
    assert "right" not in positions[3]  # not off the right edge
    assert place_labels([], [], [], [0, 1], [0, 1]) == []
