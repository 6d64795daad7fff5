"""Checkpoints trained elsewhere ("bring your own model"), loaded safely into the course's models.

A checkpoint from another code base is a bare ``state_dict`` for its own module names. :func:`load`
reads it with ``torch.load(..., weights_only=True)`` (no code runs while loading), maps the names onto
a registered :mod:`advlib.models` architecture and refuses, saying what to do, when the weights do not
fit. :func:`autoattack_example` is the one third-party CIFAR-10 model on every machine that has the
original AutoAttack package: the example ResNet-18 that ``pyautoattack`` ships.

:func:`robustbench_model` loads a CIFAR-10 model of RobustBench's model zoo (Croce et al. 2021) by its
name there, through the ``robustbench`` package (the optional extra ``zoo``), as a table row or as a
teacher (``"robustbench:<name>"``, e.g. the RSLAD paper's own teacher, TRADES' WRN-34-10
``"robustbench:Zhang2019Theoretically"``). Its files are cached in robustbench's layout under
:func:`robustbench_dir` (``$ADVLIB_ZOO``, else ``~/.cache/advlib/robustbench``); offline, a missing file
is refused with what to do.
"""
from __future__ import annotations

import difflib
import importlib.util
import os
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional, Union

import torch

from . import checkpoints, data, models

# Where known code bases name a module differently from advlib.models (kuangliu/pytorch-cifar's ResNet,
# used by the AutoAttack, TRADES and RSLAD repositories, calls the stages layer1..layer4).
RENAMES = {"resnet18": [(r"^layer(\d)\.", lambda m: f"layers.{int(m.group(1)) - 1}.")],
           "resnet34": [(r"^layer(\d)\.", lambda m: f"layers.{int(m.group(1)) - 1}.")]}


def _unwrap(obj):
    """The state dict inside common checkpoint layouts ({'state_dict': ...}, {'net': ...}, DataParallel)."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "net"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError("it holds no state dict (a mapping of parameter names to tensors)")
    return {re.sub(r"^module\.", "", k): v for k, v in obj.items()}


def load(path: Union[str, Path], model_name: str, normalize: bool = False, device="cpu") -> models.Classifier:
    """A registered ``model_name`` with the weights of a foreign state-dict file (``weights_only=True``).
    ``ValueError`` naming the file and what to do when it is no state dict or does not fit the model."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    try:
        state = _unwrap(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:
        raise ValueError(f"{path} could not be read as a state dict ({type(err).__name__}: {err}). Pass a file "
                         "written with torch.save(model.state_dict(), path).") from None
    for pattern, repl in RENAMES.get(model_name, []):
        state = {re.sub(pattern, repl, k): v for k, v in state.items()}
    model = models.get_model(model_name, normalize=normalize)
    state = {("net." + k if not k.startswith(("net.", "normalize.")) else k): v for k, v in state.items()}
    checkpoints.load_state(model, state, source=f"{path} (read as {model_name!r})")
    return model.to(device).eval()


def autoattack_example_path() -> Path:
    """The example checkpoint the original AutoAttack package ships (``pyautoattack/examples/model_test.pt``)."""
    spec = importlib.util.find_spec("pyautoattack")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("The original AutoAttack package is not installed: pip install pyautoattack "
                                "(make setup installs it).")
    path = Path(next(iter(spec.submodule_search_locations))) / "examples" / "model_test.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from this pyautoattack installation; reinstall pyautoattack.")
    return path


AUTOATTACK_EXAMPLE = ("ResNet-18 (kuangliu/pytorch-cifar layout) trained without adversarial training by the AutoAttack "
                      "authors as the example of their package (pyautoattack, examples/model_test.pt, architecture in "
                      "examples/resnet.py); inputs in [0, 1], no normalisation")


def autoattack_example(device="cpu") -> models.Classifier:
    """The AutoAttack package's example CIFAR-10 ResNet-18 (a standard, non-robust model; see
    :data:`AUTOATTACK_EXAMPLE` for its provenance), as a course ``resnet18``."""
    return load(autoattack_example_path(), "resnet18", device=device)


def save_as_checkpoint(model: models.Classifier, path: Union[str, Path], provenance: str) -> Path:
    """Write a model (from :func:`load`) as an advlib checkpoint, so that it can serve as a teacher
    (``TrainConfig.teacher``) or be evaluated by path; ``provenance`` is stored with it."""
    path = Path(path)
    checkpoints.save_checkpoint(path, {"format": checkpoints.CHECKPOINT_FORMAT, "model_name": model.name,
                                       "config": {"normalize": not isinstance(model.normalize, torch.nn.Identity)},
                                       "model": model.state_dict(), "state": {}, "provenance": provenance})
    return path


# --------------------------------------------------------------------------- RobustBench's model zoo

