"""Peak memory of concurrent uploads of small files that declare huge images ("decompression bombs").

Builds one PNG of one colour (a few hundred KB that declares ``--side`` x ``--side`` pixels), then sends it
``--concurrency`` times at once through the upload view's own function (``render_upload``: base64 decoding,
the pixel check, decoding, feature extraction, preview), one thread each, as the server's worker threads
would. Prints the resident memory before, the peak during (``VmHWM``, reset first through
``/proc/self/clear_refs``; Linux only), what each upload answered, and the load average.

The ``pixels`` model is the default so that the figure is the decoding's alone (no backbone is loaded).

    .venv/bin/python -m bench bench_uploads --artifacts artifacts              # 8 x 7700 x 7700 (59 MP)
    .venv/bin/python -m bench bench_uploads --artifacts artifacts --side 0     # just under the pixel limit
"""

from __future__ import annotations

import argparse
import base64
import gc
import io
import math
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from playground import uploads  # noqa: E402
from playground.state import DEFAULT_DATASET, resolve_selection  # noqa: E402
from playground.store import Store  # noqa: E402
from playground.views.upload import render_upload  # noqa: E402
from tests.helpers import text_of  # noqa: E402  (the text of a Dash component tree)


def memory_mib() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return tuple(int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))


def bomb_png(side: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (side, side), 200).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", default=os.environ.get("SISP_ARTIFACTS", "artifacts"))
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--model", default="pixels")
    parser.add_argument("--side", type=int, default=7700, help="declared width = height (0: just under the limit)")
    parser.add_argument("--mode", default="RGB", help="PIL mode of the image: RGB, RGBA, L, I;16 ...")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)

    store = Store(args.artifacts)
    sel = resolve_selection(store, {"view": "upload", "dataset": args.dataset, "model": args.model})
    side = args.side or math.isqrt(uploads.MAX_UPLOAD_PIXELS - 1)
    data = bomb_png(side, args.mode)
    contents = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    print(f"{args.concurrency} concurrent uploads of a {len(data) / 1024:.0f} KB {args.mode} PNG declaring "
          f"{side} x {side} = {side * side / 1e6:.1f} MP (MAX_UPLOAD_PIXELS {uploads.MAX_UPLOAD_PIXELS:,}), "
          f"{sel.dataset} / {sel.model} / {sel.layer}")
    render_upload(store, sel, "data:image/png;base64," + base64.b64encode(bomb_png(8)).decode(), "warm-up.png")
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before, _ = memory_mib()
    load_before = os.getloadavg()
    answers: list[str] = [""] * args.concurrency
    barrier = threading.Barrier(args.concurrency)

    def upload(number: int) -> None:
        barrier.wait()
        status, results = render_upload(store, sel, contents, f"bomb-{number}.png")
        answers[number] = "results" if results is not None else text_of(status)

    start = time.perf_counter()
    threads = [threading.Thread(target=upload, args=(number,)) for number in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    after, peak = memory_mib()
    print(f"RSS before {before:.0f} MiB, peak {peak:.0f} MiB (+{peak - before:.0f} MiB), after {after:.0f} MiB; "
          f"{seconds:.1f} s; load average before {' '.join(f'{v:.2f}' for v in load_before)}, "
          f"after {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for answer in sorted(set(answers)):
        print(f"  {answers.count(answer)} x {answer[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
