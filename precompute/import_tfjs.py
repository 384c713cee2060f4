"""The ``import-tfjs`` command: convert a TensorFlow.js layers model into Keras weights for a ``keras.applications``
base.

Parses the command line and calls ``precompute.ports.tfjs.convert_layers_model`` (the weight converter); prints which
layers mapped. The ``precompute`` command is ``precompute.cli``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from precompute.ports.tfjs import ARCHITECTURES, convert_layers_model


def main(argv: Sequence[str] | None = None) -> int:
    """``import-tfjs MODEL_JSON --arch {mobilenetv2,inceptionv3} --out FILE.weights.h5``."""
    parser = argparse.ArgumentParser(
        prog="import-tfjs",
        description="Convert a TensorFlow.js layers model (model.json + shards, float32 or uint8/uint16/float16 "
                    "quantised; or nsfwjs' model.min.js bundles) into Keras weights for a keras.applications "
                    "convolutional base (include_top=False).",
    )
    parser.add_argument("model_json", type=Path, help="model.json (shards beside it) or model.min.js")
    parser.add_argument("--arch", required=True, choices=sorted(ARCHITECTURES), help="the Keras architecture")
    parser.add_argument("--out", required=True, type=Path, help="output file, ending in .weights.h5")
    args = parser.parse_args(argv)
    if not args.out.name.endswith(".weights.h5"):
        parser.error(f"--out must end with .weights.h5; got {str(args.out)!r}")
    try:
        mapping = convert_layers_model(args.model_json, args.arch, args.out)
    except (OSError, ValueError) as err:
        print(f"import-tfjs: error: {err}", file=sys.stderr)
        return 1
    for keras_name, source_name, how in mapping.pairs:
        print(f"{keras_name:<40} <- {source_name:<40} ({how})")
    print(mapping.summary())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
