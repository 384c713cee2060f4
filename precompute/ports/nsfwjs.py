"""Offline MobileNetV2 and InceptionV3 weights from the npm package nsfwjs@4.4.0 (MIT), converted to Keras.

nsfwjs ships two TF.js layers models (``dist/models/{mobilenet_v2,inception_v3}``, uint8-quantised) made by
fine-tuning ImageNet-initialised ``keras.applications`` models on a 5-class NSFW task (Drawing, Hentai,
Neutral, Porn, Sexy) with the shallow layers frozen. The frozen layers kept their ImageNet convolution kernels and
BatchNorm scales and offsets, so they are usable ImageNet-like features offline; only they are offered by default
(``DEFAULT_LAYERS``).

Input scaling: nsfwjs feeds ``x / 255``, and the BatchNorm moving statistics of the frozen layers were re-estimated
on such inputs during the fine-tuning (measured on skimage photos: the first BatchNorm's moving means correlate
0.99 with ``x / 255`` activations and -0.78 with ``x / 127.5 - 1``; the mean distance of batch means from moving
means, in moving standard deviations, is 2-5x smaller with ``x / 255`` in the first layers). ``build_base`` therefore
puts a ``Rescaling`` layer in front that turns the registry's ``x / 127.5 - 1`` into ``x / 255`` exactly.

Where the package comes from, in order: ``$SISP_NSFWJS_DIR`` (the unpacked ``package/`` folder, its
``dist/models``, a folder holding ``nsfwjs-4.4.0.tgz``, or the ``.tgz``); an earlier copy in the cache
(``$SISP_CACHE_DIR/nsfwjs-4.4.0``); else ``npm pack nsfwjs@4.4.0`` into that cache when npm is installed. Each
model is converted once into ``$SISP_CACHE_DIR/<backbone>-nsfwjs-4.4.0-<sha>-v<N>.weights.h5``, atomically.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from precompute.errors import WeightsUnavailableError
from precompute.npm_files import NpmPackError, npm_pack
from precompute.ports import tfjs
from precompute.weights_cache import cache_dir, convert_once, converted_weights_path, folder_sha256

NSFWJS_VERSION = "4.4.0"
NPM_SPEC = f"nsfwjs@{NSFWJS_VERSION}"
DIR_ENV = "SISP_NSFWJS_DIR"
# `npm view nsfwjs@4.4.0 dist.integrity`: a tampered or different tarball is refused.
NPM_INTEGRITY = "sha512-krC1fgeTLXtZwgdpKJ0jm7hqv0gTSRQQRL+FhOaxaJ9Wj92t42BO3csO2odwgTAgZgf2RvkwPtp0R8Aa7dc+MA=="

# Registry backbone -> (folder under dist/models, keras.applications constructor).
MODELS: dict[str, tuple[str, str]] = {
    "mobilenetv2": ("mobilenet_v2", "MobileNetV2"),
    "inceptionv3": ("inception_v3", "InceptionV3"),
}
# nsfwjs' outputs, in order; the kept head is not part of the converted base.
CLASSES = ("Drawing", "Hentai", "Neutral", "Porn", "Sexy")

PROVENANCE: dict[str, str] = {
    "mobilenetv2": (
        f"MobileNetV2 from the npm package {NPM_SPEC} (MIT), uint8-quantised: ImageNet-initialised; layers Conv1 "
        "up to block_10 kept their ImageNet convolution weights (BatchNorm statistics re-estimated on x/255 inputs), "
        "block_11 and deeper were fine-tuned on a 5-class NSFW task (Drawing/Hentai/Neutral/Porn/Sexy)"
    ),
    "inceptionv3": (
        f"InceptionV3 from the npm package {NPM_SPEC} (MIT), uint8-quantised: ImageNet-initialised; layers up to "
        "mixed5 (the last frozen block, up to batch_normalization_55 in nsfwjs' numbering) kept their ImageNet "
        "convolution weights (BatchNorm statistics re-estimated on x/255 inputs), mixed6 and deeper were fine-tuned "
        "on a 5-class NSFW task (Drawing/Hentai/Neutral/Porn/Sexy)"
    ),
}

# Only layers whose whole input path was frozen (checked against the model's `trainable` flags). InceptionV3's
# convolutions have counter names that change between sessions, so its stable block outputs are used.
DEFAULT_LAYERS: dict[str, list[str]] = {
    "mobilenetv2": ["Conv1", "block_2_expand", "block_4_expand", "block_6_expand", "block_7_expand",
                    "block_9_expand", "block_10_expand", "block_10_project"],
    "inceptionv3": ["mixed0", "mixed1", "mixed2", "mixed3", "mixed4", "mixed5"],
}

# (scale, offset) taking keras' mobilenet_v2/inception_v3 preprocess_input (x / 127.5 - 1) to nsfwjs' x / 255.
INPUT_RESCALING = (0.5, 0.5)

# Bump when the conversion changes, so older cached files are not reused.
_CONVERTER_VERSION = 1


def _check_backbone(backbone_name: str) -> tuple[str, str]:
    if backbone_name not in MODELS:
        raise ValueError(f"nsfwjs weights exist for {', '.join(MODELS)}; got {backbone_name!r}.")
    return MODELS[backbone_name]


def _models_dir(candidate: Path) -> Path | None:
    """The ``dist/models`` folder in or under ``candidate``, if it has both models."""
    for folder in (candidate / "dist" / "models", candidate / "package" / "dist" / "models", candidate):
        if all(_model_file(folder / sub) is not None for sub, _ in MODELS.values()):
            return folder
    return None


def _model_file(folder: Path) -> Path | None:
    for name in ("model.json", "model.min.js"):
        if (folder / name).is_file():
            return folder / name
    return None


def _unpack(tgz: Path, dest: Path) -> Path:
    """Unpack an npm tarball's ``package/`` into ``dest`` (atomically renamed into place); returns its models dir."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith("package/")
                       and ".." not in Path(m.name).parts and not Path(m.name).is_absolute()]
            wanted = [m for m in members if m.name in ("package/package.json", "package/LICENSE")
                      or any(m.name.startswith(f"package/dist/models/{sub}/") for sub, _ in MODELS.values())]
            for member in wanted:
                target = tmp / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        if _models_dir(tmp / "package") is None:
            raise WeightsUnavailableError(f"{tgz} does not contain nsfwjs' dist/models/{{mobilenet_v2,inception_v3}}.")
        try:
            os.replace(tmp, dest)
        except OSError:
            if _models_dir(dest) is None:  # not another process that unpacked it first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _models_dir(dest)


