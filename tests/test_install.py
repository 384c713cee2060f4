"""Installing and running like a tool: where files are found, --version, compressed responses, and (slow) the wheel.

The slow test builds the sdist and the wheel from this checkout (``python -m build``: the wheel is built from the
sdist, so both must carry ``assets/`` and ``data/``), installs the wheel non-editable into a fresh virtual
environment (its dependencies from the same package index and cache as ``.ci/setup``), runs ``playground`` from
an empty folder with a small backbone set, and checks the page in headless Chromium.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from precompute import locations
from tests.playground_fixtures import REPO

DIST = "semantic_image_search_playground"


# ----------------------------------------------------------------------------------------------- locations
def test_a_clone_finds_its_top_level_folders():
    assert locations.source_root() == REPO
    assert locations.assets_dir() == REPO / "assets" and (REPO / "assets" / "static_html.js").is_file()
    assert locations.data_dir() == REPO / "data" and (REPO / "data" / "openclipart-200").is_dir()
    with pytest.raises(ValueError, match="unknown bundled folder 'docs'; choose from assets, data"):
        locations.bundled_dir("docs")


def test_an_installed_package_finds_the_copies_inside_its_packages(monkeypatch):
    monkeypatch.setattr(locations, "source_root", lambda: None)
    parent = locations.PACKAGES_PARENT
    assert locations.assets_dir() == parent / "playground" / "assets"
    assert locations.data_dir() == parent / "precompute" / "data"


def test_setup_py_copies_what_locations_reads():
    """setup.py cannot import the package at build time, so it holds its own copy of BUNDLED."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    (value,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "BUNDLED" for t in node.targets)
    ]
    assert ast.literal_eval(value) == locations.BUNDLED


def test_the_default_artifacts_root(monkeypatch, tmp_path):
    monkeypatch.delenv(locations.ARTIFACTS_ENV, raising=False)
    assert locations.default_artifacts_root() == Path("artifacts")  # a clone: as it always was
    assert "./artifacts" in locations.describe_default_artifacts()
    monkeypatch.setattr(locations, "source_root", lambda: None)  # an installed package
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    expected = tmp_path / "xdg" / locations.DIST_NAME / "artifacts"
    assert locations.default_artifacts_root() == expected
    assert str(expected) in locations.describe_default_artifacts()
    monkeypatch.setenv(locations.ARTIFACTS_ENV, str(tmp_path / "mine"))  # the variable wins everywhere
    assert locations.default_artifacts_root() == tmp_path / "mine"


def test_both_commands_say_their_version_and_the_artifacts_folder(monkeypatch, capsys, tmp_path):
    from playground.__main__ import parse_args
    from precompute.cli import build_parser

    monkeypatch.delenv(locations.ARTIFACTS_ENV, raising=False)
    version = locations.package_version()
    for parse, prog in ((parse_args, "playground"), (build_parser().parse_args, "precompute")):
        with pytest.raises(SystemExit) as exit_:
            parse(["--version"])
        assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"{prog} {version}"
    assert parse_args([]).artifacts == Path("artifacts")
    monkeypatch.setattr(locations, "source_root", lambda: None)  # as installed: the user's data directory
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, at hyphens too
    assert str(tmp_path / "xdg" / locations.DIST_NAME / "artifacts") in help_text
    assert build_parser().parse_args(["x"]).out == tmp_path / "xdg" / locations.DIST_NAME / "artifacts"


def test_backbones_reach_the_first_run_precompute(monkeypatch, tmp_path):
    import playground.__main__ as main_module

    calls = []
    monkeypatch.setattr(
        main_module.subprocess,
        "run",
        lambda command, **kw: calls.append(command) or subprocess.CompletedProcess(command, 0),
    )
    (tmp_path / "fresh").mkdir()
    assert main_module.precompute_in_child(tmp_path / "out", [tmp_path / "fresh"], "pixels,efficientnet-lite0") == 0
    assert calls[0][-2:] == ["--backbones", "pixels,efficientnet-lite0"]
    runs = []
    monkeypatch.setattr(main_module, "ensure_dataset", lambda *args: runs.append(args))
    argv = [
        "--precompute-only",
        "--artifacts",
        str(tmp_path / "out"),
        "--data",
        str(tmp_path / "fresh"),
        "--backbones",
        "pixels, efficientnet-lite0",
    ]
    assert main_module.main(argv) == 0
    assert runs == [(tmp_path / "out", tmp_path / "fresh", ["pixels", "efficientnet-lite0"])]


# ------------------------------------------------------------------------------------- the page and its bytes
def test_the_footer_names_the_artifacts_folder(playground_artifacts):
    from playground.app import create_app
    from tests.helpers import text_of

    text = " ".join(text_of(create_app(playground_artifacts).layout()).split())
    assert f"Artifacts: {playground_artifacts.resolve()}" in text


