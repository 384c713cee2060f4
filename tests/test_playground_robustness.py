"""The app against broken artifacts, malformed requests, foreign Host headers and decompression bombs (#12).

Every broken file becomes a message in the page that names it relative to the artifacts root and says how to
fix it, never a 500 or a blank page; malformed callback bodies and foreign Host names get a 400; uploads
decode at most two at a time under a pixel limit. Logic tests call the views' render functions and the Flask
test client; the ``slow`` ones start the real ``playground`` command or decode real images.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from playground import ids, uploads
from playground.ranking import feature_results, query_results
from playground.server import HostAllowList, allowed_hosts, check_callback_body, host_name
from playground.state import resolve_selection
from playground.store import BrokenArtifact, MissingArtifact, Store
from playground.views.compare import COMPARE_TABLE, render_compare
from playground.views.embeddings import render_embeddings
from playground.views.search import DUPLICATES, render_duplicates, render_query_panel, render_results
from playground.views.upload import render_upload
from precompute import artifacts as art
from tests.helpers import callback_request, controller_request, data_url, text_of
from tests.playground_fixtures import REPO, png_bytes

PIXELS = "pixels"
LAYER = "pixels_8x8"
N_IMAGES = 24  # the shapes dataset of the fixtures


def assert_no_server_path(text: str, root: Path) -> None:
    """No absolute path in a message: neither the artifacts root nor any other (/tmp/..., /home/...)."""
    assert str(root) not in text and str(root.resolve()) not in text, text
    assert not re.search(r"(?<![\w.~:/-])/(?:tmp|home|root|srv|usr|var|work)/", text), text


def search_selection(store: Store, **request) -> object:
    return resolve_selection(store, {"dataset": "shapes", "model": PIXELS, "layer": LAYER, "metric": "cosine",
                                     **request})


# ------------------------------------------------------------------------------------ broken artifacts
def _layer_file(root: Path, name: str) -> Path:
    return root / "shapes" / PIXELS / LAYER / name


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def write_neighbors(root: Path, change) -> None:
    path = art.neighbors_path(root, "shapes", PIXELS, LAYER, "cosine")
    indices, distances = art.read_neighbors(path)
    indices = indices.copy()
    change(indices)
    art.write_neighbors(path, indices, distances)


NEIGHBOR_DAMAGE = {
    "truncated npz": lambda root: truncate(_layer_file(root, "neighbors-cosine.npz")),
    "garbage npz": lambda root: _layer_file(root, "neighbors-cosine.npz").write_bytes(os.urandom(300)),
    "empty npz": lambda root: _layer_file(root, "neighbors-cosine.npz").write_bytes(b""),
    "npz without indices": lambda root: np.savez(_layer_file(root, "neighbors-cosine.npz"), x=np.zeros(3)),
    "negative neighbour id": lambda root: write_neighbors(root, lambda ids: ids.__setitem__((3, 2), -1)),
    "neighbour id out of range": lambda root: write_neighbors(root, lambda ids: ids.__setitem__((0, 0), N_IMAGES)),
}


@pytest.mark.parametrize("damage", list(NEIGHBOR_DAMAGE))
def test_broken_neighbour_tables_are_messages_naming_the_file(artifacts_copy, damage):
    NEIGHBOR_DAMAGE[damage](artifacts_copy)
    store = Store(artifacts_copy)
    with pytest.raises(BrokenArtifact, match="shapes/pixels/pixels_8x8/neighbors-cosine.npz") as raised:
        store.neighbors("shapes", PIXELS, LAYER, "cosine")
    assert isinstance(raised.value, MissingArtifact) and isinstance(raised.value, art.ArtifactError)
    sel = search_selection(store, query=3)
    text = text_of(render_results(store, sel))
    assert "neighbors-cosine.npz" in text and "Rerun precompute for shapes" in text
    if "id" in damage:
        assert "outside 0..23" in text
    assert_no_server_path(text, artifacts_copy)
    figure, info = render_embeddings(store, sel)  # the map still draws, without highlighted results
    assert "neighbors-cosine.npz" in text_of(info)


@pytest.mark.parametrize("rows", [30, 10])
def test_features_with_the_wrong_row_count_are_a_message(artifacts_copy, rows):
    path = _layer_file(artifacts_copy, "features.npy")
    features = np.load(path)
    np.save(path, np.resize(features, (rows, features.shape[1])))
    store = Store(artifacts_copy)
    with pytest.raises(BrokenArtifact, match=rf"shapes/pixels/pixels_8x8/features.npy has shape \({rows}, 192\)"):
        store.features("shapes", PIXELS, LAYER)
    with pytest.raises(MissingArtifact, match="features.npy"):
        feature_results(store, "shapes", PIXELS, LAYER, "cosine", features[:1], 5)
    with pytest.raises(MissingArtifact, match="features.npy"):  # deeper than stored: ranked from the features
        query_results(store, "shapes", PIXELS, LAYER, "cosine", 0, 23)
    sel = search_selection(store, view="upload")
    status, results = render_upload(store, sel, data_url(png_bytes(Image.new("RGB", (40, 40), "red"))), "red.png")
    assert results is None and "features.npy" in text_of(status) and "Rerun precompute" in text_of(status)
    assert_no_server_path(text_of(status), artifacts_copy)


def test_truncated_and_misshapen_arrays(artifacts_copy):
    truncate(_layer_file(artifacts_copy, "features.npy"), 0.3)
    np.save(_layer_file(artifacts_copy, "umap.npy"), np.zeros((N_IMAGES, 3), dtype=np.float32))
    store = Store(artifacts_copy)
    with pytest.raises(BrokenArtifact, match="features.npy cannot be read"):
        store.features("shapes", PIXELS, LAYER)
    figure, info = render_embeddings(store, search_selection(store, view="embeddings"))
    assert "umap.npy has 3 columns, not 2" in text_of(info)


def test_broken_tables_are_messages(artifacts_copy):
    truncate(_layer_file(artifacts_copy, "scores-cosine.parquet"))
    store = Store(artifacts_copy)
    sel = search_selection(store, query=2)
    text = text_of(render_query_panel(store, sel))
    assert "scores-cosine.parquet cannot be read" in text and "Rerun precompute for shapes" in text
    assert_no_server_path(text, artifacts_copy)
    art.manifest_path(artifacts_copy, "shapes").write_bytes(b"PAR1 not really")
    with pytest.raises(BrokenArtifact, match="shapes/manifest.parquet cannot be read"):
        store.labels("shapes")


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"{\"schema_version\": 1, \"datasets\": {", "cannot read"),  # half-written
        (b"\x00\xff garbage", "cannot read"),
        (b"", "cannot read"),
        (json.dumps({"schema_version": 99, "datasets": {}}).encode(), "schema version 99"),
        (json.dumps({"schema_version": 1, "datasets": []}).encode(), "no 'datasets' mapping"),
        (json.dumps({"schema_version": 1, "datasets": {"shapes": {"models": {}}}}).encode(), "no image count"),
        (b"[1, 2]", "not an artifact index"),
    ],
    ids=["half-written", "garbage", "empty", "unknown schema version", "datasets a list", "no count", "a list"],
)
def test_a_broken_index_is_a_notice_and_every_view_renders(artifacts_copy, content, reason):
    (artifacts_copy / "index.json").write_bytes(content)
    store = Store(artifacts_copy)
    with pytest.raises(BrokenArtifact, match="index.json") as raised:
        store.datasets()
    assert reason.lower() in str(raised.value).lower() and "precompute" in str(raised.value)
    sel = resolve_selection(store, {"dataset": "shapes", "query": 3})
    assert sel.dataset is None and len(sel.notices) == 1 and "index.json" in sel.notices[0]
    assert_no_server_path(sel.notices[0], artifacts_copy)
    assert "No dataset" in text_of(render_query_panel(store, sel))
    assert render_results(store, sel) is not None and render_duplicates(store, sel)
    assert render_embeddings(store, sel)[0].layout.annotations
    assert render_compare(store, sel, None)["table"] is None
    status, _ = render_upload(store, sel, data_url(png_bytes(Image.new("RGB", (9, 9)))), "x.png")
    assert "nothing to search" in text_of(status)


def test_missing_thumbnails_are_404_and_results_still_render(artifacts_copy):
    from playground.app import create_app

    art.thumb_path(artifacts_copy, "shapes", 5).unlink()
    client = create_app(artifacts_copy).server.test_client()
    assert client.get("/thumbs/shapes/5.jpg").status_code == 404
    assert client.get("/thumbs/shapes/6.jpg").status_code == 200
    store = Store(artifacts_copy)
    with pytest.raises(MissingArtifact, match=r"^shapes/thumbs/5\.jpg does not exist"):
        store.thumb_file("shapes", 5)
    cards = render_results(store, search_selection(store, query=4, k=23))
    assert "result-card" in json.dumps(cards, default=lambda c: c.to_plotly_json())


def test_messages_name_files_relative_to_the_root(artifacts_copy):
    store = Store(artifacts_copy)
    _layer_file(artifacts_copy, "umap.npy").unlink()
    with pytest.raises(MissingArtifact) as raised:
        store.umap("shapes", PIXELS, LAYER)
    assert str(raised.value).startswith("shapes/pixels/pixels_8x8/umap.npy does not exist.")
    with pytest.raises(MissingArtifact) as raised:
        store.dataset("nope")
    assert_no_server_path(str(raised.value), artifacts_copy)
    empty = resolve_selection(Store(artifacts_copy / "none"), {})
    assert "precompute" in empty.notices[0]
    assert_no_server_path(empty.notices[0], artifacts_copy)
    assert store.public_text(f"{artifacts_copy}/shapes/x.npz and /opt/lib/site.py") == "shapes/x.npz and site.py"


def test_an_unexpected_upload_failure_shows_no_server_path(playground_artifacts, monkeypatch):
    import playground.views.upload as upload_view

    def fail(*args):
        raise OSError(f"cannot open {playground_artifacts}/shapes/weights.h5 nor /home/someone/.keras/w.h5")

    monkeypatch.setattr(upload_view, "upload_features", fail)
    store = Store(playground_artifacts)
    sel = search_selection(store, view="upload")
    status, _ = render_upload(store, sel, data_url(png_bytes(Image.new("RGB", (9, 9)))), "x.png")
    text = text_of(status)
    assert "shapes/weights.h5" in text and "w.h5" in text
    assert_no_server_path(text, playground_artifacts)


# ---------------------------------------------------------------------------------- through the app
def test_a_broken_index_still_renders_the_page_with_the_message(artifacts_copy):
    from playground.app import create_app

    (artifacts_copy / "index.json").write_text('{"schema_version": 1, "datas')
    app = create_app(artifacts_copy)
    client = app.server.test_client()
    page = client.get("/search")
    assert page.status_code == 200 and b"_dash-renderer" in page.data
    response = client.post("/_dash-update-component", json=controller_request(app, "/search"))
    assert response.status_code == 200
    notice = json.dumps(response.get_json()["response"][ids.NOTICE])
    assert "index.json" in notice and "precompute" in notice
    assert_no_server_path(notice, artifacts_copy)
    assert client.get("/thumbs/shapes/1.jpg").status_code == 404  # not a 500


def test_a_callback_hitting_a_broken_file_answers_200_with_the_message(artifacts_copy):
    """The query panel reads the manifest outside its own error handling: the app's on_error shows it."""
    from playground.app import create_app

    app = create_app(artifacts_copy)
    selection = search_selection(app.playground_store).to_dict()
    art.manifest_path(artifacts_copy, "shapes").write_bytes(b"not parquet")
    client = app.server.test_client()
    response = client.post("/_dash-update-component", json=callback_request(app, ids.RESULTS, selection))
    assert response.status_code == 200
    notice = json.dumps(response.get_json()["sideUpdate"][ids.NOTICE])
    assert "shapes/manifest.parquet cannot be read" in notice and "message-error" in notice
    assert_no_server_path(notice, artifacts_copy)
    # Every view's callbacks answer (200, or 204 for PreventUpdate), none a 500.
    for view in ("search", "upload", "embeddings", "compare"):
        sel = {**selection, "view": view}
        for output_id in (ids.RESULTS, DUPLICATES, ids.GRID, ids.UPLOAD_STATUS, ids.UMAP_GRAPH, COMPARE_TABLE):
            status = client.post("/_dash-update-component", json=callback_request(app, output_id, sel)).status_code
            assert status in (200, 204), (view, output_id, status)


