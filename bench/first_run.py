"""The main command's first run, measured: `playground` on a fresh artifacts folder until it serves.

    .venv/bin/python bench/first_run.py [--artifacts /tmp/first-run] [--port 8079] [--timeout 900]

Starts `playground --artifacts DIR --port PORT` (DIR is deleted first), samples the resident memory of the whole
process tree every 0.2 s from /proc, and stops the server once it prints that it is serving and answers on
127.0.0.1. Prints the wall time to serving, the peak resident memory of each process (the precompute children
and the server) and the machine's load before and after. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(root: int) -> list[int]:
    """The pids of ``root`` and its descendants (from /proc/*/stat's parent ids)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=Path("/tmp/first-run-artifacts"))
    parser.add_argument("--port", type=int, default=8079)
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    parser.add_argument("--playground", type=Path, default=REPO / ".venv" / "bin" / "playground",
                        help="the playground command to run (default: this checkout's .venv); set PYTHONPATH to "
                        "measure another checkout with a shared virtual environment")
    args = parser.parse_args()
    shutil.rmtree(args.artifacts, ignore_errors=True)
    load_before = os.getloadavg()
    command = [str(args.playground), "--artifacts", str(args.artifacts), "--port", str(args.port)]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks: dict[int, tuple[int, str]] = {}
    serving = threading.Event()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in _tree(process.pid):
                rss = _rss_kib(pid)
                if rss > peaks.get(pid, (0, ""))[0]:
                    peaks[pid] = (rss, peaks.get(pid, (0, ""))[1] or _command_line(pid))
            time.sleep(0.2)

    def read_output() -> None:
        for line in process.stdout:
            if "playground: serving" in line:
                serving.set()

    threading.Thread(target=sample, daemon=True).start()
    threading.Thread(target=read_output, daemon=True).start()
    ready = None
    while time.perf_counter() - start < args.timeout and process.poll() is None:
        if serving.is_set():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.port}/", timeout=5).read()
                ready = time.perf_counter() - start
                break
            except OSError:
                pass
        time.sleep(0.2)
    time.sleep(1.0)  # one more memory sample of the idle server
    done.set()
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    load_after = os.getloadavg()
    if ready is None:
        print(f"the app did not serve within {args.timeout:.0f} s (exit code {process.returncode})", file=sys.stderr)
        return 1
    print(f"first run to serving: {ready:.1f} s wall; load {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    for rss, name in sorted(peaks.values(), reverse=True):
        if rss > 50 * 1024:
            print(f"  peak {rss / 1024:7.0f} MiB  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
