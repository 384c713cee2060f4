"""``python -m bench [NAME [ARGS...]]``: list the benchmarks of this folder, or run one as a script."""

from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def list_benchmarks() -> dict[str, str]:
    """{module name: first line of its docstring} of every benchmark in ``bench/``, read without importing it."""
    found = {}
    for path in sorted(HERE.glob("*.py")):
        if not path.stem.startswith("_"):
            docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            found[path.stem] = docstring.strip().splitlines()[0] if docstring.strip() else ""
    return found


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    benchmarks = list_benchmarks()
    if not argv or argv[0] in ("-h", "--help", "--list"):
        print("usage: python -m bench NAME [ARGS...]   (NAME --help for its options)\n\nbenchmarks:")
        width = max(map(len, benchmarks))
        for name, summary in benchmarks.items():
            print(f"  {name:<{width}}  {summary}")
        return 0
    name = argv[0].replace("-", "_")
    if name not in benchmarks:
        print(f"python -m bench: unknown benchmark {argv[0]!r}; choose from {', '.join(benchmarks)} "
              "(`python -m bench` lists them)", file=sys.stderr)
        return 2
    sys.argv = [f"python -m bench {name}", *argv[1:]]  # argparse's prog in the benchmark's own help and errors
    try:
        runpy.run_module(f"bench.{name}", run_name="__main__")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
