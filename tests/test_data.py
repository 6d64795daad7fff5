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


def test_auto_falls_back_to_the_sample_with_a_notice(isolated_data, capsys, recwarn):
    ds = data.load("mnist", "test", source="auto")
    assert ds.origin == "sample" and ds.label == "MNIST (shipped sample)"
    assert "Notice: using the shipped mnist sample" in capsys.readouterr().out
    data.load("mnist", "test", source="auto")
    assert capsys.readouterr().out == ""  # once per process (a notebook's kernel), not at every call
    assert not [w for w in recwarn.list if "shipped sample" in str(w.message)]  # a notice, not also a warning
    with pytest.warns(UserWarning, match="full data set not found, using the shipped sample"):
        data.load("mnist", "test", source="auto", verbose=False)  # a caller that prints nothing: a warning
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
    """A tiny cifar10-jpg.tar.gz in the README's layout, made from the pixel-exact sample
    (``n_per_class`` images of each class in train/ and in test/)."""
    src = data.load("cifar10", "test", source="sample")
    picked = {c: (src.y == c).nonzero().flatten()[:n_per_class] for c in range(10)}
    tar_path = tmp_path / "roots" / "cifar10-jpg.tar.gz"
    tar_path.parent.mkdir(parents=True, exist_ok=True)
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


@pytest.fixture
def small_full_set(monkeypatch):
    """Let a 20 + 20 image JPEG copy count as the full CIFAR-10 set (which has 50,000 + 10,000)."""
    monkeypatch.setattr(data, "CIFAR10_SIZES", {"train": 20, "test": 20}, raising=False)


def test_cifar_jpeg_copy_is_decoded_once_and_labelled(isolated_data, monkeypatch, capsys, small_full_set):
    root, src, picked = _fake_jpeg_tree(isolated_data)
    monkeypatch.setenv("ADVLIB_DATA", str(root))
    ds = data.load("cifar10", "test", source="auto")
    assert ds.origin == "jpeg-copy" and ds.label == "CIFAR-10 (JPEG copy)"
    assert "NOT pixel-exact" in capsys.readouterr().out
    # served in a fixed random order (the folders sort by class; the official batches do not)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(data.JPEG_ORDER_SEED))
    by_class = torch.tensor(sorted(sum([[c] * len(v) for c, v in picked.items()], [])))
    assert torch.equal(ds.y, by_class[order])
    assert len(set(ds.y[:20].tolist())) > 3, "the first images should be a mix of classes"
    exact = torch.cat([src.x[picked[c]] for c in range(10)])[order].float()
    err = (ds.x.float() - exact).abs().mean().item()
    assert 0 < err < 6, "decoded pixels should be close to, but not exactly, the originals"
    cached = [p.name for p in (isolated_data / "cache").iterdir()]
    assert cached == [data.jpeg_cache_path(root / "cifar10-jpg.tar.gz").name]

    def no_second_decoding(*args):
        raise AssertionError("decoded again although the source did not change")

    monkeypatch.setattr(data, "decode_cifar_jpeg", no_second_decoding)
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


# ------------------------------------------------------------------ bad data (issue 8, items 3, 5 and 10)


def test_the_jpeg_cache_follows_its_source(isolated_data, monkeypatch, small_full_set):
    """Issue 8.3: after decoding one copy, pointing the roots at another must not reuse its cache."""
    monkeypatch.setenv("ADVLIB_DATA", str(_fake_jpeg_tree(isolated_data / "a", n_per_class=2)[0]))
    assert len(data.load("cifar10", "test", source="full")) == 20
    monkeypatch.setattr(data, "CIFAR10_SIZES", {"train": 30, "test": 30}, raising=False)
    monkeypatch.setenv("ADVLIB_DATA", str(_fake_jpeg_tree(isolated_data / "b", n_per_class=3)[0]))
    assert len(data.load("cifar10", "test", source="full")) == 30
    assert len(list((isolated_data / "cache").glob("cifar10-jpg-*.npz"))) == 2


def test_an_incomplete_jpeg_copy_is_refused_not_used(isolated_data, monkeypatch):
    """Issue 8.3: a copy without the full set's 50,000 + 10,000 images is incomplete."""
    root, _, _ = _fake_jpeg_tree(isolated_data)
    monkeypatch.setenv("ADVLIB_DATA", str(root))
    with pytest.raises(data.DataCorruptError, match=r"20 training and 20 test images.*50,000 and 10,000.*incomplete"):
        data.load("cifar10", "test", source="full")
    with pytest.warns(UserWarning, match="cannot be used.*using the shipped sample"):
        assert data.load("cifar10", "test", source="auto", verbose=False).origin == "sample"


