"""Serving the app: the guards every request passes, and the production WSGI server.

- :class:`HostAllowList` (WSGI middleware): a request whose ``Host`` header is not an allowed name gets a 400
  before Flask sees it. A page on another site that resolves its own name to 127.0.0.1 (DNS rebinding) sends
  its own name, so it cannot reach the app; the loopback names are allowed by default, others with
  ``playground --allow-host NAME``.
- :func:`check_callback_body`: a ``POST /_dash-update-component`` whose JSON is not the shape Dash's renderer
  sends (``null``, a list, a string, an unknown output, the wrong number of inputs) gets a 400 instead of the
  500 that Dash's dispatcher would answer.
- :func:`serve`: waitress, a production WSGI server: a fixed pool of :data:`THREADS` worker threads whatever the
  number of connections (idle and half-open connections wait in its event loop, not in threads), connections
  idle for :data:`CHANNEL_TIMEOUT_S` closed, at most :data:`CONNECTION_LIMIT` connections, request bodies over
  ``MAX_REQUEST_BYTES`` refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

# Names every request may use: this machine's own. Others are added with --allow-host.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# Addresses that bind every interface: not a name a browser sends.
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")

# waitress settings. 8 threads: callbacks are CPU-bound Python and a 2-core machine runs 2 at once; the others
# keep thumbnails flowing while a slow callback (the compare view, an upload's first model load) runs. Uploads
# decode at most two at a time whatever the threads (playground.uploads.DECODE_SLOTS).
THREADS = 8
# Connections held open, idle or half-open, before waitress stops accepting (new ones wait in the backlog).
CONNECTION_LIMIT = 200
# A connection with no request in progress and no bytes received for this long is closed; checked every
# CLEANUP_INTERVAL_S. A running callback is never cut: waitress only closes connections without a request.
CHANNEL_TIMEOUT_S = 20
CLEANUP_INTERVAL_S = 5
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
        start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                           ("Content-Length", str(len(body)))])
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

    server.wsgi_app = HostAllowList(server.wsgi_app, hosts)


# ------------------------------------------------------------------------------------------------ server
def serve(dash_app: Any, host: str, port: int, threads: int = THREADS) -> None:
    """Serve ``dash_app`` with waitress until interrupted (the settings at the top of this module)."""
    from waitress import serve as waitress_serve

    waitress_serve(
        dash_app.server,
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