def test_the_first_search_results_come_with_the_layout(playground_artifacts):
    """A page opening Search (its URL is the layout request's Referer) gets its first results in the layout, with no
    callback round before them, deep link included; another view, another site's page or no Referer get the bare
    layout, which the controller's first answer fills as before. The page preloads the layout while its scripts
    load."""
    import json

    from playground import ids
    from playground.app import create_app

    client = create_app(playground_artifacts).server.test_client()

    def component(node, wanted):
        if isinstance(node, dict):
            if node.get("props", {}).get("id") == wanted:
                return node
            children = node.get("props", {}).get("children") if "props" in node else None
            return component(children, wanted)
        if isinstance(node, list):
            return next((found for child in node if (found := component(child, wanted)) is not None), None)
        return None

    def layout(referer=None):
        response = client.get("/_dash-layout", headers={"Referer": referer} if referer else {})
        assert response.status_code == 200
        return json.loads(response.get_data(as_text=True))

    store_id = ids.VIEW_SELECTION.format("search")
    for referer, query in (("http://localhost/", None), ("http://localhost/search?dataset=shapes&query=5", 5)):
        page = layout(referer)
        selection = component(page, store_id)["props"]["data"]
        assert selection["view"] == "search" and selection["dataset"] == "shapes"
        assert query is None or selection["query"] == query
        results = json.dumps(component(page, ids.RESULTS)["props"]["tree"])
        assert "result-card" in results
        assert component(page, ids.GRID_SHOWN)["props"]["data"]["dataset"] == "shapes"
        assert component(page, ids.DATASET)["props"]["value"] == "shapes"
    for referer in (None, "http://localhost/embeddings?dataset=shapes", "http://elsewhere.example/search"):
        page = layout(referer)
        assert component(page, store_id)["props"].get("data") is None
        assert "result-card" not in json.dumps(component(page, ids.RESULTS)["props"])
    html = client.get("/search").get_data(as_text=True)
    assert '<link rel="preload" href="/_dash-layout" as="fetch" crossorigin="anonymous">' in html


