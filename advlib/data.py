"""Data sets for the course: MNIST and CIFAR-10 as uint8 tensors held in memory.

Where the data comes from (``source``):

* ``"full"``   the canonical torchvision layout under a data root (``MNIST/raw/...``,
  ``cifar-10-batches-py/``), downloaded by torchvision when the machine is online.
  For CIFAR-10 the JPEG image-folder copy (``cifar10-jpg.tar.gz`` or ``cifar10-jpg/``)
  is accepted as a stand-in, with a notice that it is not pixel-exact.
* ``"sample"`` the small pixel-exact samples shipped in the repository's ``data/samples``.
* ``"auto"``   ``"full"`` when it can be had, otherwise the samples, with a visible notice.
* ``"exact"``  CIFAR-10 only: the pixel-exact subset ``cifar10-exact-subset.npz`` under a data root
  (5,085 train + 1,017 test images, the first 1,017 of each official batch file). Where the full
  set here is the JPEG copy, this is where test figures are measured.

Data roots are searched in order: the ``root`` argument, then every entry of the
``ADVLIB_DATA`` environment variable (``os.pathsep``-separated), then the repository's
``data/`` folder. Downloads go to the first writable root. Decoded caches (the JPEG copy)
go to ``ADVLIB_CACHE`` or ``data/cache`` of the repository, one per source file (keyed on its
path, size and modification time), so pointing the roots at another copy never reuses a stale one.

A full set that is on disk but damaged (an MNIST file whose MD5 is not the official one, a
CIFAR-10 batch file that fails torchvision's MD5 check, a JPEG copy that cannot be read or
does not hold 50,000 + 10,000 images) raises :class:`DataCorruptError` naming the file, what is
wrong with it and how to get a good copy; under ``source="auto"`` the shipped sample stands in,
with a notice.

What holds for a whole session (the JPEG copy stands in, a download failed, the sample stands in) is said
once per process, a notebook's kernel (:func:`advlib.utils.notice`), with paths as :func:`advlib.paths.shown`
writes them.

Batches are drawn from the uint8 tensors directly (no PIL, no per-item Python), so a
small-CNN epoch is dominated by the model, not by data loading.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from . import utils
from .paths import REPO_ROOT, shown

DEFAULT_ROOT = REPO_ROOT / "data"  # where downloads go when ADVLIB_DATA is not set
SAMPLES_DIR = REPO_ROOT / "data" / "samples"

DATASETS = ("mnist", "cifar10")
SOURCES = ("auto", "full", "sample", "exact")
EXACT_SUBSET = "cifar10-exact-subset.npz"

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
# MD5 and size of the official un-gzipped IDX files (byte-identical to yann.lecun.com's once gunzipped).
MNIST_MD5 = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", 47040016),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", 60008),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", 7840016),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", 10008),
}
# Images per split of the full CIFAR-10 set: a JPEG copy with other counts is incomplete.
CIFAR10_SIZES = {"train": 50000, "test": 10000}
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


class DataCorruptError(ValueError):
    """A data file is on disk but damaged or incomplete. The message names the file, says what is
    wrong with it and how to get a good copy."""


def _corrupt(name: str, path: Path, problem: str) -> DataCorruptError:
    return DataCorruptError(f"{path}: {problem}. Delete it and get a good copy: {HOW_TO_GET[name]}")


@dataclass
class Dataset:
    """A split held in memory: ``x`` uint8 (N, C, H, W), ``y`` int64 (N,)."""

    x: torch.Tensor
    y: torch.Tensor
    name: str
    split: str
    origin: str  # "full", "jpeg-copy", "sample", "exact-subset"
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
        suffix = {"full": "", "jpeg-copy": " (JPEG copy)", "sample": " (shipped sample)",
                  "exact-subset": " (pixel-exact subset)"}[self.origin]
        return pretty + suffix

    def subset(self, n: Optional[int] = None, start: int = 0) -> "Dataset":
        """The first ``n`` items from ``start`` (deterministic, no copy)."""
        if (n is not None and n < 0) or start < 0:
            raise ValueError(f"subset needs n >= 0 (or None for all) and start >= 0; got n={n}, start={start}")
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
               drop_last: bool = False, device="cpu", rank: int = 0, world_size: int = 1,
               crop: bool = True) -> "BatchLoader":
        return BatchLoader(self, batch_size, shuffle=shuffle, seed=seed, augment=augment,
                           drop_last=drop_last, device=device, rank=rank, world_size=world_size, crop=crop)


class BatchLoader:
    """Iterates float batches in [0,1] from an in-memory :class:`Dataset`.

    Shuffling is deterministic given ``seed`` and the epoch (``set_epoch``), and with
    ``world_size > 1`` each rank sees its own shard, as a DistributedSampler would; with ``drop_last``
    the ranks' batches of one step together are exactly the single-process batch of ``batch_size *
    world_size`` images of that step.
    ``augment=True`` applies the CIFAR recipe (random crop with 4-pixel zero padding and a
    horizontal flip) on whole batches; with ``crop=False`` only the flip (each image then comes in two
    versions only, so a distillation teacher's output on it can be cached: :mod:`advlib.teacher`).
    """

    def __init__(self, data: Dataset, batch_size: int, shuffle=False, seed=0, augment=False,
                 drop_last=False, device="cpu", rank=0, world_size=1, crop=True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.data, self.batch_size, self.shuffle, self.seed = data, batch_size, shuffle, seed
        self.augment, self.drop_last, self.device = augment, drop_last, torch.device(device)
        self.rank, self.world_size, self.epoch, self.crop = rank, world_size, 0, crop

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
            w = self.world_size
            if self.drop_last:  # whole global batches only: rank r's batch i is every w-th image of the
                glob = self.batch_size * w  # single-process batch i (global batch_size * w), from image r on
                idx = idx[: n // glob * glob]
            else:
                per = -(-n // w)
                idx = torch.cat([idx, idx[: per * w - n]])  # pad like DistributedSampler
            idx = idx[self.rank::w]
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
                x = _crop_flip(x, g, pad=4 if self.crop else 0)
            yield (x.to(self.device, non_blocking=True).float().div_(255),
                   self.data.y[j].to(self.device, non_blocking=True))


def _crop_flip(x: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    n, c, h, w = x.shape
    if pad == 0:  # flips only
        out = x.clone()
        flip = torch.rand(n, generator=g) < 0.5
        out[flip] = out[flip].flip(-1)
        return out
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


def _env_roots() -> list[Path]:
    """The folders named by ``ADVLIB_DATA`` (``os.pathsep``-separated), as given."""
    return [Path(e.strip()) for e in os.environ.get("ADVLIB_DATA", "").split(os.pathsep) if e.strip()]


def data_roots(root: Optional[os.PathLike] = None) -> list[Path]:
    """Folders searched for data, in order (see the module docstring)."""
    roots: list[Path] = []
    if root is not None:
        roots.append(Path(root))
    roots += _env_roots()
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


_VERIFIED: set = set()  # (path, size, mtime) of files whose MD5 was checked in this process


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_mnist_file(path: Path) -> None:
    """Raise :class:`DataCorruptError` unless ``path`` is the official (un-gzipped) MNIST file of its name."""
    md5, size = MNIST_MD5[path.name]
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _VERIFIED:
        return
    if st.st_size != size:
        raise _corrupt("mnist", path, f"it has {st.st_size:,} bytes, the official file {size:,} "
                                      "(truncated, still gzipped, or another file)")
    got = _md5(path)
    if got != md5:
        raise _corrupt("mnist", path, f"its MD5 is {got}, the official file's {md5}: the content is damaged")
    _VERIFIED.add(key)


def _mnist_full(roots: list[Path], train: bool) -> Optional[Dataset]:
    import torchvision  # on first use: two seconds to import, and the shipped samples need none of it

    for r in roots:
        raw = r / "MNIST" / "raw"
        if all((raw / f).exists() for f in MNIST_FILES):
            prefix = "train" if train else "t10k"
            for f in MNIST_FILES:
                if f.startswith(prefix):
                    check_mnist_file(raw / f)
            ds = torchvision.datasets.MNIST(str(r), train=train, download=False)
            return Dataset(ds.data.unsqueeze(1).contiguous(), ds.targets, "mnist",
                           "train" if train else "test", "full", MNIST_CLASSES, note=f"MNIST from {shown(raw)}")
    return None


def _cifar_full(roots: list[Path], train: bool) -> Optional[Dataset]:
    # torchvision on first use, as in _mnist_full
    import torchvision
    from torchvision.datasets.utils import check_integrity

    cls = torchvision.datasets.CIFAR10
    for r in roots:
        folder = r / cls.base_folder
        if (folder / "data_batch_1").exists():
            try:
                ds = cls(str(r), train=train, download=False)  # checks the MD5 of every file
            except RuntimeError:
                files = cls.train_list + cls.test_list + [(cls.meta["filename"], cls.meta["md5"])]
                bad = [f for f, md5 in files if not check_integrity(str(folder / f), md5)]
                if not bad:
                    raise
                problem = f"{', '.join(bad)} missing or failing torchvision's MD5 check"
                raise _corrupt("cifar10", folder, problem) from None
            x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
            return Dataset(x, torch.tensor(ds.targets), "cifar10", "train" if train else "test", "full",
                           CIFAR10_CLASSES, note=f"CIFAR-10 from {shown(r / 'cifar-10-batches-py')}")
    return None


JPEG_ORDER_SEED = 0  # the JPEG copy's images are served in this fixed random order (see _cifar_jpeg)
JPEG_NOTICE = ("CIFAR-10 (JPEG copy): this copy was re-encoded as JPEG and is NOT pixel-exact "
               "(mean error about 6/255); label any figure measured on it 'CIFAR-10 (JPEG copy)'.")


def _find_cifar_jpeg(roots: list[Path]) -> Optional[Path]:
    for r in roots:
        for cand in (r / "cifar10-jpg", r / "cifar10-jpg.tar.gz"):
            if cand.exists():
                return cand
    return None


def jpeg_cache_path(src: Path) -> Path:
    """Where the decoded copy of the JPEG copy ``src`` is cached: a name keyed on its path, size
    and modification time (for a folder: its number of images, their total size, the newest one)."""
    src = Path(src).resolve()
    if src.is_dir():
        stats = [p.stat() for p in src.rglob("*.jpg")]
        size = f"{len(stats)}:{sum(st.st_size for st in stats)}"
        mtime = max((st.st_mtime_ns for st in stats), default=0)
    else:
        st = src.stat()
        size, mtime = st.st_size, st.st_mtime_ns
    key = hashlib.sha1(f"{src}|{size}|{mtime}".encode()).hexdigest()[:16]
    return cache_dir() / f"cifar10-jpg-{key}.npz"


def decode_cifar_jpeg(src: Path, dest: Path) -> Path:
    """Decode the JPEG image-folder copy once into ``dest`` (an .npz of uint8 arrays).

    Raises :class:`DataCorruptError` for an archive or image that cannot be read and for a copy
    that does not hold the full set's 50,000 training and 10,000 test images (``CIFAR10_SIZES``)."""
    from PIL import Image  # only the JPEG copy of CIFAR-10 needs Pillow

    arrays: dict[str, list] = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}

    def add(relpath: str, blob: bytes):
        parts = relpath.split("/")
        # .../{train,test}/<class>/NNNN.jpg
        split, cls = parts[-3], parts[-2]
        if split not in ("train", "test") or cls not in CIFAR10_CLASSES:
            return
        try:
            img = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"), dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as err:  # PIL: UnidentifiedImageError, truncated data
            raise _corrupt("cifar10", src, f"the image {relpath} cannot be decoded ({err})") from None
        if img.shape != (32, 32, 3):
            raise _corrupt("cifar10", src, f"the image {relpath} is {img.shape[1]}x{img.shape[0]}, not 32x32")
        arrays["x_" + split].append((relpath, img.transpose(2, 0, 1)))
        arrays["y_" + split].append((relpath, CIFAR10_CLASSES.index(cls)))

    if src.is_dir():
        for p in sorted(src.rglob("*.jpg")):
            add(p.relative_to(src.parent).as_posix(), p.read_bytes())
    else:
        try:
            with tarfile.open(src, "r:*") as tar:
                for m in tar:
                    if m.isfile() and m.name.endswith(".jpg"):
                        add(m.name, tar.extractfile(m).read())
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            raise _corrupt("cifar10", src, f"it is not a readable .tar.gz archive ({type(err).__name__}: {err}); "
                                           "it is truncated or damaged") from None
    counts = {split: len(arrays["y_" + split]) for split in CIFAR10_SIZES}
    if counts != CIFAR10_SIZES:
        raise _corrupt("cifar10", src, f"it holds {counts['train']:,} training and {counts['test']:,} test images "
                                       f"in {{train,test}}/<class>/*.jpg, the full set {CIFAR10_SIZES['train']:,} "
                                       f"and {CIFAR10_SIZES['test']:,}: the copy is incomplete")
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
    dest = jpeg_cache_path(src)
    if not dest.exists():
        if progress:
            print(f"Decoding the CIFAR-10 JPEG copy {shown(src)} once into {shown(dest)} (about a minute)...",
                  flush=True)
        decode_cifar_jpeg(src, dest)
    with np.load(dest) as z:
        key = "train" if train else "test"
        x, y = torch.from_numpy(z["x_" + key]), torch.from_numpy(z["y_" + key])
    # The image folders sort the copy by class; the official batch files are in random order, and the
    # first N images (train_samples, evaluate(n=...)) must be a fair sample: a fixed random order.
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(JPEG_ORDER_SEED))
    return Dataset(x[order].contiguous(), y[order], "cifar10", key, "jpeg-copy", CIFAR10_CLASSES, note=JPEG_NOTICE)


