"""axe-core (Deque's accessibility checker, npm package, MPL-2.0) for the browser tests, fetched once into a cache.

The browser tests inject ``axe.min.js`` into the page and run ``axe.run()``; nothing is loaded from a CDN.
Where the script comes from, in order: ``$SISP_AXE_JS`` (a path to ``axe.min.js``); an earlier copy in the
cache (``$SISP_CACHE_DIR/axe-core-<version>/axe.min.js``); else ``npm pack axe-core@<version>`` into that
cache when npm is installed, checked against the registry's sha512 of that exact tarball.

    .venv/bin/python -m tests.axe_core        # fetch it now (``.ci/setup --test`` does this)
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

AXE_VERSION = "4.14.1"
NPM_SPEC = f"axe-core@{AXE_VERSION}"
# `npm view axe-core@4.14.1 dist.integrity`: the tarball's sha512, so a tampered or different package is refused.
AXE_INTEGRITY = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
SCRIPT_ENV = "SISP_AXE_JS"
CACHE_ENV = "SISP_CACHE_DIR"
DEFAULT_CACHE_DIR = "~/.cache/semantic-image-search-playground"
NPM_TIMEOUT_S = 300


class AxeUnavailable(RuntimeError):
    """axe-core is neither configured, cached nor fetchable here; the message says why."""


def _cached_script() -> Path:
    cache = Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser()
    return cache / f"axe-core-{AXE_VERSION}" / "axe.min.js"


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode("ascii")


def _npm_pack(dest: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise AxeUnavailable(f"npm is not installed; run `npm pack {NPM_SPEC}` elsewhere and set {SCRIPT_ENV}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        try:
            done = subprocess.run([npm, "pack", NPM_SPEC, "--silent"], cwd=tmp, capture_output=True, text=True,
                                  timeout=NPM_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise AxeUnavailable(f"`npm pack {NPM_SPEC}` failed: {err}") from err
        tarball = Path(tmp) / f"axe-core-{AXE_VERSION}.tgz"
        if done.returncode != 0 or not tarball.is_file():
            detail = ((done.stderr or done.stdout).strip().splitlines() or ["no tarball"])[-1]
            raise AxeUnavailable(f"`npm pack {NPM_SPEC}` failed: {detail}")
        if _integrity(tarball) != AXE_INTEGRITY:
            raise AxeUnavailable(f"{tarball.name} does not match the pinned sha512 {AXE_INTEGRITY}; refusing it")
        with tarfile.open(tarball, "r:gz") as tar:
            member = tar.getmember("package/axe.min.js")
            with tar.extractfile(member) as src, open(Path(tmp) / "axe.min.js", "wb") as out:
                shutil.copyfileobj(src, out)
        os.replace(Path(tmp) / "axe.min.js", dest)  # atomic: a half-written script is never seen
    return dest


def find_axe_script(fetch: bool = True) -> Path:
    """Path of ``axe.min.js`` (version :data:`AXE_VERSION`), fetching it once with npm if needed.

    Raises
    ------
    AxeUnavailable
        ``$SISP_AXE_JS`` names a missing file, or nothing is cached and npm cannot fetch the package.
    """
    configured = os.environ.get(SCRIPT_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise AxeUnavailable(f"{SCRIPT_ENV}={configured} is not a file")
        return path
    cached = _cached_script()
    if cached.is_file():
        return cached
    if not fetch:
        raise AxeUnavailable(f"{cached} does not exist and fetching is off")
    return _npm_pack(cached)


if __name__ == "__main__":
    try:
        print(f"axe-core {AXE_VERSION}: {find_axe_script()}")
    except AxeUnavailable as exc:
        print(f"axe-core unavailable: {exc}", file=sys.stderr)
        sys.exit(1)
