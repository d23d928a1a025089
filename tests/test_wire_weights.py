"""The trust line's data formats: messages are JSON + safetensors; weights load with weights_only."""

import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from grader import wire
from grader.judge.weights import Pickled, PickledModel, WeightsError, load_weights, pickled_models, state_dict_from

ROOT = Path(__file__).resolve().parent.parent


def test_message_round_trip():
    value = {"x": torch.arange(6.0).reshape(2, 3), "nested": [1, "a", {"t": torch.tensor([True])}], "n": None}
    back = wire.from_bytes(*wire.to_bytes(value))
    assert torch.equal(back["x"], value["x"]) and back["nested"][:2] == [1, "a"]
    assert torch.equal(back["nested"][2]["t"], torch.tensor([True])) and back["n"] is None


def test_only_plain_data_crosses():
    with pytest.raises(wire.WireError, match="cannot send a Linear"):
        wire.encode({"model": torch.nn.Linear(1, 1)})
    with pytest.raises(wire.WireError, match="unreadable tensors"):
        wire.from_bytes({"__tensor__": "t0"}, b"\x80\x04not safetensors")
    with pytest.raises(wire.WireError, match="no such tensor"):
        wire.from_bytes({"__tensor__": "t9"}, wire.to_bytes(torch.ones(1))[1])


class Payload:
    """Unpickling this runs a shell command: what a hostile .pth would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"net": Payload(marker), "acc": 71.5}, tmp_path / "evil.pth")
    loaded = load_weights(tmp_path / "evil.pth")  # read as data: the payload is a record of what it would call
    assert loaded["acc"] == 71.5 and isinstance(loaded["net"], Pickled) and loaded["net"].cls_name == "posix.system"
    with pytest.raises(WeightsError, match=r"pickled Python objects \(posix.system\) .*torch.save\(model.state_dict"):
        state_dict_from(loaded, "evil.pth", "net")
    assert not marker.exists()


def test_numpy_scalars_are_read_as_their_numbers_without_numpy(tmp_path):
    """Metrics computed with numpy (np.float64 from .mean()) are pickled as numpy scalars: read from their bytes,
    in either byte order. An array of numbers (np.array(accs)) is read as its tensor; numpy's other objects (an
    array of objects, one in Fortran order) stay inert records, as does a forged scalar."""
    import numpy as np

    history = {"test_acc": [np.float64(81.25), np.float32(80.5), np.int64(3), np.float64(1.5).astype(">f8")],
               "raw": np.arange(3.0), "grid": np.arange(6, dtype=np.int32).reshape(2, 3), "empty": np.array([]),
               "objects": np.array([1, "a"], dtype=object), "fortran": np.asfortranarray(np.ones((2, 3)))}  # fmt: skip
    torch.save({"net": {"w": torch.ones(2)}, "history": history}, tmp_path / "final.pth")
    loaded = load_weights(tmp_path / "final.pth")
    assert loaded["history"]["test_acc"] == [81.25, 80.5, 3, 1.5]
    assert all(type(v) in (float, int) for v in loaded["history"]["test_acc"])
    assert torch.equal(loaded["history"]["raw"], torch.arange(3.0, dtype=torch.float64))
    assert torch.equal(loaded["history"]["grid"], torch.arange(6, dtype=torch.int32).reshape(2, 3))
    assert loaded["history"]["empty"].shape == (0,)
    assert isinstance(loaded["history"]["objects"], Pickled) and isinstance(loaded["history"]["fortran"], Pickled)
    from grader.judge.weights import _numpy_scalar, _NumpyDtype

    assert isinstance(_numpy_scalar(_NumpyDtype("f8"), b"\0" * 3), Pickled)  # bytes of the wrong length
    assert isinstance(_numpy_scalar(_NumpyDtype("O"), b"\0" * 8), Pickled)  # an object scalar: never built


class Tripwire(torch.nn.Module):
    """A student's model whose own code, if it ever ran while loading, would leave a marker file."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = str(marker)
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
        self.fc = torch.nn.Linear(4, 2)
        self.register_buffer("scratch", torch.zeros(3), persistent=False)  # not part of state_dict()

    def __setstate__(self, state):
        Path(state["marker"]).write_text("ran")
        super().__setstate__(state)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def test_a_whole_model_is_read_as_its_state_dict_without_running_its_code(tmp_path):
    import argparse

    marker = tmp_path / "ran"
    model = Tripwire(marker)
    model.features[1].running_mean += 0.5  # a buffer with values of its own
    torch.save({"net": model, "args": argparse.Namespace(lr=0.1), "history": {"test_acc": [50.0, 61.5]}},
               tmp_path / "final.pth")  # fmt: skip
    loaded = load_weights(tmp_path / "final.pth")
    assert not marker.exists()
    want = model.state_dict()
    assert isinstance(loaded["net"], PickledModel) and list(loaded["net"]) == list(want)
    assert all(torch.equal(loaded["net"][k], want[k]) for k in want)
    assert loaded["history"] == {"test_acc": [50.0, 61.5]} and isinstance(loaded["args"], Pickled)
    assert pickled_models(loaded) == ["tests.test_wire_weights.Tripwire"]
    notes: list[str] = []
    assert state_dict_from(loaded, "final.pth", "net", notes).keys() == want.keys() and not notes
    # torch.save(model) alone: a whole model where a checkpoint dict was asked for is taken as its weights
    torch.save(torch.nn.DataParallel(model), tmp_path / "wrapped.pth")
    state = state_dict_from(load_weights(tmp_path / "wrapped.pth"), "wrapped.pth", "net", notes, bare_ok=True)
    assert state.keys() == want.keys() and notes == [
        "wrapped.pth was saved from a model wrapped in DataParallel; removed the 'module.' prefix from its keys "
        "(save the inner model's state_dict next time)"]  # fmt: skip
    assert not marker.exists()