# ---------------------------------------------------------------------------- malformed callback bodies
@pytest.fixture(scope="module")
def app(playground_artifacts):
    from playground.app import create_app

    return create_app(playground_artifacts)


@pytest.mark.parametrize(
    "body",
    [b"null", b"[]", b"[1, 2]", b'"a string"', b"42", b"{}", b'{"output": "nope.children"}', b"{not json",
     b'{"output": 5}'],
)
def test_malformed_callback_bodies_are_400(app, body):
    response = app.server.test_client().post(
        "/_dash-update-component", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.data
    assert b"Traceback" not in response.data


def test_callback_bodies_with_the_wrong_shape_are_400(app, playground_artifacts):
    client = app.server.test_client()
    good = callback_request(app, ids.RESULTS, search_selection(Store(playground_artifacts)).to_dict())
    assert client.post("/_dash-update-component", json=good).status_code == 200
    broken = [
        {**good, "inputs": []},
        {**good, "inputs": good["inputs"] * 2},
        {**good, "inputs": "selection"},
        {**good, "inputs": [None]},
        {**good, "inputs": [{"id": "selection"}]},
        {**good, "state": [1]},
        {**good, "outputs": "x"},
        {**good, "changedPropIds": "selection.data"},
    ]
    for body in broken:
        assert client.post("/_dash-update-component", json=body).status_code == 400, body
    assert client.post("/_dash-update-component", data=b"{}", content_type="text/plain").status_code == 400
    assert check_callback_body(good, app.callback_map) is None


def test_garbage_values_in_a_well_formed_body_are_a_message_not_a_500(app, playground_artifacts):
    client = app.server.test_client()
    for selection in ([1, 2], "search", {"dataset": "shapes", "view": "search", "query": "x", "k": None}):
        body = callback_request(app, ids.RESULTS, selection)
        response = client.post("/_dash-update-component", json=body)
        assert response.status_code in (200, 204), (selection, response.status_code)


# ----------------------------------------------------------------------------------------- Host header
@pytest.mark.parametrize(
    "header, name",
    [("localhost:8050", "localhost"), ("127.0.0.1", "127.0.0.1"), ("[::1]:8050", "::1"),
     ("Example.ORG.", "example.org"), ("", None), (None, None), ("a:b", None), ("[::1", None)],
)
def test_host_name(header, name):
    assert host_name(header) == name


def test_allowed_hosts():
    assert allowed_hosts("127.0.0.1") == ["localhost", "127.0.0.1", "::1"]
    assert allowed_hosts("0.0.0.0", ["Lab.example.org", ".corp"]) == [
        "localhost", "127.0.0.1", "::1", "lab.example.org", ".corp"
    ]
    assert allowed_hosts("192.168.1.5") == ["localhost", "127.0.0.1", "::1", "192.168.1.5"]
    guard = HostAllowList(lambda *a: [], allowed_hosts("::", [".corp"]))
    assert guard.allows("[::1]:8050") and guard.allows("a.corp") and guard.allows("b.a.corp:80")
    assert not guard.allows("corp") and not guard.allows("evilcorp") and not guard.allows(None)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8050", "127.0.0.1.nip.io", "localhost.evil.example"])
def test_a_foreign_host_header_is_400(app, host):
    client = app.server.test_client()
    for path in ("/", "/search", "/thumbs/shapes/1.jpg", "/_dash-layout"):
        response = client.get(path, headers={"Host": host})
        assert response.status_code == 400 and b"--allow-host" in response.data
    assert client.post("/_dash-update-component", json={}, headers={"Host": host}).status_code == 400


def test_loopback_and_added_host_names_are_served(playground_artifacts):
    from playground.app import create_app

    client = create_app(playground_artifacts, allowed_hosts("127.0.0.1", ["lab.example.org"])).server.test_client()
    for host in ("localhost", "localhost:8050", "127.0.0.1:8050", "[::1]:8050", "lab.example.org:8050"):
        assert client.get("/thumbs/shapes/1.jpg", headers={"Host": host}).status_code == 200, host
    assert client.get("/", headers={"Host": "other.example.org"}).status_code == 400


# ----------------------------------------------------------------------------------------------- uploads
def bomb(side: int, mode: str = "RGB", image_format: str = "PNG") -> bytes:
    """A small file that declares ``side`` x ``side`` pixels of one colour."""
    buffer = io.BytesIO()
    Image.new(mode, (side, side), 200).save(buffer, format=image_format)
    return buffer.getvalue()


def peak_rss_delta_mib(function) -> float:
    """Run ``function`` and return this process's peak resident memory above what it was before (Linux)."""
    import gc

    def status(key: str) -> float:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return int(fields[key].split()[0]) / 1024

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status("VmRSS")
    function()
    return status("VmHWM") - before


def run_concurrently(n: int, function) -> list:
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = function(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_the_pixel_limit_fits_two_decodes_in_the_stated_budget():
    assert uploads.DECODE_CONCURRENCY == 2 and uploads.DECODE_BUDGET_BYTES == 256 * 2**20
    assert uploads.MAX_UPLOAD_PIXELS * uploads.DECODE_BYTES_PER_PIXEL <= uploads.DECODE_BUDGET_BYTES
    for image_format, mode in [("PNG", "RGB"), ("PNG", "RGBA"), ("WEBP", "RGB"), ("PNG", "I;16"), ("TIFF", "F")]:
        cost = max(uploads.DECODE_BYTES_PER_PIXEL, uploads.FORMAT_BYTES_PER_PIXEL.get(image_format, 0),
                   uploads.MODE_BYTES_PER_PIXEL.get(mode, 0))
        assert uploads.pixel_limit(image_format, mode) * cost <= uploads.DECODE_BUDGET_BYTES
    assert uploads.pixel_limit("PNG", "I;16") < uploads.pixel_limit("WEBP", "RGB") < uploads.MAX_UPLOAD_PIXELS


@pytest.mark.slow
def test_a_decompression_bomb_is_refused_from_its_header(store_for_uploads):
    store, sel = store_for_uploads
    data = bomb(7700)  # about 190 KB declaring 59 megapixels
    assert len(data) < 300_000
    status, results = render_upload(store, sel, data_url(data), "bomb.png")
    assert results is None and "7700x7700 pixels, above the upload limit" in text_of(status)
    sixteen = bomb(3000, "I;16")  # 9 MP: fine in 8 bits, too many at 34 bytes a pixel
    with pytest.raises(uploads.UploadError, match="mode I;16"):
        uploads.check_pixels(sixteen)
    uploads.check_pixels(bomb(3000))


def test_a_big_jpeg_counts_the_pixels_it_decodes_to():
    big = bomb(6000, image_format="JPEG")  # 36 MP declared; decoded at 1/8 scale for a 224 px model
    uploads.check_pixels(big, draft_size=448)
    with pytest.raises(uploads.UploadError, match="6000x6000"):
        uploads.check_pixels(big)  # decoded whole: too big
    with pytest.raises(uploads.UploadError, match="6000x6000"):
        uploads.check_pixels(bomb(6000))  # a PNG cannot decode at a reduced scale


@pytest.fixture
def store_for_uploads(playground_artifacts):
    store = Store(playground_artifacts)
    return store, resolve_selection(store, {"view": "upload", "dataset": "shapes", "model": PIXELS})


@pytest.mark.slow
def test_eight_concurrent_bombs_are_refused_without_memory(store_for_uploads):
    store, sel = store_for_uploads
    contents = data_url(bomb(7700))
    render_upload(store, sel, data_url(bomb(16)), "warm-up.png")
    answers: list = []
    delta = peak_rss_delta_mib(
        lambda: answers.extend(run_concurrently(8, lambda i: render_upload(store, sel, contents, f"b{i}.png")))
    )
    assert all(results is None and "above the upload limit" in text_of(status) for status, results in answers)
    assert delta < 64, f"peak +{delta:.0f} MiB"


def test_uploads_decode_at_most_two_at_a_time(store_for_uploads, monkeypatch):
    """The semaphore: 8 uploads at once, each decode slowed down, never more than 2 decoding together."""
    store, sel = store_for_uploads
    active, peak, lock = [0], [0], threading.Lock()

    def slow(real):
        def decode(*args, **kwargs):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.05)
            try:
                return real(*args, **kwargs)
            finally:
                with lock:
                    active[0] -= 1
        return decode

    monkeypatch.setattr(uploads, "load_for_model", slow(uploads.load_for_model))
    monkeypatch.setattr(uploads, "decode_image", slow(uploads.decode_image))
    rng = np.random.default_rng(0)
    images = [png_bytes(Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))) for _ in range(8)]
    answers = run_concurrently(8, lambda i: render_upload(store, sel, data_url(images[i]), f"{i}.png"))
    assert all(results is not None for _, results in answers), [text_of(s) for s, _ in answers]
    assert peak[0] == 2


