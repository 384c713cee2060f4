"""Reliability, round 2 (#26): trickling clients, unreadable folders, Ctrl-C, file modes, and smaller faults.

Every test here failed on the code before #26. Network tests stay on loopback (the server binds 127.0.0.1; clients
use source addresses in 127.0.0.0/8), are bounded in connections and seconds, and stop by themselves. Permission
tests run their reads as an unprivileged user (a child process that drops to ``nobody`` with ``setpriv``), since
root reads any file whatever its mode; where that cannot be done they skip and say why.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.ctrl_c import command_of, free_port, interrupt_command
from bench.trickle import hello, is_closed
from playground import server as srv
from precompute import artifacts as art
from precompute.pipeline import ModelRequest, Run, RunConfig
from tests.helpers import make_dataset
from tests.playground_fixtures import REPO

# ------------------------------------------------------------------------------------- trickling clients
N_TRICKLING = 250
N_TRICKLING_ADDRESSES = 10  # 25 connections from each of 127.0.0.2 .. 127.0.0.11: under the per-address limit


@pytest.fixture
def bounded_server() -> Iterator[srv.BoundedServer]:
    """The playground's waitress server on 127.0.0.1 (any free port), short arrival deadlines, run in a thread."""
    server = srv.create_server(hello, "127.0.0.1", 0, threads=4, header_timeout=3, request_timeout=5)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.task_dispatcher.shutdown(timeout=2)
        from waitress import wasyncore

        wasyncore.close_all(server._map)
        thread.join(timeout=5)


