"""Bad inputs and faults: odd folders, name clashes, damaged artifacts, interrupted runs, a full disk.

A generated corpus of the cases a fault campaign found (and of those it found handled), each checked for the
behaviour a user needs: the right images taken, the true reason for every skipped entry, no silent replacement,
damaged artifacts repaired on a rerun (and named), no traceback, nothing lost.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from precompute import artifacts as art
from precompute.cli import main as cli_main
from precompute.datasets import folder_fingerprint, scan_folder
from precompute.pipeline import ModelRequest, Run, RunConfig
from tests.helpers import make_dataset

REPO = Path(__file__).resolve().parent.parent


def _run(dataset: Path, out: Path, **options) -> None:
    settings = {"models": [ModelRequest("pixels")], "metrics": ("cosine", "euclidean"), "top_n": 8,
                "progress": False, "umap_neighbors": 5}
    Run(RunConfig(dataset, out, **(settings | options))).execute()


def _reasons(skipped: list[dict[str, str]]) -> dict[str, str]:
    return {item["path"]: item["reason"] for item in skipped}


# ------------------------------------------------------------------------------------------------ scanning


def test_scanning_a_folder_full_of_traps(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds", per_class=2)
    (root / "x").symlink_to(".")  # a link back to the root: would double every image under a fake class
    (root / "red" / "again.png").symlink_to(root / "green" / "green-0.png")  # one file reached twice
    (root / "blue" / "gone.png").symlink_to(root / "nowhere.png")  # dangling
    (root / "blue" / "loop-a.png").symlink_to(root / "blue" / "loop-b.png")
    (root / "blue" / "loop-b.png").symlink_to(root / "blue" / "loop-a.png")  # a loop
    (root / "empty").mkdir()  # an empty folder is not a class
    old_out = root / "old-artifacts"  # a precompute --out that was put inside the dataset
    (old_out / "thumbs").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(old_out / "thumbs" / "0.jpg")
    art.write_index(old_out, art.empty_index())

    scan = scan_folder(root)
    assert scan.labeled
    assert sorted(label for _, label in scan.files) == ["blue", "blue", "green", "green", "red", "red"]
    reasons = _reasons(scan.skipped)
    assert reasons["x"].startswith("a link to a folder already scanned")
    assert reasons["red/again.png"] == "the same file as green/green-0.png"
    assert reasons["blue/gone.png"].startswith("a dangling symbolic link")
    assert reasons["blue/loop-a.png"] == reasons["blue/loop-b.png"] == "a symbolic link loop"
    assert reasons["old-artifacts"].startswith("an artifacts folder")
    assert "empty" not in {label for _, label in scan.files}
    # The fingerprint walks the same way and never crashes on the loop or the dangling link.
    assert folder_fingerprint(root) == folder_fingerprint(root)


def test_a_flat_folder_with_subfolders_is_flat(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "flat", per_class=2, labeled=False)
    (root / "empty").mkdir()
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not an image")
    scan = scan_folder(root)
    assert not scan.labeled and len(scan.files) == 6
    assert "inside a sub-folder" in _reasons(scan.skipped)["notes/readme.txt"]


def test_an_unreadable_file_is_skipped_with_the_true_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root, chmod 000 does not stop a read: make the open itself fail as it does for other users."""
    from precompute import datasets

    root = make_dataset(tmp_path / "ds", per_class=2)
    real_open = datasets.Image.open

    def refusing_open(source, *args, **kwargs):
        if str(source).endswith("red-1.png"):
            raise PermissionError(errno.EACCES, "Permission denied", str(source))
        return real_open(source, *args, **kwargs)

    monkeypatch.setattr(datasets.Image, "open", refusing_open)
    manifest, skipped, _ = datasets.build_manifest(root, progress=False)
    assert len(manifest) == 5
    assert _reasons(skipped)["red/red-1.png"] == "red/red-1.png: cannot be read (permission denied)"