def _download(name: str, roots: list[Path], train: bool) -> Optional[Dataset]:
    if offline():
        return None
    import torchvision  # on first use, as in _mnist_full

    # never into a folder named by ADVLIB_DATA: that is where a machine keeps (often shared) copies to read
    shared = {r.expanduser().resolve() for r in _env_roots()}
    target = _writable_root([r for r in roots if r not in shared])
    if target is None:
        return None
    cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
    try:
        cls(str(target), train=train, download=True)
    except Exception as err:  # network errors come as URLError, RuntimeError, OSError...
        utils.notice(f"downloading {name} into {shown(target)} failed ({err}); using what is on disk.",
                     key=f"download failed: {name}")
        return None
    return (_mnist_full if name == "mnist" else _cifar_full)([target], train)


def load_sample(name: str, train: bool) -> Dataset:
    path = SAMPLES_DIR / f"{name}-sample.npz"
    if not path.exists():
        raise DataNotFoundError(f"The shipped sample {path} is missing; restore it with `git checkout data/samples`.")
    key = "train" if train else "test"
    try:
        with np.load(path) as z:
            x, y = torch.from_numpy(z["x_" + key]), torch.from_numpy(z["y_" + key])
    except (OSError, ValueError, KeyError, EOFError, zlib.error) as err:  # zipfile.BadZipFile is an OSError
        raise DataCorruptError(f"The shipped sample {path} cannot be read ({type(err).__name__}: {err}); "
                               "restore it with `git checkout data/samples`.") from None
    if x.dim() == 3:
        x = x.unsqueeze(1)
    classes = MNIST_CLASSES if name == "mnist" else CIFAR10_CLASSES
    return Dataset(x.contiguous(), y, name, key, "sample", classes,
                   note=f"shipped sample {path.name}: {len(y)} pixel-exact {key} images")


