"""The main command's first run, measured: `playground` on a fresh artifacts folder until it serves.

    .venv/bin/python -m bench first_run [--artifacts /tmp/first-run] [--port 8079] [--timeout 900] [--checkout DIR]

Starts `python -m playground --artifacts DIR --port PORT` in the checkout measured (DIR is deleted first), samples
the resident memory and CPU time of the whole process tree every 0.2 s from /proc, and stops the server once it
prints that it is serving and answers on 127.0.0.1. Prints the wall time to serving, the CPU seconds of the whole
tree (less sensitive than the wall time to other work on the machine), the peak resident memory of each process and
the machine's load before and after. Linux only (reads /proc).

The processes of a first run: the server; one precompute child per dataset (`--precompute-only --data ...`); in
each, a fork server that imported TensorFlow once, and the short-lived children forked from it, one per model
extracted (`RunConfig.model_processes`), listed in the order they started, so in the order of the default models.
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


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return parents


def _tree(root: int, parents: dict[int, int] | None = None) -> list[int]:
    """The pids of ``root`` and its descendants (from /proc/*/stat's parent ids)."""
    parents = _parents() if parents is None else parents
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def _stat(pid: int) -> tuple[float, int] | None:
    """User + system CPU seconds of ``pid`` so far, and its start time in clock ticks (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _role(pid: int, names: dict[int, str], parent_of: dict[int, int], models: dict[int, int]) -> str:
    """What a process of the first run is, from its command line and its parent's."""
    name = names[pid]
    if "--precompute-only" in name:
        return "precompute of " + name.split("--data ", 1)[-1].rstrip().rsplit("/", 1)[-1]
    if "forkserver" in name:
        owner = _role(parent_of.get(pid, 0), names, parent_of, models) if parent_of.get(pid) in names else "?"
        if pid in models:
            dataset_process = parent_of.get(parent_of.get(pid, 0), 0)
            owner = _role(dataset_process, names, parent_of, models) if dataset_process in names else "?"
            return f"  model child {models[pid]} ({owner.removeprefix('precompute of ')})"
        return f"  fork server ({owner.removeprefix('precompute of ')})"
    if "playground" in name:
        return "serving process"
    return name


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
    parser.add_argument("--checkout", type=Path, default=REPO,
                        help="the checkout to measure (default: this one), run with this Python: `python -m "
                        "playground` in its folder imports its code, whatever PYTHONPATH says (a console script "
                        "would import the PYTHONPATH's, and its precompute children, started with -m in the working "
                        "folder, the folder's)")
    args = parser.parse_args()
    shutil.rmtree(args.artifacts, ignore_errors=True)
    load_before = os.getloadavg()
    command = [sys.executable, "-m", "playground", "--artifacts", str(args.artifacts), "--port", str(args.port)]
    start = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(args.checkout.resolve()))
    process = subprocess.Popen(command, cwd=args.checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    peaks: dict[int, tuple[int, str]] = {}
    cpu: dict[int, float] = {}
    started: dict[int, int] = {}
    parent_of: dict[int, int] = {}
    serving = threading.Event()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            parents = _parents()
            for pid in _tree(process.pid, parents):
                parent_of[pid] = parents.get(pid, 0)
                stat = _stat(pid)
                if stat is not None:
                    cpu[pid], started[pid] = stat
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
    print(f"first run to serving: {ready:.1f} s wall, {sum(cpu.values()):.1f} s CPU (all processes); load "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")
    names = {pid: name for pid, (_, name) in peaks.items()}
    # Model children: forked from a fork server (numbered per server in the order they started).
    models: dict[int, int] = {}
    in_order = sorted(peaks, key=lambda pid: (started.get(pid, 0), pid))
    for pid in in_order:
        server = parent_of.get(pid, 0)
        if "forkserver" in names[pid] and "forkserver" in names.get(server, ""):
            models[pid] = sum(1 for other in models if parent_of.get(other) == server) + 1
    print(f"  {'peak RSS':>8}  {'CPU s':>6}  process")
    for pid in in_order:
        rss = peaks[pid][0]
        if rss > 50 * 1024:
            print(f"  {rss / 1024:5.0f} MiB  {cpu.get(pid, 0):6.1f}  {_role(pid, names, parent_of, models)}")
    print(f"  highest peak: {max(rss for rss, _ in peaks.values()) / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
