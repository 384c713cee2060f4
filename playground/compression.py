"""Compressed responses (flask-compress): the Dash bundles, the page's own scripts, callback answers, JSON.

A first visit used to move 6.4 MB, all of it uncompressed JavaScript and JSON (docs/benchmarks.md, section 14).
flask-compress compresses in Flask's ``after_request``, so every route is covered under waitress and Dash's
development server alike, and it leaves alone what gains nothing or must not change:

- only text types (:data:`COMPRESSIBLE` adds nothing to flask-compress' defaults: scripts, CSS, HTML, JSON);
  thumbnails and images (JPEG), private mode's weight shards and feature matrices (``application/octet-stream``)
  and TF.js' WebAssembly binaries (``application/wasm``) go out as they are, with their own headers;
- responses that are not 2xx (a 304, a 404 with its text) or under ``COMPRESS_MIN_SIZE``, and partial content (a
  206 answering a ``Range`` request: its ``Content-Range`` counts the uncompressed bytes);
- the caching headers stay: ``Cache-Control`` as the route set it, ``Vary: Accept-Encoding`` added, and a strong
  ``ETag`` gets the encoding appended (``"tag:br"``), so a revalidation of the compressed copy answers 304
  (flask-compress re-evaluates the request's conditions on the compressed response; for the streamed ones, files
  sent with ``send_file``, on the endpoints of :data:`CONDITIONAL_STREAMED`).

Brotli first, then gzip: Chromium asks for ``gzip, deflate, br, zstd`` over loopback; brotli at level 4 gives
plotly.min.js (4.7 MB) in 1.41 MB, gzip at level 6 in 1.47 MB. The Dash bundles (``/_dash-component-suites/``: the
same bytes for every visitor) are compressed once per process and kept (:class:`BundleCache`): plotly.min.js alone
takes about 0.5 s to compress on this machine under load.
"""

from __future__ import annotations

from typing import Any

# Endpoints serving files through send_file / send_from_directory (streamed): the page's assets and private
# mode's TensorFlow.js scripts. flask-compress answers their conditional requests (If-None-Match) itself.
CONDITIONAL_STREAMED = ["_dash_assets.static", "private_tfjs", "private_tfjs_wasm", "private_export", "private_file"]

BUNDLES = "/_dash-component-suites/"
_NOT_CACHED = "not cached"


class BundleCache:
    """flask-compress' cache backend, keeping the compressed Dash bundles only (see :func:`bundle_key`)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def set(self, key: str, value: bytes) -> None:
        if not key.endswith(_NOT_CACHED):
            self.data[key] = value


def bundle_key(request: Any) -> str:
    """The cache key of a response: its URL for a GET of a Dash bundle, else one that is never stored."""
    return request.full_path if request.method == "GET" and request.path.startswith(BUNDLES) else _NOT_CACHED


SETTINGS: dict[str, Any] = {
    "COMPRESS_ALGORITHM": ["br", "gzip"],
    # Streamed responses are compressed chunk by chunk; gzip cannot be (flask-compress), deflate can.
    "COMPRESS_ALGORITHM_STREAMING": ["br", "deflate"],
    "COMPRESS_BR_LEVEL": 4,
    "COMPRESS_LEVEL": 6,
    "COMPRESS_MIN_SIZE": 500,
    "COMPRESS_STREAMING_ENDPOINT_CONDITIONAL": CONDITIONAL_STREAMED,
    "COMPRESS_CACHE_BACKEND": BundleCache,
    "COMPRESS_CACHE_KEY": bundle_key,
    "COMPRESS_REGISTER": False,  # install_compression registers its own after_request, which skips 206
}


def install_compression(dash_app: Any) -> None:
    """Compress the responses of ``dash_app``'s Flask server (see the module docstring)."""
    from flask_compress import Compress

    server = dash_app.server
    server.config.update(SETTINGS)
    compress = Compress(server)

    @server.after_request
    def compress_response(response: Any) -> Any:
        return response if response.status_code == 206 else compress.after_request(response)
