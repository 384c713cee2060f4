"""Serving the app: the guards every request passes, and the production WSGI server.

- :class:`HostAllowList` (WSGI middleware): a request whose ``Host`` header is not an allowed name gets a 400
  before Flask sees it. A page on another site that resolves its own name to 127.0.0.1 (DNS rebinding) sends
  its own name, so it cannot reach the app; the loopback names are allowed by default, others with
  ``playground --allow-host NAME``.
- :func:`check_callback_body`: a ``POST /_dash-update-component`` whose JSON is not the shape Dash's renderer
  sends (``null``, a list, a string, an unknown output, the wrong number of inputs) gets a 400 instead of the
  500 that Dash's dispatcher would answer.
- :func:`serve` / :func:`create_server`: waitress, a production WSGI server, with two bounds added: a fixed pool
  of :data:`THREADS` worker threads whatever the number of connections (idle and half-open connections wait in its
  event loop, not in threads), connections idle for :data:`CHANNEL_TIMEOUT_S` closed, a request that does not
  arrive in time closed (headers within :data:`HEADER_TIMEOUT_S`, the whole request within
  :data:`REQUEST_TIMEOUT_S`), at most :data:`CLIENT_CONNECTION_LIMIT` connections per client address and
  :data:`CONNECTION_LIMIT` in all, request bodies over ``MAX_REQUEST_BYTES`` refused, and the "Task queue depth"
  warning rate-limited.
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

log = logging.getLogger(__name__)

# Names every request may use: this machine's own. Others are added with --allow-host.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# Addresses that bind every interface: not a name a browser sends.
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")

# waitress settings. 8 threads: callbacks are CPU-bound Python and a 2-core machine runs 2 at once; the others
# keep thumbnails flowing while a slow callback (the compare view, an upload's first model load) runs. Uploads
# decode at most two at a time whatever the threads (playground.uploads.DECODE_SLOTS).
THREADS = 8
# Connections held open, idle or half-open, before waitress stops accepting (new ones wait in the backlog). High:
# a connection that is not running a request costs a socket and a few KB in waitress' event loop (poll(), no
# 1,024-descriptor ceiling), never a thread; the per-address limit and the arrival deadlines below keep one client
# from filling it.
CONNECTION_LIMIT = 1000
# Connections one client address may hold at once; more are closed as they are accepted. A browser opens at most
# 6 per host name; behind a reverse proxy every connection comes from the proxy's address, so cap the proxy's
# upstream connections below this (docs/playground.md, "Serving and safety").
CLIENT_CONNECTION_LIMIT = 50
# A connection with no request in progress and no bytes received for this long is closed; checked every
# CLEANUP_INTERVAL_S. A running callback is never cut: waitress only closes connections without a request.
CHANNEL_TIMEOUT_S = 20
CLEANUP_INTERVAL_S = 1
# A request must arrive in time, counted from its first byte: its headers within HEADER_TIMEOUT_S, all of it (the
# body too) within REQUEST_TIMEOUT_S, else the connection is closed. The idle timeout alone lets a client hold a
# connection for ever by sending one byte every few seconds ("slowloris"). 120 s lets the largest upload (24 MB)
# arrive at 1.6 Mbit/s.
HEADER_TIMEOUT_S = 10
REQUEST_TIMEOUT_S = 120
# waitress warns "Task queue depth is N" on every request that waits for a thread: at most one such line per this.
QUEUE_LOG_INTERVAL_S = 10
# Requests above this size are refused before a callback sees them: far above an upload at the limit (10 MB
# is about 13.3 MB as base64) plus the rest of the callback's JSON. Flask (playground.app) and waitress share it.
MAX_REQUEST_BYTES = 24 * 1024 * 1024

CALLBACK_PATH = "/_dash-update-component"


# --------------------------------------------------------------------------------------------- Host header
def host_name(header: str | None) -> str | None:
    """The host name of a ``Host`` header value without its port, lower case (``[::1]:8050`` -> ``::1``)."""
    if not header:
        return None
    value = header.strip().lower()
    if value.startswith("["):  # an IPv6 literal, maybe with a port
        end = value.find("]")
        return value[1:end] if end > 0 else None
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".") or None


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> list[str]:
    """The loopback names, the bound address when it is a specific one, and ``extra`` (``--allow-host``)."""
    names = [*LOOPBACK_HOSTS]
    if bind not in WILDCARD_ADDRESSES:
        names.append(bind)
    names += list(extra)
    return list(dict.fromkeys(name.strip().lower().strip("[]") for name in names if name.strip()))


class HostAllowList:
    """WSGI middleware: answer 400 to a request whose ``Host`` is not one of ``hosts``.

    A name starting with a dot allows its subdomains too (``.example.org``: ``a.example.org``, not
    ``example.org``). A request without a Host header (HTTP/1.0) is refused: browsers always send one.
    """

    def __init__(self, app: Callable, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(name.lower() for name in hosts)
        self.suffixes = tuple(name for name in self.hosts if name.startswith("."))

    def allows(self, header: str | None) -> bool:
        name = host_name(header)
        return name is not None and (name in self.hosts or name.endswith(self.suffixes))

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if self.allows(environ.get("HTTP_HOST")):
            return self.app(environ, start_response)
        log.warning("refused a request for Host %r (allowed: %s)", environ.get("HTTP_HOST"), ", ".join(self.hosts))
        body = (
            b"400 Bad Request: this server does not answer to that host name. "
            b"Start playground with --allow-host NAME to add it.\n"
        )
        start_response(
            "400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        )
        return [body]


# ---------------------------------------------------------------------------------------- callback bodies
def _is_dependency(item: Any) -> bool:
    """One input/state/output of Dash's request: {"id": str or dict, "property": str, ...}."""
    return isinstance(item, dict) and isinstance(item.get("id"), str | dict) and isinstance(item.get("property"), str)