def _npm_pack(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        try:
            tarball = npm_pack(NPM_SPEC, NPM_INTEGRITY, Path(tmp))
        except NpmPackError as exc:
            raise WeightsUnavailableError(_missing_message(str(exc))) from None
        return _unpack(tarball, dest)


def _missing_message(why: str) -> str:
    return (
        f"The offline MobileNetV2/InceptionV3 weights come from the npm package {NPM_SPEC} (MIT), which is not "
        f"available here ({why}). On a machine with npm run `npm pack {NPM_SPEC}`, unpack it (`tar xzf "
        f"nsfwjs-{NSFWJS_VERSION}.tgz`) and set {DIR_ENV} to the `package` folder (or to the folder holding the "
        f".tgz); or use `--weights random` / a local Keras weights file."
    )


def find_models_dir(fetch: bool = True) -> Path:
    """The folder holding nsfwjs' ``mobilenet_v2/`` and ``inception_v3/`` models, fetching it once if needed.

    Parameters
    ----------
    fetch : bool
        Whether ``npm pack`` may be run when neither ``$SISP_NSFWJS_DIR`` nor the cache has the package.

    Raises
    ------
    WeightsUnavailableError
        ``$SISP_NSFWJS_DIR`` is set but holds no nsfwjs models, or nothing is cached and npm cannot fetch it; the
        message names the package and the environment variable.
    """
    configured = os.environ.get(DIR_ENV)
    cached = cache_dir() / f"nsfwjs-{NSFWJS_VERSION}"
    if configured:
        path = Path(configured).expanduser()
        if path.is_file() and path.name.endswith(".tgz"):
            return _models_dir(cached) or _unpack(path, cached)
        found = _models_dir(path)
        if found is not None:
            return found
        tarballs = sorted(path.glob(f"nsfwjs-{NSFWJS_VERSION}.tgz")) if path.is_dir() else []
        if tarballs:
            return _models_dir(cached) or _unpack(tarballs[0], cached)
        raise WeightsUnavailableError(
            f"{DIR_ENV}={configured} holds neither nsfwjs' dist/models/{{mobilenet_v2,inception_v3}} nor "
            f"nsfwjs-{NSFWJS_VERSION}.tgz. Point it at the unpacked `package` folder of {NPM_SPEC}."
        )
    found = _models_dir(cached)
    if found is not None:
        return found
    if not fetch:
        raise WeightsUnavailableError(_missing_message(f"{DIR_ENV} is not set and {cached} does not exist"))
    return _npm_pack(cached)


def nsfwjs_weights_path(backbone_name: str, fetch: bool = True) -> Path:
    """A Keras weights file of ``backbone_name``'s convolutional base with nsfwjs' weights, converted once.

    It loads with ``keras.applications.MobileNetV2/InceptionV3(include_top=False, weights=path,
    input_shape=...)`` at any input size; feed it ``x / 255`` there, or use ``build_base`` with the registry's
    preprocessing.

    Parameters
    ----------
    backbone_name : {"mobilenetv2", "inceptionv3"}
    fetch : bool
        Allow ``npm pack`` when the package is neither at ``$SISP_NSFWJS_DIR`` nor cached.

    Returns
    -------
    pathlib.Path
        ``$SISP_CACHE_DIR/<backbone>-nsfwjs-4.4.0-<sha16>-v<N>.weights.h5`` (sha of the source model files).

    Raises
    ------
    ValueError
        ``backbone_name`` has no nsfwjs model.
    WeightsUnavailableError
        The package cannot be found or fetched (see ``find_models_dir``).
    """
    sub, _ = _check_backbone(backbone_name)
    folder = find_models_dir(fetch) / sub
    model_file = _model_file(folder)
    if model_file is None:
        raise WeightsUnavailableError(f"{folder} has no model.json or model.min.js.")
    target = converted_weights_path(f"{backbone_name}-nsfwjs-{NSFWJS_VERSION}", folder_sha256(folder),
                                    _CONVERTER_VERSION)
    return convert_once(target, lambda out: tfjs.convert_layers_model(model_file, backbone_name, out))


def build_base(backbone_name: str, input_shape: tuple[int, int, int], weights: str | os.PathLike[str]) -> Any:
    """``keras.applications`` base with nsfwjs weights that takes the registry's ``x / 127.5 - 1`` input.

    A ``Rescaling`` layer named ``nsfwjs_input_scaling`` maps it to the ``x / 255`` the weights expect; every other
    layer keeps its Keras name, so ``get_layer("block_5_expand")`` works as on the plain model.
    """
    import keras

    _, keras_name = _check_backbone(backbone_name)
    inputs = keras.Input(shape=input_shape, name="input_layer")
    scaled = keras.layers.Rescaling(*INPUT_RESCALING, name="nsfwjs_input_scaling")(inputs)
    base = getattr(keras.applications, keras_name)(include_top=False, weights=str(weights), input_tensor=scaled)
    # One input tensor (Keras builds a list from input_tensor), so calling the model with an array does not warn.
    return keras.Model(inputs, base.outputs[0], name=f"{backbone_name}_nsfwjs")
