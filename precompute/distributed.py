"""Feature extraction on a Dask cluster, written to the same artifacts as local extraction.

The driver (the ``precompute`` process) splits the manifest rows into chunks and keeps a bounded number
of chunk tasks in flight. Each task runs on a Dask worker: it decodes its images from the dataset folder
(the same absolute path on every machine, i.e. a shared filesystem) and runs the one-pass, many-layer
feature model, which each worker process builds once from the stored model config (``precompute.models``, the
builder the pipeline and the app's uploads use) and keeps. The driver writes every finished chunk at
its row offset into the memory-mapped ``.npy`` writers of ``precompute.artifacts``, so the files, their
atomic rename and the index entries are exactly those of ``--engine local``.

Dask is an optional dependency (``pip install '.[distributed]'``); this module imports it only when used.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from precompute.extract import ExtractionTiming
from precompute.schema import ModelConfig

ENGINES = ("local", "dask")
CHUNK_SIZE = 256  # images per Dask task: large enough to amortise scheduling, small enough to balance load
INSTALL_HINT = "pip install 'semantic-image-search-playground[distributed]' (or: pip install 'dask[distributed]')"

# Worker-side cache: the feature model of the current job, built once per worker process (or once per
# process for threaded workers, hence the lock). Only the latest model is kept, so a long-lived cluster
# that serves several backbones one after another holds one model at a time.
_WORKER_MODELS: dict[tuple, dict[str, Any]] = {}
_WORKER_LOCK = threading.Lock()


def check_engine(engine: str, dask_address: str | None = None) -> str:
    """Return ``engine`` if valid (and Dask importable when needed), else a ValueError naming the choices."""
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}.")
    if dask_address is not None and engine != "dask":
        raise ValueError(f"A Dask scheduler address ({dask_address!r}) needs engine 'dask', got {engine!r}.")
    if engine == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError as exc:
            raise ValueError(f"--engine dask needs Dask's distributed scheduler: {INSTALL_HINT}.") from exc
    return engine


@contextlib.contextmanager
def dask_client(address: str | None = None, n_workers: int | None = None, processes: bool = True,
                threads_per_worker: int = 1) -> Iterator[Any]:
    """A ``distributed.Client`` for ``address`` (``tcp://host:8786``), or for a ``LocalCluster`` started for the
    block and closed after it when ``address`` is None.

    One thread per worker by default: TensorFlow already uses every core of a machine for one forward pass.
    """
    check_engine("dask", address)
    from distributed import Client, LocalCluster

    if address is not None:
        with Client(address) as client:
            yield client
        return
    # Any free port for the scheduler's HTTP routes: a second cluster on the machine must not clash on 8787.
    with LocalCluster(n_workers=n_workers, processes=processes, threads_per_worker=threads_per_worker,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def extract_on_dask(
    client: Any,
    config: ModelConfig,
    layers: Sequence[str],
    dataset_dir: str | Path,
    rel_paths: Sequence[str],
    paths: Sequence[Path],
    runtime: str = "keras",
    tflite: str | Path | None = None,
    batch_size: int = 32,
    chunk_size: int | None = None,
    max_in_flight: int | None = None,
    progress: bool = True,
    desc: str = "extract (dask)",
) -> ExtractionTiming:
    """Extract the features of ``rel_paths`` (relative to ``dataset_dir``) on the cluster of ``client``.

    Writes one ``.npy`` per layer to ``paths`` (float32, (n_images, dim), row i = ``rel_paths[i]``),
    appearing under its name only when every image is done, like ``extract.extract_to_files``.

    Parameters
    ----------
    config, layers : the model to run (``precompute.schema.ModelConfig``, picklable). Each worker builds it once
        with ``precompute.models.load_feature_model``: random weights from their seed, a ``file`` source from its
        path (which must exist at the same path on the workers); ``imagenet`` and ``nsfwjs`` are resolved again on
        each worker, from its own installation (Keras' ImageNet files: its cache or a download).
    runtime : ``keras`` or ``litert``, as the driver resolved it (``precompute.runtimes.resolve_runtime``)
    tflite : the driver's converted LiteRT file; a worker without it converts its own copy
    chunk_size : images per task (default ``CHUNK_SIZE``); each task runs forward passes of ``batch_size``.
    max_in_flight : chunks submitted and not yet written (default: twice the cluster's worker threads);
        bounds the driver's memory whatever the dataset size.

    Returns
    -------
    ExtractionTiming whose ``seconds`` is the SUM of the workers' forward-pass seconds (not wall time: with
    several workers it exceeds the wall time); ``wall_seconds`` is the driver's wall time including scheduling.
    Each worker's first batch (graph tracing) is counted as warm-up and left out of the rates.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    from precompute.artifacts import open_array_writer

    if len(paths) != len(layers):
        raise ValueError(f"{len(paths)} output paths for {len(layers)} layers")
    n_images = len(rel_paths)
    if n_images == 0:
        raise ValueError("No images to extract.")
    chunk_size = chunk_size or CHUNK_SIZE
    if chunk_size < 1 or batch_size < 1:
        raise ValueError(f"chunk_size and batch_size must be at least 1, got {chunk_size} and {batch_size}.")
    if max_in_flight is None:
        threads = sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values())
        max_in_flight = 2 * max(threads, 1)
    root = str(Path(dataset_dir).resolve())
    model = (config, tuple(layers), runtime, str(tflite) if tflite else None)

    def submit(start: int) -> Any:
        chunk = list(rel_paths[start : start + chunk_size])
        return client.submit(_extract_chunk, model, root, chunk, start, batch_size, pure=False)

    compute_seconds, warmup_images, warmup_seconds, done = 0.0, 0, 0.0, 0
    start_wall = time.perf_counter()
    queue = iter(range(0, n_images, chunk_size))
    futures = as_completed([submit(start) for start in itertools.islice(queue, max_in_flight)])
    with contextlib.ExitStack() as stack, tqdm(total=n_images, desc=desc, unit="img", disable=not progress) as bar:
        writers: list[np.ndarray] = []
        try:
            for future in futures:
                start, outputs, seconds, warmup = future.result()
                future.release()
                next_start = next(queue, None)
                if next_start is not None:
                    futures.add(submit(next_start))
                if not writers:  # the first result gives the layer widths
                    writers = [stack.enter_context(open_array_writer(p, (n_images, out.shape[1])))
                               for p, out in zip(paths, outputs, strict=True)]
                for writer, out in zip(writers, outputs, strict=True):
                    writer[start : start + len(out)] = out
                n = len(outputs[0])
                compute_seconds += seconds
                warmup_images, warmup_seconds = warmup_images + warmup[0], warmup_seconds + warmup[1]
                done += n
                bar.update(n)
        finally:
            client.cancel(list(futures.futures))
        if done != n_images:
            raise RuntimeError(f"Extracted {done} images, expected {n_images}")
    return ExtractionTiming(n_images, compute_seconds, time.perf_counter() - start_wall, warmup_images,
                            warmup_seconds)


# ------------------------------------------------------------------------------------------- worker side


def _worker_model(model: tuple[ModelConfig, tuple[str, ...], str, str | None]) -> dict[str, Any]:
    """``{"model", "preprocess", "warm"}`` of this worker process, built at most once per
    ``(config, layers, runtime, tflite)``."""
    with _WORKER_LOCK:
        cached = _WORKER_MODELS.get(model)
        if cached is not None:
            return cached
        from precompute.models import load_feature_model

        _WORKER_MODELS.clear()
        config, layers, runtime, tflite = model
        # On LiteRT, every core per interpreter, as TensorFlow does for a Keras forward pass.
        built = load_feature_model(config, layers, runtime, tflite=tflite)
        entry = {"model": built.runner, "preprocess": built.preprocess, "warm": False}
        _WORKER_MODELS[model] = entry
        return entry


def _extract_chunk(model: tuple[ModelConfig, tuple[str, ...], str, str | None], root: str, rel_paths: list[str],
                   start: int, batch_size: int) -> tuple[int, list[np.ndarray], float, tuple[int, float]]:
    """One task: decode ``rel_paths`` and run them through the worker's model in batches.

    Returns ``(start, one float32 array per layer, forward seconds, (warm-up images, warm-up seconds))``.
    """
    from precompute.datasets import load_batches
    from precompute.extract import run_feature_model

    entry = _worker_model(model)
    parts: list[list[np.ndarray]] = []
    seconds, warmup = 0.0, (0, 0.0)
    for batch in load_batches(Path(root), rel_paths, model[0].input_size, batch_size, transform=entry["preprocess"]):
        t0 = time.perf_counter()
        parts.append(run_feature_model(entry["model"], batch))
        elapsed = time.perf_counter() - t0
        seconds += elapsed
        if not entry["warm"]:  # this worker's first forward pass pays the graph tracing
            entry["warm"] = True
            warmup = (len(batch), elapsed)
    outputs = [np.concatenate(layer_parts) for layer_parts in zip(*parts, strict=True)]
    return start, outputs, seconds, warmup