def _is_dependency_list(items: Any, expected: int | None) -> bool:
    """A list of dependencies, each one or a list of them (pattern-matching ALL), ``expected`` long if given."""
    if not isinstance(items, list) or (expected is not None and len(items) != expected):
        return False
    return all(_is_dependency(item) or (isinstance(item, list) and all(map(_is_dependency, item))) for item in items)


def check_callback_body(body: Any, callback_map: dict[str, dict[str, Any]]) -> str | None:
    """What is wrong with a ``_dash-update-component`` body, or None when it has the shape Dash expects.

    Checks the shape only (the values go to the callbacks, which check them): a JSON object naming a
    registered ``output``, with as many ``inputs`` and ``state`` entries as that callback declares.
    """
    if not isinstance(body, dict):
        kind = {type(None): "null", list: "an array", str: "a string"}.get(type(body), "not an object")
        return f"the body is {kind}, not a JSON object"
    output = body.get("output")
    if not isinstance(output, str) or output not in callback_map:
        return "the body names no known callback output"
    spec = callback_map[output]
    for key in ("inputs", "state"):
        if not _is_dependency_list(body.get(key, []), len(spec.get(key) or [])):
            return f"'{key}' does not match the callback's {len(spec.get(key) or [])} {key}"
    outputs = body.get("outputs")
    if outputs is not None and not (_is_dependency(outputs) or _is_dependency_list(outputs, None)):
        return "'outputs' is malformed"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(prop, str) for prop in changed):
        return "'changedPropIds' is not a list of names"
    return None


def install_guards(dash_app: Any, hosts: Iterable[str]) -> None:
    """Put the Host allow-list around the app's WSGI entry and check callback bodies before Dash does."""
    from flask import Response, request

    server = dash_app.server
    callback_path = dash_app.config.routes_pathname_prefix.rstrip("/") + CALLBACK_PATH

    @server.before_request
    def _check_callback_request() -> Response | None:
        if request.method != "POST" or request.path != callback_path:
            return None
        if not request.is_json:
            problem = "the body is not JSON (Content-Type: application/json)"
        else:
            body = request.get_json(silent=True)
            invalid = body is None and request.get_data().strip() != b"null"
            problem = "the body is not valid JSON" if invalid else check_callback_body(body, dash_app.callback_map)
        if problem is None:
            return None
        return Response(f"400 Bad Request: {problem}.\n", status=400, mimetype="text/plain")

    # A path under /_dash-component-suites/ that is not one of Dash's files ("..", an unknown package or file):
    # Dash raises DependencyException, which Flask answered as a 500 with a traceback in the log.
    from dash.exceptions import DependencyException

    @server.errorhandler(DependencyException)
    def _not_a_component_file(exc: Exception) -> Response:
        return Response("404 Not Found: no such component file.\n", status=404, mimetype="text/plain")

    server.wsgi_app = HostAllowList(server.wsgi_app, hosts)


# ------------------------------------------------------------------------------------------------ server
# Why extend waitress rather than change servers: waitress already parses every request in its event loop, so a
# trickling client costs a socket, never one of the THREADS; what it lacks is a deadline on a request's arrival
# (its channel_timeout resets on every byte) and a count per client address. Both are a few lines on its own
# channel and server classes (below), keeping its tested parser, thread pool and limits. The alternatives cost
# more: gunicorn's sync workers give each trickling connection a worker process, its async workers bring gevent,
# and an ASGI server would need a WSGI bridge; a reverse proxy is the answer on a network (docs/playground.md).


class _RateLimit(logging.Filter):
    """Let one record through per ``interval`` seconds; the next one that passes says how many were dropped."""

    def __init__(self, interval: float) -> None:
        super().__init__()
        self.interval = interval
        self.next_at = 0.0
        self.dropped = 0
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        with self.lock:
            now = time.monotonic()
            if now < self.next_at:
                self.dropped += 1
                return False
            self.next_at = now + self.interval
            if self.dropped:
                record.msg = f"{record.msg} ({self.dropped} more such warnings in the last {self.interval:g} s)"
                self.dropped = 0
            return True


