"""Small helpers shared by the library: seeds, devices, progress bars, JSON, distributed ranks."""
from __future__ import annotations

import contextlib
import importlib
import json
import math
import numbers
import os
import pkgutil
import random
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Optional

import numpy as np
import torch


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seeded_generator(seed: int, device="cpu") -> torch.Generator:
    """A torch random number generator on ``device`` seeded with ``seed`` (an integer >= 0, else
    ``ValueError``): randomness that neither reads nor moves torch's global generator. On the CPU it
    draws the same numbers as the global generator after ``torch.manual_seed(seed)``."""
    return torch.Generator(device=device).manual_seed(_checked_seed(seed))


def _checked_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}.")
    return int(seed)


@contextlib.contextmanager
def forked_seed(seed: Optional[int], device=None, offset: int = 0):
    """Run the block with torch's generators (the CPU's and ``device``'s, when a GPU) seeded with ``seed + offset``, and
    restore them afterwards: the block draws the same random numbers every time, and the caller's random stream does
    not move. ``seed=None``: no seeding, the block draws from the global generators as they stand."""
    if seed is None:
        yield
        return
    seed = _checked_seed(seed) + offset
    device = torch.device(device) if device is not None else torch.device("cpu")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def get_device(device: str = "auto") -> torch.device:
    """``"auto"``: the GPU if there is one (under torchrun, this process's ``LOCAL_RANK`` GPU), else the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(device)


# --------------------------------------------------------------------------- distributed (torchrun-ready)


def dist_info() -> tuple[int, int]:
    """(rank, world_size): (0, 1) unless torch.distributed is initialised (e.g. under torchrun)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed() -> bool:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment):
    NCCL on GPUs, gloo on CPUs. Returns whether this process is one of several. Idempotent."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not torch.distributed.is_available():
        return False
    if not torch.distributed.is_initialized():
        gpu = torch.cuda.is_available()
        if gpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        torch.distributed.init_process_group("nccl" if gpu else "gloo")
    return True


def close_distributed() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def is_main() -> bool:
    return dist_info()[0] == 0


def all_reduce_sum(values: list[float], device="cpu") -> list[float]:
    """Sum numbers over ranks (identity on one process)."""
    if dist_info()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def barrier() -> None:
    if dist_info()[1] > 1:
        torch.distributed.barrier()


# --------------------------------------------------------------------------- progress


def progress(iterable: Optional[Iterable] = None, enabled: bool = True, **kw):
    """A tqdm bar: a widget in an interactive notebook, compact text when ADVLIB_PROGRESS=text
    (set by the headless course runner, so executed notebooks stay small), none when =off
    or on ranks other than 0."""
    mode = os.environ.get("ADVLIB_PROGRESS", "auto")
    disable = (not enabled) or mode == "off" or not is_main()
    if mode == "text":
        # which tqdm depends on ADVLIB_PROGRESS, read at each call (tqdm.auto: a widget in a notebook)
        from tqdm import tqdm
        kw.setdefault("mininterval", 10.0)
        kw.setdefault("ascii", True)
        kw.setdefault("ncols", 100)
    else:
        from tqdm.auto import tqdm  # see above
    return tqdm(iterable, disable=disable, **kw)


# --------------------------------------------------------------------------- notices


_NOTICED: set = set()  # the keys of the notices already given in this process (a notebook's kernel)
RESUME_NOTICE = ("saved work is reused: a finished run is not trained again, an interrupted run or evaluation "
                 "resumes where it stopped (delete a run's folder to start it afresh).")


def notice(message: str, key: Optional[str] = None) -> bool:
    """Print ``Notice: <message>`` the first time ``key`` (default: the message) comes up in this process,
    so that what holds for a whole session (the data is a JPEG copy, a download failed) is said once in a
    notebook, not at every call; nothing on ranks other than 0. Returns whether it was printed."""
    key = message if key is None else key
    if key in _NOTICED or not is_main():
        return False
    _NOTICED.add(key)
    print("Notice: " + message, flush=True)
    return True


def say_resumed(message: str, verbose: bool) -> None:
    """Saved work is being reused: ``message`` (which run or evaluation, from where) when ``verbose`` (the
    command line), else :data:`RESUME_NOTICE`, once per process whatever is resumed (a notebook)."""
    if verbose:
        if is_main():
            print(message, flush=True)
    else:
        notice(RESUME_NOTICE, key="resume")


# --------------------------------------------------------------------------- argument checks


def import_submodules(package: str, path: Iterable[str]) -> list[ModuleType]:
    """Import every module of ``package`` (its ``__name__`` and ``__path__``) whose name does not start with
    ``_``, in the order of their names: how a package that registers one thing per module (``losses``,
    ``exercises``) finds them, so that adding a module edits no list."""
    return [importlib.import_module(f"{package}.{info.name}")
            for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name) if not info.name.startswith("_")]


def check_count(name: str, value: Any, minimum: int = 1, none_means: Optional[str] = None) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer >= ``minimum``, or None when ``none_means``
    says what None stands for (e.g. ``"all images"``)."""
    if value is None and none_means is not None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        alt = f" (or None: {none_means})" if none_means is not None else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{alt}; got {value!r}.")


def check_writable_dir(path: os.PathLike, what: str = "folder") -> Path:
    """Create the folder ``path`` if missing and make sure files can be written there; raise
    ``OSError`` naming it and what to do otherwise (before hours of work are spent, not after)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise type(err)(f"cannot write into the {what} {path} ({err.strerror or err}): "
                        f"choose another {what} or make it writable.") from None
    return path


# --------------------------------------------------------------------------- JSON


def to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as pretty JSON atomically (write a temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def read_json(path: os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def update_json(path: os.PathLike, **entries: Any) -> dict:
    """Merge ``entries`` into the JSON object at ``path`` (created if absent) and write it back."""
    path = Path(path)
    obj = read_json(path) if path.exists() else {}
    obj.update(to_jsonable(entries))
    write_json(path, obj)
    return obj
