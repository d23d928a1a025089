"""Dataset provisioning and the judge's CIFAR reader, which refuses anything but numpy in a batch pickle."""

import pickle
import urllib.request

import numpy as np
import pytest
import torch

from grader import data
from grader.data import DataError, prepare, read_cifar10


def test_prepare_offline_explains(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlretrieve", no_network)
    with pytest.raises(DataError) as info:
        prepare("timemachine", tmp_path)
    text = str(info.value)
    assert "could not download timemachine" in text and "materialize.py" in text and "timemachine.txt" in text
    with pytest.raises(DataError, match="unknown dataset 'imagenet'"):
        prepare("imagenet", tmp_path)
    (tmp_path / "timemachine.txt").write_text("The Time Machine")
    assert prepare("timemachine", tmp_path) == f"timemachine: already present under {tmp_path}"


def test_reader_matches_real_cifar(data_root):
    x, y = read_cifar10(data_root, train=False)
    assert x.shape == (10000, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [1000] * 10  # CIFAR-10's test set is balanced


class Evil:
    def __reduce__(self):
        return (print, ("ran code",))


def test_reader_refuses_code_in_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((1, 3072), np.uint8), "labels": [Evil()]}, f)
    data.read_cifar10.cache_clear()
    with pytest.raises(pickle.UnpicklingError, match="refusing builtins.print"):
        read_cifar10(tmp_path, train=False)
