"""The Dash app: ``create_app(artifacts_root)`` builds it; nothing here reads data at import time."""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from dash import Dash, dcc, html
from flask import Response, abort, has_request_context, request, send_file

from playground import components, ids
from playground.callbacks import controller, page
from playground.callbacks.controller import control_options, model_info, update_selection
from playground.callbacks.guards import callback_error_handler
from playground.compression import install_compression
from playground.feedback import add_feedback_routes
from playground.images import MAX_SIDE, ImageUnavailable, full_size_jpeg
from playground.private import add_private_routes
from playground.server import LOOPBACK_HOSTS, MAX_REQUEST_BYTES, install_guards
from playground.state import DEFAULT_K, MAX_K, VIEWS
from playground.store import MissingArtifact, Store, UnreadableArtifact
from playground.views import VIEW_REGISTRY
from playground.views.search import initial_search
from precompute.artifacts import check_name
from precompute.locations import assets_dir

log = logging.getLogger(__name__)

_THUMB_PATH = re.compile(r"^(?P<dataset>[^/]+)/(?P<image_id>[0-9]{1,9})\.jpg$")
FIRST_VISIT_HINT = (
    "New here? Click any image to see the ones most like it, then try another backbone, layer or metric above."
)
# Dash's page with a language for screen readers, and its scripts outside a second <footer> landmark. The layout
# (which holds the first Search results, see ``serve_layout``) and the callbacks' list are fetched while the scripts
# load and run (preloads the renderer's own requests then take: same URL, mode and credentials), rather than after.
INDEX_STRING = """<!DOCTYPE html>
<html lang="en">
    <head>
        {%metas%}
        <title>{%title%}</title>
        <link rel="preload" href="PREFIX_dash-layout" as="fetch" crossorigin="anonymous">
        <link rel="preload" href="PREFIX_dash-dependencies" as="fetch" crossorigin="anonymous">
        <link rel="preload" href="PREFIX_dash-component-suites/dash/dcc/async-dropdown.js" as="script">
        <link rel="preload" href="PREFIX_dash-component-suites/dash/dcc/async-upload.js" as="script">
        <link rel="preload" href="PREFIX_dash-component-suites/dash/dcc/async-graph.js" as="script">
        {%favicon%}
        {%css%}
    </head>
    <body>
        {%app_entry%}
        {%config%}
        {%scripts%}
        {%renderer%}
    </body>
</html>"""


def _header() -> html.Header:
    # Views are links (reachable with Tab, opened with Enter, each its own URL); the controller sets their hrefs.
    tabs = [
        dcc.Link(view.title, id=ids.VIEW_TAB.format(view.name), href=f"/{view.name}", className="tab")
        for view in VIEW_REGISTRY.values()
    ]
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
            html.Nav(tabs, id=ids.VIEW_TABS, className="tabs", **{"aria-label": "Views"}),
        ],
        className="header",
    )


def _hint() -> html.Div:
    """The first-visit hint: one line until dismissed (remembered in the browser's local storage)."""
    return html.Div(
        [
            html.Span(FIRST_VISIT_HINT),
            html.Button("Got it", id=ids.HINT_CLOSE, n_clicks=0, className="button small", title="Hide this hint"),
        ],
        id=ids.HINT,
        className="first-visit-hint",
        role="note",
        style={"display": "none"},
    )


def _viewer() -> html.Div:
    """The full-size image viewer: a modal dialog filled by the viewer callback."""
    return html.Div(
        html.Div(
            [
                html.Button("×", id=ids.VIEWER_CLOSE, n_clicks=0, className="viewer-close",
                            title="Close (Esc)", **{"aria-label": "Close the image viewer"}),
                html.Div(id=ids.VIEWER_BODY, className="viewer-body"),
                html.Button("Search with this image", id=ids.VIEWER_SEARCH, n_clicks=0, className="button"),
            ],
            className="viewer-dialog",
            role="dialog",
            **{"aria-modal": "true", "aria-label": "Full-size image"},
        ),
        id=ids.VIEWER,
        className="viewer",
        style={"display": "none"},
    )


