"""``precompute DATASET --train-head``: bad input is refused with a clear message and changes nothing (fast, on a
synthetic index); the whole stage on real backbones, uploads and the TF.js export (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from precompute import artifacts as art
from precompute.cli import main
from precompute.datasets import build_manifest, folder_fingerprint
from precompute.schema import DatasetEntry, LayerEntry, ModelConfig, ModelEntry


def _folder(root: Path, counts: dict[str, int] | None, n_flat: int = 0) -> Path:
    """Tiny PNGs, one sub-folder per class (``counts``), or ``n_flat`` in a flat folder."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    items = [(name, i) for name, n in (counts or {}).items() for i in range(n)] or [(None, i) for i in range(n_flat)]
    for name, i in items:
        folder = root / name if name else root
        folder.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{name or 'x'}{i}.png")
    return root


def _stored(tmp_path: Path, counts: dict[str, int] | None = None, n_flat: int = 0) -> tuple[Path, Path]:
    """A dataset folder and an artifacts root that holds it with one model (``pixels``, layer ``pixels_8x8``) whose
    features are synthetic: what ``--train-head`` reads, without running a backbone."""
    folder = _folder(tmp_path / "photos", counts, n_flat)
    out = tmp_path / "artifacts"
    manifest, _, labeled = build_manifest(folder, art.thumbs_dir(out, "photos"), progress=False)
    art.write_table(art.manifest_path(out, "photos"), manifest)
    features = np.random.default_rng(1).normal(size=(len(manifest), 8)).astype(np.float32)
    path = art.features_path(out, "photos", "pixels", "pixels_8x8")
    art.write_array(path, features)
    model = ModelEntry(
        backbone="pixels",
        config=ModelConfig(backbone="pixels", weights_source="none", input_size=32, pooling="avg"),
        layers={"pixels_8x8": LayerEntry(dim=8, features=art.relative(out, path))},
    )
    entry = DatasetEntry(
        source=str(folder.resolve()),
        n_images=len(manifest),
        labeled=labeled,
        manifest=art.relative(out, art.manifest_path(out, "photos")),
        fingerprint=folder_fingerprint(folder, exclude=[out]),
        models={"pixels": model},
    )
    art.update_index(out, lambda index: index.datasets.__setitem__("photos", entry))
    return folder, out


@pytest.mark.parametrize(
    ("counts", "n_flat", "request_", "expected"),
    [
        (None, 6, "pixels/pixels_8x8", "photos: the images have no labels"),
        ({"a": 4}, 0, "pixels/pixels_8x8", "photos: a head needs at least 2 classes"),
        ({"a": 4, "b": 1}, 0, "pixels/pixels_8x8", r"photos: every class needs at least 2 images .*b \(1 image\)"),
        ({"a": 3, "b": 3}, 0, "vgg16/block5_conv3", "photos: no model 'vgg16' is computed .*--backbones vgg16"),
        (
            {"a": 3, "b": 3},
            0,
            "pixels/pixels_32x32",
            "photos: pixels has no layer 'pixels_32x32' computed .*--backbones pixels --layers pixels_32x32",
        ),
        ({"a": 3, "b": 3}, 0, "pixels+head/pixels_8x8", "photos: pixels\\+head is itself a trained head"),
    ],
)
def test_bad_input_names_the_dataset_and_the_fix_exits_2_and_changes_nothing(
    tmp_path, capsys, counts, n_flat, request_, expected
):
    folder, out = _stored(tmp_path, counts, n_flat)
    before = art.index_path(out).read_bytes()
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert main([str(folder), "--out", str(out), "--train-head", request_, "--no-progress"]) == 2
    message = capsys.readouterr().err
    assert message.startswith("precompute: error: ")
    assert __import__("re").search(expected, message), message
    assert art.index_path(out).read_bytes() == before
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files


def test_a_dataset_not_precomputed_and_a_changed_folder_are_refused(tmp_path, capsys):
    folder = _folder(tmp_path / "photos", {"a": 2, "b": 2})
    assert main([str(folder), "--out", str(tmp_path / "empty"), "--train-head", "best"]) == 2
    assert "photos: not precomputed in" in capsys.readouterr().err
    folder, out = _stored(tmp_path / "second", {"a": 2, "b": 2})
    before = art.index_path(out).read_bytes()
    Image.new("RGB", (16, 16)).save(folder / "a" / "new.png")
    assert main([str(folder), "--out", str(out), "--train-head", "best"]) == 2
    assert "changed since its features were computed" in capsys.readouterr().err
    assert art.index_path(out).read_bytes() == before


def test_malformed_requests_are_refused_before_any_work(tmp_path, capsys):
    assert main([str(tmp_path), "--train-head", "efficientnet-lite2"]) == 2
    assert "MODEL/LAYER[,MODEL/LAYER...] or best" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ slow: real backbones


