"""A bounded loopback load test of the served playground: thumbnails and the search callback.

Talks HTTP only (the standard library's ``http.client``, one keep-alive connection per worker), so it measures
whichever server is running: the production one (``playground``) or Dash's development server
(``playground --dev``). Three phases:

1. *browse*: every view once, as a browser opening it does (the controller callback for ``/search``,
   ``/upload``, ``/embeddings``, ``/compare``, then every callback fed by the selection);
2. *load*: ``--requests`` requests from ``--concurrency`` workers, half ``GET /thumbs/<dataset>/<id>.jpg``, half
   ``POST /_dash-update-component`` of the search view's callback (query panel + results) for a random query;
3. optionally *upload*: one upload through the upload view's callback (``--upload IMAGE``), which loads the
   backbone (TensorFlow for every model but ``pixels``).

It prints throughput, p50 / p99 latency and errors per request kind, the load average, and the server's resident
memory after each phase when it knows the server's process id (``--serve`` starts the server itself; else
``--pid``). Every loop is bounded by ``--requests`` and ``--max-seconds``; only 127.0.0.1 is contacted.

    .venv/bin/python -m bench load_app --serve artifacts                     # starts and stops `playground`
    .venv/bin/python -m bench load_app --serve artifacts --server-args=--dev # Dash's development server
    .venv/bin/python -m bench load_app --url http://127.0.0.1:8050 --pid 1234 --upload photo.jpg
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playground import ids  # noqa: E402  (component ids only: no Dash, no data)

VIEWS = ("search", "upload", "embeddings", "compare")
SEARCH_OUTPUTS = {ids.QUERY_PANEL, ids.RESULTS}
TIMEOUT_S = 60


# ------------------------------------------------------------------------------------------------- HTTP
class Client:
    """One keep-alive connection to the server; reconnects after an error."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (0, 1):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                self.connection.close()
                self.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def callback(self, body: dict) -> tuple[int, dict | None]:
        status, data = self.request("POST", "/_dash-update-component", json.dumps(body).encode())
        try:
            return status, json.loads(data) if status == 200 else None
        except ValueError:
            return status, None


def wait_until_up(client: Client, seconds: float, server: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode} before answering")
        try:
            if client.request("GET", "/")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"no answer from {client.host}:{client.port} within {seconds:.0f} s")


# --------------------------------------------------------------------------------------- callback bodies
def parse_outputs(output: str) -> list[dict[str, str]]:
    """``'..a.children...b.figure..'`` (several outputs) or ``'a.children'`` as a list of {id, property}."""
    parts = output.strip(".").split("...") if output.startswith("..") else [output]
    return [dict(zip(("id", "property"), part.rsplit(".", 1), strict=True)) for part in parts]


def callback_body(spec: dict, values: dict[str, object], changed: list[str]) -> dict:
    """The body the browser posts for one callback, inputs and states taken from ``values`` ("id.prop")."""
    def dependency(dep: dict) -> dict | list:
        if isinstance(dep["id"], dict):  # pattern-matching (ALL): no matching component here
            return []
        key = f"{dep['id']}.{dep['property']}"
        return {"id": dep["id"], "property": dep["property"], "value": values.get(key)}

    outputs = parse_outputs(spec["output"])
    return {
        "output": spec["output"],
        "outputs": outputs if spec["output"].startswith("..") else outputs[0],
        "inputs": [dependency(dep) for dep in spec["inputs"]],
        "state": [dependency(dep) for dep in spec.get("state", [])],
        "changedPropIds": changed,
    }


def find_callbacks(dependencies: list[dict]) -> tuple[dict, list[dict], dict]:
    """(the controller, the callbacks fed by the selection, the search view's results callback)."""
    controller = next(spec for spec in dependencies if f"{ids.SELECTION}.data" in spec["output"]
                      and any(dep["id"] == ids.URL for dep in spec["inputs"]))
    fed = [spec for spec in dependencies if spec is not controller
           and any(dep["id"] == ids.SELECTION and dep["property"] == "data" for dep in spec["inputs"])]
    search = next(spec for spec in fed if {o["id"] for o in parse_outputs(spec["output"])} == SEARCH_OUTPUTS)
    return controller, fed, search


