"""Loading submitted `.pth` files safely: only in the judge, only with `torch.load(weights_only=True)`, and only
after the archive has been inspected without allocating anything it declares.

`torch.load(weights_only=True)` refuses code, but not size: a 38 KB file can declare an 8 GiB tensor (a view
with stride 0 over a tiny storage, or a storage larger than its record), and the judge would be killed for
memory when it first touches it. So before torch reads a byte, `inspect` checks that
    - the archive is what torch.save writes: one data.pkl, stored records, no encryption, no size that lies;
    - every storage the pickle names exists and fits inside its record, hence inside the file;
    - every tensor's view fits inside its storage (no element beyond it, no more elements than it holds);
    - the pickle names only the globals a dict of dense tensors needs, or else it is read as below.
A file in the legacy format (torch < 1.6, or `_use_new_zipfile_serialization=False`) gets the same checks on
its stream (`inspect_legacy`).
It walks the pickle with an unpickler whose globals are inert stand-ins, so nothing is built but small tuples.

A whole pickled model (`torch.save(model)`, common in student code) names classes the judge never imports. Such
a file is read by an unpickler that resolves only torch's tensor rebuilders and a few plain containers; every
other class becomes a `Pickled` record of its name and state, built without running any of its code. A record
that holds what `nn.Module` pickles (`_parameters`, `_buffers`, `_modules`) becomes its state_dict (a
`PickledModel`), so the checks read the weights exactly as if `model.state_dict()` had been saved.
"""

from __future__ import annotations

import io
import math
import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch

from grader.files import UnsafeFile, read_regular

# A .pth is a zip archive (torch >= 1.6) or a legacy pickle stream that starts with a protocol opcode.
ZIP_MAGIC = b"PK\x03\x04"
LEGACY_MAGIC = b"\x80"
MAX_UNPACKED_BYTES = 4 << 30  # a zip bomb is refused before anything is unpacked
MAX_FILE_BYTES = 1 << 30  # what the judge reads into memory at most; specs set far lower limits per file
ENCRYPTED = 0x1


class WeightsError(AssertionError):
    """A weights file the judge will not use. The message says why and what to submit instead."""


def _pickled_objects(name: str, what: str) -> WeightsError:
    return WeightsError(
        f"{name} holds pickled Python objects{what} where weights belong; the grader reads tensors and whole "
        "models out of a weights file but never runs code from it. Save the weights: "
        "torch.save(model.state_dict(), ...)"
    )


class _Storage:
    def __init__(self, nbytes: int, itemsize: int) -> None:
        self.nbytes, self.itemsize = nbytes, itemsize


class _StorageType:
    def __init__(self, itemsize: int) -> None:
        self.itemsize = itemsize


