"""Helpers shared by the tests (and ``bench/bench_uploads.py``): plain functions, no fixtures.

- small generated datasets and run configs for the precompute tests (``make_dataset``, ``config``);
- reading Dash component trees and building callback requests for the playground tests (``text_of``,
  ``find_class``, ``data_url``, ``callback_request``, ``controller_request``);
- duplicate tables and bootstrap intervals written into an artifacts copy (``add_trust_entries``).

The playground's shared fixtures (real artifacts made once per session) are in ``tests/playground_fixtures.py``,
registered by ``tests/conftest.py``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from playground import ids
from precompute.pipeline import ModelRequest, RunConfig

# ------------------------------------------------------------------------------------ precompute datasets
# Three visually distinct classes, so even raw pixels retrieve same-class images well above chance.
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 230)}
MODELS = [ModelRequest("pixels", "auto"), ModelRequest("efficientnet-lite0", "random")]


def make_dataset(root: Path, per_class: int = 6, labeled: bool = True) -> Path:
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        folder = root / name if labeled else root
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-40, 40, size=(40, 48, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}-{i}.png")
    return root


def config(dataset: Path, out: Path, **kwargs) -> RunConfig:
    options = {"models": MODELS, "metrics": ("cosine", "euclidean"), "top_n": 10, "input_size": 32,
               "progress": False, "umap_neighbors": 5}
    options.update(kwargs)
    return RunConfig(dataset, out, **options)


# ------------------------------------------------------------------------- Dash components, requests, Chromium
def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def text_of(component) -> str:
    """All the text of a Dash component tree (a plotly figure: its annotations), for assertions."""
    if component is None:
        return ""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return " ".join(text_of(c) for c in component)
    if hasattr(component, "layout") and hasattr(component, "data"):  # a plotly figure
        return " ".join(str(a.text) for a in component.layout.annotations or ())
    return text_of(getattr(component, "children", None))


def find_class(component, class_name: str) -> list:
    found = []
    if isinstance(component, list | tuple):
        for child in component:
            found += find_class(child, class_name)
    elif hasattr(component, "to_plotly_json"):
        if class_name in (getattr(component, "className", None) or "").split():
            found.append(component)
        found += find_class(getattr(component, "children", None), class_name)
    return found


def drag_lasso(driver, element, points: list[tuple[float, float]]) -> None:
    """Drag a lasso through ``points`` (fractions of the element's width and height) and release (selenium)."""
    from selenium.webdriver.common.action_chains import ActionChains

    width, height = element.size["width"], element.size["height"]
    pixels = [(int(x * width), int(y * height)) for x, y in points]
    actions = ActionChains(driver).move_to_element(element)
    actions.move_by_offset(pixels[0][0] - width // 2, pixels[0][1] - height // 2).click_and_hold()
    for (x0, y0), (x1, y1) in zip(pixels, pixels[1:] + pixels[:1], strict=True):
        actions.move_by_offset(x1 - x0, y1 - y0)
    actions.release().perform()


def callback_request(app, output_id: str, selection: dict | None) -> dict:
    """The body the browser posts for the callback that writes ``output_id`` (inputs: the selection, in the shared
    store or the view's own)."""
    output = next(key for key in app.callback_map if f"{output_id}." in key)
    spec = app.callback_map[output]
    views = ("search", "upload", "embeddings", "compare")
    stores = {ids.SELECTION, *(ids.VIEW_SELECTION.format(view) for view in views)}
    changed = next((dep["id"] for dep in spec["inputs"] if dep["id"] in stores), ids.SELECTION)

    def value(dep: dict) -> dict | list:
        if isinstance(dep["id"], dict):
            return []
        return {"id": dep["id"], "property": dep["property"],
                "value": selection if dep["id"] in stores else None}

    outputs = [dict(zip(("id", "property"), part.rsplit(".", 1), strict=True))
               for part in output.strip(".").split("...")]
    return {"output": output, "outputs": outputs if output.startswith("..") else outputs[0],
            "inputs": [value(dep) for dep in spec["inputs"]], "state": [value(dep) for dep in spec["state"]],
            "changedPropIds": [f"{changed}.data"]}


def controller_request(app, pathname: str) -> dict:
    output = next(key for key in app.callback_map if f"{ids.SHARE_LINK}.href" in key)
    spec = app.callback_map[output]
    values = {f"{ids.URL}.pathname": pathname, f"{ids.URL}.search": ""}
    return {"output": output,
            "outputs": [dict(zip(("id", "property"), p.rsplit(".", 1), strict=True))
                        for p in output.strip(".").split("...")],
            "inputs": [{**dep, "value": values.get(f"{dep['id']}.{dep['property']}")} for dep in spec["inputs"]],
            "state": [{**dep, "value": None} for dep in spec["state"]],
            "changedPropIds": [f"{ids.URL}.pathname"]}


# ----------------------------------------------------------------- duplicates and intervals ("trust")
def add_trust_entries(root: Path) -> dict[str, int]:
    """Write duplicate tables and bootstrap intervals into an artifacts copy, as precompute writes them.

    The pairs are made up but placed among query 0's real results (pixels / pixels_8x8 / cosine), so that
    the search view badges them: its first result an exact duplicate (also a feature pair), its second a
    feature near-duplicate, its first result of another class a near-duplicate across classes. Returns
    those ids. The intervals are real (``bootstrap_ci`` of each stored scores file). Whatever the pipeline
    wrote of these is dropped first, so the tests see only these pairs.
    """
    from precompute import artifacts as art
    from precompute.stats import bootstrap_ci, bootstrap_params

    strip_trust_entries(root)
    index = json.loads((root / "index.json").read_text())
    entry = index["datasets"]["shapes"]
    indices, _ = art.read_neighbors(art.neighbors_path(root, "shapes", "pixels", "pixels_8x8", "cosine"))
    labels = art.read_table(art.manifest_path(root, "shapes"))["label"].to_numpy()
    first, second = int(indices[0, 0]), int(indices[0, 1])
    other = int(next(i for i in indices[0] if labels[i] != labels[0]))
    pairs = pd.DataFrame(
        {"a": [0, 0], "b": [first, other], "kind": ["exact", "near"], "phash_distance": [0, 3],
         "cross_class": [False, True]}
    )
    art.write_table(art.duplicates_path(root, "shapes"), pairs)
    entry["duplicates"] = {"path": "shapes/duplicates.parquet", "phash_max_distance": 4, "n_pairs": 2, "n_exact": 1,
                           "n_near": 1, "n_cross_class": 1}
    features = pd.DataFrame({"a": [0, 0], "b": [first, second], "distance": [0.001, 0.01], "cross_class": False})
    art.write_table(art.layer_duplicates_path(root, "shapes", "pixels", "pixels_8x8"), features)
    entry["models"]["pixels"]["layers"]["pixels_8x8"]["duplicates"] = {
        "path": "shapes/pixels/pixels_8x8/duplicates.parquet", "metric": "cosine", "ratio": 0.25, "threshold": 0.02,
        "typical_distance": 0.08, "n_pairs": 2, "n_cross_class": 0,
    }
    # A label issue as precompute.label_issues writes it (the fixture has no trained model to learn from): the
    # query's second result, given its own label, suggested the class of the query.
    issues = pd.DataFrame({"id": [second], "label": [str(labels[second])], "suggested": ["hats"],
                           "confidence": [0.93], "quality": [0.012]})
    art.write_table(art.label_issues_path(root, "shapes"), issues)
    entry["label_issues"] = {"path": "shapes/label_issues.parquet", "method": "cleanlab confident learning",
                             "evidence": ["efficientnet-lite0/top_conv"], "n_folds": 5, "max_quality": 0.05,
                             "n_issues": 1}
    for model, model_entry in entry["models"].items():
        for layer, layer_entry in model_entry["layers"].items():
            for metric, result in layer_entry["metrics"].items():
                scores = art.read_table(art.scores_path(root, "shapes", model, layer, metric))
                names = [name for name in result["summary"] if name in scores.columns]
                bounds = bootstrap_ci(scores[names].to_numpy(dtype=float))
                result["summary_ci"] = {name: bounds[:, i].tolist() for i, name in enumerate(names)}
                result["bootstrap"] = bootstrap_params()
    (root / "index.json").write_text(json.dumps(index))
    return {"first": first, "second": second, "other": other}


def strip_trust_entries(root: Path) -> None:
    """Make an artifacts copy look written before duplicates and intervals existed."""
    index = json.loads((root / "index.json").read_text())
    for entry in index["datasets"].values():
        entry.pop("duplicates", None)
        entry.pop("label_issues", None)
        for model in entry.get("models", {}).values():
            for layer in model.get("layers", {}).values():
                layer.pop("duplicates", None)
                for result in layer.get("metrics", {}).values():
                    result.pop("summary_ci", None)
                    result.pop("bootstrap", None)
    (root / "index.json").write_text(json.dumps(index))
