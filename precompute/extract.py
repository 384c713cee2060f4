"""Feature extraction: one forward pass per batch yields every chosen layer, pooled to vectors."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

POOLINGS = ("avg", "max")


def available_layers(base: Any) -> list[str]:
    """Names of the layers a feature can be read from (those with a spatial or vector output)."""
    names = []
    for layer in base.layers:
        try:
            rank = len(layer.output.shape)
        except (AttributeError, ValueError):
            continue
        if rank in (2, 4) and layer.__class__.__name__ != "InputLayer":
            names.append(layer.name)
    return names


def check_layers(base: Any, layers: Sequence[str], backbone_name: str = "") -> list[str]:
    """Return ``layers`` if all exist in ``base``; else a ValueError that lists the valid names."""
    valid = available_layers(base)
    unknown = [name for name in layers if name not in valid]
    if unknown:
        raise ValueError(
            f"Unknown layer(s) {', '.join(map(repr, unknown))} for {backbone_name or base.name}. "
            f"Valid layer names ({len(valid)}): {', '.join(valid)}"
        )
    if len(set(layers)) != len(layers):
        raise ValueError(f"Layer names repeat in {list(layers)}.")
    return list(layers)


# Activation memory a forward pass may use, whatever --batch-size asks: the batch is lowered until the sum of every
# layer's output for the batch fits it (an upper bound: run as a graph, see _graph_call, TensorFlow holds far less
# at once). efficientnet-lite0 needs ~90 MB per 224-px image by that sum, inceptionv3 ~131 MB at 299 px.
ACTIVATION_BUDGET_MB = 3072


def activation_bytes_per_image(model: Any) -> int:
    """Bytes of every layer output of ``model`` for one image, float32: an upper bound on a forward pass's memory."""
    total = 0
    for layer in model.layers:
        outputs = layer.output if isinstance(layer.output, list | tuple) else [layer.output]
        for tensor in outputs:
            shape = getattr(tensor, "shape", None)
            if shape is not None and all(dim is not None for dim in shape[1:]):
                total += int(np.prod(shape[1:], dtype=np.int64)) * 4
    return total


