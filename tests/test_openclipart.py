"""The Open Clip Art sampler behind data/openclipart-200, the embedded default dataset, and what it shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from precompute import artifacts as art
from precompute.datasets import decode_image, scan_folder
from precompute.duplicates import content_hash, hash_pairs, perceptual_hash
from precompute.pipeline import ModelRequest, Run, RunConfig
from tools.openclipart import CLASSES, DEFAULT_SOURCE, MAX_SIDE, crop_to_drawing, export_image_folder, main

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = REPO / "data" / "openclipart-200"


def drawing(canvas: tuple[int, int], box: tuple[int, int, int, int], colour: tuple[int, int, int],
            pattern: int | None = None) -> Image.Image:
    """A transparent canvas with an opaque rectangle at ``box``: a clip-art drawing with margins.

    The rectangle is of one colour, or with ``pattern`` a 4 x 4 grid of random colours seeded by it: a picture
    of its own (single-colour rectangles all have the same perceptual hash).
    """
    image = Image.new("RGBA", canvas, (0, 0, 0, 0))
    size = (box[2] - box[0], box[3] - box[1])
    if pattern is None:
        block = Image.new("RGBA", size, (*colour, 255))
    else:
        grid = np.random.default_rng(pattern).integers(0, 256, (4, 4, 3), dtype=np.uint8)
        block = Image.fromarray(grid, "RGB").resize(size, Image.Resampling.NEAREST).convert("RGBA")
    image.paste(block, box[:2])
    return image


def fake_library(root: Path) -> Path:
    """Two topics of four usable, distinct drawings each, plus files the sampler must pass over."""
    for t, topic in enumerate(("animals/cats", "food")):
        folder = root / topic
        folder.mkdir(parents=True)
        for i in range(4):
            box = (10 * i, 20, 10 * i + 60, 120)
            drawing((300, 200), box, (0, 0, 0), pattern=10 * t + i).save(folder / f"d{i}.png")
        drawing((300, 200), (0, 20, 60, 120), (0, 0, 0)).save(folder / "d0_bw.png")  # grey copy of d0
        drawing((300, 200), (5, 5, 9, 9), (255, 0, 0)).save(folder / "dot.png")  # a failed render: 4 px drawn
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


TOPICS = {"cats": "animals/cats", "food": "food"}


def test_crop_to_drawing_keeps_the_drawn_part_and_bounds_its_size() -> None:
    cropped = crop_to_drawing(drawing((300, 200), (10, 20, 70, 120), (1, 2, 3)))
    assert cropped.size == (60, 100) and cropped.mode == "RGBA"
    assert np.asarray(cropped)[..., 3].min() == 255  # nothing transparent left around it
    big = crop_to_drawing(drawing((2000, 1000), (0, 0, 1000, 500), (1, 2, 3)))
    assert big.size == (MAX_SIDE, MAX_SIDE // 2)
    assert crop_to_drawing(Image.new("RGBA", (50, 50), (0, 0, 0, 0))) is None
    assert crop_to_drawing(drawing((50, 50), (0, 0, 8, 40), (1, 2, 3))) is None
    opaque = crop_to_drawing(Image.new("RGB", (40, 30), "white"))  # no alpha: the whole image is the drawing
    assert opaque.size == (40, 30)


def test_export_samples_usable_drawings_reproducibly(tmp_path: Path) -> None:
    source = fake_library(tmp_path / "png")
    assert export_image_folder(tmp_path / "a", per_class=3, seed=5, source=source, classes=TOPICS) == 6
    export_image_folder(tmp_path / "b", per_class=3, seed=5, source=source, classes=TOPICS)
    scan = scan_folder(tmp_path / "a")
    assert scan.labeled and not scan.skipped and len(scan.files) == 6
    assert {label for _, label in scan.files} == {"cats", "food"}
    names = {Path(path).name for path, _ in scan.files}
    assert names <= {f"d{i}.png" for i in range(4)}  # never the _bw copy, the dot or the broken file
    assert sorted(scan.files) == sorted(scan_folder(tmp_path / "b").files)  # same seed, same sample
    assert all(Image.open(tmp_path / "a" / path).size == (60, 100) for path, _ in scan.files)


def test_export_passes_over_duplicates_within_and_across_classes(tmp_path: Path) -> None:
    """Copies (same pixels, another file) and near copies are passed over; each class still gets its count."""
    source = fake_library(tmp_path / "png")
    food = source / "food"
    (food / "d0_again.png").write_bytes((food / "d0.png").read_bytes())  # the same file twice in one topic
    cat = Image.open(source / "animals/cats/d1.png")
    cat.save(food / "cat_copy.png", optimize=True, compress_level=1)  # a cat's pixels in another topic
    retouched = drawing((400, 300), (100, 50, 160, 150), (0, 0, 0), pattern=1)  # the cat elsewhere on a canvas
    red, *rest = retouched.getpixel((130, 100))
    retouched.putpixel((130, 100), ((red + 1) % 256, *rest))  # and one pixel retouched: near, not exact
    retouched.save(food / "cat_retouched.png")
    assert export_image_folder(tmp_path / "out", per_class=4, seed=1, source=source, classes=TOPICS) == 8
    scan = scan_folder(tmp_path / "out")
    by_class = {name: {Path(p).name for p, label in scan.files if label == name} for name in TOPICS}
    assert by_class["cats"] == {f"d{i}.png" for i in range(4)}  # the first class keeps its drawings
    assert by_class["food"] <= {"d0.png", "d0_again.png", "d1.png", "d2.png", "d3.png"}
    assert len(by_class["food"] & {"d0.png", "d0_again.png"}) == 1
    images = [decode_image(tmp_path / "out" / p) for p, _ in scan.files]
    assert hash_pairs([content_hash(i) for i in images], [perceptual_hash(i) for i in images]).empty
    with pytest.raises(ValueError, match="only 4 usable drawings that duplicate no other; need 5"):
        export_image_folder(tmp_path / "out5", per_class=5, seed=1, source=source, classes=TOPICS)


def test_export_refuses_what_it_cannot_do_and_leaves_nothing(tmp_path: Path, capsys) -> None:
    source = fake_library(tmp_path / "png")
    with pytest.raises(ValueError, match="only 4 usable drawings that duplicate no other; need 5"):
        export_image_folder(tmp_path / "out", per_class=5, source=source, classes=TOPICS)
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["png"]
    with pytest.raises(FileNotFoundError, match="apt-get install openclipart-png"):
        export_image_folder(tmp_path / "out", source=tmp_path / "nowhere")
    (tmp_path / "out").mkdir()
    assert main([str(tmp_path / "out"), "--source", str(source)]) == 2
    assert "exists; remove it first" in capsys.readouterr().err


def test_embedded_default_dataset_matches_its_readme() -> None:
    scan = scan_folder(EMBEDDED)
    assert scan.labeled and not scan.skipped and len(scan.files) == 200
    counts = {name: sum(1 for _, label in scan.files if label == name) for name in CLASSES}
    assert set(counts.values()) == {20}
    assert max(max(Image.open(EMBEDDED / path).size) for path, _ in scan.files) <= MAX_SIDE


@pytest.mark.slow
def test_embedded_dataset_is_what_the_script_rebuilds(tmp_path: Path) -> None:
    if not DEFAULT_SOURCE.is_dir():
        pytest.skip(f"Open Clip Art drawings not in {DEFAULT_SOURCE} (apt-get install openclipart-png)")
    rebuilt = tmp_path / "rebuilt"
    export_image_folder(rebuilt)
    shipped = sorted(p.relative_to(EMBEDDED) for p in EMBEDDED.rglob("*.png"))
    assert shipped == sorted(p.relative_to(rebuilt) for p in rebuilt.rglob("*.png"))
    for rel in shipped:
        assert np.array_equal(np.asarray(Image.open(EMBEDDED / rel)), np.asarray(Image.open(rebuilt / rel)))


@pytest.mark.slow
def test_imagenet_features_beat_pixels_and_untrained_weights_widely_on_the_default_dataset(tmp_path: Path) -> None:
    """The acceptance claim of the README's table, measured on the real weights and the shipped images."""
    models = [ModelRequest("efficientnet-lite0", "imagenet", ("block7a_project_conv", "top_conv")),
              ModelRequest("efficientnet-lite0", "random"),  # every default layer: its best one competes
              ModelRequest("pixels")]
    Run(RunConfig(EMBEDDED, tmp_path, models, metrics=("cosine", "euclidean"), progress=False)).execute()
    entry = art.read_index(tmp_path).to_dict()["datasets"]["openclipart-200"]

    def best(model: str, score: str) -> float:
        return max(result["summary"][score] for layer in entry["models"][model]["layers"].values()
                   for result in layer["metrics"].values())

    chance = entry["baseline"]["summary"]  # a random ranking, in closed form
    for score in ("rwp@15", "ap"):
        imagenet, untrained, pixels = (best(m, score) for m in ("efficientnet-lite0", "efficientnet-lite0-random",
                                                                  "pixels"))
        assert imagenet > 2 * max(untrained, pixels), (score, imagenet, untrained, pixels)
        assert imagenet > 3 * chance[score], (score, imagenet, chance)
