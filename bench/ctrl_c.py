"""Ctrl-C against the real commands: exit code, seconds from SIGINT to exit, lines printed after it, processes left.

``python -m bench ctrl_c [--at SECONDS_OR_TEXT ...]``: makes a small labeled dataset (6 classes of 30 coloured
images), runs ``precompute DATASET --backbones pixels`` and the default models, and ``playground`` (its first run's
precompute child, then serving), each in a session of its own, sends SIGINT to the process group as a terminal's
Ctrl-C does at the moments given (seconds, or a text that the command prints on stderr), and prints one line per
try. ``tests/test_reliability_round2.py`` uses the same function.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def command_of(name: str) -> list[str]:
    """The installed console script (what a user types), else ``python -m``."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [sys.executable, str(script)] if name == "precompute" else [sys.executable, "-m", name]
    return [sys.executable, "-m", "precompute.cli" if name == "precompute" else name]


def interrupt_command(command: list[str], after_s: float | str, to_group: bool = True, timeout: float = 240) -> dict:
    """Start ``command`` in a session of its own, send SIGINT ``after_s`` seconds later (or once stderr shows the
    text ``after_s``) to its process group, as a terminal's Ctrl-C does (``to_group=False``: to the process alone),
    and report how it ended: exit code, seconds from the signal to the exit, the stderr lines printed after the
    signal, and the processes of its tree still alive a second later."""
    import psutil

    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True
    )
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: process.stderr.read1(65536), b"")), daemon=True)
    reader.start()
    start = time.monotonic()
    try:
        if isinstance(after_s, str):
            while after_s.encode() not in b"".join(chunks):
                assert process.poll() is None, b"".join(chunks).decode(errors="replace")[-3000:]
                assert time.monotonic() - start < timeout, f"never printed {after_s!r}"
                time.sleep(0.05)
        else:
            time.sleep(after_s)
        assert process.poll() is None, "it ended before the signal: " + b"".join(chunks).decode(errors="replace")
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        before = len(b"".join(chunks))
        signalled = time.monotonic()
        (os.killpg if to_group else os.kill)(process.pid, signal.SIGINT)
        code = process.wait(timeout=30)
        seconds = time.monotonic() - signalled
        reader.join(timeout=5)
        time.sleep(1.0)
        alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        output = b"".join(chunks)
        # Lines, progress bars' \r-separated updates apart; a bar's own updates are not lines a user reads.
        after = [
            text
            for text in re.split(r"[\r\n]", output[before:].decode(errors="replace"))
            if text.strip() and "%|" not in text
        ]
        return {
            "code": code,
            "seconds": seconds,
            "after": after,
            "alive": alive,
            "n_tree": len(tree),
            "all": output.decode(errors="replace"),
        }
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _report(name: str, moment: float | str, result: dict) -> None:
    tracebacks = sum("Traceback" in line for line in result["after"])
    print(
        f"{name} at {moment!r}: exit {result['code']} after {result['seconds']:.2f} s, {len(result['after'])} "
        f"line(s) after the signal ({tracebacks} tracebacks), {len(result['alive'])} of {result['n_tree']} "
        f"processes left; first line: {(result['after'] or [''])[0][:100]!r}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--at",
        nargs="*",
        default=["0.3", "scan images", "pixels (3 layers): 100%"],
        help="moments of the pixels run (seconds or a text it prints)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.helpers import make_dataset

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        dataset = make_dataset(base / "ds", per_class=30)
        for i, moment in enumerate(args.at):
            at: float | str = float(moment) if re.fullmatch(r"[0-9.]+", moment) else moment
            command = [
                *command_of("precompute"),
                str(dataset),
                "--out",
                str(base / f"out{i}"),
                "--backbones",
                "pixels",
                "--tfjs",
                "none",
            ]
            _report("precompute --backbones pixels", at, interrupt_command(command, at))
        command = [*command_of("precompute"), str(dataset), "--out", str(base / "out-default")]
        _report("precompute (default models)", "efficientnet-lite0", interrupt_command(command, "efficientnet-lite0"))
        command = [
            *command_of("playground"),
            "--artifacts",
            str(base / "out-main"),
            "--data",
            str(dataset),
            "--port",
            str(free_port()),
        ]
        _report("playground (first run)", "efficientnet-lite0", interrupt_command(command, "efficientnet-lite0"))
        command = [
            *command_of("playground"),
            "--artifacts",
            str(base / "empty"),
            "--no-precompute",
            "--port",
            str(free_port()),
        ]
        _report(
            "playground (serving), SIGINT to the process",
            "Serving on",
            interrupt_command(command, "Serving on", to_group=False),
        )


if __name__ == "__main__":
    main()