def _controls() -> html.Section:
    return html.Section(
        [
            components.control("Dataset", components.dropdown(ids.DATASET), "dataset", ids.DATASET),
            components.control("Backbone", components.dropdown(ids.MODEL), component_id=ids.MODEL),
            components.control("Layer", components.dropdown(ids.LAYER), component_id=ids.LAYER),
            components.control("Metric", components.dropdown(ids.METRIC), "short", ids.METRIC),
            components.control(
                f"Results (1–{MAX_K})",
                # No min, max or step: the browser would drop an out-of-range or fractional number silently; the
                # controller replaces it and says so.
                dcc.Input(
                    id=ids.TOP_K,
                    type="number",
                    value=DEFAULT_K,
                    debounce=True,
                    className="number-input",
                ),
                "narrow",
                ids.TOP_K,
            ),
            html.Div(id=ids.MODEL_INFO, className="model-info"),
        ],
        className="controls",
        **{"aria-label": "Dataset, model and metric"},
    )


def _page_url() -> tuple[str, str] | None:
    """(pathname, search) of the page whose renderer asks for the layout: the ``Referer`` of its layout request
    (a same-origin fetch, sent in full by browsers' default policy); None outside a request or without one."""
    if not has_request_context() or not request.referrer:
        return None
    url = urlsplit(request.referrer)
    if url.netloc != request.host:
        return None
    return url.path or "/", f"?{url.query}" if url.query else ""


def _first_selection(page: html.Div, store: Store) -> None:
    """Fill the page with what the controller and the Search view's callback would answer first, when the page's
    URL opens Search: its results are shown as the layout arrives, with no callback round before them. The
    controller still runs on load (it writes the URL, the tabs, the notices); finding the Search view's store
    already holding its selection, it leaves the view alone."""
    url = _page_url()
    if url is None:
        return
    try:
        sel = update_selection(store, None, *url, {}, None, None)
        if sel.view != "search":
            return
        values = initial_search(store, sel)
        options = control_options(store, sel)
        info = model_info(store, sel)
    except Exception:  # the callbacks will say what is wrong, as on any page
        log.debug("no first selection in the layout", exc_info=True)
        return
    for (component_id, prop), value in values.items():
        setattr(page[component_id], prop, value)
    page[ids.VIEW_SELECTION.format("search")].data = sel.to_dict()
    for component_id, key in (
        (ids.DATASET, "dataset"),
        (ids.MODEL, "model"),
        (ids.LAYER, "layer"),
        (ids.METRIC, "metric"),
    ):
        page[component_id].options = options[key]
        page[component_id].value = getattr(sel, key)
    page[ids.TOP_K].value = sel.k
    page[ids.MODEL_INFO].children = info


def warm_up(app: Dash) -> threading.Thread:
    """Read what the default page shows (features, rankings, thumbnails' manifest) in a background thread while the
    server starts, so that its first visitor does not wait for cold caches. Best effort: a failure is the page's to
    say, on the visit."""

    def run() -> None:
        try:
            store = app.playground_store
            initial_search(store, update_selection(store, None, "/", "", {}, None, None))
        except Exception:
            log.debug("warm-up failed", exc_info=True)

    thread = threading.Thread(target=run, name="playground-warm-up", daemon=True)
    thread.start()
    return thread


def serve_layout(artifacts_root: Path | None = None, store: Store | None = None) -> html.Div:
    """The page; its footer names the artifacts folder the app reads (``artifacts_root``, when given). With a
    ``store``, a page opening Search holds its first results (``_first_selection``)."""
    page = _page(artifacts_root)
    if store is not None:
        _first_selection(page, store)
    return page


def _page(artifacts_root: Path | None) -> html.Div:
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh=False),
            dcc.Store(id=ids.SELECTION),
            *[dcc.Store(id=ids.VIEW_SELECTION.format(view)) for view in VIEWS],
            dcc.Store(id=ids.QUERY_CLICK),
            dcc.Store(id=ids.VIEWER_CLICK),
            dcc.Store(id=ids.GRID_PAGE, data={"dataset": None, "class": None, "page": 0}),
            dcc.Store(id=ids.GRID_SHOWN),
            dcc.Store(id=ids.HINT_SEEN, storage_type="local"),
            dcc.Store(id=ids.VIEWER_IMAGE),
            _header(),
            _controls(),
            html.Main(
                [
                    html.Div(id=ids.NOTICE, **{"aria-live": "polite"}),
                    _hint(),
                    *[
                        html.Div(
                            # Each view opens with its title as a heading (read out, not shown): the page's h1
                            # is followed by an h2 before any view's h3.
                            [html.H2(view.title, className="visually-hidden"), view.layout()],
                            id=ids.VIEW_DIV.format(view.name),
                            className="view",
                            style={"display": "block" if view.name == "search" else "none"},
                        )
                        for view in VIEW_REGISTRY.values()
                    ],
                ]
            ),
            _viewer(),
            html.Footer(
                [
                    f"Images are served as thumbnails, and at most {MAX_SIDE} px wide in the viewer; uploads are "
                    "processed in memory only.",
                    *([" Artifacts: ", html.Code(str(artifacts_root), className="artifacts-root")]
                      if artifacts_root else []),
                ],
                className="footer",
            ),
        ],
        className="page",
    )