def _open(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")  # a request begun, never finished
    return sock


def _normal_request(port: int) -> tuple[int, float]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": "localhost"})
        status = conn.getresponse().status
    finally:
        conn.close()
    return status, time.perf_counter() - start


@pytest.mark.slow  # seconds of real deadlines: the slow tier (the fast one stays under a minute)
def test_trickling_connections_do_not_lock_out_a_normal_request(bounded_server: srv.BoundedServer) -> None:
    """250 connections that each send a header line every 0.5 s: a normal request is answered within 1 s, and the
    server closes the tricklers when their headers are overdue (3 s here, HEADER_TIMEOUT_S in the app)."""
    port = bounded_server.effective_port
    socks = [_open(port, f"127.0.0.{2 + i % N_TRICKLING_ADDRESSES}") for i in range(N_TRICKLING)]
    try:
        started = time.monotonic()
        for round_ in range(2):  # trickle for about a second: each connection is active, never idle
            for sock in socks:
                sock.sendall(f"X-Trickle-{round_}: 1\r\n".encode())
            time.sleep(0.5)
        assert len(bounded_server.active_channels) >= N_TRICKLING, "the trickling connections should be open"
        status, seconds = _normal_request(port)
        assert status == 200 and seconds < 1.0, f"answered {status} after {seconds:.2f} s with 250 tricklers"
        # The deadline: all of them closed once their headers are 3 s late (checked each second), and well before
        # waitress' 20 s idle timeout would have (they never went idle).
        deadline = started + 3 + 3
        while time.monotonic() < deadline and not all(map(is_closed, socks)):
            time.sleep(0.25)
        still_open = sum(not is_closed(sock) for sock in socks)
        assert still_open == 0, f"{still_open} trickling connections outlived the 3 s header deadline"
    finally:
        for sock in socks:
            sock.close()


def test_one_address_holds_at_most_the_client_connection_limit(bounded_server: srv.BoundedServer) -> None:
    limit = srv.CLIENT_CONNECTION_LIMIT
    port = bounded_server.effective_port
    socks = [_open(port, "127.0.0.42") for _ in range(limit + 10)]
    try:
        time.sleep(0.5)
        closed = [is_closed(sock) for sock in socks]
        assert sum(closed) == 10 and not any(closed[:limit]), f"{sum(closed)} closed of {len(socks)}"
        status, seconds = _normal_request(port)  # another address is not affected
        assert status == 200 and seconds < 1.0
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.slow  # seconds of real deadlines: the slow tier (the fast one stays under a minute)
def test_a_trickled_bodyis_closed_at_the_request_deadline(bounded_server: srv.BoundedServer) -> None:
    port = bounded_server.effective_port
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n")
        start = time.monotonic()
        while not is_closed(sock) and time.monotonic() - start < 9:
            sock.setblocking(True)
            sock.sendall(b"x")
            time.sleep(0.5)
        assert 4.5 < time.monotonic() - start < 8, "the body should be cut at the 5 s request deadline"
    finally:
        sock.close()


def test_queue_depth_warnings_are_rate_limited(bounded_server: srv.BoundedServer, caplog) -> None:
    assert srv._queue_filter in srv.logging.getLogger("waitress.queue").filters
    limiter = srv._RateLimit(10)
    logger = srv.logging.getLogger("test.queue")
    logger.addFilter(limiter)
    try:
        with caplog.at_level("WARNING", logger="test.queue"):
            for depth in range(1000):
                logger.warning("Task queue depth is %d", depth)
            limiter.next_at = 0  # the interval has passed
            logger.warning("Task queue depth is %d", 7)
    finally:
        logger.removeFilter(limiter)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["Task queue depth is 0", "Task queue depth is 7 (999 more such warnings in the last 10 s)"]


# ------------------------------------------------------------------------------------------- file modes
@pytest.fixture
def umask_027() -> Iterator[int]:
    previous = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(previous)


def _modes(root: Path) -> dict[str, str]:
    """{relative path: octal mode} of every file and folder under ``root`` (the root included)."""
    return {
        (path.relative_to(root).as_posix() or "."): oct(path.stat().st_mode & 0o777)
        for path in [root, *root.rglob("*")]
    }


@pytest.mark.slow  # a whole run: UMAP's JIT compilation alone takes seconds
def test_a_run_writes_files_and_folders_as_the_umask_says(tmp_path: Path, umask_027: int) -> None:
    """A whole (tiny, pixels) run under umask 027: every file 0640 and every folder 0750, as open() and mkdir()
    would make them; before, the 0600 of tempfile.mkstemp (and 0700 folders of mkdtemp)."""
    dataset = make_dataset(tmp_path / "ds", per_class=4)
    out = tmp_path / "out"
    Run(
        RunConfig(
            dataset, out, [ModelRequest("pixels")], metrics=("cosine",), top_n=5, progress=False, umap_neighbors=4
        )
    ).execute()
    modes = _modes(out)
    wrong = {name: mode for name, mode in modes.items() if mode != oct(0o750 if (out / name).is_dir() else 0o640)}
    assert len(modes) > 20 and not wrong, f"{len(wrong)} of {len(modes)} paths ignore the umask: {wrong}"


def test_whole_folder_exports_follow_the_umask(tmp_path: Path, umask_027: int) -> None:
    from precompute.tfjs_export import _replacing

    with art.atomic_path(tmp_path / "a.npy") as tmp:
        np.save(tmp, np.zeros(3))
    assert oct((tmp_path / "a.npy").stat().st_mode & 0o777) == "0o640"

    with art.atomic_dir(tmp_path / "export") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "a.bin").write_bytes(b"x")
    target = tmp_path / "model" / "tfjs"
    with _replacing(target) as tmp:
        (tmp / "export.json").write_text("{}")
        (tmp / "float32").mkdir()
        os.chmod(tmp / "export.json", 0o600)  # a copy keeps its source's mode (shutil.copy2 from a cache)
    assert _modes(tmp_path / "export") == {".": "0o750", "sub": "0o750", "sub/a.bin": "0o640"}
    assert _modes(target) == {".": "0o750", "export.json": "0o640", "float32": "0o750"}
    assert art.current_umask() == 0o027  # read from /proc, the umask left as it was