class StatefulTensor:
    """Pickles as a tensor followed by BUILD with a state: a tensor's state could point it at any storage."""

    def __reduce__(self):
        return (torch._utils._rebuild_parameter, (torch.zeros(2), False, OrderedDict()), ("not", "for", "a tensor"))


def test_state_for_anything_but_a_foreign_record_is_dropped(tmp_path):
    torch.save({"w": StatefulTensor(), "model": torch.nn.Linear(1, 1)}, tmp_path / "odd.pth")
    loaded = load_weights(tmp_path / "odd.pth")
    assert torch.equal(loaded["w"], torch.zeros(2)) and set(loaded["model"]) == {"weight", "bias"}


def test_another_key_for_the_state_dict_is_graded_with_a_note():
    sd = torch.nn.Linear(2, 1).state_dict()
    notes: list[str] = []
    ckpt = {"state_dict": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}, "epoch": 10}
    assert state_dict_from(ckpt, "final.pth", "net", notes, bare_ok=True).keys() == sd.keys()
    assert notes == ["final.pth has no 'net'; graded the state_dict it holds under 'state_dict' (the assignment "
                     "keeps it under 'net')"]  # fmt: skip
    with pytest.raises(WeightsError, match="no 'net'"):  # only where the check allows it
        state_dict_from(ckpt, "final.pth", "net")
    with pytest.raises(WeightsError, match="no 'net'"):  # two candidates: which one is the model is a guess
        state_dict_from({"a": sd, "b": sd}, "final.pth", "net", bare_ok=True)
    notes.clear()  # the whole checkpoint under 'net': the weights inside it, wherever the check reads them
    assert state_dict_from({"net": ckpt, "epoch": 10}, "final.pth", "net", notes).keys() == sd.keys()
    assert notes == ["final.pth['net'] is a checkpoint dict; graded the state_dict it holds under 'state_dict' (the "
                     "assignment saves the state_dict itself)"]  # fmt: skip