@pytest.mark.parametrize("damage, problem", [
    (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "not a readable .tar.gz archive"),
    (lambda p: p.write_text("not an archive"), "not a readable .tar.gz archive"),
])
def test_a_damaged_jpeg_archive_is_named(isolated_data, monkeypatch, small_full_set, damage, problem):
    """Issue 8.10: a truncated or foreign archive names the file, not tarfile.ReadError / EOFError."""
    root, _, _ = _fake_jpeg_tree(isolated_data)
    damage(root / "cifar10-jpg.tar.gz")
    monkeypatch.setenv("ADVLIB_DATA", str(root))
    with pytest.raises(data.DataCorruptError) as err:
        data.load("cifar10", "test", source="full")
    assert str(root / "cifar10-jpg.tar.gz") in str(err.value) and problem in str(err.value)
    assert "get a good copy" in str(err.value)


def test_an_undecodable_jpeg_is_named(isolated_data, monkeypatch, small_full_set):
    """Issue 8.10: an unnamed UnidentifiedImageError becomes an error naming the image."""
    folder = isolated_data / "roots" / "cifar10-jpg"
    for split in ("train", "test"):
        for c in data.CIFAR10_CLASSES:
            (folder / split / c).mkdir(parents=True)
    (folder / "test" / "cat" / "0000.jpg").write_text("not a JPEG")
    monkeypatch.setenv("ADVLIB_DATA", str(folder.parent))
    with pytest.raises(data.DataCorruptError, match=r"cifar10-jpg/test/cat/0000.jpg cannot be decoded"):
        data.load("cifar10", "test", source="full")


def _fake_mnist_root(root, size_of=lambda name, size: size):
    """The four MNIST files with valid IDX headers and all pixels and labels zero (sparse files),
    of the official sizes unless ``size_of`` says otherwise."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, (_, size) in data.MNIST_MD5.items():
        n = 60000 if name.startswith("train") else 10000
        header = (np.array([2051, n, 28, 28] if "images" in name else [2049, n], dtype=">i4")).tobytes()
        with open(raw / name, "wb") as f:
            f.write(header)
            f.truncate(size_of(name, size))
    return root


def test_mnist_with_zeroed_bytes_of_the_right_size_is_refused(isolated_data, monkeypatch):
    """Issue 8.5: torchvision reads such files as 70,000 black images of the digit 0."""
    monkeypatch.setenv("ADVLIB_DATA", str(_fake_mnist_root(isolated_data / "roots")))
    with pytest.raises(data.DataCorruptError, match=r"t10k-images-idx3-ubyte: its MD5 is .*the content is damaged"):
        data.load("mnist", "test", source="full")
    with pytest.warns(UserWarning, match="cannot be used.*using the shipped sample"):
        assert data.load("mnist", "test", source="auto", verbose=False).origin == "sample"


def test_a_truncated_mnist_file_names_the_file_and_its_size(isolated_data, monkeypatch):
    """Issue 8.10: not torch's "shape '[60000, 28, 28]' is invalid"."""
    truncated = lambda name, size: size // 2 if name == "train-images-idx3-ubyte" else size  # noqa: E731
    monkeypatch.setenv("ADVLIB_DATA", str(_fake_mnist_root(isolated_data / "roots", truncated)))
    with pytest.raises(data.DataCorruptError) as err:
        data.load("mnist", "train", source="full")
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and "23,520,008 bytes, the official file 47,040,016" in msg
    assert "download=True" in msg  # how to get a good copy


def test_damaged_cifar_batches_are_named(isolated_data, monkeypatch):
    """Issue 8.10: torchvision's "Dataset not found or corrupted" becomes the names of the bad files."""
    folder = isolated_data / "roots" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        (folder / name).write_bytes(b"\0" * 100)
    monkeypatch.setenv("ADVLIB_DATA", str(folder.parent))
    with pytest.raises(data.DataCorruptError, match=r"data_batch_1, data_batch_2, data_batch_3.*MD5 check"):
        data.load("cifar10", "test", source="full")


def test_a_damaged_shipped_sample_says_how_to_restore_it(isolated_data, monkeypatch):
    samples = isolated_data / "samples"
    samples.mkdir()
    (samples / "mnist-sample.npz").write_text("truncated")
    monkeypatch.setattr(data, "SAMPLES_DIR", samples)
    with pytest.raises(data.DataCorruptError, match="git checkout data/samples"):
        data.load("mnist", "test", source="sample")


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").exists(), reason="needs ../shared/data")
def test_the_official_mnist_files_pass_the_md5_check():
    for name in data.MNIST_MD5:
        data.check_mnist_file(SHARED_DATA / "MNIST" / "raw" / name)


def test_negative_subset_sizes_are_refused():
    """Issue 8.4: ``subset(-5)`` silently dropped the last five images."""
    ds = data.load("mnist", "test", source="sample")
    with pytest.raises(ValueError, match="n >= 0"):
        ds.subset(-5)
    with pytest.raises(ValueError, match="n >= 0"):
        ds.tensors(-5)