# ---------------------------------------------------------------------------------------------- memory
def memory_mb(pid: int | None) -> str:
    """'VmRSS x MiB, VmHWM y MiB' of a process (Linux), or '' without a pid."""
    if pid is None:
        return ""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except OSError:
        return "(process gone)"
    rss, hwm = (int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))
    modules = " (TensorFlow loaded)" if _has_tensorflow(pid) else ""
    return f"VmRSS {rss:.0f} MiB, VmHWM {hwm:.0f} MiB{modules}"


def _has_tensorflow(pid: int) -> bool:
    try:
        return "_pywrap_tensorflow" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def load_average() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


# ---------------------------------------------------------------------------------------------- phases
def browse(client: Client, controller: dict, fed: list[dict]) -> tuple[dict, int, int]:
    """Open every view as the browser does; returns (the search view's selection, requests, errors)."""
    selection, n_requests, n_errors = None, 0, 0
    for view in VIEWS:
        status, data = client.callback(
            callback_body(controller, {f"{ids.URL}.pathname": f"/{view}", f"{ids.URL}.search": ""},
                          [f"{ids.URL}.pathname"])
        )
        n_requests += 1
        if status != 200 or data is None:
            n_errors += 1
            print(f"  browse {view}: controller answered {status}")
            continue
        current = data["response"][ids.SELECTION]["data"]
        selection = selection or current
        for spec in fed:
            status, _ = client.callback(callback_body(spec, {f"{ids.SELECTION}.data": current},
                                                      [f"{ids.SELECTION}.data"]))
            n_requests += 1
            n_errors += status not in (200, 204)  # 204: PreventUpdate (a callback of another view)
    if selection is None:
        raise SystemExit("the controller callback never answered: nothing to load")
    return selection, n_requests, n_errors


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def load(host: str, port: int, search: dict, selection: dict, n_images: int, n_requests: int, concurrency: int,
         max_seconds: float, seed: int) -> tuple[dict[str, list[float]], dict[str, int], float]:
    """``n_requests`` requests (alternately a thumbnail and a search) from ``concurrency`` threads."""
    counter = iter(range(n_requests))
    lock = threading.Lock()
    latencies: dict[str, list[float]] = {"thumbnail": [], "search callback": []}
    errors: dict[str, int] = {"thumbnail": 0, "search callback": 0}
    deadline = time.monotonic() + max_seconds

    def work(worker: int) -> None:
        client, rng = Client(host, port), random.Random(seed + worker)
        while time.monotonic() < deadline:
            with lock:
                number = next(counter, None)
            if number is None:
                return
            image_id = rng.randrange(n_images)
            start = time.perf_counter()
            try:
                if number % 2 == 0:
                    kind = "thumbnail"
                    status, _ = client.request("GET", f"/thumbs/{selection['dataset']}/{image_id}.jpg")
                else:
                    kind = "search callback"
                    body = callback_body(search, {f"{ids.SELECTION}.data": {**selection, "query": image_id}},
                                         [f"{ids.SELECTION}.data"])
                    status, _ = client.callback(body)
                ok = status == 200
            except OSError:
                ok = False
            elapsed = time.perf_counter() - start
            with lock:
                latencies[kind].append(elapsed)
                errors[kind] += not ok

    threads = [threading.Thread(target=work, args=(worker,), daemon=True) for worker in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max_seconds + TIMEOUT_S)
    return latencies, errors, time.perf_counter() - start


def upload(client: Client, fed: list[dict], selection: dict, image: Path) -> str:
    spec = next(spec for spec in fed if ids.UPLOAD_STATUS in spec["output"])
    contents = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode("ascii")
    values = {f"{ids.SELECTION}.data": {**selection, "view": "upload"}, f"{ids.UPLOAD}.contents": contents,
              f"{ids.UPLOAD}.filename": image.name}
    start = time.perf_counter()
    status, data = client.callback(callback_body(spec, values, [f"{ids.UPLOAD}.contents"]))
    ok = status == 200 and data is not None and "result-card" in json.dumps(data)
    return f"{status} in {time.perf_counter() - start:.1f} s, {'results shown' if ok else 'no results'}"