def test_responses_are_compressed_and_keep_their_caching(playground_artifacts):
    import re

    from playground.app import create_app

    client = create_app(playground_artifacts).server.test_client()
    page = client.get("/", headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert page.headers["Content-Encoding"] == "br"
    html = client.get("/").get_data(as_text=True)  # no Accept-Encoding: as it is
    bundle = re.search(r'src="(/_dash-component-suites/dash/dcc/dash_core_components\.[^"]+\.js)"', html)[1]
    for accept, expected in (("gzip, deflate, br", "br"), ("gzip", "gzip"), ("", None)):
        response = client.get(bundle, headers={"Accept-Encoding": accept})
        assert response.headers.get("Content-Encoding") == expected
        assert response.headers["Cache-Control"] == "max-age=31536000"  # fingerprinted: cached a year
        assert "Accept-Encoding" in response.headers["Vary"]
    plain = client.get(bundle).get_data()
    assert len(client.get(bundle, headers={"Accept-Encoding": "br"}).get_data()) < len(plain) / 3
    # The page's own scripts (send_from_directory, streamed): compressed, and revalidated with a 304.
    script = client.get("/assets/static_html.js", headers={"Accept-Encoding": "br"})
    etag = script.headers["ETag"]
    assert script.headers["Content-Encoding"] == "br" and etag.endswith(':br"')
    again = client.get("/assets/static_html.js", headers={"Accept-Encoding": "br", "If-None-Match": etag})
    assert again.status_code == 304
    # A range of a file stays a range of its bytes (never compressed); images go out as they are.
    part = client.get("/assets/static_html.js", headers={"Accept-Encoding": "br", "Range": "bytes=0-9"})
    assert part.status_code == 206 and "Content-Encoding" not in part.headers and len(part.get_data()) == 10
    thumb = client.get("/thumbs/shapes/0.jpg", headers={"Accept-Encoding": "gzip, br"})
    assert thumb.status_code == 200 and "Content-Encoding" not in thumb.headers
    assert thumb.headers["Cache-Control"] == "public, max-age=3600"


def test_plotly_is_served_locally_for_the_views_that_draw_figures(playground_artifacts):
    """The on-demand loader injects Dash's own local plotly.min.js (window._dashPlotlyJSURL): no CDN."""
    from playground.app import create_app

    app = create_app(playground_artifacts)
    client = app.server.test_client()
    assert b"plotly_on_demand.js" in client.get("/").get_data()  # an asset: in the page before any graph mounts
    assert app.config.serve_locally
    response = client.get(
        "/_dash-component-suites/plotly/package_data/plotly.min.js", headers={"Accept-Encoding": "gzip, deflate, br"}
    )
    assert response.status_code == 200 and response.headers["Content-Encoding"] == "br"


# ---------------------------------------------------------------------------------------------- the wheel
def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return result


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without what points into the clone (PYTHONPATH, $SISP_ARTIFACTS, a virtualenv) and with
    bytecode caching on, so that each of the installed package's processes does not compile TensorFlow anew."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "SISP_ARTIFACTS", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")
    }
    return {**env, **extra}


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(
    shutil.which("chromedriver") is None or shutil.which("chromium") is None,
    reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)",
)
def test_the_wheel_installs_into_a_fresh_venv_and_serves_from_any_folder(tmp_path):
    from bench.first_visit import visit, wait_until_up

    timings = {}
    start = time.monotonic()
    # 1. The sdist, and the wheel built from it.
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)], env=_clean_env())
    (wheel,) = dist.glob(f"{DIST}-*.whl")
    (sdist,) = dist.glob(f"{DIST}-*.tar.gz")
    names = set(zipfile.ZipFile(wheel).namelist())
    for source, target in locations.BUNDLED.items():
        shipped = {p.relative_to(REPO / source).as_posix() for p in (REPO / source).rglob("*") if p.is_file()}
        assert {f"{target}/{name}" for name in shipped} <= names, f"the wheel lacks files of {source}/"
    timings["build"] = time.monotonic() - start

    # 2. A fresh virtual environment, the wheel installed non-editable with its dependencies.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    _run([str(python), "-m", "pip", "install", "-q", "--no-compile", str(wheel)], env=_clean_env())
    timings["install"] = time.monotonic() - start - timings["build"]
    where = _run(
        [
            str(python),
            "-c",
            "import playground, precompute.locations as l; "
            "print(playground.__file__); print(l.data_dir()); print(l.source_root())",
        ],
        cwd=tmp_path,
        env=_clean_env(),
    ).stdout.split("\n")
    assert where[0].startswith(str(venv)) and where[1].startswith(str(venv)) and where[2] == "None", where
    version = locations.package_version()
    for command in ("playground", "precompute"):
        out = _run([str(bin_dir / command), "--version"], env=_clean_env()).stdout.strip()
        assert out == f"{command} {version}", out

    # 3. `playground` from an empty folder: artifacts go to the user's data directory, nothing to the folder.
    empty, xdg = tmp_path / "empty", tmp_path / "xdg"
    empty.mkdir()
    expected_root = xdg / locations.DIST_NAME / "artifacts"
    env = _clean_env(XDG_DATA_HOME=str(xdg))
    help_text = "".join(_run([str(bin_dir / "playground"), "--help"], cwd=empty, env=env).stdout.split())
    assert str(expected_root) in help_text
    port = _free_port()
    data = Path(where[1]) / "fashion-mnist-200"
    log = (tmp_path / "playground.log").open("w")
    server = subprocess.Popen(
        [
            str(bin_dir / "playground"),
            "--port",
            str(port),
            "--data",
            str(data),
            "--backbones",
            "pixels",  # the smallest first run (TensorFlow's Keras pixels model, UMAP); the page needs no more
        ],
        cwd=empty,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_up("127.0.0.1", port, 600, server)
        timings["first run"] = time.monotonic() - start - timings["build"] - timings["install"]
        assert (expected_root / "index.json").is_file() and list(empty.iterdir()) == []
        page = visit(f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    print(
        f"wheel test: {', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}; sdist {sdist.stat().st_size} B, "
        f"wheel {wheel.stat().st_size} B; first visit {page.kb:.0f} KB, results {page.results_ms:.0f} ms"
    )

    # 4. The page: results and the grid rendered, the private mode's scripts served, no console error.
    assert page.results_ms is not None and page.grid_ms is not None, "the Search view rendered no results"
    scripts = {path.split("?")[0]: status for path, status in page.statuses.items() if path.startswith("/assets/")}
    private = ("/assets/private_search.js", "/assets/private_cards.js", "/assets/private_upload.js")
    assert all(scripts.get(path) == 200 for path in private), scripts
    assert all(status == 200 for status in scripts.values()), scripts
    assert page.console_errors == [] and page.failed == [] and page.offsite == []
    assert not page.plotly, "Search fetched plotly.min.js"
    assert str(expected_root) in page.footer


def test_compressed_bundles_are_kept_and_nothing_else_is(playground_artifacts):
    from playground.app import create_app
    from playground.compression import BundleCache, bundle_key

    client = create_app(playground_artifacts).server.test_client()
    url = "/_dash-component-suites/plotly/package_data/plotly.min.js"
    first = client.get(url, headers={"Accept-Encoding": "br"}).get_data()
    assert client.get(url, headers={"Accept-Encoding": "br"}).get_data() == first
    cache = BundleCache()
    cache.set("br;" + bundle_key(type("R", (), {"method": "POST", "path": "/_dash-update-component"})()), b"x")
    assert cache.data == {}  # a callback's answer is never kept
