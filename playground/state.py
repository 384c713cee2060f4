"""The selection the whole app shares (view, dataset, model, layer, metric, query, k) and its URL form.

The URL query string is the shareable form of a selection, e.g.
``/search?dataset=openclipart-200&model=vgg16&layer=block5_conv3&metric=cosine&query=12&k=15``.
:func:`resolve_selection` turns whatever a URL or the controls ask for into a valid selection: unknown
names fall back to defaults with a notice, never an error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from playground.store import MissingArtifact, Store

VIEWS = ("search", "upload", "embeddings", "compare")
DEFAULT_VIEW = "search"
DEFAULT_DATASET = "openclipart-200"
DEFAULT_METRIC = "cosine"
DEFAULT_K = 15
MAX_K = 50
# The score that picks a model's default layer.
RANKING_SCORE = "rwp@15"
URL_KEYS = ("dataset", "model", "layer", "metric", "query", "k")


@dataclass
class Selection:
    """One complete, valid choice; ``dataset`` is None only when the artifacts hold no dataset."""

    view: str = DEFAULT_VIEW
    dataset: str | None = None
    model: str | None = None
    layer: str | None = None
    metric: str | None = None
    query: int = 0
    k: int = DEFAULT_K
    labeled: bool = False
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Selection:
        data = dict(data or {})
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def parse_url(pathname: str | None, search: str | None) -> dict[str, Any]:
    """The request a URL makes: ``{'view': ..., 'dataset': ..., ...}`` with only the keys it holds."""
    request: dict[str, Any] = {}
    view = (pathname or "/").strip("/").split("/")[-1]
    if view in VIEWS:
        request["view"] = view
    params = parse_qs((search or "").lstrip("?"), keep_blank_values=False)
    for key in URL_KEYS:
        if params.get(key):
            request[key] = params[key][0]
    return request


def to_url(selection: Selection) -> tuple[str, str]:
    """``(pathname, search)`` of a selection, for dcc.Location and share links."""
    params = {key: getattr(selection, key) for key in URL_KEYS if getattr(selection, key) is not None}
    return f"/{selection.view}", ("?" + urlencode(params)) if params else ""


def _as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def best_layer(store: Store, dataset: str, model: str, metric: str | None, score: str = RANKING_SCORE) -> str | None:
    """The layer with the highest summary ``score`` under ``metric``; the deepest layer when unscored."""
    layers = store.layers(dataset, model)
    if not layers:
        return None
    best, best_value = layers[-1], None
    for name in layers:
        entry = store.layer(dataset, model, name).get("metrics", {}).get(metric or "", {})
        value = (entry.get("summary") or {}).get(score)
        if value is not None and (best_value is None or value > best_value):
            best, best_value = name, value
    return best


def resolve_selection(store: Store, request: dict[str, Any], previous: Selection | None = None) -> Selection:
    """Fill and check a requested selection against the artifact index.

    ``request`` holds what the URL or a control asked for (names as strings, query and k as anything
    int-like); missing keys come from ``previous``, then from defaults. A model change without a layer
    picks that model's best layer. Names the artifacts do not hold are replaced, with a notice.
    """
    prev = previous or Selection()
    sel = Selection(view=request.get("view", prev.view))
    if sel.view not in VIEWS:
        sel.view = DEFAULT_VIEW
    try:
        datasets = store.datasets()
    except MissingArtifact as exc:  # index.json unreadable (BrokenArtifact): every view says there is no dataset
        sel.notices.append(str(exc))
        return sel
    if not datasets:
        # The page names no server path; the server's log says which folder it serves.
        sel.notices.append(
            "No precomputed dataset in the artifacts folder. Run `precompute DATASET_DIR --out ARTIFACTS`."
        )
        return sel
    wanted = request.get("dataset", prev.dataset)
    if wanted in datasets:
        sel.dataset = wanted
    else:
        if wanted:
            sel.notices.append(f"Dataset {wanted!r} is not in the artifacts; showing another one.")
        sel.dataset = DEFAULT_DATASET if DEFAULT_DATASET in datasets else datasets[0]
    same_dataset = sel.dataset == prev.dataset
    sel.labeled = store.is_labeled(sel.dataset)

    models = store.models(sel.dataset)
    all_metrics = store.all_metrics(sel.dataset)
    wanted_metric = request.get("metric", prev.metric if same_dataset else None)
    if wanted_metric in all_metrics:
        sel.metric = wanted_metric
    else:
        if wanted_metric and "metric" in request:
            sel.notices.append(f"Metric {wanted_metric!r} was not computed for {sel.dataset}.")
        sel.metric = DEFAULT_METRIC if DEFAULT_METRIC in all_metrics else (all_metrics[0] if all_metrics else None)

    wanted_model = request.get("model", prev.model if same_dataset else None)
    if not models:
        sel.notices.append(f"No model was computed for {sel.dataset} yet.")
    elif wanted_model in models:
        sel.model = wanted_model
    else:
        if wanted_model and "model" in request:
            sel.notices.append(f"Model {wanted_model!r} was not computed for {sel.dataset}.")
        sel.model = models[0]

    if sel.model is not None:
        layers = store.layers(sel.dataset, sel.model)
        keep_layer = sel.model == prev.model and same_dataset
        wanted_layer = request.get("layer", prev.layer if keep_layer else None)
        if wanted_layer in layers:
            sel.layer = wanted_layer
        else:
            if wanted_layer and "layer" in request:
                sel.notices.append(f"Layer {wanted_layer!r} was not computed for {sel.model}.")
            sel.layer = best_layer(store, sel.dataset, sel.model, sel.metric)

    n_images = store.n_images(sel.dataset)
    query = _as_int(request.get("query", prev.query if same_dataset else 0), 0)
    if not 0 <= query < n_images:
        sel.notices.append(f"Image {query} is not in {sel.dataset} (0..{n_images - 1}); showing image 0.")
        query = 0
    sel.query = query
    sel.k = min(max(_as_int(request.get("k", prev.k), DEFAULT_K), 1), MAX_K)
    return sel


def stored_depth(store: Store, sel: Selection) -> int | None:
    """How many neighbours were stored for the selection's combination (None when it is missing)."""
    try:
        return int(store.metric(sel.dataset, sel.model, sel.layer, sel.metric)["top_n"])
    except (MissingArtifact, KeyError, TypeError):
        return None