ROBUSTBENCH = "robustbench:"  # the prefix of a RobustBench model's name in advlib (model.name, teacher specs)
ROBUSTBENCH_INSTALL = ('pip install -e ".[zoo]" in the course checkout (make setup installs it too), or pip install '
                       "robustbench")
PAPER_TEACHER = "Zhang2019Theoretically"  # TRADES' WRN-34-10, the teacher of the RSLAD paper


def robustbench_dir(model_dir: Optional[Union[str, Path]] = None) -> Path:
    """The folder of RobustBench's model files: ``model_dir`` if given, else ``$ADVLIB_ZOO``, else
    ``~/.cache/advlib/robustbench`` (per user, shared by every checkout: a WRN-34-10 is 180 MB)."""
    if model_dir is None:
        model_dir = os.environ.get("ADVLIB_ZOO") or Path.home() / ".cache" / "advlib" / "robustbench"
    return Path(model_dir).expanduser()


def robustbench_path(name: str, model_dir: Optional[Union[str, Path]] = None, threat_model: str = "Linf") -> Path:
    """Where the robustbench package keeps (and looks for) the file of CIFAR-10 model ``name``:
    ``<model_dir>/cifar10/<threat_model>/<name>.pt`` (an ensemble: ``<name>.pt_m0.pt``, ``_m1.pt``, ...)."""
    return robustbench_dir(model_dir) / "cifar10" / threat_model / f"{name}.pt"


def _robustbench():
    """``robustbench.utils`` (imported on first use: robustbench is an optional extra). ``ImportError``
    saying how to install it when it is missing."""
    try:
        import robustbench  # noqa: F401  (on first use: robustbench is the optional extra `zoo`)
    except ImportError as err:
        if isinstance(err, ModuleNotFoundError) and err.name == "robustbench":
            raise ImportError(f"RobustBench models need the robustbench package (an optional extra of advlib): "
                              f"{ROBUSTBENCH_INSTALL}.") from None
        # robustbench 1.1.1 (PyPI)'s __init__ also imports its benchmark and data-set code, which need
        # ``autoattack.state`` (missing from the AutoAttack copies pyautoattack and torchattacks install)
        # and ``pkg_resources`` (gone from setuptools >= 81). The model loader needs neither: import it
        # without running that __init__.
        spec = importlib.util.find_spec("robustbench")
        sys.modules["robustbench"] = importlib.util.module_from_spec(spec)
    try:  # robustbench, the optional extra, as above
        from robustbench import utils
        from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel  # noqa: F401
    except ImportError as err:
        raise _import_error(err) from err
    return utils


def _import_error(err: ImportError) -> ImportError:
    return ImportError(f"The robustbench package is installed but its model loader cannot be imported "
                       f"({type(err).__name__}: {err}). Reinstall it with its dependencies: {ROBUSTBENCH_INSTALL}.")


def _robustbench_entry(name: str, threat_model: str) -> dict:
    # robustbench: the optional extra, imported (and checked) by _robustbench() first
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    try:
        tm = ThreatModel(threat_model)
    except ValueError:
        raise ValueError(f"Unknown RobustBench threat model {threat_model!r}; one of "
                         f"{[t.value for t in ThreatModel]}.") from None
    zoo = model_dicts[BenchmarkDataset.cifar_10].get(tm, {})
    if name not in zoo:
        close = difflib.get_close_matches(name, list(zoo), n=5, cutoff=0.5)
        raise ValueError(f"{name!r} is not a CIFAR-10 {threat_model} model of RobustBench's model zoo (robustbench "
                         f"{_robustbench_version()}, {len(zoo)} models"
                         + (f"; close: {', '.join(close)}" if close else "") + "). The names are those of "
                         "https://robustbench.github.io (e.g. 'Zhang2019Theoretically', TRADES' WRN-34-10).")
    return zoo[name]


def _robustbench_version() -> str:
    try:
        return version("robustbench")
    except PackageNotFoundError:
        return "of unknown version"


