"""Read a legacy (non-zip) PyTorch ``.pth`` state dict into numpy arrays, without PyTorch.

The layout (what ``torch.save(..., _use_new_zipfile_serialization=False)`` writes):

1. four pickles: the magic number, the protocol version (1001), a sys-info dict, then the state
   dict itself, whose tensors are ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
   ...)`` and whose storages are persistent ids ``("storage", <storage type>, key, location, numel,
   None)``;
2. a fifth pickle: the list of storage keys, in the order their data follows;
3. per key: an 8-byte little-endian element count, then the raw little-endian elements.

A pickle can run arbitrary code, so the file's sha256 is checked against a pinned digest *before*
anything is unpickled, and the unpickler admits only the globals this layout needs (an
``OrderedDict``, the tensor rebuild function, the storage types) and refuses any other with one line.
"""

from __future__ import annotations

import hashlib
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from edgeclf.runtime.errors import EdgeclfError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch storage type -> numpy little-endian dtype.
STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class WeightsFileError(EdgeclfError):
    """A weights file is missing, not the pinned one, or not a plain torch state dict."""


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: str
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor without a storage")
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc.: only its name is used, from the persistent id."""

    def __init__(self, name: str) -> None:
        self.name = name


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits only the globals a plain state dict needs; anything else is refused by name."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        # ("storage", type, key, location, numel[, view metadata]); views of storages are not supported.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage" and pid[5:] in ((), (None,))):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("persistent id without a storage type")
        return _Storage(str(key), STORAGE_DTYPES[storage_type.name], int(numel))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: str | Path, sha256: str | None) -> dict[str, np.ndarray]:
    """The tensors of a legacy torch ``.pth`` file, by name, as numpy arrays.

    Args:
        path: the ``.pth`` file.
        sha256: the digest the file must have (checked before unpickling); ``None`` skips the
            check — only for files the caller made itself.

    Returns:
        Name -> array in PyTorch's layout (e.g. OIHW convolution kernels), insertion order kept.

    Raises:
        WeightsFileError: missing file, digest mismatch, a refused pickle global, or a layout
            that is not a plain tensor state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"{path}: weights file not found")
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256:
            raise WeightsFileError(
                f"{path}: sha256 {actual[:16]}… is not the pinned {sha256[:16]}…; refusing to unpickle it"
            )
    try:
        with path.open("rb") as handle:
            return _read(handle)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise WeightsFileError(f"{path}: not a readable torch state dict ({error})") from error


def _read(handle: BinaryIO) -> dict[str, np.ndarray]:
    header = [_RestrictedUnpickler(handle).load() for _ in range(3)]
    if header[0] != MAGIC_NUMBER or header[1] != PROTOCOL_VERSION:
        raise ValueError("not the legacy torch serialisation (bad magic number or protocol)")
    if not (isinstance(header[2], dict) and header[2].get("little_endian", False)):
        raise ValueError("only little-endian files are supported")
    state = _RestrictedUnpickler(handle).load()
    keys = _RestrictedUnpickler(handle).load()
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise ValueError("the payload is not a state dict")
    refs = {name: ref for name, ref in state.items()}
    if not all(isinstance(ref, _TensorRef) for ref in refs.values()):
        raise ValueError("the state dict holds something other than tensors")
    storages = {ref.storage.key: ref.storage for ref in refs.values()}
    data: dict[str, np.ndarray] = {}
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise ValueError(f"storage {key!r} is listed but used by no tensor")
        count = int.from_bytes(_read_exact(handle, 8), "little")
        if count != storage.numel:
            raise ValueError(f"storage {key!r} holds {count} elements, its tensors say {storage.numel}")
        dtype = np.dtype(storage.dtype)
        data[storage.key] = np.frombuffer(_read_exact(handle, count * dtype.itemsize), dtype=dtype)
    if handle.read(1):
        raise ValueError("unexpected bytes after the last storage")
    return {name: _materialise(ref, data) for name, ref in refs.items()}


def _read_exact(handle: BinaryIO, size: int) -> bytes:
    chunk = handle.read(size)
    if len(chunk) != size:
        raise EOFError("file ends inside a storage")
    return chunk


def _materialise(ref: _TensorRef, data: dict[str, np.ndarray]) -> np.ndarray:
    flat = data.get(ref.storage.key)
    if flat is None:
        raise ValueError(f"storage {ref.storage.key!r} is not in the file")
    if len(ref.shape) != len(ref.stride) or any(s < 0 for s in ref.shape + ref.stride):
        raise ValueError("bad tensor size/stride")
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True) if n > 0)
    if ref.offset < 0 or (all(ref.shape) and last >= flat.size):
        raise ValueError("a tensor reaches past the end of its storage")
    if not all(ref.shape):
        return np.zeros(ref.shape, dtype=flat.dtype)
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset :], shape=ref.shape, strides=tuple(s * flat.itemsize for s in ref.stride), writeable=False
    )
    return np.array(view, dtype=flat.dtype.newbyteorder("="))
