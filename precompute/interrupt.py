"""Ctrl-C for the command-line tools: one line, exit status 130, no child process left, within a second or two.

Python's own Ctrl-C raises ``KeyboardInterrupt`` wherever the main thread happens to be. In a run that is inside
numba (UMAP), llvmlite or TensorFlow that gave hundreds of lines of traceback, and llvmlite's ctypes callbacks
*swallow* it ("Exception ignored on calling ctypes callback function"), so a run went on to exit 0; the model
processes forked for extraction printed their own tracebacks. :func:`install` replaces all of that:

- no exception is raised: SIGINT's Python handler, and a watcher thread woken by the signal's wakeup file
  descriptor (the C-level handler writes to it at once, even while the main thread is busy in a C call that has
  released the GIL), both call one stop routine;
- the stop routine prints one line, sends nothing more to stdout or stderr, kills every descendant process
  (``psutil``) and ends the process with ``os._exit(130)``: files written through ``precompute.artifacts`` are
  renamed into place only when complete, and a rerun removes the temporaries an interrupted write leaves;
- child processes of a run ignore SIGINT (``ignore_in_child``): the terminal sends it to the whole process
  group, and the parent stops them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time

EXIT_CODE = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
RESUME = "interrupted; finished files are kept, rerun the same command to resume."

_lock = threading.Lock()
_settings: dict[str, object] = {"prog": "", "message": RESUME, "quiet": False, "installed": False}
# Set in a child whose parent prints the line (``playground``'s precompute child): the child prints nothing.
QUIET_ENV = "SISP_INTERRUPT_QUIET"


def is_command(prog: str) -> bool:
    """True when this process is the command ``prog`` (its console script), not Python importing it."""
    return os.path.basename(sys.argv[0] if sys.argv else "") == prog


def install(prog: str, message: str = RESUME, quiet: bool = False) -> None:
    """Make SIGINT (Ctrl-C) stop this process as the module docstring says. Call from the main thread.

    ``quiet`` (or ``$SISP_INTERRUPT_QUIET`` set): print nothing, for a child whose parent prints the line.
    Installing again only changes the settings.
    """
    _settings.update(prog=prog, message=message, quiet=quiet or bool(os.environ.get(QUIET_ENV)))
    if _settings["installed"]:
        return
    _settings["installed"] = True
    _settings["pid"] = os.getpid()
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    signal.signal(signal.SIGINT, _on_signal)
    threading.Thread(target=_watch, args=(read_fd,), name="interrupt-watcher", daemon=True).start()
    atexit.register(_wait_for_stop)


def _wait_for_stop(limit_s: float = 10.0) -> None:
    """At interpreter exit, while the watcher thread is stopping the process: wait for its ``os._exit(130)``.

    The main thread may end first while the watcher kills the children (a child's death can make the run raise):
    Python's shutdown would then freeze the daemon watcher before its ``os._exit`` and the command would exit 1.
    atexit callbacks run before that freeze, so waiting here lets the stop routine finish.
    """
    deadline = time.monotonic() + limit_s
    while _settings.get("stopping") and time.monotonic() < deadline:
        time.sleep(0.02)


def installed() -> bool:
    return bool(_settings["installed"])


def set_message(message: str) -> None:
    """The line printed from now on (``playground`` once it serves: there are no files to resume then)."""
    _settings["message"] = message


def ignore_in_child() -> None:
    """In a child process of a run: let SIGINT pass (the parent stops the children), no traceback here."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _on_signal(signum: int, frame: object) -> None:
    stop()


def _watch(read_fd: int) -> None:
    while True:
        try:
            data = os.read(read_fd, 64)  # blocks without holding the GIL
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            return
        if signal.SIGINT in data:
            stop()


def stop() -> None:
    """Print the line, end every descendant process, exit 130. Whichever thread comes first does it."""
    if not _lock.acquire(blocking=False):
        return  # the other thread is already stopping the process
    if os.getpid() != _settings.get("pid"):  # a plain fork() inherited the handler: its parent prints and stops
        os._exit(EXIT_CODE)
    _settings["stopping"] = True
    try:
        if not _settings["quiet"]:
            prog = _settings["prog"]
            line = f"{prog}: {_settings['message']}\n" if prog else f"{_settings['message']}\n"
            # A progress bar may be mid-line: start from its first column (and clear it, on a terminal).
            line = ("\r\033[K" if os.isatty(2) else "\r") + line
            # os.write, not sys.stderr: the main thread may hold stderr's lock (a progress bar mid-write).
            with contextlib.suppress(OSError):
                os.write(2, line.encode())
        _silence()  # the main thread runs on until os._exit: nothing it prints now may follow the one line
        end_descendants()
    finally:
        os._exit(EXIT_CODE)


def _silence() -> None:
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)


def end_descendants(timeout_s: float = 0.5) -> None:
    """SIGKILL every descendant of this process, all at once, and wait for them (at most ``timeout_s``).

    SIGKILL rather than SIGTERM: what a child is writing goes through ``precompute.artifacts``' atomic writes
    (a rerun after ``kill -9`` equals a clean run, tests/test_reliability.py), and a SIGTERM'd tree talks on its
    way out (multiprocessing's resource tracker, which ignores SIGTERM, warns about the semaphores it cleans up).
    """
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(children, timeout=timeout_s)
