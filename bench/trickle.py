"""Trickling clients against the app's server: the time a normal request waits with N slow connections open.

``python -m bench trickle [--connections 250] [--interval 5] [--server bounded|plain]``: serves a tiny WSGI app on
127.0.0.1 (any free port) with ``playground.server.create_server`` (``bounded``, today's server) or with the
settings waitress was given before #26 (``plain``: 200 connections, 20 s idle timeout, no arrival deadline),
opens N connections from loopback source addresses (25 per address, 127.0.0.2 up) that each send one header line
every ``--interval`` seconds, then times a normal request from 127.0.0.1 (waiting at most ``--wait`` seconds), and
how long the trickling connections stay open. Loopback only; stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import socket
import threading
import time


def hello(environ: dict, start_response) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def _plain_server():
    """waitress as ``playground`` configured it before #26."""
    from waitress import create_server

    return create_server(
        hello,
        host="127.0.0.1",
        port=0,
        threads=8,
        connection_limit=200,
        channel_timeout=20,
        cleanup_interval=5,
        asyncore_use_poll=True,
    )


def is_closed(sock: socket.socket) -> bool:
    """True when the server closed ``sock`` (EOF or reset), False while it is open."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=250)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a connection's header lines")
    parser.add_argument("--server", choices=("bounded", "plain"), default="bounded")
    parser.add_argument("--wait", type=float, default=30.0, help="give up on the normal request after this")
    parser.add_argument("--hold", type=float, default=30.0, help="trickle for at most this many seconds")
    args = parser.parse_args()

    if args.server == "bounded":
        from playground.server import create_server

        server = create_server(hello, "127.0.0.1", 0)
    else:
        server = _plain_server()
    threading.Thread(target=server.run, daemon=True).start()
    port = int(server.effective_port)

    socks = []
    for i in range(args.connections):
        sock = socket.socket()
        sock.bind((f"127.0.0.{2 + i // 25}", 0))
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))  # connects in the backlog even when the server stopped accepting
        socks.append(sock)
    time.sleep(0.2)
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
    start = time.monotonic()
    stop = threading.Event()

    def trickle() -> None:
        n = 0
        while not stop.wait(args.interval):
            n += 1
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.send(f"X-Trickle-{n}: 1\r\n".encode())

    threading.Thread(target=trickle, daemon=True).start()
    time.sleep(1.0)
    t0 = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=args.wait)
        conn.request("GET", "/", headers={"Host": "localhost"})
        answer = f"{conn.getresponse().status} after {time.perf_counter() - t0:.3f} s"
    except OSError as exc:
        answer = f"no answer after {time.perf_counter() - t0:.1f} s ({type(exc).__name__})"
    print(f"server={args.server} trickling={args.connections} interval={args.interval:g}s: normal request {answer}")
    while time.monotonic() - start < args.hold and not all(map(is_closed, socks)):
        time.sleep(0.5)
    still = sum(not is_closed(sock) for sock in socks)
    print(f"  trickling connections still open after {time.monotonic() - start:.1f} s: {still}")
    stop.set()
    for sock in socks:
        sock.close()


if __name__ == "__main__":
    main()
