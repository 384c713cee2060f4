"""Fixtures of the playground tests: small real artifacts made by the real precompute pipeline.

``playground_artifacts`` (session scope) holds two datasets under one root:

- ``shapes``: 3 labeled classes x 8 coloured shapes, models ``pixels`` and ``efficientnet-lite0-random``
  (input 64 px), every default metric, rankings stored to depth 20;
- ``shapes-flat``: 6 unlabeled images (a flat folder), model ``pixels`` only.

``store`` reads them; ``trust`` is a private copy with the duplicate tables, label checks and intervals that
``tests.helpers.add_trust_entries`` adds, ``old_store`` one without them (as older runs left them).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CLASSES = {"circle": (220, 40, 40), "square": (40, 160, 40), "triangle": (40, 60, 220)}
N_PER_CLASS = 8
MODELS = ["pixels", "efficientnet-lite0:random"]


def draw_shape(kind: str, colour: tuple[int, int, int], rng: np.random.Generator, size: int = 48) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(200, 256, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    s = int(rng.integers(size // 6, size // 3))
    cx, cy = (int(v) for v in rng.integers(size // 3, 2 * size // 3, 2))
    fill = tuple(int(np.clip(v + rng.integers(-30, 30), 0, 255)) for v in colour)
    if kind == "circle":
        draw.ellipse([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif kind == "square":
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    else:
        draw.polygon([(cx, cy - s), (cx - s, cy + s), (cx + s, cy + s)], fill=fill)
    return image


def make_shapes_dataset(root: Path, labeled: bool = True, n_per_class: int = N_PER_CLASS, seed: int = 0) -> Path:
    """Write a tiny image folder: one sub-folder per class, or a flat folder when unlabeled."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for kind, colour in CLASSES.items():
        folder = root / kind if labeled else root
        folder.mkdir(exist_ok=True)
        for i in range(n_per_class):
            draw_shape(kind, colour, rng).save(folder / f"{kind if not labeled else ''}{i}.png")
    return root


def build_artifacts(base: Path) -> Path:
    from precompute.pipeline import run

    out = base / "artifacts"
    labeled = make_shapes_dataset(base / "shapes")
    run(labeled, out, models=MODELS, input_size=64, progress=False, top_n=20)
    flat = make_shapes_dataset(base / "shapes-flat", labeled=False, n_per_class=2, seed=1)
    run(flat, out, models=["pixels"], progress=False, top_n=5)
    return out


@pytest.fixture(scope="session")
def playground_artifacts(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """An artifacts root made by the real pipeline (about 30-40 s on 2 cores), once per test session.

    The pytest-xdist workers share one build (the first to ask builds it under a file lock, the others wait for it),
    rather than each building its own: two builds at once took a third of the fast tier's processor time. Tests read
    it; a test that changes artifacts works on ``artifacts_copy``."""
    if worker_id == "master":  # one process (-n 0)
        return build_artifacts(tmp_path_factory.mktemp("playground"))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / "playground"  # the session's folder, above each worker's
    with FileLock(f"{shared}.lock"):
        built = shared / "built"
        if not built.is_file():
            shutil.rmtree(shared, ignore_errors=True)  # what a failed build left
            build_artifacts(shared)
            built.touch()
    return shared / "artifacts"


@pytest.fixture
def artifacts_copy(playground_artifacts: Path, tmp_path: Path) -> Path:
    """A private copy of the artifacts that a test may damage."""
    from playground.store import clear_caches

    copy = tmp_path / "artifacts"
    shutil.copytree(playground_artifacts, copy)
    clear_caches()
    return copy


@pytest.fixture
def store(playground_artifacts: Path):
    """A store over the session's artifacts (its caches are shared: copy the artifacts before damaging them)."""
    from playground.store import Store

    return Store(playground_artifacts)


@pytest.fixture(scope="session")
def trusted_artifacts(
    playground_artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, int]]:
    """The artifacts with ``tests.helpers.add_trust_entries`` applied, once per session (its bootstrap intervals
    take about a second): duplicate tables, label checks and intervals, and the ids of the pair it adds."""
    from tests.helpers import add_trust_entries

    root = tmp_path_factory.mktemp("trusted") / "artifacts"
    shutil.copytree(playground_artifacts, root)
    return root, add_trust_entries(root)


@pytest.fixture
def trust(artifacts_copy: Path, trusted_artifacts: tuple[Path, dict[str, int]]):
    """``artifacts_copy`` as ``add_trust_entries`` leaves it (a copy of the trusted artifacts), and its store."""
    from playground.store import Store, clear_caches

    template, ids = trusted_artifacts
    shutil.rmtree(artifacts_copy)
    shutil.copytree(template, artifacts_copy)
    clear_caches()
    return Store(artifacts_copy), ids


@pytest.fixture
def old_store(artifacts_copy: Path):
    """A store over artifacts as a run before the duplicate tables, label checks and intervals left them."""
    from playground.store import Store
    from tests.helpers import strip_trust_entries

    strip_trust_entries(artifacts_copy)
    return Store(artifacts_copy)


def png_bytes(image: Image.Image, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save_args)
    return buffer.getvalue()


def photo_png() -> bytes:
    """A real photograph (scikit-image's chelsea the cat) encoded as PNG in memory."""
    from skimage import data

    return png_bytes(Image.fromarray(data.chelsea()))


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="module")
def axe_script() -> str | None:
    """axe-core's script (precompute/npm_files.py: npm pack, cached), or None where it cannot be had (the
    accessibility tests then say they were skipped, and why)."""
    from precompute.npm_files import AXE_CORE, NpmFileUnavailable

    try:
        return AXE_CORE.find().read_text()
    except NpmFileUnavailable:
        return None
