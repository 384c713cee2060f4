"""The command-line ending the dataset builders share: run the export, report what it wrote or why it could not."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def run_export(prog: str, export: Callable[..., int], out: Path, *args) -> int:
    """``export(out, *args)``; print how many images it wrote (exit status 0) or the error (2, nothing written)."""
    try:
        n = export(out, *args)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {n} images to {out}")
    return 0