# ------------------------------------------------------------------------------------------------ main
def start_server(artifacts: str, port: int, extra: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "playground", "--no-precompute", "--artifacts", artifacts, "--port", str(port),
               *extra]
    print("starting:", " ".join(command))
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_server(server: subprocess.Popen | None, seconds: float = 10) -> None:
    """End a server this benchmark started (None: one it did not start): SIGTERM, then SIGKILL after ``seconds``."""
    if server is None:
        return
    server.terminate()
    try:
        server.wait(seconds)
    except subprocess.TimeoutExpired:
        server.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8050 (loopback only)")
    where.add_argument("--serve", metavar="ARTIFACTS", help="start `playground --no-precompute` over ARTIFACTS")
    parser.add_argument("--port", type=int, default=8071, help="port for --serve (default 8071)")
    parser.add_argument("--server-args", default="",
                        help="more `playground` options for --serve, e.g. --server-args=--dev")
    parser.add_argument("--pid", type=int, help="the server's process id, for its memory (--url)")
    parser.add_argument("--requests", type=int, default=2000, help="requests in the load phase (default 2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent workers (default 8)")
    parser.add_argument("--max-seconds", type=float, default=300, help="stop the load phase after this long")
    parser.add_argument("--upload", type=Path, help="an image to upload after the load phase")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    server = None
    if args.serve:
        server = start_server(args.serve, args.port, args.server_args.split())
        host, port, pid = "127.0.0.1", args.port, server.pid
    else:
        parts = urlsplit(args.url)
        host, port, pid = parts.hostname or "127.0.0.1", parts.port or 80, args.pid
        if host not in ("127.0.0.1", "localhost", "::1"):
            parser.error("this load test talks to loopback addresses only")
    try:
        client = Client(host, port)
        wait_until_up(client, 120, server)
        print(f"up: {memory_mb(pid)}; {load_average()}")
        status, data = client.request("GET", "/_dash-dependencies")
        controller, fed, search = find_callbacks(json.loads(data))
        selection, n_browse, browse_errors = browse(client, controller, fed)
        print(f"browsed the 4 views ({n_browse} requests, {browse_errors} errors): {memory_mb(pid)}; {load_average()}")
        n_images = int(selection.get("n_images") or 0) or _count_images(client, selection)
        print(f"load: {args.requests} requests, {args.concurrency} workers, dataset {selection['dataset']} "
              f"({n_images} images), model {selection['model']} / {selection['layer']} / {selection['metric']}")
        latencies, errors, seconds = load(host, port, search, selection, n_images, args.requests, args.concurrency,
                                          args.max_seconds, args.seed)
        done = sum(len(values) for values in latencies.values())
        print(f"{done} requests in {seconds:.1f} s: {done / seconds:.1f} requests/s, "
              f"{sum(errors.values())} errors; {load_average()}")
        print(f"{'kind':16s} {'n':>5s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'errors':>6s}")
        every = [value for values in latencies.values() for value in values]
        for kind, values in [*latencies.items(), ("all", every)]:
            if values:
                n_errors = sum(errors.values()) if kind == "all" else errors[kind]
                print(f"{kind:16s} {len(values):5d} {percentile(values, 0.5) * 1000:8.1f} "
                      f"{percentile(values, 0.99) * 1000:8.1f} {max(values) * 1000:8.1f} {n_errors:6d}")
        print(f"after the load: {memory_mb(pid)}")
        if args.upload:
            print(f"upload of {args.upload.name}: {upload(client, fed, selection, args.upload)}; {memory_mb(pid)}")
        return 0 if sum(errors.values()) == 0 and browse_errors == 0 else 1
    finally:
        stop_server(server)


def _count_images(client: Client, selection: dict) -> int:
    """The dataset's size: the highest thumbnail id that exists (binary search, a few requests)."""
    low, high = 0, 1
    while client.request("GET", f"/thumbs/{selection['dataset']}/{high}.jpg")[0] == 200 and high < 10**9:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        ok = client.request("GET", f"/thumbs/{selection['dataset']}/{middle}.jpg")[0] == 200
        low, high = (middle, high) if ok else (low, middle)
    return low + 1


if __name__ == "__main__":
    sys.exit(main())