def test_malformed_files(tmp_path):
    (tmp_path / "text.pth").write_text("hello, not weights")
    with pytest.raises(WeightsError, match="not a PyTorch weights file"):
        load_weights(tmp_path / "text.pth")
    torch.save({"w": torch.ones(3)}, tmp_path / "ok.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "ok.pth").read_bytes()[:200])
    with pytest.raises(WeightsError, match="damaged archive|could not be read"):
        load_weights(tmp_path / "cut.pth")
    with pytest.raises(WeightsError, match="missing"):
        load_weights(tmp_path / "absent.pth")


def test_zip_bomb_refused_before_unpacking(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.pth", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\0" * (64 << 20))
    with pytest.raises(WeightsError, match="would unpack to 64 MiB"):
        load_weights(tmp_path / "bomb.pth", max_unpacked=16 << 20)


def test_state_dict_picking(tmp_path):
    sd = {"w": torch.ones(2)}
    torch.save({"net": sd, "epoch": 3}, tmp_path / "ck.pth")
    loaded = load_weights(tmp_path / "ck.pth")
    assert torch.equal(state_dict_from(loaded, "ck.pth", "net")["w"], sd["w"])
    with pytest.raises(WeightsError, match="but no 'model'"):
        state_dict_from(loaded, "ck.pth", "model")
    notes: list[str] = []  # where the assignment saves a bare state_dict, a checkpoint around it is read too
    assert state_dict_from(loaded, "ck.pth", notes=notes).keys() == {"w"}
    assert notes == ["ck.pth is a checkpoint dict; graded the state_dict it holds under 'net' (the assignment "
                     "saves the state_dict itself)"]  # fmt: skip
    notes = []
    assert state_dict_from({"W": sd["w"], "b": sd["w"], "acc": 0.83, "hist": [1, 2.5]}, "s.pth", notes=notes).keys() \
        == {"W", "b"}
    assert notes == ["s.pth also holds 'acc', 'hist' besides the weights; graded the tensors (save only the weights "
                     "next time)"]  # fmt: skip
    for odd in ({"a": sd, "b": sd}, {"w": sd["w"], "opt": {"state": {}}}):  # which one? / more than metadata
        with pytest.raises(WeightsError, match="expected a state_dict"):
            state_dict_from(odd, "ck.pth")


def test_wrapped_models_lose_their_prefixes_with_one_note():
    """Trained on a GPU box: torch.compile (`_orig_mod.`), DataParallel (`module.`), or both."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 3))
    compiled = {f"_orig_mod.{k}": v for k, v in model.state_dict().items()}
    notes: list[str] = []
    assert list(state_dict_from({"net": compiled}, "final.pth", "net", notes)) == ["0.weight", "0.bias"]
    assert notes == ["final.pth['net'] was saved from a model wrapped in torch.compile; removed the '_orig_mod.' "
                     "prefix from its keys (save the inner model's state_dict next time)"]  # fmt: skip
    both = {f"module.{k}": v for k, v in compiled.items()}
    notes.clear()
    assert list(state_dict_from(both, "final.pth", notes=notes)) == ["0.weight", "0.bias"]
    assert "wrapped in torch.compile, then in DataParallel; removed the 'module._orig_mod.' prefix" in notes[0]
    partly = {"module.0.weight": torch.ones(1), "0.bias": torch.ones(1)}  # not a wrapper's: left as it is
    assert list(state_dict_from(partly, "final.pth", notes=notes)) == list(partly) and len(notes) == 1


# ---- weights that lie about their size are refused before anything is allocated ------------------------


def _rezip(src: Path, dest: Path, compression: int = zipfile.ZIP_STORED, edit=None) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", compression=compression) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info.filename, edit(info.filename, data) if edit else data)


def test_expanded_view_bomb_is_refused(tmp_path):
    """A few KB on disk declaring an 8 GiB tensor: one float expanded with stride 0."""
    torch.save({"w": torch.zeros(1).expand(2**31)}, tmp_path / "bomb.pth")
    assert (tmp_path / "bomb.pth").stat().st_size < 4096
    with pytest.raises(WeightsError, match=r"shape 2147483648 \(8192 MiB\) declares more elements than its storage"):
        load_weights(tmp_path / "bomb.pth")


def test_view_past_its_storage_is_refused(tmp_path):
    torch.save({"w": torch.ones(4)}, tmp_path / "ok.pth")
    # The same tensor, with its pickled size (4,) turned into (9,): past the end of its 16-byte storage.
    _rezip(tmp_path / "ok.pth", tmp_path / "long.pth",
           edit=lambda name, data: data.replace(b"K\x04\x85", b"K\x09\x85") if name.endswith("data.pkl") else data)
    with pytest.raises(WeightsError, match="declares more elements than its storage"):
        load_weights(tmp_path / "long.pth")


def test_storage_larger_than_its_record_is_refused(tmp_path):
    torch.save({"w": torch.ones(6)}, tmp_path / "ok.pth")
    _rezip(tmp_path / "ok.pth", tmp_path / "short.pth",
           edit=lambda name, data: data[:8] if "/data/" in name else data)
    with pytest.raises(WeightsError, match=r"storage '0' declares 24 bytes but its record holds 8"):
        load_weights(tmp_path / "short.pth")


def test_archives_torch_did_not_write_are_refused(tmp_path):
    torch.save({"w": torch.ones(6)}, tmp_path / "ok.pth")
    _rezip(tmp_path / "ok.pth", tmp_path / "deflated.pth", zipfile.ZIP_DEFLATED)
    with pytest.raises(WeightsError, match="compressed after torch.save wrote it"):
        load_weights(tmp_path / "deflated.pth")
    raw = bytearray((tmp_path / "ok.pth").read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at != -1:  # the "encrypted" flag in every central directory entry
        raw[at + 8] |= 1
        at = raw.find(b"PK\x01\x02", at + 4)
    (tmp_path / "encrypted.pth").write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="encrypted archive"):
        load_weights(tmp_path / "encrypted.pth")


def _legacy(obj: object, path: Path) -> bytes:
    """`obj` saved as torch < 1.6 did (old tutorials still pass _use_new_zipfile_serialization=False)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that it cannot keep a test class's source
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    return path.read_bytes()


def test_the_legacy_format_is_read_as_the_archive_format_is(tmp_path, monkeypatch):
    """State dicts, checkpoints and whole models in the legacy format load as they would from an archive, the
    model's code never runs, and nothing is written (torch's legacy loader writes patch files for classes whose
    source changed)."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    model = Tripwire(marker)
    model.features[1].running_mean += 0.5
    want = model.state_dict()
    _legacy({"net": model.state_dict(), "acc": 71.5, "w": torch.arange(12.0).view(3, 4).t()}, tmp_path / "ckpt.pth")
    loaded = load_weights(tmp_path / "ckpt.pth")
    assert loaded["acc"] == 71.5 and torch.equal(loaded["w"], torch.arange(12.0).view(3, 4).t())
    assert all(torch.equal(loaded["net"][k], want[k]) for k in want)
    _legacy({"net": model, "epoch": 9}, tmp_path / "whole.pth")
    loaded = load_weights(tmp_path / "whole.pth")
    assert isinstance(loaded["net"], PickledModel) and list(loaded["net"]) == list(want) and loaded["epoch"] == 9
    assert all(torch.equal(loaded["net"][k], want[k]) for k in want)
    assert pickled_models(loaded) == ["tests.test_wire_weights.Tripwire"]
    assert not marker.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth", "whole.pth"]


def test_a_legacy_file_is_checked_before_torch_allocates(tmp_path):
    """torch's legacy loader allocates each storage at the size the pickle declares, then reads it: a file that
    declares more than it holds, or holds more than it declares, is refused first."""
    data = _legacy({"w": torch.ones(6)}, tmp_path / "ok.pth")
    assert b"K\x06Nt" in data  # the storage's element count, then its view field (None), in its persistent id
    (tmp_path / "huge.pth").write_bytes(data.replace(b"K\x06Nt", b"J\x00\x00\x00\x40Nt"))  # 2**30 elements
    with pytest.raises(WeightsError, match=r"legacy format .*declares 4294967296 bytes but the file holds 24"):
        load_weights(tmp_path / "huge.pth")
    for name, bad in (("short.pth", data[:-4]), ("long.pth", data + b"\0" * 8)):
        (tmp_path / name).write_bytes(bad)
        with pytest.raises(WeightsError, match="legacy format .* save it again with torch.save"):
            load_weights(tmp_path / name)
    (tmp_path / "payload.pth").write_bytes(data[:2] + pickle.dumps(Payload(tmp_path / "pwned"), 2)[2:])
    with pytest.raises(WeightsError, match=r"posix.system where plain data belongs"):
        load_weights(tmp_path / "payload.pth")
    assert not (tmp_path / "pwned").exists()


def test_links_and_special_files_are_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo.pth")  # opening it for reading would block a naive judge forever
    with pytest.raises(WeightsError, match="fifo.pth is not a regular file \\(it is a named pipe\\)"):
        load_weights(tmp_path / "fifo.pth")
    (tmp_path / "zero.pth").symlink_to("/dev/zero")
    with pytest.raises(WeightsError, match="zero.pth is a symbolic link"):
        load_weights(tmp_path / "zero.pth")


def test_real_checkpoints_still_load():
    for path in (ROOT / "examples/exp2/solution/final.pth", ROOT / "assignments/exp2/pretrain_model.pth",
                 ROOT / "examples/exp1/solution/model.pth"):  # fmt: skip
        assert isinstance(load_weights(path), dict), path


def test_a_wrapper_attribute_is_removed_only_where_that_gives_the_reference_keys():
    inner = torch.nn.Linear(2, 1).state_dict()
    wrapped = {f"backbone.{k}": v for k, v in inner.items()}
    notes: list[str] = []
    assert state_dict_from(wrapped, "final.pth", notes=notes, reference=inner.keys()).keys() == inner.keys()
    assert notes == ["final.pth's keys all start with 'backbone.', the attribute of a model that wraps the "
                     "assignment's: read without it (save the inner model's state_dict next time)"]  # fmt: skip
    assert state_dict_from(wrapped, "final.pth").keys() == wrapped.keys()  # no reference: nothing to go by
    assert state_dict_from(wrapped, "final.pth", reference=["weight"]).keys() == wrapped.keys()  # would not fit
