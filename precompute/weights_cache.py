"""The one cache of converted weights: where it lives, how a converted file is named, and converting it once.

Every port that turns published weights into a Keras file (``precompute.converters``: EfficientNet-Lite's PyTorch
state dicts, nsfwjs' TF.js models) and LiteRT's ``.tflite`` conversions (``precompute.runtimes``) keep their files in
one folder, ``$SISP_CACHE_DIR`` (default ``~/.cache/semantic-image-search-playground``). A converted weights file is
named after its source's sha256 and its converter's version, so a changed source or converter gives a fresh
conversion and an unchanged one is reused; the conversion writes a temporary sibling and renames it into place, so
a file under its final name is always whole.

Examples
--------
>>> target = converted_weights_path("efficientnet_lite0", file_sha256(pth), version=1)  # doctest: +SKIP
>>> convert_once(target, lambda out: convert_weights(pth, out, "lite0"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

CACHE_ENV = "SISP_CACHE_DIR"
DEFAULT_CACHE_DIR = "~/.cache/semantic-image-search-playground"


def cache_dir() -> Path:
    """``$SISP_CACHE_DIR``, else ``~/.cache/semantic-image-search-playground`` (not created here)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser()


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of one file's bytes, read 1 MB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_sha256(folder: Path) -> str:
    """The sha256 (hex) of a folder's files (not its subfolders): each file's name, a NUL byte, its bytes, in
    name order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def converted_weights_path(stem: str, source_sha256: str, version: int) -> Path:
    """``<cache>/<stem>-<first 16 hex of the source's sha256>-v<version>.weights.h5``."""
    return cache_dir() / f"{stem}-{source_sha256[:16]}-v{version}.weights.h5"


def convert_once(target: Path, convert: Callable[[Path], Any]) -> Path:
    """``target``, calling ``convert(target)`` first when no file is there yet.

    ``convert`` must write atomically (``precompute.artifacts.atomic_path``): two processes converting at once then
    both leave a whole file, and an interrupted conversion leaves none under the final name.
    """
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        convert(target)
    return target


__all__ = ["CACHE_ENV", "DEFAULT_CACHE_DIR", "cache_dir", "convert_once", "converted_weights_path", "file_sha256",
           "folder_sha256"]