def test_an_upload_that_finds_no_free_slot_gets_a_message(store_for_uploads, monkeypatch):
    store, sel = store_for_uploads
    monkeypatch.setattr(uploads, "DECODE_WAIT_S", 0.05)
    for _ in range(uploads.DECODE_CONCURRENCY):
        uploads.DECODE_SLOTS.acquire()
    try:
        status, results = render_upload(store, sel, data_url(bomb(20)), "late.png")
    finally:
        for _ in range(uploads.DECODE_CONCURRENCY):
            uploads.DECODE_SLOTS.release()
    assert results is None and "busy with other uploads" in text_of(status)


@pytest.mark.slow
def test_eight_concurrent_uploads_at_the_limit_stay_within_the_budget(store_for_uploads):
    """Real decodes just under the pixel limit, 8 at once: the peak stays near 2 decodes' budget (512 MiB)."""
    store, sel = store_for_uploads
    side = int(uploads.MAX_UPLOAD_PIXELS**0.5) - 1
    contents = data_url(bomb(side))
    render_upload(store, sel, data_url(bomb(16)), "warm-up.png")
    answers: list = []
    delta = peak_rss_delta_mib(
        lambda: answers.extend(run_concurrently(8, lambda i: render_upload(store, sel, contents, f"b{i}.png")))
    )
    assert all(results is not None for _, results in answers), [text_of(s) for s, _ in answers]
    budget_mib = uploads.DECODE_CONCURRENCY * uploads.DECODE_BUDGET_BYTES / 2**20
    assert delta < budget_mib + 100, f"peak +{delta:.0f} MiB for a budget of {budget_mib:.0f} MiB"