def bounded_batch_size(model: Any, requested: int, budget_mb: float = ACTIVATION_BUDGET_MB) -> int:
    """The largest batch up to ``requested`` whose activations fit ``budget_mb`` (at least 1).

    Examples
    --------
    >>> import keras
    >>> inputs = keras.Input((64, 64, 3)); model = keras.Model(inputs, keras.layers.Conv2D(8, 3)(inputs))
    >>> bounded_batch_size(model, 32, budget_mb=1)  # 1e6 // (64*64*3*4 + 62*62*8*4) bytes per image
    5
    """
    per_image = activation_bytes_per_image(model)
    if per_image <= 0:
        return requested
    return int(max(1, min(requested, budget_mb * 1e6 // per_image)))


def build_feature_model(base: Any, layers: Sequence[str], pooling: str = "avg", flatten: bool = False) -> Any:
    """A model with one output per layer: global-pooled (or flattened) float32 vectors.

    Pooling inside the graph keeps the big feature maps off the Python side.
    """
    import keras

    if pooling not in POOLINGS:
        raise ValueError(f"Unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}.")
    outputs = []
    for name in layers:
        tensor = base.get_layer(name).output
        if len(tensor.shape) == 4:
            if flatten:
                tensor = keras.layers.Flatten(name=f"{name}__flat")(tensor)
            elif pooling == "avg":
                tensor = keras.layers.GlobalAveragePooling2D(name=f"{name}__gap")(tensor)
            else:
                tensor = keras.layers.GlobalMaxPooling2D(name=f"{name}__gmp")(tensor)
        outputs.append(tensor)
    # A single input tensor (not a one-element list) so calling the model with an array raises no warning.
    inputs = base.inputs[0] if len(base.inputs) == 1 else base.inputs
    return keras.Model(inputs, outputs, name=f"{base.name}_features")


def feature_dims(feature_model: Any) -> list[int]:
    """Output width of each layer of a Keras feature model or a ``precompute.runtimes.LiteRTModel``."""
    dims = getattr(feature_model, "dims", None)
    if dims is not None:
        return list(dims)
    return [int(out.shape[-1]) for out in feature_model.outputs]


@dataclass(frozen=True)
class ExtractionTiming:
    """Forward-pass time of a run. The first batch pays one-off costs (kernel selection, memory pools), so
    the rates leave it out whenever there is more than one batch: they describe the steady state."""

    n_images: int
    seconds: float  # forward passes only (decoding runs beside them in threads)
    wall_seconds: float
    warmup_images: int = 0  # images of the first batch, left out of the rates
    warmup_seconds: float = 0.0

    @property
    def _steady(self) -> tuple[int, float]:
        if self.n_images > self.warmup_images > 0:
            return self.n_images - self.warmup_images, self.seconds - self.warmup_seconds
        return self.n_images, self.seconds

    @property
    def images_per_second(self) -> float:
        n, seconds = self._steady
        return n / seconds if seconds else float("nan")

    @property
    def ms_per_image(self) -> float:
        n, seconds = self._steady
        return 1000.0 * seconds / n if n else float("nan")


# One compiled forward function per feature model (weak keys: it goes with the model).
_GRAPH_CALLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _graph_call(feature_model: Any) -> Any:
    """The model's forward pass as a TensorFlow graph function, compiled once per batch shape.

    Called eagerly, a Keras functional model keeps every layer's output alive until the call returns (about 90
    MB per 224-px image for efficientnet-lite0: 3.7 GB resident at batch 32); as a graph, TensorFlow frees each
    tensor once its consumers ran and skips the per-layer Python overhead. Measured on this project's 2-core
    machine, efficientnet-lite0 at batch 32: 85 img/s and 1.5 GB resident, against 53-56 img/s and 3.7 GB eagerly;
    outputs equal within 5e-7 relative. Other Keras backends run eagerly.
    """
    call = _GRAPH_CALLS.get(feature_model)
    if call is None:
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # One trace per model, whatever the batch size (the last batch is usually smaller).
            spec = tf.TensorSpec([None, *feature_model.inputs[0].shape[1:]], tf.float32)
            call = tf.function(lambda batch: feature_model(batch, training=False), input_signature=[spec])
            _quiet_retracing_warning()
        else:
            def call(batch: Any) -> Any:
                return feature_model(batch, training=False)
        _GRAPH_CALLS[feature_model] = call
    return call


class _RetracingFilter(logging.Filter):
    """Drop TensorFlow's "frequent retracing" warning: one graph per feature model is the plan, not a leak."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def _quiet_retracing_warning() -> None:
    tf_logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _RetracingFilter) for f in tf_logger.filters):
        tf_logger.addFilter(_RetracingFilter())


def run_feature_model(feature_model: Any, batch: np.ndarray) -> list[np.ndarray]:
    """One forward pass of a preprocessed batch; always a list, one array per layer.

    ``feature_model`` is a Keras feature model (run as a graph) or a ``precompute.runtimes.LiteRTModel``.
    """
    from precompute.runtimes import LiteRTModel

    if isinstance(feature_model, LiteRTModel):
        return feature_model(batch)
    outputs = _graph_call(feature_model)(np.asarray(batch, dtype=np.float32))
    if not isinstance(outputs, list | tuple):
        outputs = [outputs]
    return [np.asarray(out, dtype=np.float32) for out in outputs]


def extract_to_files(
    feature_model: Any,
    batches: Iterable[np.ndarray],
    preprocess: Any | None,
    n_images: int,
    paths: Sequence[Path],
    progress: bool = True,
    desc: str = "extract",
) -> ExtractionTiming:
    """Run every batch once and write each layer's vectors to its ``.npy`` file, chunk by chunk.

    ``preprocess`` maps a batch to the model's input; None when the batches already are (``load_batches(transform=
    ...)`` prepares them in its decoding threads, beside the forward passes). Files appear under their names only
    when every image is done (memory stays bounded: one batch).
    """
    from tqdm.auto import tqdm

    from precompute.artifacts import open_array_writer

    dims = feature_dims(feature_model)
    if len(paths) != len(dims):
        raise ValueError(f"{len(paths)} output paths for {len(dims)} layers")
    compute_seconds, start_wall, row, warmup = 0.0, time.perf_counter(), 0, (0, 0.0)
    with ExitStack() as stack, tqdm(total=n_images, desc=desc, unit="img", disable=not progress) as bar:
        writers = [stack.enter_context(open_array_writer(p, (n_images, d))) for p, d in zip(paths, dims, strict=True)]
        for batch in batches:
            t0 = time.perf_counter()
            outputs = run_feature_model(feature_model, batch if preprocess is None else preprocess(batch))
            compute_seconds += time.perf_counter() - t0
            if row == 0:
                warmup = (len(batch), compute_seconds)
            for writer, out in zip(writers, outputs, strict=True):
                writer[row : row + len(batch)] = out
            row += len(batch)
            bar.update(len(batch))
        if row != n_images:
            raise RuntimeError(f"Extracted {row} images, expected {n_images}")
    return ExtractionTiming(n_images, compute_seconds, time.perf_counter() - start_wall, *warmup)


def extract_array(feature_model: Any, images: np.ndarray, preprocess: Any, batch_size: int = 32) -> list[np.ndarray]:
    """Features of in-memory images (n, h, w, 3) in 0..255: one array (n, dim) per layer."""
    chunks = [run_feature_model(feature_model, preprocess(images[i : i + batch_size]))
              for i in range(0, len(images), batch_size)]
    return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]
