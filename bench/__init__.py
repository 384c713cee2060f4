"""The project's benchmarks, one module each, run from the repository root through one entry point.

    .venv/bin/python -m bench                      # list them, with what each measures
    .venv/bin/python -m bench NAME [ARGS...]       # run one (NAME --help for its options)

A benchmark is any public module of this folder whose docstring says what it measures and which ends with
``if __name__ == "__main__": sys.exit(main())``; a new file is listed without registering it anywhere.
docs/benchmarks.md records what they measured on the development machine, with its load.
"""