class BoundedChannel(HTTPChannel):
    """A waitress channel that remembers when the request it is receiving began (its first byte)."""

    arrival_started: float | None = None

    def received(self, data: bytes) -> bool:
        result = super().received(data)
        if self.request is None:  # nothing in progress: none began, or the last one arrived whole
            self.arrival_started = None
        elif self.arrival_started is None:
            self.arrival_started = time.monotonic()
        return result

    def arrival_overdue(self, now: float, header_timeout: float, request_timeout: float) -> bool:
        """True when the request in progress has not arrived in time (its headers, or all of it)."""
        request, started = self.request, self.arrival_started
        if request is None or started is None or request.completed:
            return False
        limit = request_timeout if request.headers_finished else header_timeout
        return now - started > limit


class BoundedServer(TcpWSGIServer):
    """waitress' TCP server with the arrival deadlines and the per-address connection limit."""

    channel_class = BoundedChannel
    header_timeout: float = HEADER_TIMEOUT_S
    request_timeout: float = REQUEST_TIMEOUT_S
    client_connection_limit: int = CLIENT_CONNECTION_LIMIT

    def handle_accept(self) -> None:
        """waitress' own accept, with connections beyond ``client_connection_limit`` per address closed at once."""
        try:
            accepted = self.accept()
            if accepted is None:
                return
            conn, addr = accepted
            self.set_socket_options(conn)
        except OSError:  # as waitress: a socket the peer already closed must not stop the server
            return
        client = addr[0] if isinstance(addr, tuple) else addr
        held = sum(1 for channel in list(self.active_channels.values()) if _client_of(channel) == client)
        if held >= self.client_connection_limit:
            _refusal_log.warning(
                "closed a connection from %s: it already holds %d (CLIENT_CONNECTION_LIMIT)", client, held
            )
            conn.close()
            return
        self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # the idle timeout
        clock = time.monotonic()
        for channel in list(self.active_channels.values()):
            if isinstance(channel, BoundedChannel) and channel.arrival_overdue(
                clock, self.header_timeout, self.request_timeout
            ):
                channel.will_close = True


def _client_of(channel: Any) -> Any:
    addr = getattr(channel, "addr", None)
    return addr[0] if isinstance(addr, tuple) else addr


_queue_filter = _RateLimit(QUEUE_LOG_INTERVAL_S)
# One line per QUEUE_LOG_INTERVAL_S for refused connections too: a flood must not flood the log.
_refusal_log = logging.getLogger(f"{__name__}.refused")
_refusal_log.addFilter(_RateLimit(QUEUE_LOG_INTERVAL_S))


def _raise_open_files_limit(needed: int) -> None:
    """Raise this process' soft limit of open files towards ``needed`` (as far as the hard limit allows): each
    connection is a descriptor, and a soft limit of 1,024 would refuse connections before CONNECTION_LIMIT."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def create_server(
    wsgi_app: Callable,
    host: str,
    port: int,
    threads: int = THREADS,
    *,
    header_timeout: float = HEADER_TIMEOUT_S,
    request_timeout: float = REQUEST_TIMEOUT_S,
    client_connection_limit: int = CLIENT_CONNECTION_LIMIT,
) -> Any:
    """A waitress server for ``wsgi_app`` with the settings at the top of this module, listening, not yet running.

    Its ``run()`` serves until interrupted, ``close()`` stops it; ``effective_port`` is the port bound (``port=0``:
    any free one). As ``waitress.create_server``, with :class:`BoundedServer` for each address ``host`` names.
    """
    adj = Adjustments(
        host=host,
        port=port,
        threads=threads,
        connection_limit=CONNECTION_LIMIT,
        channel_timeout=CHANNEL_TIMEOUT_S,
        cleanup_interval=CLEANUP_INTERVAL_S,
        max_request_body_size=MAX_REQUEST_BYTES,
        asyncore_use_poll=True,  # poll(), not select(): no 1,024-descriptor ceiling
        ident="playground",
    )
    _raise_open_files_limit(CONNECTION_LIMIT + 64)
    queue_logger = logging.getLogger("waitress.queue")
    if _queue_filter not in queue_logger.filters:
        queue_logger.addFilter(_queue_filter)
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    socket_map: dict = {}
    servers = []
    for sockinfo in adj.listen:
        server = BoundedServer(wsgi_app, socket_map, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo)
        server.header_timeout, server.request_timeout = header_timeout, request_timeout
        server.client_connection_limit = client_connection_limit
        servers.append(server)
    if len(servers) == 1:
        return servers[0]
    listening = [(server.effective_host, server.effective_port) for server in servers]
    return MultiSocketServer(socket_map, adj, listening, dispatcher, servers[-1].log_info)


def serve(dash_app: Any, host: str, port: int, threads: int = THREADS) -> None:
    """Serve ``dash_app`` with waitress until interrupted (the settings at the top of this module)."""
    server = create_server(dash_app.server, host, port, threads)
    server.print_listen("Serving on http://{}:{}")
    server.run()
