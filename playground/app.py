"""The Dash app: ``create_app(artifacts_root)`` builds it; nothing here reads data at import time."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from dash import Dash, dcc, html
from flask import Response, abort, send_file

from playground import components, ids
from playground.callbacks import register_callbacks
from playground.callbacks.guards import callback_error_handler
from playground.server import LOOPBACK_HOSTS, install_guards
from playground.state import DEFAULT_K, MAX_K, VIEWS
from playground.store import MissingArtifact, Store
from playground.views import VIEW_LAYOUTS, VIEW_TITLES
from precompute.artifacts import check_name

log = logging.getLogger(__name__)

# Styles live in the repository's top-level assets/ folder, found relative to this package.
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
# Requests above this size are refused before a callback sees them: the browser's upload limit (16 MB)
# is about 21.3 MB as base64, plus the rest of the callback's JSON.
MAX_REQUEST_BYTES = 24 * 1024 * 1024
_THUMB_PATH = re.compile(r"^(?P<dataset>[^/]+)/(?P<image_id>[0-9]{1,9})\.jpg$")


def _header() -> html.Header:
    return html.Header(
        [
            html.Div(
                [
                    html.H1("Semantic Image Search Playground"),
                    html.A(
                        "share this view",
                        id=ids.SHARE_LINK,
                        href="/",
                        className="share-link",
                        title="A link to exactly this view: dataset, model, layer, metric and query",
                    ),
                ],
                className="title-row",
            ),
            dcc.Tabs(
                id=ids.VIEW_TABS,
                value="search",
                children=[
                    dcc.Tab(label=VIEW_TITLES[view], value=view, className="tab", selected_className="tab-selected")
                    for view in VIEWS
                ],
                className="tabs",
            ),
        ],
        className="header",
    )


def _controls() -> html.Div:
    return html.Div(
        [
            components.control("Dataset", components.dropdown(ids.DATASET)),
            components.control("Backbone", components.dropdown(ids.MODEL), "wide"),
            components.control("Layer", components.dropdown(ids.LAYER), "wide"),
            components.control("Metric", components.dropdown(ids.METRIC)),
            components.control(
                "Results",
                dcc.Input(
                    id=ids.TOP_K,
                    type="number",
                    min=1,
                    max=MAX_K,
                    step=1,
                    value=DEFAULT_K,
                    debounce=True,
                    className="number-input",
                ),
                "narrow",
            ),
            html.Div(id=ids.MODEL_INFO, className="model-info"),
        ],
        className="controls",
    )


def serve_layout() -> html.Div:
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh=False),
            dcc.Store(id=ids.SELECTION),
            dcc.Store(id=ids.QUERY_REQUEST),
            dcc.Store(id=ids.GRID_PAGE, data={"dataset": None, "class": None, "page": 0}),
            _header(),
            _controls(),
            html.Div(id=ids.NOTICE),
            html.Main(
                [
                    html.Div(
                        VIEW_LAYOUTS[view](),
                        id=ids.VIEW_DIV.format(view),
                        className="view",
                        style={"display": "block" if view == "search" else "none"},
                    )
                    for view in VIEWS
                ]
            ),
            html.Footer(
                "Images are served as small thumbnails; uploads are processed in memory only.", className="footer"
            ),
        ],
        className="page",
    )


def _add_thumbnail_route(app: Dash, store: Store) -> None:
    @app.server.route(f"{components.THUMB_ROUTE}/<path:rest>")
    def thumbnail(rest: str) -> Response:
        match = _THUMB_PATH.match(rest)
        if match is None:
            abort(404)
        try:
            dataset = check_name(match["dataset"], "dataset name")
            path = store.thumb_file(dataset, int(match["image_id"]))
        except (ValueError, MissingArtifact):
            abort(404)
        return send_file(path, mimetype="image/jpeg", max_age=3600)


def create_app(artifacts_root: str | Path = "artifacts", allowed_hosts: Iterable[str] = LOOPBACK_HOSTS) -> Dash:
    """Build the app over the artifacts under ``artifacts_root`` (read-only).

    The root may be empty or missing: the page then says how to compute artifacts; a broken artifact is a
    message in the page too. Requests must name one of ``allowed_hosts`` in their ``Host`` header
    (``playground.server.HostAllowList``); malformed callback bodies get a 400.
    """
    store = Store(artifacts_root)
    assets = ASSETS_DIR if ASSETS_DIR.is_dir() else None
    app = Dash(
        __name__,
        title="Semantic Image Search Playground",
        update_title=None,
        assets_folder=str(assets) if assets else str(Path(__file__).parent / "_no_assets"),
        include_assets_files=assets is not None,
        suppress_callback_exceptions=False,
        on_error=callback_error_handler(store),
    )
    app.server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.layout = serve_layout
    _add_thumbnail_route(app, store)
    register_callbacks(app, store)
    install_guards(app, allowed_hosts)
    app.playground_store = store  # for tests and the benchmark
    return app
