"""The pinned npm files (TensorFlow.js for the app, axe-core for the browser tests): fetched once, hash-checked."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from precompute import npm_files
from precompute.npm_files import AXE_CORE, TFJS, TFJS_WASM, NpmFile, NpmFileUnavailable


@pytest.mark.parametrize("npm_file", [AXE_CORE, TFJS], ids=lambda f: f.package)
def test_a_file_is_fetched_once_and_checked_against_its_pinned_hash(npm_file: NpmFile, tmp_path, monkeypatch):
    monkeypatch.setenv("SISP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(npm_file.env, raising=False)
    monkeypatch.setattr(npm_files.shutil, "which", lambda name: "/usr/bin/npm")

    def fake_pack(command, cwd, **kwargs):  # an npm pack whose tarball is not the pinned one
        script = Path(cwd) / "script.js"
        script.write_text("window.x = {};")
        with tarfile.open(Path(cwd) / "package-1.0.0.tgz", "w:gz") as tar:
            tar.add(script, arcname=f"package/{npm_file.member}")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(npm_files.subprocess, "run", fake_pack)
    with pytest.raises(NpmFileUnavailable, match="does not match the pinned sha512"):
        npm_file.find()
    assert not npm_file.cached.exists()
    monkeypatch.setattr(npm_files, "_integrity", lambda path: npm_file.integrity)
    path = npm_file.find()
    assert path == npm_file.cached and path.read_text() == "window.x = {};"
    monkeypatch.setattr(npm_files.subprocess, "run", None)  # cached: npm is not run again
    assert npm_file.find() == path
    monkeypatch.setenv(npm_file.env, str(tmp_path / "missing.js"))
    with pytest.raises(NpmFileUnavailable, match="not a file"):
        npm_file.find()


def test_without_npm_the_message_says_how_to_get_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SISP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(TFJS.env, raising=False)
    monkeypatch.setattr(npm_files.shutil, "which", lambda name: None)
    with pytest.raises(NpmFileUnavailable, match="npm pack @tensorflow/tfjs@4.22.0"):
        TFJS.find()
    with pytest.raises(NpmFileUnavailable, match="fetching is off"):
        TFJS.find(fetch=False)


def test_the_real_tfjs_bundle_is_the_pinned_one():
    """The file the app serves: fetched with npm (as .ci/setup does) and checked; skipped, saying so, offline."""
    try:
        path = TFJS.find()
    except NpmFileUnavailable as exc:
        pytest.skip(f"TensorFlow.js could not be fetched here: {exc}")
    head = path.read_bytes()[:4096].decode("utf-8", "replace")
    assert "Copyright 2024 Google LLC" in head and "Apache License" in head
    assert path.stat().st_size > 1_000_000


def test_a_package_with_companions_is_fetched_with_one_npm_pack(tmp_path, monkeypatch):
    """The wasm backend's script and its .wasm binaries come out of one tarball, into one folder."""
    monkeypatch.setenv("SISP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(TFJS_WASM.env, raising=False)
    monkeypatch.setattr(npm_files.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(npm_files, "_integrity", lambda path: TFJS_WASM.integrity)
    runs = []

    def fake_pack(command, cwd, **kwargs):
        runs.append(command)
        with tarfile.open(Path(cwd) / "package-1.0.0.tgz", "w:gz") as tar:
            for member in (TFJS_WASM.member, *TFJS_WASM.companions):
                source = Path(cwd) / Path(member).name
                source.write_bytes(member.encode())
                tar.add(source, arcname=f"package/{member}")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(npm_files.subprocess, "run", fake_pack)
    assert TFJS_WASM.find() == TFJS_WASM.cached
    for member, name in zip(TFJS_WASM.companions, TFJS_WASM.companion_names, strict=True):
        assert TFJS_WASM.find_companion(name).read_bytes() == member.encode()
    assert len(runs) == 1
    with pytest.raises(ValueError, match="has no companion 'x.wasm'"):
        TFJS_WASM.find_companion("x.wasm")
    (TFJS_WASM.cached.parent / TFJS_WASM.companion_names[0]).unlink()  # a lost companion: fetched again
    TFJS_WASM.find()
    assert len(runs) == 2 and TFJS_WASM.find_companion(TFJS_WASM.companion_names[0]).is_file()