# An unreadable thumbnails folder fails every thumbnail of every page (84 a page): its message is logged once a
# minute, as one line, not once per request with a traceback.
_LOG_REPEAT_S = 60.0
_last_logged: dict[str, float] = {}


def _log_once(message: str) -> None:
    now = time.monotonic()
    if now - _last_logged.get(message, -_LOG_REPEAT_S) >= _LOG_REPEAT_S:
        if len(_last_logged) > 1000:
            _last_logged.clear()
        _last_logged[message] = now
        log.warning("%s", message)


def _add_thumbnail_route(app: Dash, store: Store) -> None:
    @app.server.route(f"{components.THUMB_ROUTE}/<path:rest>")
    def thumbnail(rest: str) -> Response:
        match = _THUMB_PATH.match(rest)
        if match is None:
            abort(404)
        try:
            dataset = check_name(match["dataset"], "dataset name")
            path = store.thumb_file(dataset, int(match["image_id"]))
        except UnreadableArtifact as exc:  # permissions, I/O: the server's fault, said once in the log
            _log_once(f"thumbnails: {exc}")
            return Response(f"500 Internal Server Error: {exc}\n", status=500, mimetype="text/plain")
        except (ValueError, MissingArtifact):
            abort(404)
        return send_file(path, mimetype="image/jpeg", max_age=3600)


def _add_image_route(app: Dash, store: Store) -> None:
    """Full-size images by id: the thumbnail route's checks, then a source file kept inside its folder."""

    @app.server.route(f"{components.IMAGE_ROUTE}/<path:rest>")
    def full_image(rest: str) -> Response:
        match = _THUMB_PATH.match(rest)
        if match is None:
            abort(404)
        try:
            dataset = check_name(match["dataset"], "dataset name")
            data = full_size_jpeg(store.source_file(dataset, int(match["image_id"])))
        except (ValueError, OSError, MissingArtifact, ImageUnavailable):
            abort(404)
        response = Response(data, mimetype="image/jpeg")
        response.headers["Cache-Control"] = "private, max-age=3600"
        return response


def create_app(artifacts_root: str | Path = "artifacts", allowed_hosts: Iterable[str] = LOOPBACK_HOSTS) -> Dash:
    """Build the app over the artifacts under ``artifacts_root`` (read-only).

    The root may be empty or missing: the page then says how to compute artifacts; a broken artifact is a
    message in the page too. Requests must name one of ``allowed_hosts`` in their ``Host`` header
    (``playground.server.HostAllowList``); malformed callback bodies get a 400.
    """
    store = Store(artifacts_root)
    assets = assets_dir()
    if not assets.is_dir():  # a package built without its assets: say so, rather than serve a page without its scripts
        raise FileNotFoundError(f"the app's scripts and styles are missing: {assets} is not a folder (a wheel built "
                                "without setup.py's build_py step?)")
    app = Dash(
        __name__,
        title="Semantic Image Search Playground",
        update_title=None,
        assets_folder=str(assets),
        suppress_callback_exceptions=False,
        on_error=callback_error_handler(store),
    )
    app.server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.index_string = INDEX_STRING.replace("PREFIX", app.config.requests_pathname_prefix)
    app.layout = functools.partial(serve_layout, Path(artifacts_root).resolve(), store)
    _add_thumbnail_route(app, store)
    _add_image_route(app, store)
    add_private_routes(app, store)
    add_feedback_routes(app, store)
    for register in (controller.register, page.register, *(view.register for view in VIEW_REGISTRY.values())):
        register(app, store)
    install_guards(app, allowed_hosts)
    install_compression(app)
    app.playground_store = store  # for tests and the benchmark
    return app
