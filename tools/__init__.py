"""Developer tools, outside the runtime packages: run from the repository root with ``python -m tools.<name>``.

- ``tools.openclipart``: samples Debian's Open Clip Art drawings into ``data/openclipart-200``;
- ``tools.fashion_mnist``: samples (or exports whole) Fashion-MNIST into ``data/fashion-mnist-200``;
- ``tools.take_screenshots``: retakes ``docs/screenshots/*.png`` from a running playground.

They use ``precompute`` (decoding, duplicate hashes, atomic writes); nothing in ``precompute`` or ``playground``
imports them. The benchmarks are in ``bench/`` (``python -m bench`` lists them).
"""
