"""Compare two artifact roots file by file: the check that a refactor changed no stored result.

    python -m tools.compare_artifacts BEFORE AFTER

Every file but the JSON index and reports must be byte-identical (features, rankings, scores, UMAP layouts,
thumbnails, exports). JSON files are compared as data after dropping what differs between two runs of the same
code: wall-clock timings, timestamps and the absolute source and output folders. Exit 0 when the roots match, 1 with one
line per difference otherwise.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import sys
from pathlib import Path
from typing import Any

# Keys whose values are measurements of this run rather than results: they differ between two runs of one commit.
VOLATILE_KEYS = frozenset(
    {
        "created",
        "measured",
        "source",
        "out",  # report.json config: the output folder
        "images_per_second",
        "ms_per_image",
        "wall_seconds",
        "rank_seconds",
        "conversion_seconds",
        "stage_seconds",
        "seconds",
        "device",
        "elapsed",
        "started",
        "finished",
    }
)


def _is_volatile(key: str) -> bool:
    return key in VOLATILE_KEYS or key.endswith("_seconds")


def stable(value: Any) -> Any:
    """The JSON value with every run-specific measurement removed."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if not _is_volatile(k)}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != ".ready"}


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}/{key}: only in {'after' if key in b else 'before'}"
            if a[key] != b[key]:
                return _first_difference(a[key], b[key], f"{where}/{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    return f"{where}: {str(a)[:80]!r} != {str(b)[:80]!r}"


def compare(before: Path, after: Path) -> list[str]:
    """One line per difference between the two roots (empty when they match)."""
    a, b = _files(before), _files(after)
    problems = [f"only in {before}: {p}" for p in sorted(a - b)] + [f"only in {after}: {p}" for p in sorted(b - a)]
    for rel in sorted(a & b):
        x, y = before / rel, after / rel
        if rel.endswith(".json"):
            left, right = stable(json.loads(x.read_text())), stable(json.loads(y.read_text()))
            if left != right:
                problems.append(f"{rel}: {_first_difference(left, right)}")
        elif not filecmp.cmp(x, y, shallow=False):
            problems.append(f"{rel}: bytes differ")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    problems = compare(args.before, args.after)
    n = len(_files(args.before) | _files(args.after))
    for line in problems:
        print(line)
    print(f"{n} files compared, {len(problems)} differences" + ("" if problems else ": identical"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
