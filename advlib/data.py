"""Data sets for the course: MNIST and CIFAR-10 as uint8 tensors held in memory.

Where the data comes from (``source``):

* ``"full"``   the canonical torchvision layout under a data root (``MNIST/raw/...``,
  ``cifar-10-batches-py/``), downloaded by torchvision when the machine is online.
  For CIFAR-10 the JPEG image-folder copy (``cifar10-jpg.tar.gz`` or ``cifar10-jpg/``)
  is accepted as a stand-in, with a notice that it is not pixel-exact.
* ``"sample"`` the small pixel-exact samples shipped in the repository's ``data/samples``.
* ``"auto"``   ``"full"`` when it can be had, otherwise the samples, with a visible notice.

Data roots are searched in order: the ``root`` argument, then every entry of the
``ADVLIB_DATA`` environment variable (``os.pathsep``-separated), then the repository's
``data/`` folder. Downloads go to the first writable root. Decoded caches (the JPEG copy)
go to ``ADVLIB_CACHE`` or ``data/cache`` of the repository.

Batches are drawn from the uint8 tensors directly (no PIL, no per-item Python), so a
small-CNN epoch is dominated by the model, not by data loading.
"""
from __future__ import annotations

import io
import os
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO_ROOT / "data"  # where downloads go when ADVLIB_DATA is not set
SAMPLES_DIR = REPO_ROOT / "data" / "samples"

DATASETS = ("mnist", "cifar10")
SOURCES = ("auto", "full", "sample")

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
MNIST_CLASSES = tuple(str(i) for i in range(10))
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)

HOW_TO_GET = {
    "mnist": (
        "Run once on a machine with internet access: "
        "python -c \"import torchvision; torchvision.datasets.MNIST('data', download=True)\" "
        "(or copy the four un-gzipped IDX files into <root>/MNIST/raw/), "
        "or point ADVLIB_DATA at a folder that holds them."
    ),
    "cifar10": (
        "Run once on a machine with internet access: "
        "python -c \"import torchvision; torchvision.datasets.CIFAR10('data', download=True)\" "
        "(it unpacks <root>/cifar-10-batches-py/), or point ADVLIB_DATA at a folder that holds "
        "cifar-10-batches-py/ or the JPEG copy cifar10-jpg.tar.gz."
    ),
}


class DataNotFoundError(FileNotFoundError):
    """The requested data is neither on disk nor downloadable. The message says what to do."""