def load_exact_subset(name: str, train: bool, roots: list[Path]) -> Dataset:
    """The pixel-exact CIFAR-10 subset (``cifar10-exact-subset.npz``) from the first root that holds it."""
    if name != "cifar10":
        raise ValueError(f"source='exact' is the pixel-exact CIFAR-10 subset; {name} has none (use 'full').")
    path = next((r / EXACT_SUBSET for r in roots if (r / EXACT_SUBSET).exists()), None)
    if path is None:
        raise DataNotFoundError(f"{EXACT_SUBSET} was not found (searched: {', '.join(map(str, roots))}); point "
                                "ADVLIB_DATA at the folder that holds it, or use source='full'.")
    key = "train" if train else "test"
    try:
        with np.load(path) as z:
            x, y = torch.from_numpy(z["x_" + key]), torch.from_numpy(z["y_" + key])
    except (OSError, ValueError, KeyError, EOFError, zlib.error) as err:
        raise _corrupt(name, path, f"cannot be read ({type(err).__name__}: {err})") from None
    if x.dim() != 4 or x.shape[1:] != (3, 32, 32) or x.dtype != torch.uint8 or len(x) != len(y):
        raise _corrupt(name, path, f"x_{key} is {x.dtype} {tuple(x.shape)} with {len(y)} labels, "
                       "not uint8 (N, 3, 32, 32)")
    return Dataset(x.contiguous(), y, name, key, "exact-subset", CIFAR10_CLASSES,
                   note=f"pixel-exact CIFAR-10 subset {shown(path)}: {len(y)} {key} images")