@pytest.mark.slow
def test_out_inside_the_dataset_is_never_scanned_and_reruns_resume(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "ds", per_class=3)
    out = dataset / "artifacts"
    _run(dataset, out)
    first = art.read_index(out).to_dict()["datasets"]["ds"]
    _run(dataset, out)  # the thumbnails written into the dataset folder change nothing
    second = art.read_index(out).to_dict()["datasets"]["ds"]
    assert second["fingerprint"] == first["fingerprint"] and second["n_images"] == 9
    assert second["classes"] == ["blue", "green", "red"]
    # The folder is named once, as what it is; none of its thumbnails is listed as a skipped image.
    assert [s for s in second["skipped_files"] if s["path"].startswith("artifacts")] == [
        {"path": "artifacts", "reason": "the artifacts output folder (--out), not images"}]


# ------------------------------------------------------------------------------------------------ identity


@pytest.mark.slow
def test_a_name_clash_is_an_error_naming_both_sources(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    first = make_dataset(tmp_path / "one" / "base", per_class=2)
    second = make_dataset(tmp_path / "two" / "base", per_class=3)
    out = tmp_path / "artifacts"
    _run(first, out, models=[ModelRequest("pixels"), ModelRequest("efficientnet-lite0", "random")], input_size=32)
    assert cli_main([str(second), "--out", str(out), "--backbones", "pixels", "--no-progress"]) == 2
    message = capsys.readouterr().err
    assert str(first.resolve()) in message and str(second.resolve()) in message
    assert "--name" in message and "--force" in message and "Traceback" not in message
    assert art.read_index(out).to_dict()["datasets"]["base"]["n_images"] == 6  # nothing replaced
    _run(second, out, name="base-two")
    assert set(art.read_index(out).to_dict()["datasets"]) == {"base", "base-two"}
    _run(second, out, force=True)
    entry = art.read_index(out).to_dict()["datasets"]["base"]
    assert entry["source"] == str(second.resolve()) and entry["n_images"] == 9
    assert not (out / "base" / "efficientnet-lite0-random").exists()  # the replaced entry's model folder


def test_a_same_size_replacement_with_its_time_kept_is_noticed(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds", per_class=2)
    path = root / "red" / "red-0.png"
    before = folder_fingerprint(root)
    stat = path.stat()
    other = (root / "green" / "green-0.png").read_bytes()
    data = path.read_bytes()
    replacement = (other + b"\0" * len(data))[: len(data)]  # same size, other bytes
    path.write_bytes(replacement)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # modification time restored, as cp -p would
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert folder_fingerprint(root) != before
    assert folder_fingerprint(root, content=True) != folder_fingerprint(root)  # the optional content hash


# ------------------------------------------------------------------------------------------- self-healing


def _snapshot(out: Path) -> dict[str, bytes]:
    """Every artifact that must be reproducible, by relative path (the index and report hold times)."""
    keep = {".npy", ".npz", ".parquet", ".jpg"}
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix in keep}


def _same_arrays(a: dict[str, bytes], b: dict[str, bytes], tmp_path: Path) -> None:
    assert a.keys() == b.keys()
    for name in a:
        if name.endswith(".parquet"):
            import io

            import pandas as pd

            pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(a[name])), pd.read_parquet(io.BytesIO(b[name])))
        elif name.endswith(".npz"):
            import io

            with np.load(io.BytesIO(a[name])) as x, np.load(io.BytesIO(b[name])) as y:
                assert x.files == y.files
                for key in x.files:
                    np.testing.assert_array_equal(x[key], y[key], err_msg=f"{name}:{key}")
        else:
            assert a[name] == b[name], name