# ------------------------------------------------------------------------------------ unreadable folders
# The child that reads as an unprivileged account: root with the two capabilities that let it read any file
# dropped from its bounding set (setpriv, util-linux), so that file modes apply to it as to any user. It first
# checks that a mode-000 probe file is unreadable, and exits 77 when it is not.
_DROP = ["--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
_UNREADABLE_PROBE = """
import json, logging, sys
try:
    open(sys.argv[1], "rb").close()
    sys.exit(77)
except PermissionError:
    pass
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
from playground.app import create_app
from playground.views.search import render_results
from playground.state import resolve_selection
from playground.static_html import to_tree
from playground.store import MissingArtifact, Store
from tests.helpers import text_of

root = sys.argv[2]
out = {}
store = Store(root)
try:
    sel = resolve_selection(store, {"dataset": "shapes", "model": "pixels", "layer": "pixels_8x8", "metric": "cosine"})
    out["results"] = text_of(render_results(store, sel))
except MissingArtifact as exc:
    out["results"] = "MissingArtifact: " + str(exc)
for name, call in [("index", lambda: store.index()),
                   ("scores", lambda: store.scores("shapes", "pixels", "pixels_8x8", "cosine"))]:
    try:
        call()
        out[name] = None
    except MissingArtifact as exc:
        out[name] = str(exc)
client = create_app(root).server.test_client()
answers = [client.get(f"/thumbs/shapes/{i}.jpg", headers={"Host": "localhost"}) for i in range(12)]
out["thumbs"] = sorted({(r.status_code, r.get_data()[:300].decode(errors="replace")) for r in answers})
print(json.dumps(out))
"""


def _read_as_unprivileged(root: Path, tmp: Path) -> tuple[dict, str]:
    """Run the probe above over ``root`` with file modes enforced; its JSON answer and its stderr (the log)."""
    probe = tmp / "probe-000"
    probe.write_text("x")
    probe.chmod(0)
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip(
                "running as root and setpriv (util-linux) is missing: cannot drop the capabilities that "
                "let root read a mode-000 file, so the permission checks were not run"
            )
        command = [setpriv, *_DROP, sys.executable, "-c", _UNREADABLE_PROBE, str(probe), str(root)]
    else:
        command = [sys.executable, "-c", _UNREADABLE_PROBE, str(probe), str(root)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
    if result.returncode == 77:
        pytest.skip(
            "the capability drop did not take effect here (a mode-000 file stayed readable), so the "
            "permission checks were not run"
        )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


@pytest.mark.slow  # a child process that imports the app: 5-40 s here
def test_an_unreadable_thumbnail_folder_is_one_message_and_one_log_line(artifacts_copy: Path, tmp_path: Path) -> None:
    thumbs = artifacts_copy / "shapes" / "thumbs"
    thumbs.chmod(0)
    try:
        answer, log = _read_as_unprivileged(artifacts_copy, tmp_path)
    finally:
        thumbs.chmod(0o755)
    message = "shapes/thumbs cannot be read by the account running playground (permission denied). Give it read access"
    assert [status for status, _ in answer["thumbs"]] == [500], answer["thumbs"]  # one answer for all 12
    assert message in answer["thumbs"][0][1]
    assert "Thumbnails cannot be shown: " + message in answer["results"]  # the page says it, above the results
    assert "Traceback" not in log and str(artifacts_copy) not in answer["thumbs"][0][1]
    assert log.count("shapes/thumbs cannot be read") == 1, log  # 12 requests, one log line


@pytest.mark.slow  # two child processes that import the app
def test_an_unreadable_model_folder_or_index_names_it_with_the_permissions_fix(
    artifacts_copy: Path, tmp_path: Path
) -> None:
    model = artifacts_copy / "shapes" / "pixels"
    index = artifacts_copy / "index.json"
    model.chmod(0)
    try:
        answer, log = _read_as_unprivileged(artifacts_copy, tmp_path)
    finally:
        model.chmod(0o755)
    assert answer["scores"].startswith(
        "shapes/pixels cannot be read by the account running playground (permission denied)"
    ), answer["scores"]
    assert "PermissionError" not in answer["results"] and "shapes/pixels cannot be read" in answer["results"]
    assert "Traceback" not in log
    index.chmod(0)
    try:
        answer, log = _read_as_unprivileged(artifacts_copy, tmp_path)
    finally:
        index.chmod(0o644)
    assert answer["index"].startswith("index.json cannot be read by the account running playground"), answer
    assert "Delete it" not in answer["index"] and "Traceback" not in log


def test_an_io_error_is_called_damage_with_a_rerun_as_the_fix(tmp_path: Path) -> None:
    from playground.store import Store, UnreadableArtifact

    store = Store(tmp_path)
    problem = store.os_problem(tmp_path / "shapes" / "manifest.parquet", "shapes", OSError(errno.EIO, "I/O"))
    assert isinstance(problem, UnreadableArtifact)
    assert str(problem).startswith(
        "shapes/manifest.parquet cannot be read (I/O): the file or the disk is damaged. Rerun precompute for shapes"
    )


# ------------------------------------------------------------------------------------------------ Ctrl-C
def _assert_stopped(result: dict, line: str) -> None:
    assert result["code"] == 130, result["all"][-3000:]
    assert result["seconds"] < 2.0, f"stopped {result['seconds']:.2f} s after the signal"
    after = result["after"]
    assert after == [line], f"{len(after)} lines after the signal: {after[:20]}"
    assert not result["alive"], f"left running: {[(p.pid, p.name()) for p in result['alive']]}"


RESUME_LINE = "precompute: interrupted; finished files are kept, rerun the same command to resume."


@pytest.mark.slow  # real precompute processes
@pytest.mark.parametrize("moment", [0.3, "scan images", "pixels (3 layers): 100%"])
def test_ctrl_c_stops_precompute_with_one_line(tmp_path: Path, moment: float | str) -> None:
    """While Python imports, while the run scans, and once extraction and UMAP (numba) run: each time one line,
    exit 130 within 2 s, no process left."""
    dataset = make_dataset(tmp_path / "ds", per_class=30)
    result = interrupt_command(
        [
            *command_of("precompute"),
            str(dataset),
            "--out",
            str(tmp_path / "out"),
            "--backbones",
            "pixels",
            "--tfjs",
            "none",
        ],
        moment,
    )
    _assert_stopped(result, RESUME_LINE)


@pytest.mark.slow  # the default models' first run, stopped while a model's child process extracts
def test_ctrl_c_stops_the_default_models_run_and_its_model_processes(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "ds", per_class=6)
    result = interrupt_command(
        [*command_of("precompute"), str(dataset), "--out", str(tmp_path / "out")], "efficientnet-lite0"
    )
    assert result["n_tree"] >= 2, "the run should have had its model processes by then"
    _assert_stopped(result, RESUME_LINE)


@pytest.mark.slow  # the main command's first run (a precompute child), then the server
def test_ctrl_c_stops_playground_in_its_first_run_and_while_serving(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "ds", per_class=6)
    command = [
        *command_of("playground"),
        "--artifacts",
        str(tmp_path / "out"),
        "--data",
        str(dataset),
        "--port",
        str(free_port()),
    ]
    result = interrupt_command(command, "efficientnet-lite0")  # the precompute child runs the default models
    assert result["n_tree"] >= 3
    _assert_stopped(result, "playground: interrupted; finished files are kept, rerun the same command to resume.")
    serving = [
        *command_of("playground"),
        "--artifacts",
        str(tmp_path / "empty"),
        "--no-precompute",
        "--port",
        str(free_port()),
    ]
    result = interrupt_command(serving, "Serving on", to_group=False)
    _assert_stopped(result, "playground: interrupted; stopped serving.")


# ------------------------------------------------------------------------------------------ smaller ones
_PIXELS_UPLOAD = """
import json, sys
import numpy as np
from precompute.models import load_extractor
config = {"backbone": "pixels", "weights_source": "none", "input_size": 40, "pooling": "flatten"}
images = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3)).astype(np.uint8)
out = load_extractor(config, ["pixels_8x8", "pixels_16x16", "pixels_32x32"])(images)
print(json.dumps({"tensorflow": "tensorflow" in sys.modules, "keras": "keras" in sys.modules,
                  "features": [o.tolist() for o in out]}))
"""


@pytest.mark.slow  # builds the Keras reference model
def test_a_pixels_upload_imports_no_tensorflow_and_matches_keras() -> None:
    from precompute.backbones import get_backbone
    from precompute.models import build_keras_feature_model
    from precompute.schema import ModelConfig

    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", _PIXELS_UPLOAD], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert not answer["tensorflow"] and not answer["keras"]
    # 40 px: the 32x32 grid pools 1x1 (40 cells), the 16x16 grid 2x2 with a row and column dropped, as Keras does.
    config = ModelConfig(backbone="pixels", weights_source="none", input_size=40, pooling="flatten")
    _, model = build_keras_feature_model(config, ["pixels_8x8", "pixels_16x16", "pixels_32x32"], get_backbone("pixels"))
    images = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3)).astype(np.uint8)
    expected = model(get_backbone("pixels").preprocess(images.astype(np.float32)))
    for got, want in zip(answer["features"], expected, strict=True):
        np.testing.assert_allclose(np.asarray(got, dtype=np.float32), np.asarray(want), rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # a whole (tiny, pixels) run
def test_force_over_a_broken_index_says_exactly_which_models_it_leaves_out(tmp_path: Path, caplog) -> None:
    root = tmp_path / "out"
    dataset = make_dataset(tmp_path / "ds", per_class=3)
    for name in ("ds/efficientnet-lite0", "ds/efficientnet-lite0-random", "other/pixels"):  # files of other runs
        layer = root / name / "some_layer"
        layer.mkdir(parents=True)
        np.save(layer / "features.npy", np.zeros((2, 2), np.float32))
    (root / "other" / "manifest.parquet").write_bytes(b"x")
    (root / "index.json").write_text('{"schema_version": 1, "datas')
    run = Run(
        RunConfig(
            dataset,
            root,
            [ModelRequest("pixels")],
            metrics=("cosine",),
            top_n=5,
            force=True,
            progress=False,
            umap_neighbors=4,
            tfjs=(),
        )
    )
    with caplog.at_level("WARNING"):
        run.execute()
    dropped = ["ds/efficientnet-lite0", "ds/efficientnet-lite0-random", "other/pixels"]  # ds/pixels was recomputed
    assert run.report["dropped_from_index"] == dropped
    assert json.loads(art.report_path(root, "ds").read_text())["dropped_from_index"] == dropped
    assert "leaves out 3 computed model(s)" in caplog.text and ", ".join(dropped) in caplog.text


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels (8-bit grey) and holds one empty row: a header to refuse."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_refused_in_the_apps_words() -> None:
    from playground import uploads

    bomb = _png_header(20_000, 20_000)  # 400 megapixels: Pillow refuses to open it at all
    for call in (lambda: uploads.check_pixels(bomb), lambda: uploads.prepare_image(bomb, 32)):
        with pytest.raises(uploads.UploadError) as refused:
            call()
        assert str(refused.value) == (
            "The image is 400,000,000 pixels, over the upload limit of 29,826,161 pixels "
            "(29.8 megapixels); downscale it."
        )


def test_an_upload_name_is_cut_to_a_bounded_length(playground_artifacts: Path) -> None:
    from PIL import Image

    from playground.state import resolve_selection
    from playground.store import Store
    from playground.views.upload import render_upload
    from tests.helpers import data_url, text_of
    from tests.playground_fixtures import png_bytes

    store = Store(playground_artifacts)
    sel = resolve_selection(store, {"dataset": "shapes", "model": "pixels", "layer": "pixels_8x8", "metric": "cosine"})
    name = "a" * 1_000_000 + ".png"
    status, _ = render_upload(store, sel, data_url(png_bytes(Image.new("RGB", (40, 40), "red"))), name)
    text = text_of(status)
    assert len(text) < 1000 and "a" * 99 + "…" + "a" * 95 + ".png" in text  # 199 characters, cut in the middle
    broken, _ = render_upload(store, sel, "data:image/png;base64,!!!", name)  # the error message names it too
    assert len(text_of(broken)) < 1000


def test_a_component_suites_path_outside_dash_is_a_404_without_traceback(caplog) -> None:
    from playground.app import create_app

    client = create_app(Path("/nonexistent-artifacts")).server.test_client()
    with caplog.at_level("WARNING"):
        for path in (
            "/_dash-component-suites/../etc/passwd",
            "/_dash-component-suites/dash/../../setup.py",
            "/_dash-component-suites/nope/x.js",
            "/_dash-component-suites/dash/x.js",
        ):
            assert client.get(path, headers={"Host": "localhost"}).status_code == 404, path
    assert "Traceback" not in caplog.text and "DependencyException" not in caplog.text
