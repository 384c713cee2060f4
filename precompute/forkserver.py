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

# What the server imports once, before it forks any child.
PRELOAD = ["precompute.pipeline", "tensorflow", "keras"]


def model_process_context() -> Any:
    """The ``multiprocessing`` context: a fork server that preloads ``PRELOAD``."""
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


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


__all__ = ["PRELOAD", "child_setup", "die_with_parent", "in_child", "model_process_context"]
