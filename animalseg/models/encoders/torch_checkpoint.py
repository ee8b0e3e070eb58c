"""Read a legacy (non-zip) PyTorch ``state_dict`` file into NumPy arrays, without PyTorch.

The legacy format is five pickles in a row (magic number, protocol, system info, the object with
persistent storage ids, the list of storage keys) followed by each storage's raw bytes. Only the
globals a plain state dict needs are allowed, so loading runs no code from the file.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclass
class _StorageType:
    dtype: type


@dataclass
class _Storage:
    dtype: type
    numel: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        data = self.storage.data
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.shape, strides=[s * itemsize for s in self.stride]
        )
        return np.array(view)


def _rebuild_tensor(storage, offset, shape, stride, *_unused) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(shape), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        raise pickle.UnpicklingError(f"unsupported object {module}.{name} in a state-dict file")

    def persistent_load(self, saved_id):
        kind, storage_type, key, _location, numel, view = saved_id
        if kind != "storage" or view is not None:
            raise pickle.UnpicklingError(f"unsupported storage reference {saved_id!r}")
        return self.storages.setdefault(key, _Storage(storage_type.dtype, int(numel)))


def read_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Parameter name → array, from a legacy-format ``torch.save(state_dict)`` file."""
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as file:
        if pickle.load(file) != LEGACY_MAGIC:
            raise ValueError(f"{path}: not a legacy PyTorch file (zip-format files need torch.load)")
        pickle.load(file)  # protocol version
        pickle.load(file)  # system info
        state = _StateDictUnpickler(file, storages).load()
        for key in pickle.load(file):
            storage = storages[key]
            numel = int(np.frombuffer(file.read(8), "<i8")[0])
            raw = file.read(numel * np.dtype(storage.dtype).itemsize)
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return {name: ref.array() for name, ref in state.items() if isinstance(ref, _TensorRef)}