@pytest.mark.slow
def test_tampered_artifacts_are_named_and_repaired(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dataset = make_dataset(tmp_path / "ds", per_class=4)
    out = tmp_path / "artifacts"
    _run(dataset, out)
    clean = _snapshot(out)
    layer = out / "ds" / "pixels" / "pixels_16x16"
    np.save(layer / "features.npy", np.load(layer / "features.npy")[:5])  # cut to 5 rows
    other = out / "ds" / "pixels" / "pixels_32x32"
    (other / "neighbors-cosine.npz").write_bytes((other / "neighbors-cosine.npz").read_bytes()[:100])  # truncated
    indices, distances = art.read_neighbors(out / "ds" / "pixels" / "pixels_8x8" / "neighbors-euclidean.npz")
    indices = indices.copy()
    indices[0, 0] = -1  # a negative neighbour id
    art.write_neighbors(out / "ds" / "pixels" / "pixels_8x8" / "neighbors-euclidean.npz", indices, distances,
                        np.zeros(len(indices), int), np.zeros(len(indices), int))
    (out / "ds" / "pixels" / "pixels_32x32" / "umap.npy").write_bytes(b"garbage")
    (out / "ds" / "pixels" / "pixels_32x32" / "scores-euclidean.parquet").write_bytes(b"PAR1 not really")
    shutil.rmtree(out / "ds" / "thumbs")
    (out / "ds" / "pixels" / "pixels_8x8" / ".features.x1y2.tmp.npy").write_bytes(b"\0" * 4096)  # left by kill -9

    with caplog.at_level("WARNING"):
        _run(dataset, out)
    logged = caplog.text
    for name in ("pixels_16x16/features.npy", "pixels_32x32/neighbors-cosine.npz", "pixels_8x8/neighbors-euclidean.npz",
                 "pixels_32x32/umap.npy", "pixels_32x32/scores-euclidean.parquet", "thumbnails missing"):
        assert name in logged, name
    _same_arrays(_snapshot(out), clean, tmp_path)
    assert not list(out.rglob(".*.tmp*"))


@pytest.mark.slow
def test_force_starts_over_a_corrupt_or_foreign_index(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dataset = make_dataset(tmp_path / "ds", per_class=2)
    out = tmp_path / "artifacts"
    argv = [str(dataset), "--out", str(out), "--backbones", "pixels", "--no-progress"]
    assert cli_main(argv) == 0
    for broken in ('{"schema_version": 1, "datasets": {', json.dumps({"schema_version": 99, "datasets": {}})):
        art.index_path(out).write_text(broken)
        capsys.readouterr()
        assert cli_main(argv) == 2
        message = capsys.readouterr().err
        assert "index.json" in message and "--force" in message and "Traceback" not in message
        assert cli_main([*argv, "--force"]) == 0
        assert art.read_index(out).to_dict()["datasets"]["ds"]["n_images"] == 6
    assert len(list(out.glob("index.json.broken-*"))) >= 1


@pytest.mark.slow
def test_a_full_disk_is_a_message_and_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    dataset = make_dataset(tmp_path / "ds", per_class=2)
    out = tmp_path / "artifacts"
    argv = [str(dataset), "--out", str(out), "--backbones", "pixels", "--no-progress"]
    assert cli_main(argv) == 0
    before = art.read_index(out).to_dict()

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    capsys.readouterr()
    assert cli_main([*argv, "--force"]) == 2
    message = capsys.readouterr().err
    assert "no space left on device" in message and "rerun the same command" in message
    assert art.read_index(out).to_dict()["datasets"]["ds"]["n_images"] == before["datasets"]["ds"]["n_images"]
    assert not list(out.rglob(".*.tmp*"))
    monkeypatch.undo()
    assert cli_main(argv) == 0  # and the rerun finishes the job


@pytest.mark.slow
def test_kill_9_at_random_points_then_a_rerun_equals_a_clean_run(tmp_path: Path) -> None:
    """The real CLI in a child process, killed with SIGKILL at seeded random moments, then run to the end."""
    dataset = make_dataset(tmp_path / "ds", per_class=5)
    command = [sys.executable, "-m", "precompute.cli", str(dataset), "--backbones", "pixels,efficientnet-lite0:random",
               "--input-size", "32", "--metrics", "cosine,manhattan", "--top-n", "8", "--umap-neighbors", "5",
               "--no-progress"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    clean_out, killed_out = tmp_path / "clean", tmp_path / "killed"
    subprocess.run([*command, "--out", str(clean_out)], check=True, env=env, cwd=REPO, capture_output=True)
    rng = random.Random(9)
    kills = 0
    for _ in range(4):
        child = subprocess.Popen([*command, "--out", str(killed_out)], env=env, cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(3.0, 12.0))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
    final = subprocess.run([*command, "--out", str(killed_out)], env=env, cwd=REPO, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr[-2000:]
    assert kills >= 1, "no kill landed mid-run: the run got faster, raise the delays"
    _same_arrays(_snapshot(killed_out), _snapshot(clean_out), tmp_path)
    assert not list(killed_out.rglob(".*.tmp*"))
