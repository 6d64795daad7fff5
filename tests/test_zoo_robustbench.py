"""advlib.zoo.robustbench_model: RobustBench's CIFAR-10 models (Croce et al. 2021) by name, through the
robustbench package, read from its own cache layout without a network.

No test downloads anything: robustbench's download functions are replaced by ones that raise. The model
files are built here: the architecture robustbench builds for an entry, with random weights, saved where
and as robustbench keeps its downloads (``<model_dir>/cifar10/Linf/<name>.pt``). robustbench is in the
``dev`` extra, so a missing package fails these tests rather than skipping them.
"""
from __future__ import annotations

import sys

import pytest
import torch

from advlib import zoo
from advlib.teacher import Teacher

NAME = "Wong2020Fast"  # fast_adversarial's PreActResNet-18 (11M parameters, normalisation inside): cheap on a CPU


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """robustbench's downloads raise, as on a machine without a network; ADVLIB_OFFLINE unset."""
    utils = zoo._robustbench()

    def refuse(*args, **kwargs):
        raise ConnectionError("no network in the tests")

    monkeypatch.setattr(utils, "download_gdrive_new", refuse)
    monkeypatch.setattr(utils, "download_gdrive", refuse)
    monkeypatch.delenv("ADVLIB_OFFLINE", raising=False)
    monkeypatch.delenv("ADVLIB_ZOO", raising=False)


def build(name: str = NAME) -> torch.nn.Module:
    """The network robustbench builds for the CIFAR-10 Linf entry ``name``, with random weights and
    batch-norm statistics (so that train and eval mode differ)."""
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    torch.manual_seed(0)
    net = model_dicts[BenchmarkDataset.cifar_10][ThreatModel.Linf][name]["model"]()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def save_in_cache(net: torch.nn.Module, model_dir, name: str = NAME, wrapped: bool = False):
    """``net``'s weights where robustbench keeps the file of ``name``: a bare state dict, or (``wrapped``)
    the ``{"state_dict": {"module.<key>": ...}}`` of a DataParallel checkpoint, which robustbench unwraps."""
    path = zoo.robustbench_path(name, model_dir)
    assert path == model_dir / "cifar10" / "Linf" / f"{name}.pt"
    path.parent.mkdir(parents=True)
    state = net.state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}} if wrapped else state, path)
    return path


@pytest.mark.parametrize("wrapped", [False, True], ids=["state_dict", "dataparallel"])
def test_loads_from_the_cache_without_network(tmp_path, wrapped):
    net = build()
    path = save_in_cache(net, tmp_path, wrapped=wrapped)
    files = sorted(tmp_path.rglob("*"))
    model = zoo.robustbench_model(NAME, model_dir=tmp_path)
    assert sorted(tmp_path.rglob("*")) == files  # nothing downloaded or written
    assert model.name == f"robustbench:{NAME}" and not model.training
    assert "RobustBench" in model.provenance and str(path) in model.provenance
    expected = net.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    if not wrapped:  # the same function (normalisation inside, eval-mode batch norm) on random inputs
        x = torch.rand(2, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(model(x), net(x))
    # the prefixed name and $ADVLIB_ZOO find the same file
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVLIB_ZOO", str(tmp_path))
        again = zoo.robustbench_model(f"robustbench:{NAME}")
    assert all(torch.equal(v, expected[k]) for k, v in again.state_dict().items())


def test_a_teacher(tmp_path, monkeypatch):
    net = build()
    save_in_cache(net, tmp_path)
    monkeypatch.setenv("ADVLIB_ZOO", str(tmp_path))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = net(x)

    teacher = Teacher.load(f"robustbench:{NAME}", dataset="cifar10", cache=True, cache_dir=tmp_path / "tc")
    assert torch.equal(teacher.logits(x), expected)
    assert teacher.digest.startswith(f"robustbench:{NAME}-") and ":" not in teacher.cache_path.name
    with pytest.raises(ValueError, match="CIFAR-10 model of RobustBench, not one for mnist"):
        Teacher.load(f"robustbench:{NAME}", dataset="mnist")


def test_the_papers_teacher_offline_says_what_to_do(tmp_path, monkeypatch):
    assert zoo.PAPER_TEACHER == "Zhang2019Theoretically"
    monkeypatch.setenv("ADVLIB_OFFLINE", "1")  # refused before robustbench builds the 46M-parameter WRN-34-10
    with pytest.raises(FileNotFoundError) as err:
        zoo.robustbench_model("Zhang2019Theoretically", model_dir=tmp_path)
    msg = str(err.value)
    expected = tmp_path / "cifar10" / "Linf" / "Zhang2019Theoretically.pt"
    assert str(expected) in msg and "connect" in msg and "copy" in msg and "drive.google.com" in msg
    assert not expected.exists()


def test_a_failed_download_says_what_to_do_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        zoo.robustbench_model(NAME, model_dir=tmp_path)  # robustbench tries to download: no network
    msg = str(err.value)
    assert "no network in the tests" in msg and f"{NAME}.pt" in msg and "connect" in msg and "copy" in msg
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_damaged_file_is_named(tmp_path):
    path = zoo.robustbench_path(NAME, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"<html>Google Drive: quota exceeded</html>")
    with pytest.raises(ValueError, match=f"{NAME}.pt .*Delete the file"):
        zoo.robustbench_model(NAME, model_dir=tmp_path)


def test_unknown_names_and_threat_models(tmp_path):
    with pytest.raises(ValueError, match="Zhang2019Theoretically"):
        zoo.robustbench_model("Zhang2019Theoretical", model_dir=tmp_path)
    with pytest.raises(ValueError, match="threat model"):
        zoo.robustbench_model(NAME, model_dir=tmp_path, threat_model="L3")


def test_without_the_package_it_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "robustbench", None)  # import robustbench now fails
    with pytest.raises(ImportError, match=r'pip install -e "\.\[zoo\]"'):
        zoo.robustbench_model(zoo.PAPER_TEACHER)