class _Inert:
    """Stands in for any object the scan need not understand; accepts what unpickling does to objects."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise ValueError(f"a tensor's {what} is not a tuple of non-negative integers")
    return value


class _Scan(pickle.Unpickler):
    """Walks data.pkl checking storages and views; builds nothing but inert stand-ins."""

    def __init__(self, stream: io.BytesIO, sizes: dict[str, int] | None, name: str) -> None:
        super().__init__(stream)
        self.sizes, self.name = sizes, name  # bytes each storage's record holds; None: not known yet (legacy)
        self.declared: dict[str, tuple[int, int]] = {}  # storage key: (bytes, item size) as the pickle declares
        self.tensors = 0
        self.foreign: set[str] = set()  # classes and functions the file names that plain tensors do not need

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full == "collections.OrderedDict":
            return OrderedDict
        if full in ("torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor"):
            return self._tensor
        if full == "torch._utils._rebuild_tensor_v3":
            return self._tensor_v3
        if full in ("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"):
            return lambda data, *rest: data
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module == "torch" and name.endswith("Storage") and getattr(torch, name, None) in torch._storage_classes:
            if name == "UntypedStorage":
                return _StorageType(1)
            return _StorageType(torch._utils._element_size(torch.storage._get_dtype_from_pickle_storage_type(name)))
        if full not in _PLAIN:
            self.foreign.add(full)
        return _Inert

    def persistent_load(self, pid: Any) -> Any:
        if self.sizes is None and isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module":
            return pid[1]  # a whole model's class in the legacy format (find_class noted it as foreign)
        # the legacy format adds a sixth field, a view of the storage, always None since torch 1.0
        if not (isinstance(pid, tuple) and len(pid) == (5 if self.sizes is not None else 6) and pid[0] == "storage"
                and pid[5:] in ((), (None,))):  # fmt: skip
            raise ValueError(f"an unknown kind of record {str(pid)[:60]}")
        _, kind, key, _location, numel = pid[:5]
        if not isinstance(kind, _StorageType) or not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise ValueError("a malformed storage record")
        nbytes = numel * kind.itemsize
        if self.declared.setdefault(key, (nbytes, kind.itemsize)) != (nbytes, kind.itemsize):
            raise ValueError(f"storage {key!r} is declared twice with different sizes")
        if self.sizes is not None:
            if key not in self.sizes:
                raise ValueError(f"the storage {key!r} it names is missing")
            if nbytes > self.sizes[key]:
                raise ValueError(f"storage {key!r} declares {nbytes} bytes but its record holds {self.sizes[key]}")
        return _Storage(nbytes, kind.itemsize)

    def _check_view(self, storage: Any, offset: Any, size: Any, stride: Any, itemsize: int) -> _Inert:
        if not isinstance(storage, _Storage) or not isinstance(offset, int) or offset < 0:
            raise ValueError("a tensor without a valid storage")
        size, stride = _ints(size, "size"), _ints(stride, "stride")
        if len(size) != len(stride):
            raise ValueError("a tensor whose size and stride disagree")
        numel = math.prod(size)
        if numel:
            last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
            if (last + 1) * itemsize > storage.nbytes or numel * itemsize > storage.nbytes:
                shape = "x".join(map(str, size))
                raise ValueError(
                    f"a tensor of shape {shape} ({numel * itemsize / 2**20:.0f} MiB) declares more elements than "
                    f"its storage of {storage.nbytes} bytes holds"
                )
        self.tensors += 1
        return _Inert()

    def _tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> _Inert:
        return self._check_view(storage, offset, size, stride, getattr(storage, "itemsize", 1))

    def _tensor_v3(self, storage: Any, offset: Any, size: Any, stride: Any, grad: Any, hooks: Any,
                   dtype: Any, *rest: Any) -> _Inert:  # fmt: skip
        if not isinstance(dtype, torch.dtype):
            raise ValueError("a tensor without a dtype")
        return self._check_view(storage, offset, size, stride, torch._utils._element_size(dtype))


def inspect(data: bytes, name: str, max_unpacked: int = MAX_UNPACKED_BYTES) -> set[str]:
    """Refuse (WeightsError) an archive whose records or tensors could make torch.load allocate more than
    the file holds. Reads only the archive's directory and its pickle. Returns the globals it names beyond
    what plain tensors in plain containers need (empty for a saved state_dict)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise WeightsError(f"{name} is a damaged archive ({exc}): save it again with torch.save") from None
    unpacked = sum(i.file_size for i in infos)
    if unpacked > max_unpacked:
        raise WeightsError(f"{name} would unpack to {unpacked >> 20} MiB, over the {max_unpacked >> 20} MiB limit")
    for info in infos:
        if info.flag_bits & ENCRYPTED:
            raise WeightsError(f"{name} is an encrypted archive: submit the file torch.save wrote")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise WeightsError(f"{name} was compressed after torch.save wrote it: submit the file torch.save wrote")
        if info.header_offset + info.file_size > len(data):
            raise WeightsError(f"{name} is a damaged archive (a record runs past the end of the file)")
    pickles = [i for i in infos if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
    if len(pickles) != 1:
        raise WeightsError(f"{name} is not an archive torch.save wrote (no single data.pkl): save it again")
    prefix = pickles[0].filename[: -len("data.pkl")]
    try:
        sizes = {i.filename.removeprefix(f"{prefix}data/"): i.file_size for i in infos
                 if i.filename.startswith(f"{prefix}data/")}  # fmt: skip
        scan = _Scan(io.BytesIO(zf.read(pickles[0])), sizes, name)
        scan.load()
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed pickle is the file's fault
        raise WeightsError(f"{name} could not be read as PyTorch weights: {exc}") from None
    return scan.foreign


# --- the legacy format (torch < 1.6, or _use_new_zipfile_serialization=False) ------------------------------------
# Pickles and raw bytes in a row: a magic number, the protocol, the saving machine's sizes, the object (each
# storage a persistent id ('storage', type, key, location, elements, None), each class of a whole model one of
# ('module', class, source file, source)), the sorted storage keys; then per key its element count (int64) and
# its bytes. torch.load allocates each storage at the size the object's pickle declares before it reads a byte
# of it, so every declared size is checked against the bytes that follow first.
LEGACY_NUMBER, LEGACY_PROTOCOL = 0x1950A86A20F9469CFC6C, 1001
_HEADER_PICKLE_BYTES = 4096  # the header's pickles are a few dozen bytes each


class _Data(pickle.Unpickler):
    """Unpickles plain data only: numbers, strings, lists, tuples and dicts; any class or function is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise ValueError(f"{module}.{name} where plain data belongs")


def inspect_legacy(data: bytes, name: str) -> set[str]:
    """inspect() for the legacy format: refuse (WeightsError) a stream whose storages are not all there in full,
    or whose tensors' views do not fit them. Returns the globals it names beyond what plain tensors need."""
    stream = io.BytesIO(data)
    try:
        magic, protocol, sys_info = (_Data(stream).load() for _ in range(3))
        if magic != LEGACY_NUMBER or protocol != LEGACY_PROTOCOL or stream.tell() > _HEADER_PICKLE_BYTES:
            raise ValueError("its header is not the one torch.save writes")
        if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
            raise ValueError("it was saved on a big-endian machine")
        scan = _Scan(stream, None, name)
        scan.load()
        keys = _Data(stream).load()
        if not isinstance(keys, list) or sorted(keys) != sorted(scan.declared):
            raise ValueError("its list of storages does not match the storages its tensors use")
        for key in keys:
            nbytes, itemsize = scan.declared[key]
            count = int.from_bytes(stream.read(8), "little", signed=True)
            held = len(stream.read(nbytes))
            if count * itemsize != nbytes or held != nbytes:
                raise ValueError(f"storage {key!r} declares {nbytes} bytes but the file holds "
                                 f"{min(held, max(count, 0) * itemsize)}")  # fmt: skip
        if stream.read(1):
            raise ValueError("it holds data after its last storage")
    except Exception as exc:  # noqa: BLE001 - any malformed stream is the file's fault
        raise WeightsError(f"{name} is in PyTorch's legacy format (torch < 1.6, or _use_new_zipfile_serialization="
                           f"False) and could not be read ({exc}): save it again with torch.save and the default "
                           "settings") from None  # fmt: skip
    return scan.foreign


def _foreign(data: bytes, name: str, max_unpacked: int = MAX_UNPACKED_BYTES) -> set[str]:
    """The checks of inspect() or inspect_legacy(), by what the file is; WeightsError if it is neither."""
    if data[:4] == ZIP_MAGIC:
        return inspect(data, name, max_unpacked)
    if data[:1] == LEGACY_MAGIC:
        return inspect_legacy(data, name)
    raise WeightsError(
        f"{name} is not a PyTorch weights file (it starts with {data[:4]!r}): save it with "
        "torch.save(model.state_dict(), ...)"
    )


def weights_from_bytes(data: bytes, name: str, max_unpacked: int = MAX_UNPACKED_BYTES) -> Any:
    """The object saved in `data` (the bytes of `name`): tensors in plain containers, every other object an inert
    `Pickled` record, a whole model its state_dict (`PickledModel`). Nothing in the file runs."""
    if _foreign(data, name, max_unpacked):
        return _read_objects(data, name)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        raise _pickled_objects(name, f" ({found.group(1)})" if found else "") from None
    except Exception as exc:  # noqa: BLE001 - any other failure is a malformed file
        raise WeightsError(f"{name} could not be read as PyTorch weights ({type(exc).__name__}: {exc})") from None


# --- whole pickled models, read without running their code ------------------------------------------------------

# Globals a saved state_dict needs besides torch's rebuilders, dtypes and storages; anything else is foreign.
_PLAIN = ("torch.Size", "torch.device", "builtins.set", "__builtin__.set", "builtins.complex", "collections.Counter")


class Pickled(_Inert):
    """An object of a class the judge never imports (a model, an argparse.Namespace, a payload): the class's name
    and the state unpickling would have given it. None of that class's code runs."""

    cls_name = "?"
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def add(self, value: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<pickled {self.cls_name}>"


class PickledModel(dict[str, torch.Tensor]):
    """The state_dict of a pickled nn.Module (`cls_name`), as model.state_dict() would have returned it."""

    def __init__(self, cls_name: str, state: dict[str, torch.Tensor]) -> None:
        super().__init__(state)
        self.cls_name = cls_name


def _rebuild_tensor(storage: Any, offset: int, size: Any, stride: Any, *rest: Any) -> torch.Tensor:
    # the storage and view were checked by inspect(); hooks and metadata from the file are dropped
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())


def _rebuild_tensor_v3(storage: Any, offset: int, size: Any, stride: Any, grad: Any, hooks: Any, dtype: Any,
                       *rest: Any) -> torch.Tensor:  # fmt: skip
    return torch._utils._rebuild_tensor_v3(storage, offset, size, stride, False, OrderedDict(), dtype)


def _new_pickled(cls: Any, *args: Any) -> Pickled:
    """copyreg's object builders, for a foreign class only."""
    return cls.__new__(cls) if isinstance(cls, type) and issubclass(cls, Pickled) else Pickled()


class _NumpyDtype(Pickled):
    """numpy.dtype("f8", ...) in a pickle: its type code, and (from its state) its byte order."""

    cls_name = "numpy.dtype"

    def __init__(self, code: Any = None, *args: Any) -> None:
        self.code = code


# numpy's type codes of the scalars a student's metrics come as (np.float64 from numpy arithmetic), in struct's
_NUMPY_CODES = {"f8": "d", "f4": "f", "f2": "e", "i8": "q", "i4": "i", "i2": "h", "i1": "b", "u8": "Q", "u4": "I",
                "u2": "H", "u1": "B", "b1": "?"}  # fmt: skip


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """A numpy scalar as the Python number it holds, decoded from its bytes without numpy; else a record."""
    fmt = _NUMPY_CODES.get(str(getattr(dtype, "code", "")))
    state = getattr(dtype, "state", None)
    order = ">" if isinstance(state, tuple) and len(state) > 1 and state[1] == ">" else "<"
    if fmt is None or not isinstance(data, bytes) or len(data) != struct.calcsize(fmt):
        return type("Pickled", (Pickled,), {"cls_name": "numpy.scalar"})()
    return struct.unpack(order + fmt, data)[0]


def _latin1(text: Any, encoding: str = "latin1") -> Any:
    """_codecs.encode as protocol 2 pickles use it, for bytes (a numpy scalar's): latin-1 text only."""
    return text.encode("latin1") if isinstance(text, str) and encoding == "latin1" else Pickled()


def _empty_bytes(*args: Any) -> Any:
    """bytes() as protocol 2 pickles an empty one (an empty array's data); never bytes(n), which allocates n."""
    return b"" if not args else Pickled()


_RESOLVED: dict[str, Any] = {
    "__builtin__.bytes": _empty_bytes, "builtins.bytes": _empty_bytes,
    "numpy.dtype": _NumpyDtype, "numpy._core.multiarray.scalar": _numpy_scalar,
    "numpy.core.multiarray.scalar": _numpy_scalar, "_codecs.encode": _latin1,
    "collections.OrderedDict": OrderedDict, "builtins.set": set, "__builtin__.set": set,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor, "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": lambda data, *rest: data,
    "torch._utils._rebuild_parameter_with_state": lambda data, *rest: data,
    "copyreg._reconstructor": _new_pickled, "copyreg.__newobj__": _new_pickled,
}  # fmt: skip


class _Recover(pickle._Unpickler):  # the Python unpickler: its BUILD can be replaced, the C one's cannot
    """Resolves only _RESOLVED and torch's dtypes (torch.load resolves the storage types); every other global is
    a Pickled subclass named for it. BUILD gives state to Pickled records only: a tensor's state would be a
    set_() onto any storage, a view past its end."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stubs: dict[str, type[Pickled]] = {}

    def load_build(self) -> None:
        state = self.stack.pop()  # type: ignore[attr-defined]  # typeshed does not know the Python unpickler's stack
        inst = self.stack[-1]  # type: ignore[attr-defined]
        if isinstance(inst, Pickled):
            inst.__setstate__(state)

    dispatch[pickle.BUILD[0]] = load_build  # type: ignore[assignment]  # the table holds unbound methods

    def load_binpersid(self) -> None:
        pid = self.stack.pop()  # type: ignore[attr-defined]
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module":
            # a legacy file's model class, answered here: torch would compare the source of the class it names
            # with ours, and could write a patch file
            self.append(pid[1])  # type: ignore[attr-defined]
            return
        self.append(self.persistent_load(pid))  # type: ignore[attr-defined]

    dispatch[pickle.BINPERSID[0]] = load_binpersid  # type: ignore[assignment]

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full in _RESOLVED:
            return _RESOLVED[full]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if full not in self.stubs:
            self.stubs[full] = type("Pickled", (Pickled,), {"cls_name": full})
        return self.stubs[full]


def _recover_module() -> Any:
    """What torch.load takes as its pickle_module: Unpickler for the object, load for the legacy format's other
    pickles (plain data)."""
    import types

    mod = types.ModuleType("grader_recover")
    mod.Unpickler = _Recover  # type: ignore[attr-defined]
    mod.load = lambda f, **kwargs: _Data(f).load()  # type: ignore[attr-defined]  # the legacy format's header
    return mod


def _read_objects(data: bytes, name: str) -> Any:
    """The file's contents with each pickled nn.Module replaced by its state_dict (PickledModel) and every other
    foreign object left as a Pickled record. Only for files inspect() or inspect_legacy() accepted."""
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False, pickle_module=_recover_module())
    except Exception as exc:  # noqa: BLE001 - any failure is a malformed file
        raise WeightsError(f"{name} could not be read as PyTorch weights ({type(exc).__name__}: {exc})") from None
    return _plain(obj, 0)


_MAX_DEPTH = 64  # nesting deeper than any real checkpoint or model; a crafted cycle stops here


# numpy's type codes of the arrays a student's history comes as (np.array(accs)), as torch dtypes
_NUMPY_DTYPES = {"f8": torch.float64, "f4": torch.float32, "f2": torch.float16, "i8": torch.int64, "i4": torch.int32,
                 "i2": torch.int16, "i1": torch.int8, "u1": torch.uint8, "b1": torch.bool}  # fmt: skip


def _ndarray(obj: Pickled) -> torch.Tensor | None:
    """A pickled numpy array of numbers as the tensor it holds, decoded from its bytes without numpy; else None.
    Its state is (version, shape, dtype, fortran order, raw bytes)."""
    st = obj.state
    if not (obj.cls_name.endswith("multiarray._reconstruct") and isinstance(st, tuple) and len(st) == 5):
        return None
    _, shape, dtype, fortran, raw = st
    kind = _NUMPY_DTYPES.get(str(getattr(dtype, "code", "")))
    if kind is None or fortran or not isinstance(raw, bytes) or not isinstance(shape, tuple):
        return None
    if isinstance(dtype.state, tuple) and len(dtype.state) > 1 and dtype.state[1] == ">":
        return None  # big-endian: no machine a student saves from
    if not all(isinstance(n, int) and n >= 0 for n in shape) or len(raw) != math.prod(shape) * kind.itemsize:
        return None
    return torch.frombuffer(bytearray(raw), dtype=kind).reshape(shape) if raw else torch.zeros(shape, dtype=kind)


def _plain(obj: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return None
    if isinstance(obj, Pickled):
        if (array := _ndarray(obj)) is not None:
            return array
        if _is_module(obj):
            state: dict[str, torch.Tensor] = {}
            _module_state(obj, "", state, 0)
            return PickledModel(obj.cls_name, state)
        return obj
    if isinstance(obj, dict):
        return type(obj)((k, _plain(v, depth + 1)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v, depth + 1) for v in obj)
    return obj


def _is_module(obj: Any) -> bool:
    st = obj.state if isinstance(obj, Pickled) else None
    return isinstance(st, dict) and all(isinstance(st.get(k), dict) for k in ("_parameters", "_buffers", "_modules"))


def _module_state(mod: Pickled, prefix: str, out: dict[str, torch.Tensor], depth: int) -> None:
    """As nn.Module.state_dict: parameters, persistent buffers, then each submodule's under its name."""
    if depth > _MAX_DEPTH:
        return
    st = mod.state
    skip = st.get("_non_persistent_buffers_set")
    skip = skip if isinstance(skip, set) else set()
    for key, value in st["_parameters"].items():
        if isinstance(value, torch.Tensor):
            out[f"{prefix}{key}"] = value
    for key, value in st["_buffers"].items():
        if isinstance(value, torch.Tensor) and key not in skip:
            out[f"{prefix}{key}"] = value
    for key, child in st["_modules"].items():
        if _is_module(child):
            _module_state(child, f"{prefix}{key}.", out, depth + 1)


def whole_models(data: bytes, name: str) -> list[str]:
    """The classes of the whole models the weights file `data` holds, outermost first: empty for a saved
    state_dict, which one cheap scan tells. WeightsError where the file cannot be read."""
    if not _foreign(data, name):
        return []
    return pickled_models(_read_objects(data, name))


def pickled_models(obj: Any, depth: int = 0) -> list[str]:
    """The classes of the whole models a loaded file held (each read as its state_dict), outermost first."""
    if isinstance(obj, PickledModel):
        return [obj.cls_name]
    if depth < _MAX_DEPTH and isinstance(obj, dict):
        return [c for v in obj.values() for c in pickled_models(v, depth + 1)]
    if depth < _MAX_DEPTH and isinstance(obj, (list, tuple)):
        return [c for v in obj for c in pickled_models(v, depth + 1)]
    return []


def load_weights(path: Path, max_unpacked: int = MAX_UNPACKED_BYTES) -> Any:
    """Return the object saved in `path` (a regular file, not a link), as `weights_from_bytes`."""
    name = path.name
    if not path.exists() and not path.is_symlink():
        raise WeightsError(f"{name} is missing: train your model, save it with torch.save, and submit {name}")
    try:
        data = read_regular(path, MAX_FILE_BYTES)
    except UnsafeFile as exc:
        raise WeightsError(str(exc)) from None
    return weights_from_bytes(data, name, max_unpacked)


def state_dict_from(
    obj: Any, name: str, key: str | None = None, notes: list[str] | None = None, bare_ok: bool = False,
    reference: Collection[str] = (),
) -> dict[str, torch.Tensor]:
    """Pick a state_dict out of a loaded file: `obj[key]` if key is given, else obj itself.

    `bare_ok`: a file that is itself a state_dict, where `key` was asked for, is taken as the weights, with a
    note; so is the one state_dict of a checkpoint that keeps it under another key ('state_dict', 'model').
    Without `key`, a checkpoint dict around the weights is read as _weights_of_checkpoint says, with a note.
    Keys all prefixed `module.` (DataParallel) or `_orig_mod.` (torch.compile) lose the prefix, with a
    note; so does one shared first part (`backbone.`, a wrapper's attribute) when without it the keys are
    `reference`'s. Notes go to `notes` when given."""
    said = notes if notes is not None else []
    if key is not None:
        if _is_state_dict(obj) and bare_ok and key not in obj:
            if not isinstance(obj, PickledModel):  # the intake's note already says how a whole model was read
                said.append(f"{name} is a bare state_dict; graded it as the weights (save {{{key!r}: ..., ...}} "
                            "next time)")  # fmt: skip
        elif bare_ok and isinstance(obj, dict) and key not in obj and len(held := state_dicts_in(obj)) == 1:
            said.append(f"{name} has no {key!r}; graded the state_dict it holds under {held[0]!r} (the assignment "
                        f"keeps it under {key!r})")  # fmt: skip
            obj = obj[held[0]]
            name = f"{name}[{held[0]!r}]"
        elif not isinstance(obj, dict) or key not in obj or isinstance(obj, PickledModel):
            have = (f"a whole model ({obj.cls_name})" if isinstance(obj, PickledModel)
                    else f"a dict with keys {sorted(map(str, obj))[:6]} but no {key!r}" if isinstance(obj, dict)
                    else f"a {type(obj).__name__}")  # fmt: skip
            raise WeightsError(f"{name} holds {have}; expected a checkpoint dict with the state_dict under {key!r}")
        else:
            obj = obj[key]
            name = f"{name}[{key!r}]"
    if isinstance(obj, dict) and not _is_state_dict(obj):  # {'net': {'model': ..., 'optimizer': ...}} too
        obj, name = _weights_of_checkpoint(obj, name, said)
    if isinstance(obj, Pickled):
        raise _pickled_objects(name, f" ({obj.cls_name})")
    if not _is_state_dict(obj):
        raise WeightsError(f"{name}: expected a state_dict (a dict of tensors by name), found {type(obj).__name__}")
    state = dict(obj)
    stripped: list[str] = []  # outermost first; DataParallel around a compiled model gives both
    while len(stripped) < 2 and (prefix := _common_wrapper_prefix(state)):
        state = {k.removeprefix(prefix): v for k, v in state.items()}
        stripped.append(prefix)
    if stripped:
        wrappers = ", then in ".join(WRAPPER_PREFIXES[p] for p in reversed(stripped))
        said.append(f"{name} was saved from a model wrapped in {wrappers}; removed the "
                    f"{''.join(stripped)!r} prefix from its keys (save the inner model's state_dict next time)")
    heads = {k.split(".", 1)[0] for k in state}
    if reference and state.keys() != set(reference) and len(heads) == 1 and all("." in k for k in state):
        inner = {k.split(".", 1)[1]: v for k, v in state.items()}
        if inner.keys() == set(reference):
            said.append(f"{name}'s keys all start with {next(iter(heads)) + '.'!r}, the attribute of a model that "
                        "wraps the assignment's: read without it (save the inner model's state_dict next time)")
            state = inner
    return state


def _weights_of_checkpoint(obj: dict[Any, Any], name: str, said: list[str]) -> tuple[Any, str]:
    """Where the assignment saves a bare state_dict, a checkpoint dict that holds one state_dict ({'model': ...,
    'acc': ..., 'epoch': ...}), or the weights' tensors beside plain numbers ({'W': ..., 'b': ..., 'acc': 0.83}):
    the weights, with a note. Anything else is returned as it is, for the caller's message."""
    if len(held := state_dicts_in(obj)) == 1:
        said.append(f"{name} is a checkpoint dict; graded the state_dict it holds under {held[0]!r} (the assignment "
                    "saves the state_dict itself)")  # fmt: skip
        return obj[held[0]], f"{name}[{held[0]!r}]"
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    others = [k for k in obj if k not in tensors]
    if tensors and all(_is_metadata(obj[k]) for k in others):
        said.append(f"{name} also holds {', '.join(map(repr, others))} besides the weights; graded the tensors (save "
                    "only the weights next time)")  # fmt: skip
        return tensors, name
    return obj, name


def _is_metadata(value: Any, depth: int = 0) -> bool:
    """A number, a string or None, or a short list of them: what students save beside weights (acc, epoch)."""
    if isinstance(value, (list, tuple)) and depth == 0 and len(value) <= 10_000:
        return all(_is_metadata(v, 1) for v in value)
    return value is None or isinstance(value, (int, float, str))


def state_dicts_in(obj: dict[Any, Any]) -> list[Any]:
    """The keys of a checkpoint dict whose values are state_dicts (an optimizer's state is not one)."""
    return [k for k, v in obj.items() if _is_state_dict(v)]


# What a wrapper puts before every key of the model it wraps.
WRAPPER_PREFIXES = {"module.": "DataParallel", "_orig_mod.": "torch.compile"}


def _common_wrapper_prefix(state: dict[str, Any]) -> str | None:
    return next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in state)), None)


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
