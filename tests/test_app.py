"""The app (playground/app.py, callbacks/page.py, the `playground` command): the page's layout, the thumbnail and
full-size image routes, the viewer, and every view on empty or incomplete artifacts."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from playground import uploads
from playground.callbacks.controller import control_options
from playground.state import DEFAULT_DATASET, resolve_selection
from playground.store import MissingArtifact, Store
from playground.views.compare import render_compare
from playground.views.embeddings import render_embeddings
from playground.views.search import render_query_panel, render_results
from playground.views.upload import render_upload
from tests.helpers import data_url, find_class, text_of
from tests.playground_fixtures import photo_png

PIXELS, LITE = "pixels", "efficientnet-lite0-random"


@pytest.fixture
def client(playground_artifacts):
    from playground.app import create_app

    return create_app(playground_artifacts).server.test_client()


def test_thumbnail_route_serves_thumbnails(client):
    response = client.get("/thumbs/shapes/3.jpg")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(response.data)).size[0] <= 160


def test_thumbnail_route_with_a_relative_artifacts_root(playground_artifacts, monkeypatch):
    from playground.app import create_app

    monkeypatch.chdir(playground_artifacts.parent)  # as `playground` run from the repo serves ./artifacts
    client = create_app(playground_artifacts.name).server.test_client()
    assert client.get("/thumbs/shapes/3.jpg").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/thumbs/shapes/../index.json",
        "/thumbs/../index.json",
        "/thumbs/..%2F..%2Fetc/1.jpg",
        "/thumbs/shapes/..%2F..%2Findex.json",
        "/thumbs/shapes/abc.jpg",
        "/thumbs/shapes/-1.jpg",
        "/thumbs/shapes/1.5.jpg",
        "/thumbs/shapes/999.jpg",
        "/thumbs/shapes/1.jpg/extra",
        "/thumbs/nope/1.jpg",
        "/thumbs/.hidden/1.jpg",
        "/thumbs/shapes/pixels/pixels_8x8/features.npy",
    ],
)
def test_thumbnail_route_rejects_traversal_and_bad_ids(client, path):
    assert client.get(path).status_code == 404


def test_each_view_module_is_registered_once_by_its_name():
    """A view is its module in playground/views/ and its name in state.VIEWS (README, "Where to add"): a module left
    out of the list, or a name without a module, fails here rather than as a missing tab."""
    from playground import views
    from playground.state import VIEWS

    modules = sorted(path.stem for path in Path(views.__file__).parent.glob("*.py") if path.stem != "__init__")
    assert sorted(VIEWS) == modules and len(set(VIEWS)) == len(VIEWS)
    assert list(views.VIEW_REGISTRY) == list(VIEWS)  # the tabs' order
    for name, view in views.VIEW_REGISTRY.items():
        assert view.name == name and view.title and callable(view.layout) and callable(view.register)


def test_app_layout_and_defaults(playground_artifacts):
    from playground.__main__ import parse_args
    from playground.app import create_app

    app = create_app(playground_artifacts)
    assert app.server.config["MAX_CONTENT_LENGTH"] > uploads.BROWSER_MAX_BYTES * 4 // 3 > uploads.MAX_UPLOAD_BYTES
    layout = app.layout()
    assert "Semantic Image Search Playground" in text_of(layout)
    args = parse_args([])
    assert (args.host, args.port, args.no_precompute) == ("127.0.0.1", 8050, False)
    # Both embedded datasets, the default first; each one exists in the checkout.
    assert [path.name for path in args.data] == ["openclipart-200", "fashion-mnist-200"]
    assert all(path.is_dir() for path in args.data)
    assert args.data[0].name == DEFAULT_DATASET  # the app opens on the dataset the main command computes first
    assert parse_args(["--data", "a", "--data", "b"]).data == [Path("a"), Path("b")]


def test_main_precomputes_only_a_missing_dataset(tmp_path, monkeypatch, playground_artifacts):
    import precompute.pipeline
    from playground.__main__ import ensure_dataset

    calls = []
    monkeypatch.setattr(precompute.pipeline, "run", lambda *args, **kw: calls.append(args))
    ensure_dataset(playground_artifacts, tmp_path / "shapes")  # already there: nothing to do
    assert calls == []
    (tmp_path / "fresh").mkdir()
    ensure_dataset(tmp_path / "out", tmp_path / "fresh")
    assert calls == [(tmp_path / "fresh", tmp_path / "out")]
    ensure_dataset(tmp_path / "out", tmp_path / "missing-folder")  # absent data: warn, serve
    assert len(calls) == 1


def test_every_view_renders_a_message_on_empty_artifacts(tmp_path):
    store = Store(tmp_path)
    sel = resolve_selection(store, {})
    assert "precompute" in sel.notices[0]
    assert "No dataset" in text_of(render_query_panel(store, sel))
    assert find_class(render_results(store, sel), "message-warning")
    assert render_embeddings(store, sel)[0].layout.annotations
    assert render_compare(store, sel, None)["table"] is None
    status, results = render_upload(store, sel, data_url(photo_png()), "cat.png")
    assert find_class(status, "message-warning") and results is None


def test_views_show_missing_combinations_as_messages(artifacts_copy):
    index_path = artifacts_copy / "index.json"
    index = json.loads(index_path.read_text())
    del index["datasets"]["shapes"]["models"][PIXELS]["layers"]["pixels_8x8"]["metrics"]["chebyshev"]
    index_path.write_text(json.dumps(index))
    (artifacts_copy / "shapes" / PIXELS / "pixels_8x8" / "umap.npy").unlink()
    store = Store(artifacts_copy)
    sel = resolve_selection(store, {"dataset": "shapes", "model": PIXELS, "layer": "pixels_8x8", "metric": "chebyshev"})
    assert sel.metric == "chebyshev"  # computed elsewhere in the dataset, so selectable
    assert "not computed" in text_of(render_results(store, sel)).lower()
    assert "chebyshev (not computed)" in [o["label"] for o in control_options(store, sel)["metric"]]
    figure, info = render_embeddings(store, sel)
    assert "umap.npy" in text_of(info)
    out = render_compare(store, sel, "rwp@15")
    assert out["table"] is not None  # the rest of the dataset still compares


def _graphs(component) -> list:
    from dash import dcc

    found = []
    if isinstance(component, list | tuple):
        for child in component:
            found += _graphs(child)
    elif hasattr(component, "to_plotly_json"):
        if isinstance(component, dcc.Graph):
            found.append(component)
        found += _graphs(getattr(component, "children", None))
    return found


def test_every_graph_is_offline_no_cloud_button_no_logo(playground_artifacts):
    from playground import components
    from playground.app import create_app
    from playground.views import compare

    config = components.graph_config(scrollZoom=True, modeBarButtonsToRemove=["lasso2d"])
    assert config["scrollZoom"] and not config["displaylogo"] and not config["showSendToCloud"]
    assert config["plotlyServerURL"] == "" and {"sendChartToCloud", "lasso2d"} <= set(config["modeBarButtonsToRemove"])
    layout = create_app(playground_artifacts).layout()
    graphs = _graphs(layout)
    assert graphs
    compare_ids = {graph.id for graph in _graphs(compare.layout())}
    assert len(compare_ids) == 4 and compare_ids <= {graph.id for graph in graphs}  # Compare's graphs are covered
    for graph in graphs:
        assert graph.config["displaylogo"] is False and graph.config["showSendToCloud"] is False, graph.id
        assert "sendChartToCloud" in graph.config["modeBarButtonsToRemove"], graph.id


def test_app_page_has_a_language_and_no_second_footer(client):
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in page and page.count("<footer") == 0  # the app's own footer is rendered by React


def test_image_route_serves_a_bounded_jpeg_of_the_source_file(client, store):
    from playground.images import MAX_SIDE

    response = client.get("/images/shapes/3.jpg")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    image = Image.open(io.BytesIO(response.data))
    row = store.manifest("shapes").iloc[3]
    assert image.size == (row["width"], row["height"]) and max(image.size) <= MAX_SIDE


@pytest.mark.parametrize(
    "path",
    [
        "/images/shapes/../index.json",
        "/images/../index.json",
        "/images/..%2F..%2Fetc/1.jpg",
        "/images/shapes/..%2F..%2Findex.json",
        "/images/shapes/abc.jpg",
        "/images/shapes/-1.jpg",
        "/images/shapes/1.5.jpg",
        "/images/shapes/999.jpg",
        "/images/shapes/1.jpg/extra",
        "/images/nope/1.jpg",
        "/images/.hidden/1.jpg",
        "/images/shapes/pixels/pixels_8x8/features.npy",
    ],
)
def test_image_route_rejects_traversal_and_bad_ids(client, path):
    assert client.get(path).status_code == 404


@pytest.fixture
def own_source(artifacts_copy, tmp_path):
    """An artifacts copy whose 'shapes' source folder is a private copy the test may change."""

    index = json.loads((artifacts_copy / "index.json").read_text())
    source = tmp_path / "source"
    shutil.copytree(index["datasets"]["shapes"]["source"], source)
    index["datasets"]["shapes"]["source"] = str(source)
    (artifacts_copy / "index.json").write_text(json.dumps(index))
    return artifacts_copy, source


def _manifest_path_of(root: Path, image_id: int, new_path: str) -> None:
    from precompute import artifacts as art

    manifest = art.read_table(art.manifest_path(root, "shapes"))
    manifest.loc[image_id, "path"] = new_path
    art.write_table(art.manifest_path(root, "shapes"), manifest)


def test_image_route_refuses_paths_that_leave_the_source_folder(own_source, tmp_path):
    from playground.app import create_app

    root, source = own_source
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), "red").save(secret)
    (source / "circle" / "link.png").symlink_to(secret)  # a link out of the folder
    _manifest_path_of(root, 0, "../secret.png")
    _manifest_path_of(root, 1, "circle/link.png")
    _manifest_path_of(root, 2, str(secret))  # an absolute path
    _manifest_path_of(root, 3, "circle/missing.png")
    _manifest_path_of(root, 4, "circle")  # a folder
    client = create_app(root).server.test_client()
    for image_id in range(5):
        assert client.get(f"/images/shapes/{image_id}.jpg").status_code == 404, image_id
        with pytest.raises(MissingArtifact):
            Store(root).source_file("shapes", image_id)
    assert client.get("/images/shapes/5.jpg").status_code == 200
    inside = source / "circle" / "inside.png"
    inside.symlink_to(source / "square" / "0.png")  # a link that stays inside is fine
    _manifest_path_of(root, 6, "circle/inside.png")
    assert create_app(root).server.test_client().get("/images/shapes/6.jpg").status_code == 200


def test_image_route_downscales_and_refuses_oversized_files(own_source, monkeypatch):
    from playground import images
    from playground.app import create_app

    root, source = own_source
    Image.new("RGB", (2400, 1200), "blue").save(source / "circle" / "big.png")
    _manifest_path_of(root, 0, "circle/big.png")
    client = create_app(root).server.test_client()
    response = client.get("/images/shapes/0.jpg")
    assert Image.open(io.BytesIO(response.data)).size == (images.MAX_SIDE, images.MAX_SIDE // 2)
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 100)
    assert client.get("/images/shapes/1.jpg").status_code == 404
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 64 * 2**20)
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    images._encoded.cache_clear()
    assert client.get("/images/shapes/0.jpg").status_code == 404
    (source / "circle" / "1.png").write_bytes(b"not an image")
    _manifest_path_of(root, 2, "circle/1.png")
    assert client.get("/images/shapes/2.jpg").status_code == 404


def test_viewer_opens_on_a_zoom_click_and_shows_the_image(store):
    from dash.exceptions import PreventUpdate

    from playground import ids
    from playground.callbacks.page import render_viewer, viewer_request

    zoom = {"type": ids.VIEW_IMAGE, "where": "results", "index": 7}
    assert viewer_request(zoom, [{"value": 1}]) == 7
    assert viewer_request(ids.VIEWER_CLOSE, [{"value": 1}]) is None
    with pytest.raises(PreventUpdate):
        viewer_request(zoom, [{"value": 0}])  # fresh buttons after a re-render
    sel = resolve_selection(store, {"dataset": "shapes"})
    style, children = render_viewer(store, sel, 7)
    assert style["display"] == "flex" and children[0].src == "/images/shapes/7.jpg"
    assert "image 7" in text_of(children) and "48×48 px" in text_of(children)
    assert render_viewer(store, sel, None)[0]["display"] == "none"
    assert render_viewer(store, sel, 999)[0]["display"] == "none"
