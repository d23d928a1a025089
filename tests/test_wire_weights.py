"""The trust line's data formats: messages are JSON + safetensors; weights load with weights_only."""

import os
import zipfile

import pytest
import torch

from grader import wire
from grader.judge.weights import WeightsError, load_weights, state_dict_from


def test_message_round_trip(tmp_path):
    value = {"x": torch.arange(6.0).reshape(2, 3), "nested": [1, "a", {"t": torch.tensor([True])}], "n": None}
    wire.write_message(tmp_path / "m.json", value)
    back = wire.read_message(tmp_path / "m.json")
    assert torch.equal(back["x"], value["x"]) and back["nested"][:2] == [1, "a"]
    assert torch.equal(back["nested"][2]["t"], torch.tensor([True])) and back["n"] is None


def test_only_plain_data_crosses(tmp_path):
    with pytest.raises(wire.WireError, match="cannot send a Linear"):
        wire.encode({"model": torch.nn.Linear(1, 1)})
    (tmp_path / "bad.json").write_text('{"value": {"__tensor__": "t0"}, "has_tensors": true}')
    (tmp_path / "bad.safetensors").write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(wire.WireError, match="unreadable message"):
        wire.read_message(tmp_path / "bad.json")


class Payload:
    """Unpickling this runs a shell command: what a hostile .pth would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"net": Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="pickled Python objects .*state_dict"):
        load_weights(tmp_path / "evil.pth")
    assert not marker.exists()


def test_whole_model_is_refused(tmp_path):
    torch.save(torch.nn.Linear(2, 1), tmp_path / "model.pth")
    with pytest.raises(WeightsError, match=r"torch.save\(model.state_dict\(\)"):
        load_weights(tmp_path / "model.pth")


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
    with pytest.raises(WeightsError, match="no 'model' entry"):
        state_dict_from(loaded, "ck.pth", "model")
    with pytest.raises(WeightsError, match="expected a state_dict"):
        state_dict_from(loaded, "ck.pth")
