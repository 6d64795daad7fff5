"""The teacher shipped in data/models/ (issue 19, item 3): small, safe to load, and the model its records
describe: its predictions on the shipped test sample (the first 500 of the 1,017 pixel-exact test images)
are those its evaluation recorded image by image."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from advlib import checkpoints, data, paths, recipes
from advlib.teacher import Teacher

SHIPPED = paths.REPO_ROOT / "data" / "models" / "cifar_teacher.pt"
RECORD = SHIPPED.with_suffix(".json")
EVALUATION = SHIPPED.with_name("eval_cifar_teacher.json")

pytestmark = pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped teacher in data/models (not yet trained)")


def test_the_file_is_small_and_matches_its_record():
    blob = SHIPPED.read_bytes()
    rec = json.loads(RECORD.read_text())
    assert len(blob) <= 10 * 2**20 and rec["bytes"] == len(blob)
    assert rec["sha256"] == hashlib.sha256(blob).hexdigest()
    assert rec["training"]["config"]["model"] == recipes.get("cifar_teacher").settings["model"]
    assert rec["training"]["train_seconds"] <= 2 * 3600  # the budget on a 2-core CPU
    ck = torch.load(SHIPPED, weights_only=True)  # no code runs while loading
    assert ck["format"] == checkpoints.CHECKPOINT_FORMAT and "ema" not in ck


def test_predictions_are_those_its_evaluation_recorded():
    ev = json.loads(EVALUATION.read_text())
    teacher = Teacher.load(SHIPPED, dataset="cifar10")
    x, y = data.load("cifar10", "test", source="sample").tensors()
    with torch.no_grad():
        right = (teacher.model(x).argmax(1) == y).tolist()
    recorded = [c == "1" for c in ev["masks"]["Clean"][: len(right)]]
    agree = sum(a == b for a, b in zip(right, recorded)) / len(right)
    assert agree >= 0.995, f"the shipped teacher agrees with its recorded evaluation on only {agree:.1%} of images"
    assert sum(right) / len(right) > 0.6  # a trained model, not random weights
    assert ev["dataset"] == "cifar10" and ev["data_origin"] == "exact-subset" and ev["n"] >= 1000
