"""Data: offline errors, the auto fallback, the JPEG copy, the in-memory loader."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from advlib import data

from .conftest import SHARED_DATA


def test_full_offline_without_files_names_expected_files(isolated_data):
    with pytest.raises(data.DataNotFoundError) as err:
        data.load("mnist", "train", source="full")
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and "ADVLIB_DATA" in msg and "download=True" in msg
    with pytest.raises(data.DataNotFoundError, match="cifar-10-batches-py"):
        data.load("cifar10", "test", source="full")


def test_auto_falls_back_to_the_sample_with_a_notice(isolated_data, capsys):
    with pytest.warns(UserWarning, match="using the shipped sample"):
        ds = data.load("mnist", "test", source="auto")
    assert ds.origin == "sample" and ds.label == "MNIST (shipped sample)"
    assert "Notice: using the shipped mnist sample" in capsys.readouterr().out
    assert data.describe("mnist")["origin"] == "sample"


@pytest.mark.parametrize("name, shape", [("mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))])
def test_samples_are_real_uint8_images(name, shape):
    for split in ("train", "test"):
        ds = data.load(name, split, source="sample")
        assert ds.x.dtype == torch.uint8 and tuple(ds.x.shape[1:]) == shape
        assert ds.y.dtype == torch.int64 and set(ds.y.unique().tolist()) == set(range(10))
        assert ds.x.float().std() > 20  # not blank


def test_bad_arguments(isolated_data):
    with pytest.raises(ValueError, match="Unknown data set"):
        data.load("svhn")
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", "valid")
    with pytest.raises(ValueError, match="source"):
        data.load("mnist", source="internet")


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").exists(), reason="needs ../shared/data")
def test_full_mnist_from_a_root_in_torchvision_layout(isolated_data, monkeypatch):
    monkeypatch.setenv("ADVLIB_DATA", str(SHARED_DATA))
    test = data.load("mnist", "test", source="full")
    assert len(test) == 10000 and test.origin == "full" and test.label == "MNIST"
    sample = data.load("mnist", "test", source="sample")
    assert torch.equal(test.x[: len(sample)], sample.x) and torch.equal(test.y[: len(sample)], sample.y)


def _fake_jpeg_tree(tmp_path, n_per_class=2):
    """A tiny cifar10-jpg.tar.gz in the README's layout, made from the pixel-exact sample."""
    src = data.load("cifar10", "test", source="sample")
    picked = {c: (src.y == c).nonzero().flatten()[:n_per_class] for c in range(10)}
    tar_path = tmp_path / "roots" / "cifar10-jpg.tar.gz"
    tar_path.parent.mkdir(parents=True)
    with tarfile.open(tar_path, "w:gz") as tar:
        for split in ("train", "test"):
            for c, idx in picked.items():
                for k, i in enumerate(idx.tolist()):
                    buf = io.BytesIO()
                    Image.fromarray(src.x[i].permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=95)
                    info = tarfile.TarInfo(f"cifar10-jpg/{split}/{data.CIFAR10_CLASSES[c]}/{k:04d}.jpg")
                    info.size = buf.tell()
                    buf.seek(0)
                    tar.addfile(info, buf)
    return tar_path.parent, src, picked


def test_cifar_jpeg_copy_is_decoded_once_and_labelled(isolated_data, monkeypatch, capsys):
    root, src, picked = _fake_jpeg_tree(isolated_data)
    monkeypatch.setenv("ADVLIB_DATA", str(root))
    ds = data.load("cifar10", "test", source="auto")
    assert ds.origin == "jpeg-copy" and ds.label == "CIFAR-10 (JPEG copy)"
    assert "NOT pixel-exact" in capsys.readouterr().out
    assert ds.y.tolist() == sorted(sum([[c] * len(v) for c, v in picked.items()], []))
    exact = torch.cat([src.x[picked[c]] for c in range(10)]).float()
    err = (ds.x.float() - exact).abs().mean().item()
    assert 0 < err < 6, "decoded pixels should be close to, but not exactly, the originals"
    cache = isolated_data / "cache" / "cifar10-jpg-decoded.npz"
    assert cache.exists()
    (root / "cifar10-jpg.tar.gz").write_bytes(b"")  # a second load must use the cache
    assert torch.equal(data.load("cifar10", "test", source="full").x, ds.x)
    assert data.describe("cifar10")["origin"] == "jpeg-copy"


def test_loader_is_deterministic_and_shards_cover_the_epoch():
    ds = data.load("mnist", "test", source="sample").subset(103)
    a = [y for _, y in ds.loader(10, shuffle=True, seed=3)]
    b = [y for _, y in ds.loader(10, shuffle=True, seed=3)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert sorted(torch.cat(a).tolist()) == sorted(ds.y.tolist())
    loader = ds.loader(10, shuffle=True, seed=3)
    loader.set_epoch(1)
    assert not torch.equal(torch.cat([y for _, y in loader]), torch.cat(a))
    x, _ = next(iter(ds.loader(10)))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    seen = []
    for rank in range(3):
        for xb, _ in ds.loader(7, shuffle=True, seed=1, rank=rank, world_size=3):
            seen.append(xb)
    assert sum(len(s) for s in seen) == 105  # 103 padded to a multiple of 3, like DistributedSampler


def test_augmentation_keeps_shape_range_and_content():
    ds = data.load("cifar10", "test", source="sample").subset(64)
    x_aug, _ = next(iter(ds.loader(64, augment=True, seed=0)))
    x, _ = next(iter(ds.loader(64)))
    assert x_aug.shape == x.shape and 0 <= x_aug.min() and x_aug.max() <= 1
    assert not torch.equal(x_aug, x)
    assert abs(x_aug.mean().item() - x.mean().item()) < 0.1


def test_split_off_is_disjoint_and_reproducible():
    ds = data.load("mnist", "train", source="sample")
    rest, hold = ds.split_off(500, seed=0)
    assert len(rest) + len(hold) == len(ds) and len(hold) == 500
    assert torch.equal(ds.split_off(500, seed=0)[1].x, hold.x)
