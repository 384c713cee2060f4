"""Short-lived child processes forked from a server that imported TensorFlow once (``RunConfig.model_processes``).

One process keeps much of what each model's forward passes leave behind (TensorFlow's and the LiteRT interpreter's
memory, not returned by glibc even with a fixed mmap threshold): the 7 default models in one process peaked at
2.1-2.4 GiB, each in its own child at most 1.15 GiB (docs/benchmarks.md section 10). A child forked from a
``multiprocessing`` fork server that imported TensorFlow, Keras and the pipeline once pays no import (a fresh
interpreter would: about 5 s a model on the 2-core development machine). The layer stage's UMAP worker
(``precompute.stages.layer.UmapWorker``) is started from the same server.

As with any ``multiprocessing`` start method but fork, the child imports the main module: a script that runs this
needs the ``if __name__ == "__main__":`` guard (``precompute`` and ``playground`` have it).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

# What the server imports once, before it forks any child (umap: 4 s with TensorFlow loaded, once rather than in
# each UMAP worker).
PRELOAD = ["precompute.pipeline", "tensorflow", "keras", "umap"]

# glibc malloc settings of a run's processes (:func:`keep_freed_memory`): blocks below 256 MiB come from the heap,
# and up to 512 MiB freed at its top stays mapped.
MMAP_THRESHOLD_BYTES = 256 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 512 * 1024 * 1024
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)


def model_process_context() -> Any:
    """The ``multiprocessing`` context: a fork server that preloads ``PRELOAD``."""
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def start_fork_server() -> None:
    """Start the fork server now, its imports running beside this process's work, rather than on first use."""
    from multiprocessing import forkserver

    model_process_context()  # the preload list
    forkserver.ensure_running()


def keep_freed_memory() -> bool:
    """Let the run's processes reuse the memory they free instead of handing it back to the kernel (glibc, Linux).

    By default glibc maps every block above its mmap threshold (at most 32 MiB) afresh and unmaps it when freed, so
    the rankings' blocks of distances, their float64 copies and the decoded batches fault their pages in again on
    every use: 637,000 page faults and 17 s of system time for the 44 rankings of 10,000 images, against 46,000
    and 3.5 s with these settings (docs/benchmarks.md section 19, round 4). The settings go to this process
    (``mallopt``) and, through ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``, to the processes it
    starts (the fork server, the UMAP workers, model children). The precompute command calls it; a library caller
    keeps its own allocator settings. A threshold the environment already sets is the user's (glibc read it at
    start-up) and stays, here and in the children. Returns whether ``mallopt`` took the settings it was given
    (False off glibc).
    """
    took = True
    for name, parameter, value in (("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                                   ("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)):
        if name not in os.environ:
            os.environ[name] = str(value)
            took = mallopt(parameter, value) and took
    return took


def mallopt(parameter: int, value: int) -> bool:
    """glibc's ``mallopt(parameter, value)`` for this process; whether it took it (False off glibc)."""
    import ctypes

    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(parameter, value))
    except (OSError, AttributeError):
        return False


def die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent (the fork server) ends. The server ends when the run's process
    does, so a run killed with SIGKILL leaves no child writing into the artifacts that a rerun is writing."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the server ended before prctl
        os._exit(1)


def in_child(function: Any, *args: Any) -> None:
    """``function(*args)`` in a child forked from the fork server, waited for; its exception is raised here.
    ``function`` starts with :func:`child_setup`."""
    from concurrent.futures import ProcessPoolExecutor

    from precompute.interrupt import ignore_in_child  # Ctrl-C: the run's process stops the child, no traceback

    with ProcessPoolExecutor(max_workers=1, mp_context=model_process_context(), initializer=ignore_in_child) as pool:
        pool.submit(function, *args).result()


def child_setup(log_level: int) -> None:
    """A child's first step: die with the server, and log as the run's process does."""
    die_with_parent()
    if not logging.getLogger().handlers:  # the fork server starts without the parent's logging set-up
        logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")


__all__ = ["M_MMAP_THRESHOLD", "M_TRIM_THRESHOLD", "PRELOAD", "child_setup", "die_with_parent", "in_child",
           "keep_freed_memory", "mallopt", "model_process_context", "start_fork_server"]