def expected_files(name: str, roots: list[Path]) -> str:
    if name == "mnist":
        return ", ".join(str(roots[0] / "MNIST" / "raw" / f) for f in MNIST_FILES)
    return f"{roots[0] / 'cifar-10-batches-py'}/{{data_batch_1..5,test_batch,batches.meta}}"


def load(name: str, split: str = "train", source: str = "auto", root: Optional[os.PathLike] = None,
         verbose: bool = True) -> Dataset:
    """Load ``name`` (``"mnist"`` or ``"cifar10"``), ``split`` (``"train"``/``"test"``).

    ``source="full"`` raises :class:`DataNotFoundError` naming the expected files when the
    full set is neither on disk nor downloadable, and :class:`DataCorruptError` when it is on disk
    but damaged; ``"auto"`` then falls back to the shipped sample, with a notice (once per process;
    a ``UserWarning`` instead when not ``verbose``); ``"sample"`` always uses the shipped sample.
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
    if source == "exact":
        return load_exact_subset(name, train, roots)
    try:
        ds = _load_full(name, roots, train, verbose)
    except DataCorruptError as err:
        if source == "full":
            raise
        return _sample_instead(name, split, verbose, f"the full data set on disk cannot be used ({err})", str(err))
    if ds is not None:
        return ds
    searched = ", ".join(str(r) for r in roots)
    msg = (f"The full {name} data set was not found (searched: {searched}) and could not be downloaded"
           f"{' (ADVLIB_OFFLINE is set)' if offline() else ''}. Expected files: {expected_files(name, roots)}. "
           + HOW_TO_GET[name])
    if source == "full":
        raise DataNotFoundError(msg)
    return _sample_instead(name, split, verbose, "full data set not found", HOW_TO_GET[name])


def _load_full(name: str, roots: list[Path], train: bool, verbose: bool) -> Optional[Dataset]:
    """The full set from the roots, a download, or (CIFAR-10) the JPEG copy; None if none can be had."""
    ds = (_mnist_full if name == "mnist" else _cifar_full)(roots, train)
    if ds is None:
        ds = _download(name, roots, train)
    if ds is None and name == "cifar10":
        ds = _cifar_jpeg(roots, train)
        if ds is not None and verbose:
            utils.notice(JPEG_NOTICE)
    return ds


def _sample_instead(name: str, split: str, verbose: bool, why: str, what_to_do: str) -> Dataset:
    """The shipped sample in place of the full set, with a notice (once per process) saying so and what to
    do, or when not ``verbose`` (a caller that prints nothing, such as a benchmark) a warning saying why."""
    sample = load_sample(name, split == "train")
    if verbose:
        utils.notice(f"using the shipped {name} sample ({len(sample)} {split} images), not the full data set. "
                     f"Results are for teaching only. {what_to_do}")
    else:
        warnings.warn(f"advlib.data: {name} {split}: {why}, using the shipped sample.", stacklevel=3)
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
