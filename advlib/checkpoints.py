"""Checkpoint files: writing them atomically, reading them safely, and rebuilding a model from one.

An advlib checkpoint is a dict saved with ``torch.save`` whose ``"format"`` is :data:`CHECKPOINT_FORMAT`,
holding the model's name, its training config, its weights (and the averaged weights of a run trained
with weight averaging), and whatever else its writer keeps (the optimiser and RNG states of
:func:`advlib.train.fit`, the provenance of :func:`advlib.zoo.save_as_checkpoint`). It is read with
``weights_only=True``: no code runs while loading. :func:`save_checkpoint` also writes the teacher's
soft-label cache (:mod:`advlib.teacher`).
"""
from __future__ import annotations

import errno
import hashlib
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn

from . import models, paths

CHECKPOINT_FORMAT = "advlib-checkpoint-v1"


def _nbytes(obj: Any) -> int:
    """Bytes held by the tensors in a nested payload (about the size of its checkpoint)."""
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 0


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically: an interruption or a failed write (a full disk) never
    leaves a half-written checkpoint, and the previous ``path`` stays intact. A failed write raises
    ``OSError`` saying so, how much space is free and what to do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(payload, tmp)
    except (OSError, RuntimeError) as err:  # torch reports a full disk as "enforce fail at inline_container.cc"
        tmp.unlink(missing_ok=True)
        free, needed = shutil.disk_usage(path.parent).free, _nbytes(payload)
        space = f"{free / 2**20:,.0f} MiB free there, the checkpoint needs about {needed / 2**20:,.0f} MiB"
        full = free < 1.1 * needed + 2**20  # what a full disk leaves once the partial file is removed
        why = f"the disk is full ({space})" if full else f"the write failed ({err}; {space})"
        kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
        raise OSError(errno.ENOSPC if full else errno.EIO,
                      f"Could not write the checkpoint {path}: {why}. Nothing was lost: {kept}. Free some space "
                      "(or choose another out_dir) and re-run the same command to resume from the last "
                      "checkpoint.") from err
    tmp.replace(path)  # atomic: an interruption never leaves a half-written checkpoint


def load_checkpoint(path: Any, map_location="cpu") -> dict:
    """The payload of the advlib checkpoint at ``path`` (loaded with ``weights_only=True``).
    ``FileNotFoundError`` if there is none; ``ValueError`` naming the file and what to do if it is
    truncated, damaged, or not an advlib checkpoint."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}. Train first (python -m advlib train ...) "
                                "or pass the path of an existing last.pt / best.pt.")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable advlib checkpoint ({type(err).__name__}: "
                         f"{str(err).strip().splitlines()[0] if str(err).strip() else 'no details'}): it is truncated, "
                         "damaged or another kind of file. Copy it again from where it was trained, or re-train "
                         "(python -m advlib train ... writes last.pt and best.pt).") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an advlib checkpoint (expected format {CHECKPOINT_FORMAT!r}).")
    return ck


WEIGHTS = ("auto", "averaged", "raw")


def load_model(path: Any, model_name: Optional[str] = None, device="cpu", weights: str = "auto",
               channels_last: Optional[bool] = False) -> models.Classifier:
    """Rebuild the model stored in an advlib checkpoint. With ``model_name``, refuse a checkpoint
    that was trained for another architecture.

    ``weights``: ``"auto"`` (the default) gives the averaged weights of a run trained with weight
    averaging (``TrainConfig.ema_decay``) and the raw weights otherwise; ``"averaged"`` insists on the
    average; ``"raw"`` gives the last optimiser step's weights. The model's ``weights`` attribute says
    which it holds.

    ``channels_last``: the model in channels-last memory (faster float32 convolutions on CPUs); ``None``: when
    the run trained so (``TrainConfig.channels_last`` in the checkpoint's config)."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}; got {weights!r}")
    ck = load_checkpoint(path)
    exported = ck.get("weights")  # a file of export_model: one set of weights, of the kind it says
    if weights == "averaged" and "ema" not in ck and exported != "averaged":
        raise ValueError(f"{path} holds no averaged weights: it was trained without weight averaging "
                         "(ema_decay = 0). Load weights='raw' (or 'auto'), or re-train with ema_decay > 0.")
    stored = ck["model_name"]
    if model_name is not None and model_name != stored:
        raise ValueError(f"Checkpoint {path} holds a {stored!r} model, not {model_name!r}: "
                         f"build get_model({stored!r}) or pick the checkpoint of a {model_name!r} run.")
    cfg = ck.get("config", {})
    model = models.get_model(stored, normalize=bool(cfg.get("normalize", False)))
    use_average = "ema" in ck and weights != "raw"
    load_state(model, ck["ema"]["weights"] if use_average else ck["model"], source=str(path))
    model.weights = exported or ("averaged" if use_average else "raw")
    if channels_last is None:
        channels_last = bool(cfg.get("channels_last", False))
    model = model.to(device)
    return (model.to(memory_format=torch.channels_last) if channels_last else model).eval()


def export_model(src: Any, dst: Any, weights: str = "auto", provenance: Optional[str] = None) -> dict:
    """Write the model of checkpoint ``src`` to ``dst`` as a small advlib checkpoint to ship or share: one
    set of weights (``weights`` as in :func:`load_model`: the average of a run trained with weight
    averaging, unless ``"raw"``), the training config, no optimiser or RNG state. :func:`load_model`
    and :class:`advlib.teacher.Teacher` read it like any checkpoint. Returns what was written: the model,
    which weights, the file's size and SHA-256, and the config as stored (paths relative to the repository)."""
    model = load_model(src, weights=weights)
    ck = load_checkpoint(src)
    config = {k: (paths.shown(v) if k in ("out_dir", "teacher") and v else v) for k, v in ck.get("config", {}).items()}
    payload = {"format": CHECKPOINT_FORMAT, "model_name": model.name, "config": config,  # no machine's paths
               "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
               "state": {}, "weights": model.weights, "provenance": provenance or f"exported from {Path(src).name}"}
    dst = Path(dst)
    save_checkpoint(dst, payload)
    data = dst.read_bytes()
    return {"file": dst.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "model": model.name,
            "parameters": models.count_parameters(model), "weights": model.weights, "source": Path(src).name,
            "provenance": payload["provenance"], "config": config}


def load_state(model: nn.Module, state: dict, source: str = "checkpoint") -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        name = getattr(model, "name", type(model).__name__)
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = " ".join(lines[1:3])[:300] or lines[0]
        raise ValueError(f"The weights in {source} do not fit a {name!r} model (a checkpoint of another "
                         f"model?): {detail}. Name the architecture the checkpoint was trained as.") from None
