"""The selection the whole app shares (view, dataset, model, layer, metric, query, k) and its URL form.

The URL query string is the shareable form of a selection, e.g.
``/search?dataset=openclipart-200&model=vgg16&layer=block5_conv3&metric=cosine&query=12&k=15``.
:func:`resolve_selection` turns whatever a URL or the controls ask for into a valid selection: unknown
names, malformed numbers and out-of-range values fall back to defaults (or the nearest valid value) with a
notice, never an error. :func:`default_query` is the image a dataset opens on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from playground.store import MissingArtifact, Store

# The views, in the order of their tabs: each name is a path of the URL and its module in playground/views/ (the one
# place a view is registered; see playground/views/__init__.py).
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
    """The request a URL makes: ``{'view': ..., 'dataset': ..., ...}`` with only the keys it holds.

    The root path asks for no view; any other path names one, known or not (resolve_selection says so).
    """
    request: dict[str, Any] = {}
    view = (pathname or "/").strip("/")
    if view:
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


def _as_int(value: Any) -> int | None:
    """An integer from a URL value or a number box ("12", 12, 12.0); None for anything else ("abc", 1.5)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def best_layer(store: Store, dataset: str, model: str, metric: str | None, score: str = RANKING_SCORE) -> str | None:
    """The layer with the highest summary ``score`` under ``metric``; the deepest layer when unscored."""
    layers = store.layers(dataset, model)
    if not layers:
        return None
    best, best_value = layers[-1], None
    for name in layers:
        entry = store.layer(dataset, model, name).metrics.get(metric or "")
        value = entry.score(score) if entry is not None else None
        if value is not None and (best_value is None or value > best_value):
            best, best_value = name, value
    return best


def default_query(store: Store, dataset: str) -> int:
    """The image a dataset opens on: a typical query, neither a showcase nor a failure.

    The rule: under the default model (the first in the index), its best layer under the default metric
    (cosine, else the first computed) and that metric, the query whose ``rwp@15`` is nearest the mean
    ``rwp@15`` over all queries; ties go to the lower image id. Image 0 for an unlabeled dataset or when
    those scores were not computed.
    """
    models = store.models(dataset)
    metrics = store.all_metrics(dataset)
    if not models or not metrics or not store.is_labeled(dataset):
        return 0
    metric = DEFAULT_METRIC if DEFAULT_METRIC in metrics else metrics[0]
    layer = best_layer(store, dataset, models[0], metric)
    try:
        scores = store.scores(dataset, models[0], layer, metric)
    except MissingArtifact:
        return 0
    if scores is None or RANKING_SCORE not in scores.columns:
        return 0
    values = scores[RANKING_SCORE].dropna()
    if values.empty:
        return 0
    gap = (values - values.mean()).abs()
    nearest = gap[gap == gap.min()].index  # every query at the smallest gap: the lowest id wins
    return int(min(nearest))


def resolve_selection(
    store: Store,
    request: dict[str, Any],
    previous: Selection | None = None,
    first_query: Callable[[Store, str], int] | None = None,
) -> Selection:
    """Fill and check a requested selection against the artifact index.

    ``request`` holds what the URL or a control asked for (names as strings, query and k as anything
    int-like); missing keys come from ``previous``, then from defaults. A model change without a layer
    picks that model's best layer. Names the artifacts do not hold, malformed numbers and out-of-range
    values are replaced, each with a notice: an unknown view by Search, a bad query by the default query,
    a bad number of results by the nearest valid one (or the previous one when it is not a number).
    ``first_query(store, dataset)`` gives the query of a dataset opened without one, and the replacement of
    a bad one (image 0 when None; the app passes :func:`default_query`).
    """
    prev = previous or Selection()
    sel = Selection(view=request.get("view", prev.view))
    if sel.view not in VIEWS:
        sel.notices.append(f"There is no view {'/' + str(sel.view).strip('/')!r}; showing the {DEFAULT_VIEW} view.")
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
    wanted_query = request.get("query", prev.query if same_dataset else None)
    query = _as_int(wanted_query)
    if wanted_query is None or query is None or not 0 <= query < n_images:
        fallback = first_query(store, sel.dataset) if first_query is not None else 0
        if wanted_query is not None and query is None:
            sel.notices.append(f"Query {wanted_query!r} is not an image id (a whole number); showing image {fallback}.")
        elif wanted_query is not None:
            sel.notices.append(f"Image {query} is not in {sel.dataset} (0..{n_images - 1}); showing image {fallback}.")
        query = fallback
    sel.query = query
    sel.k = _resolve_k(request.get("k", prev.k), prev.k, sel.notices)
    return sel


def _resolve_k(wanted: Any, previous: int, notices: list[str]) -> int:
    """The number of results: ``wanted`` when it is a whole number in 1..MAX_K, else the nearest valid value
    (or ``previous`` when it is no number at all), with a notice."""
    k = _as_int(wanted)
    if k is None:
        fallback = previous if 1 <= previous <= MAX_K else DEFAULT_K
        what = "The Results box is empty" if wanted in ("", None) else f"Results {wanted!r} is not a whole number"
        notices.append(f"{what}; showing {fallback}.")
        return fallback
    if not 1 <= k <= MAX_K:
        nearest = min(max(k, 1), MAX_K)
        notices.append(f"Results must be 1 to {MAX_K}; {k} became {nearest}.")
        return nearest
    return k


def stored_depth(store: Store, sel: Selection) -> int | None:
    """How many neighbours were stored for the selection's combination (None when it is missing)."""
    try:
        return store.metric(sel.dataset, sel.model, sel.layer, sel.metric).top_n
    except (MissingArtifact, TypeError):
        return None