# ------------------------------------------------------------------------------------ the main command
def test_main_command_options():
    from playground.__main__ import parse_args

    args = parse_args(["--allow-host", "a.example", "--allow-host", ".corp", "--dev"])
    assert args.allow_host == ["a.example", ".corp"] and args.dev and not args.precompute_only
    defaults = parse_args([])
    assert defaults.allow_host == [] and not defaults.dev


def test_main_command_precomputes_in_a_child_process(tmp_path, monkeypatch, playground_artifacts):
    import playground.__main__ as main_module

    calls = []
    monkeypatch.setattr(main_module.subprocess, "run", lambda command, **kw: calls.append((command, kw)) or
                        subprocess.CompletedProcess(command, 0))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert main_module.precompute_in_child(playground_artifacts, [tmp_path / "shapes"]) == 0
    assert calls == []  # nothing missing: no child
    assert main_module.precompute_in_child(tmp_path / "out", [tmp_path / "shapes", fresh]) == 0
    # One child per dataset: each process's peak memory is that of one dataset.
    assert len(calls) == 2
    for (command, kwargs), data in zip(calls, [tmp_path / "shapes", fresh], strict=True):
        assert command[:4] == [sys.executable, "-m", "playground", "--precompute-only"]
        assert command[4:] == ["--artifacts", str(tmp_path / "out"), "--data", str(data)]
        assert kwargs["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "index.json").write_text("{")
    assert main_module.needs_precompute(tmp_path / "broken", fresh)  # the pipeline says what is wrong


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(playground_artifacts, tmp_path):
    """The real `playground` command over the fixtures' artifacts (waitress), and its process."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    log = tmp_path / "server.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "playground", "--artifacts", str(playground_artifacts), "--port", str(port),
             "--no-precompute", "--allow-host", "lab.example.org"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
    try:
        yield process, port
    finally:
        process.terminate()
        process.wait(10)


def http_get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Host": host})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


@pytest.mark.slow
def test_the_command_serves_with_waitress_and_a_fixed_thread_pool(served):
    from playground.server import CLIENT_CONNECTION_LIMIT, THREADS

    process, port = served
    status, headers, _ = http_get(port, "/")
    assert status == 200 and headers["Server"] == "playground"  # waitress, with our ident
    assert http_get(port, "/", "evil.example")[0] == 400
    assert http_get(port, "/thumbs/shapes/1.jpg", "lab.example.org:80")[0] == 200
    threads_before = len(os.listdir(f"/proc/{process.pid}/task"))
    sockets = []
    try:
        # Half-open connections (a request line, no end of headers), far more than the pool's threads but fewer
        # than one address may hold (beyond that the server refuses them: tests/test_reliability_round2.py).
        for _ in range(min(60, CLIENT_CONNECTION_LIMIT - 5)):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sockets.append(sock)
        time.sleep(0.5)
        start = time.monotonic()
        assert http_get(port, "/thumbs/shapes/2.jpg")[0] == 200
        assert time.monotonic() - start < 5
        import pyarrow

        # The pool, the main thread, numpy's helpers and pyarrow's CPU and I/O pools (the first page's results are
        # read from parquet since the layout carries them): none grows with the half-open connections.
        threads = len(os.listdir(f"/proc/{process.pid}/task"))
        library_threads = pyarrow.cpu_count() + pyarrow.io_thread_count()
        assert threads <= threads_before <= THREADS + 4 + library_threads, (threads_before, threads)
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.slow
def test_the_serving_process_does_not_load_tensorflow_before_an_upload(playground_artifacts):
    """Every view of the app, through its callbacks, in a fresh interpreter: no TensorFlow, no Keras."""
    script = f"""
import json, sys
from playground.app import create_app
from tests.helpers import callback_request, controller_request
app = create_app({str(playground_artifacts)!r})
client = app.server.test_client()
for view in ("search", "upload", "embeddings", "compare"):
    reply = client.post("/_dash-update-component", json=controller_request(app, "/" + view))
    assert reply.status_code == 200, reply.status_code
    selection = reply.get_json()["response"]["selection"]["data"]
    for key in list(app.callback_map):
        if any(dep["id"] == "selection" for dep in app.callback_map[key]["inputs"]):
            output = key.strip(".").split("...")[0].rsplit(".", 1)[0]
            body = callback_request(app, output, selection)
            assert client.post("/_dash-update-component", json=body).status_code in (200, 204), key
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "torch"))))
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.slow
def test_the_first_run_precomputes_in_a_child_and_serves_without_tensorflow(tmp_path):
    """`playground` on an empty root: the child precomputes (TensorFlow), the server never maps TensorFlow."""
    from tests.playground_fixtures import make_shapes_dataset

    data = make_shapes_dataset(tmp_path / "tiny", n_per_class=2)
    artifacts, port, log = tmp_path / "artifacts", free_port(), tmp_path / "server.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    with log.open("w") as stderr:
        process = subprocess.Popen(
            # Two models (not every default one): enough for a child that maps TensorFlow, at a fraction of the time.
            [sys.executable, "-m", "playground", "--artifacts", str(artifacts), "--data", str(data), "--port",
             str(port), "--backbones", "efficientnet-lite0,pixels"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 600
        while "Serving on" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(1)
        assert "Serving on" in log.read_text(), log.read_text()[-3000:]
        assert "tiny" in json.loads((artifacts / "index.json").read_text())["datasets"]
        assert http_get(port, "/thumbs/tiny/1.jpg")[0] == 200
        maps = Path(f"/proc/{process.pid}/maps").read_text()
        assert "tensorflow" not in maps and "keras" not in maps
    finally:
        process.terminate()
        process.wait(10)


# ------------------------------------------------------------------------------------- in the browser
@pytest.mark.browser
@pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium.*")
@pytest.mark.skipif(
    not (shutil.which("chromedriver") and shutil.which("chromium")), reason="needs chromium and chromedriver"
)
def test_broken_artifacts_show_messages_in_the_browser(dash_duo, artifacts_copy, screenshot_dir):
    from playground.app import create_app

    NEIGHBOR_DAMAGE["truncated npz"](artifacts_copy)
    dash_duo.start_server(create_app(artifacts_copy))
    dash_duo.driver.get(dash_duo.server_url + f"/search?dataset=shapes&model={PIXELS}&layer={LAYER}&metric=cosine")
    dash_duo.wait_for_contains_text("#search-results", "neighbors-cosine.npz cannot be read", timeout=30)
    assert "Rerun precompute for shapes" in dash_duo.find_element("#search-results").text
    dash_duo.driver.save_screenshot(str(screenshot_dir / "broken-neighbors.png"))

    (artifacts_copy / "index.json").write_text('{"schema_version": 1, "datasets": {"sha')  # half-written
    dash_duo.driver.get(dash_duo.server_url + "/search")
    dash_duo.wait_for_contains_text("#notice", "index.json", timeout=30)
    notice = dash_duo.find_element("#notice").text
    assert "Cannot read index.json" in notice and "precompute" in notice and str(artifacts_copy) not in notice
    assert "Semantic Image Search Playground" in dash_duo.find_element("h1").text  # the page, not a blank one
    dash_duo.wait_for_contains_text("#query-panel", "No dataset", timeout=30)
    dash_duo.driver.save_screenshot(str(screenshot_dir / "broken-index.png"))