def robustbench_model(name: str, model_dir: Optional[Union[str, Path]] = None, threat_model: str = "Linf",
                      device="cpu", download: Optional[bool] = None) -> torch.nn.Module:
    """A CIFAR-10 model of RobustBench's model zoo (Croce et al., "RobustBench: a standardized adversarial
    robustness benchmark", NeurIPS 2021 Datasets and Benchmarks; https://robustbench.github.io), by its
    name there, e.g. ``"Zhang2019Theoretically"`` (TRADES' WRN-34-10, the RSLAD paper's teacher).

    A thin wrapper over ``robustbench.utils.load_model`` (the optional extra ``zoo``: ``pip install -e
    ".[zoo]"``): robustbench builds the architecture, downloads the weights into its cache layout
    ``<model_dir>/cifar10/<threat_model>/<name>.pt`` (see :func:`robustbench_dir` for the default
    ``model_dir``) and reads them from there, without a network, once the file is there. The model
    takes inputs in [0, 1] (any normalisation is inside it, RobustBench's convention, as advlib's),
    comes in eval mode on ``device`` and carries ``name`` (``"robustbench:<name>"``) and ``provenance``.
    Use it as a table row (:func:`advlib.evaluate.evaluate`) or as a teacher
    (``TrainConfig.teacher = "robustbench:<name>"``, read by :meth:`advlib.teacher.Teacher.load`).

    ``download``: whether a missing file may be downloaded (default: unless ``ADVLIB_OFFLINE`` is set).
    A missing file that cannot be downloaded raises ``FileNotFoundError`` saying where to put it."""
    utils = _robustbench()
    name = name[len(ROBUSTBENCH):] if name.startswith(ROBUSTBENCH) else name
    entry = _robustbench_entry(name, threat_model)
    path = robustbench_path(name, model_dir, threat_model)
    ids = entry.get("gdrive_id")
    files = [path] if not isinstance(ids, list) else [Path(f"{path}_m{i}.pt") for i in range(len(ids))]
    timm_name = f"{name.lower().replace('-', '_')}_cifar10_{threat_model.lower()}"
    # a dependency of the optional robustbench, which lets timm build and fetch some models (into the Hugging Face
    # cache, not model_dir)
    import timm

    in_timm = timm.is_model(timm_name)
    missing = [] if in_timm else [f for f in files if not f.is_file()]
    if download is None:
        download = not data.offline()
    if missing and not download:
        raise FileNotFoundError(_missing_message(name, threat_model, path, missing, ids, "downloads are off "
                                                 "(ADVLIB_OFFLINE is set or download=False)"))
    before = set(path.parent.iterdir()) if path.parent.is_dir() else set()
    try:
        model = utils.load_model(name, model_dir=str(robustbench_dir(model_dir)), dataset="cifar10",
                                 threat_model=threat_model)
    except Exception as err:
        if not missing and not in_timm:
            raise ValueError(f"RobustBench could not load {name!r} from {', '.join(map(str, files))} "
                             f"({type(err).__name__}: {str(err).strip()[:200]}). A damaged or partial download "
                             "(a web page saved instead of the weights)? Delete the file(s) and load again to "
                             "download them anew. (A file that is whole but holds more than tensors is refused by "
                             "robustbench's torch.load, weights_only since torch 2.6: update robustbench.)") from err
        # what the failed download left behind (a partial file, or a web page instead of weights)
        left = set(path.parent.iterdir()) - before if path.parent.is_dir() else set()
        for f in left:
            if f.name.startswith(path.name) and f.is_file():
                f.unlink()
        why = f"the download failed ({type(err).__name__}: {str(err).strip()[:300]})"
        if in_timm:
            raise FileNotFoundError(f"RobustBench's {name!r} is a timm model, which timm downloads into the Hugging "
                                    f"Face cache (HF_HOME), and {why}. Connect this machine to the internet and "
                                    "load it again, or load it once on a machine that is online and copy its "
                                    "Hugging Face cache here.") from err
        raise FileNotFoundError(_missing_message(name, threat_model, path, missing, ids, why)) from err
    model = model.to(device).eval()
    model.name = ROBUSTBENCH + name
    model.provenance = (f"RobustBench model zoo (Croce et al. 2021, https://robustbench.github.io), CIFAR-10 "
                        f"{threat_model} entry {name!r}, loaded by robustbench {_robustbench_version()} from "
                        + (f"timm's {timm_name!r}" if in_timm else ", ".join(map(str, files)))
                        + "; inputs in [0, 1]")
    return model


def _missing_message(name, threat_model, path, missing, ids, why) -> str:
    gid = ids if isinstance(ids, list) else [ids]
    names = [path.name] if len(gid) == 1 else [f"{path.name}_m{i}.pt" for i in range(len(gid))]
    gdown = "; ".join(f"gdown https://drive.google.com/uc?id={i} -O {f}" for i, f in zip(gid, names) if i)
    return (f"RobustBench's CIFAR-10 {threat_model} model {name!r} is not in the cache ({', '.join(map(str, missing))} "
            f"missing) and {why}. Either connect this machine to the internet and load it again (robustbench "
            f"downloads it there), or on a machine that is online run python -c \"from advlib import zoo; "
            f"zoo.robustbench_model({name!r}, model_dir='rb')\" and copy rb/cifar10/{threat_model}/"
            f"{path.name}{'*' if len(gid) > 1 else ''} (or the output of: {gdown}) to {path.parent}/ here; or "
            f"point model_dir= or $ADVLIB_ZOO at a folder holding cifar10/{threat_model}/{names[0]}.")