@pytest.mark.slow
def test_a_trained_head_is_a_model_for_search_uploads_and_the_browser(tmp_path, capsys):
    """The stage on a real (random-weight) backbone: a model of its own with cross-validated scores, resumable; its
    uploads on Keras and LiteRT and its TF.js export (in node) agree with the stored features."""
    from precompute.models import load_extractor, rooted_config
    from precompute.stages.head import stored_head_lines
    from tests.playground_fixtures import make_shapes_dataset
    from tests.tfjs_node import predict_in_node, tfjs_unavailable

    folder = make_shapes_dataset(tmp_path / "shapes", n_per_class=6)
    out = tmp_path / "artifacts"
    args = [
        str(folder),
        "--out",
        str(out),
        "--no-progress",
        "--input-size",
        "64",
        "--top-n",
        "20",
        "--tfjs",
        "float32",
    ]
    assert main([*args, "--backbones", "efficientnet-lite0:random", "--layers", "top_conv"]) == 0
    capsys.readouterr()
    assert main([*args, "--train-head", "best"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    key = "efficientnet-lite0-random+head"
    assert printed[-1].startswith(f"shapes {key}/top_conv: held-out precision@5 base ")
    assert stored_head_lines(out) == [printed[-1]]
    index = art.read_index(out)
    entry = index.datasets["shapes"].models[key]
    record = entry.trained_heads["top_conv"]
    assert (
        record.fit_seconds < 30
        and record.head_kind == "proxy"
        and record.head_dim == record.head_settings["dim"]
        and set(record.heldout) == {"headline", "strict"}
    )
    assert [p["labels_per_class"] for p in record.learning_curve] == [1, 2, 5, 10, "half"]
    metric = entry.layers["top_conv"].metrics["cosine"]
    assert metric.score("precision@5") == record.heldout["headline"]["precision@5"]["head"]
    assert entry.layers["top_conv"].umap and entry.tfjs.variant_bytes
    # Resumable: nothing changed, nothing retrained.
    stamp = art.features_path(out, "shapes", key, "top_conv").stat().st_mtime_ns
    assert main([*args, "--train-head", "efficientnet-lite0-random/top_conv"]) == 0
    assert art.features_path(out, "shapes", key, "top_conv").stat().st_mtime_ns == stamp

    stored = art.read_array(art.features_path(out, "shapes", key, "top_conv"))
    manifest = art.read_manifest(out, "shapes")
    from precompute.datasets import load_for_model

    images = np.stack([load_for_model(folder / p, 64) for p in manifest["path"][:4]])
    config = rooted_config(entry.config, out)
    scale = np.abs(stored).max()
    for runtime in ("keras", "litert"):
        got = load_extractor(config, ["top_conv"], runtime)(images)[0]
        assert np.abs(got - stored[:4]).max() <= 1e-5 * max(scale, 1.0), runtime
    spec = json.loads((art.tfjs_dir(out, "shapes", key) / "export.json").read_text())
    assert spec["head"]["layers"]["top_conv"]["dense"] == "top_conv__head"
    reason = tfjs_unavailable()
    if reason:
        pytest.skip(f"the TF.js half of this test needs node and tf.min.js: {reason}")
    transformed = images[..., :] * np.asarray(spec["scale"], np.float32) + np.asarray(spec["offset"], np.float32)
    outputs, _ = predict_in_node(art.tfjs_dir(out, "shapes", key) / "float32", transformed)
    assert np.abs(outputs[0] - stored[:4]).max() <= 1e-5 * max(scale, 1.0)


def test_bench_head_prints_the_line_of_every_stored_head(tmp_path, capsys):
    from bench.head import main as bench_head
    from precompute.schema import HeadLayer

    _, out = _stored(tmp_path, {"a": 3, "b": 3})
    comparison = {"precision@5": {"base": 0.5031, "head": 0.5921, "difference": 0.089, "ci": [0.0521, 0.1274]}}

    def add_head(index):
        base = index.datasets["photos"].models["pixels"]
        record = HeadLayer(
            head_kind="lda", base_model="pixels", input_dim=8, head_dim=1, heldout={"headline": comparison}
        )
        index.datasets["photos"].models["pixels+head"] = ModelEntry(
            backbone="pixels", config=base.config, trained_heads={"pixels_8x8": record}
        )

    art.update_index(out, add_head)
    assert bench_head(["--artifacts", str(out)]) == 0
    assert capsys.readouterr().out.strip() == (
        "photos pixels+head/pixels_8x8: held-out precision@5 base 0.503 head 0.592 difference +0.089 [0.052, 0.127]"
    )
    assert bench_head(["--artifacts", str(tmp_path / "none")]) in (1, 2)


def test_the_adapted_section_renders_a_stored_head(tmp_path):
    from playground.adapted import adapted_rows, is_head_model, render_adapted
    from playground.store import Store
    from precompute.schema import HeadLayer
    from tests.helpers import text_of

    _, out = _stored(tmp_path, {"a": 3, "b": 3})
    item = {
        "base": 0.5,
        "base_ci": [0.4, 0.6],
        "head": 0.6,
        "head_ci": [0.5, 0.7],
        "difference": 0.1,
        "ci": [0.02, 0.18],
        "p_value": 0.01,
    }
    curve = [{"labels_per_class": p, **item} for p in (1, "half")]

    def add_head(index):
        base = index.datasets["photos"].models["pixels"]
        record = HeadLayer(
            head_kind="lda",
            base_model="pixels",
            input_dim=8,
            head_dim=1,
            n_params=9,
            n_labels=6,
            fit_seconds=0.01,
            heldout={"headline": {"precision@5": item}, "strict": {"precision@5": item}},
            learning_curve=curve,
        )
        index.datasets["photos"].models["pixels+head"] = ModelEntry(
            backbone="pixels", config=base.config, trained_heads={"pixels_8x8": record}
        )

    art.update_index(out, add_head)
    store = Store(out)
    assert is_head_model(store, "photos", "pixels+head") and not is_head_model(store, "photos", "pixels")
    assert adapted_rows(store, "photos")["verdict precision@5"].tolist() == ["head better"]
    text = text_of(render_adapted(store, "photos"))
    assert (
        "A head trained on your 6 labels (pixels+head, pixels_8x8) lifts held-out precision@5 from 0.50 to 0.60" in text
    )