@dataclass
class Dataset:
    """A split held in memory: ``x`` uint8 (N, C, H, W), ``y`` int64 (N,)."""

    x: torch.Tensor
    y: torch.Tensor
    name: str
    split: str
    origin: str  # "full", "jpeg-copy", "sample"
    classes: Sequence[str]
    note: str = ""

    def __post_init__(self):
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise ValueError(f"x must be uint8 (N, C, H, W); got {self.x.dtype} {tuple(self.x.shape)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} images but y has {len(self.y)} labels")
        self.y = self.y.long()

    def __len__(self) -> int:
        return len(self.y)

    @property
    def label(self) -> str:
        """How to cite where the numbers were measured, e.g. 'CIFAR-10 (JPEG copy)'."""
        pretty = {"mnist": "MNIST", "cifar10": "CIFAR-10"}[self.name]
        suffix = {"full": "", "jpeg-copy": " (JPEG copy)", "sample": " (shipped sample)"}[self.origin]
        return pretty + suffix

    def subset(self, n: Optional[int] = None, start: int = 0) -> "Dataset":
        """The first ``n`` items from ``start`` (deterministic, no copy)."""
        stop = len(self) if n is None else min(len(self), start + n)
        return Dataset(self.x[start:stop], self.y[start:stop], self.name, self.split,
                       self.origin, self.classes, self.note)

    def split_off(self, n_holdout: int, seed: int = 0) -> tuple["Dataset", "Dataset"]:
        """Split into (rest, held-out) with a fixed random permutation."""
        if not 0 < n_holdout < len(self):
            raise ValueError(f"n_holdout must be in (0, {len(self)}); got {n_holdout}")
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self), generator=g)
        keep, hold = perm[n_holdout:].sort().values, perm[:n_holdout].sort().values
        mk = lambda idx, split: Dataset(self.x[idx], self.y[idx], self.name, split,  # noqa: E731
                                        self.origin, self.classes, self.note)
        return mk(keep, self.split), mk(hold, self.split + "-holdout")

    def tensors(self, n: Optional[int] = None, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` images as float in [0,1] and their labels."""
        d = self.subset(n)
        return d.x.to(device).float().div_(255), d.y.to(device)

    def loader(self, batch_size: int, shuffle: bool = False, seed: int = 0, augment: bool = False,
               drop_last: bool = False, device="cpu", rank: int = 0, world_size: int = 1) -> "BatchLoader":
        return BatchLoader(self, batch_size, shuffle=shuffle, seed=seed, augment=augment,
                           drop_last=drop_last, device=device, rank=rank, world_size=world_size)


class BatchLoader:
    """Iterates float batches in [0,1] from an in-memory :class:`Dataset`.

    Shuffling is deterministic given ``seed`` and the epoch (``set_epoch``), and with
    ``world_size > 1`` each rank sees its own shard, as a DistributedSampler would.
    ``augment=True`` applies the CIFAR recipe (random crop with 4-pixel zero padding and a
    horizontal flip) on whole batches.
    """

    def __init__(self, data: Dataset, batch_size: int, shuffle=False, seed=0, augment=False,
                 drop_last=False, device="cpu", rank=0, world_size=1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.data, self.batch_size, self.shuffle, self.seed = data, batch_size, shuffle, seed
        self.augment, self.drop_last, self.device = augment, drop_last, torch.device(device)
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        n = len(self.data)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            idx = torch.randperm(n, generator=g)
        else:
            idx = torch.arange(n)
        if self.world_size > 1:
            per = -(-n // self.world_size)
            idx = torch.cat([idx, idx[: per * self.world_size - n]])  # pad like DistributedSampler
            idx = idx[self.rank::self.world_size]
        return idx

    def __len__(self) -> int:
        n = len(self._indices())
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = self._indices()
        g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch + 1)
        for b in range(len(self)):
            j = idx[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.data.x[j]
            if self.augment:
                x = _crop_flip(x, g)
            yield (x.to(self.device, non_blocking=True).float().div_(255),
                   self.data.y[j].to(self.device, non_blocking=True))


def _crop_flip(x: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    rows = (dy[:, None] + torch.arange(h)[None, :])  # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None, :])  # (n, w)
    out = padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    flip = torch.rand(n, generator=g) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


# --------------------------------------------------------------------------- roots


def data_roots(root: Optional[os.PathLike] = None) -> list[Path]:
    """Folders searched for data, in order (see the module docstring)."""
    roots: list[Path] = []
    if root is not None:
        roots.append(Path(root))
    for entry in os.environ.get("ADVLIB_DATA", "").split(os.pathsep):
        if entry.strip():
            roots.append(Path(entry.strip()))
    roots.append(DEFAULT_ROOT)
    out = []
    for r in roots:
        r = r.expanduser().resolve()
        if r not in out:
            out.append(r)
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("ADVLIB_CACHE", DEFAULT_ROOT / "cache")).expanduser()


def _writable_root(roots: list[Path]) -> Optional[Path]:
    for r in roots:
        try:
            r.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(r, os.W_OK):
            return r
    return None


def offline() -> bool:
    """True when ADVLIB_OFFLINE is set: never try to download."""
    return os.environ.get("ADVLIB_OFFLINE", "").lower() not in ("", "0", "false", "no")


# --------------------------------------------------------------------------- loaders


def _mnist_full(roots: list[Path], train: bool) -> Optional[Dataset]:
    import torchvision

    for r in roots:
        raw = r / "MNIST" / "raw"
        if all((raw / f).exists() for f in MNIST_FILES):
            ds = torchvision.datasets.MNIST(str(r), train=train, download=False)
            return Dataset(ds.data.unsqueeze(1).contiguous(), ds.targets, "mnist",
                           "train" if train else "test", "full", MNIST_CLASSES, note=f"MNIST from {raw}")
    return None


def _cifar_full(roots: list[Path], train: bool) -> Optional[Dataset]:
    import torchvision

    for r in roots:
        if (r / "cifar-10-batches-py" / "data_batch_1").exists():
            ds = torchvision.datasets.CIFAR10(str(r), train=train, download=False)
            x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
            return Dataset(x, torch.tensor(ds.targets), "cifar10", "train" if train else "test", "full",
                           CIFAR10_CLASSES, note=f"CIFAR-10 from {r / 'cifar-10-batches-py'}")
    return None


JPEG_NOTICE = ("CIFAR-10 (JPEG copy): this copy was re-encoded as JPEG and is NOT pixel-exact "
               "(mean error about 6/255); label any figure measured on it 'CIFAR-10 (JPEG copy)'.")


def _find_cifar_jpeg(roots: list[Path]) -> Optional[Path]:
    for r in roots:
        for cand in (r / "cifar10-jpg", r / "cifar10-jpg.tar.gz"):
            if cand.exists():
                return cand
    return None


def decode_cifar_jpeg(src: Path, dest: Path) -> Path:
    """Decode the JPEG image-folder copy once into ``dest`` (an .npz of uint8 arrays)."""
    from PIL import Image

    arrays: dict[str, list] = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}

    def add(relpath: str, blob: bytes):
        parts = relpath.split("/")
        # .../{train,test}/<class>/NNNN.jpg
        split, cls = parts[-3], parts[-2]
        if split not in ("train", "test") or cls not in CIFAR10_CLASSES:
            return
        img = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"), dtype=np.uint8)
        arrays["x_" + split].append((relpath, img.transpose(2, 0, 1)))
        arrays["y_" + split].append((relpath, CIFAR10_CLASSES.index(cls)))

    if src.is_dir():
        for p in sorted(src.rglob("*.jpg")):
            add(p.relative_to(src.parent).as_posix(), p.read_bytes())
    else:
        with tarfile.open(src, "r:*") as tar:
            for m in tar:
                if m.isfile() and m.name.endswith(".jpg"):
                    add(m.name, tar.extractfile(m).read())
    out = {}
    for k, items in arrays.items():
        items.sort(key=lambda t: t[0])
        out[k] = np.stack([v for _, v in items]) if k.startswith("x") else np.array([v for _, v in items])
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(dest)
    return dest


def _cifar_jpeg(roots: list[Path], train: bool, progress: bool = True) -> Optional[Dataset]:
    src = _find_cifar_jpeg(roots)
    if src is None:
        return None
    dest = cache_dir() / "cifar10-jpg-decoded.npz"
    if not dest.exists():
        if progress:
            print(f"Decoding the CIFAR-10 JPEG copy {src} once into {dest} (about a minute)...", flush=True)
        decode_cifar_jpeg(src, dest)
    with np.load(dest) as z:
        key = "train" if train else "test"
        x, y = torch.from_numpy(z["x_" + key]), torch.from_numpy(z["y_" + key])
    return Dataset(x, y, "cifar10", key, "jpeg-copy", CIFAR10_CLASSES, note=JPEG_NOTICE)


def _download(name: str, roots: list[Path], train: bool) -> Optional[Dataset]:
    if offline():
        return None
    import torchvision

    target = _writable_root(roots)
    if target is None:
        return None
    cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
    try:
        cls(str(target), train=train, download=True)
    except Exception as err:  # network errors come as URLError, RuntimeError, OSError...
        warnings.warn(f"Downloading {name} into {target} failed: {err}", stacklevel=3)
        return None
    return (_mnist_full if name == "mnist" else _cifar_full)([target], train)


def load_sample(name: str, train: bool) -> Dataset:
    path = SAMPLES_DIR / f"{name}-sample.npz"
    if not path.exists():
        raise DataNotFoundError(f"The shipped sample {path} is missing; restore it with `git checkout data/samples`.")
    key = "train" if train else "test"
    with np.load(path) as z:
        x, y = torch.from_numpy(z["x_" + key]), torch.from_numpy(z["y_" + key])
    if x.dim() == 3:
        x = x.unsqueeze(1)
    classes = MNIST_CLASSES if name == "mnist" else CIFAR10_CLASSES
    return Dataset(x.contiguous(), y, name, key, "sample", classes,
                   note=f"shipped sample {path.name}: {len(y)} pixel-exact {key} images")


def expected_files(name: str, roots: list[Path]) -> str:
    if name == "mnist":
        return ", ".join(str(roots[0] / "MNIST" / "raw" / f) for f in MNIST_FILES)
    return f"{roots[0] / 'cifar-10-batches-py'}/{{data_batch_1..5,test_batch,batches.meta}}"


def load(name: str, split: str = "train", source: str = "auto", root: Optional[os.PathLike] = None,
         verbose: bool = True) -> Dataset:
    """Load ``name`` (``"mnist"`` or ``"cifar10"``), ``split`` (``"train"``/``"test"``).

    ``source="full"`` raises :class:`DataNotFoundError` naming the expected files when the
    full set is neither on disk nor downloadable; ``"auto"`` then falls back to the shipped
    sample and prints a notice; ``"sample"`` always uses the shipped sample.
    """
    name = name.lower().replace("-", "")
    if name not in DATASETS:
        raise ValueError(f"Unknown data set {name!r}; choose one of {DATASETS}.")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}; got {source!r}")
    train = split == "train"
    if source == "sample":
        return load_sample(name, train)
    roots = data_roots(root)
    finders = [_mnist_full] if name == "mnist" else [_cifar_full]
    ds = None
    for find in finders:
        ds = find(roots, train)
        if ds is not None:
            break
    if ds is None:
        ds = _download(name, roots, train)
    if ds is None and name == "cifar10":
        ds = _cifar_jpeg(roots, train)
        if ds is not None and verbose:
            print("Notice: " + JPEG_NOTICE, flush=True)
    if ds is not None:
        return ds
    searched = ", ".join(str(r) for r in roots)
    msg = (f"The full {name} data set was not found (searched: {searched}) and could not be downloaded"
           f"{' (ADVLIB_OFFLINE is set)' if offline() else ''}. Expected files: {expected_files(name, roots)}. "
           + HOW_TO_GET[name])
    if source == "full":
        raise DataNotFoundError(msg)
    sample = load_sample(name, train)
    if verbose:
        print(f"Notice: using the shipped {name} sample ({len(sample)} {split} images), not the full data set. "
              f"Results are for teaching only. {HOW_TO_GET[name]}", flush=True)
    warnings.warn(f"advlib.data: {name} {split}: full data set not found, using the shipped sample.", stacklevel=2)
    return sample


def describe(name: str, root: Optional[os.PathLike] = None) -> dict:
    """What ``load(name, source='auto')`` would use, without downloading: for the setup notebook."""
    roots = data_roots(root)
    if name == "mnist":
        for r in roots:
            if all((r / "MNIST" / "raw" / f).exists() for f in MNIST_FILES):
                return {"dataset": name, "origin": "full", "where": str(r / "MNIST" / "raw")}
    else:
        for r in roots:
            if (r / "cifar-10-batches-py" / "data_batch_1").exists():
                return {"dataset": name, "origin": "full", "where": str(r / "cifar-10-batches-py")}
        jpg = _find_cifar_jpeg(roots)
        if jpg is not None:
            return {"dataset": name, "origin": "jpeg-copy", "where": str(jpg)}
    return {"dataset": name, "origin": "sample", "where": str(SAMPLES_DIR / f"{name}-sample.npz"),
            "how_to_get_full": HOW_TO_GET[name]}


def mean_std(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return (MNIST_MEAN, MNIST_STD) if name == "mnist" else (CIFAR10_MEAN, CIFAR10_STD)
