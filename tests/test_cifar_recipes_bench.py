"""``benchmarks/cifar_recipes.py``: its variants are real training settings, a warm-up given as a fraction of the
steps becomes the epochs it means, ``--runs`` names runs exactly, and ``--append`` keeps the rows already there."""
from __future__ import annotations

import sys

import pytest

from advlib import losses, paths, train

sys.path.insert(0, str(paths.REPO_ROOT / "benchmarks"))
import cifar_recipes as cr  # noqa: E402


@pytest.mark.parametrize("name", list(cr.VARIANTS))
def test_every_variant_is_a_valid_training_config(name):
    cfg = cr.run_config(cr.settings(name, 0.99), 3.52, seed=1, out_dir="x", progress=False)
    losses.validate(cfg)
    assert (cfg.epochs, cfg.seed, cfg.ema_decay) == (3.52, 1, 0.99)
    for field, value in cr.VARIANTS[name][1].items():  # the lever the row names is the one the run trains with
        if field != "warmup_fraction":
            assert getattr(cfg, field) == value


def test_the_cosine_variant_warms_up_over_its_fraction_of_the_steps_then_decays_to_zero():
    cfg = cr.run_config(cr.settings("nfgsm_cosine", 0.99), 4.0)
    assert cfg.warmup_epochs == pytest.approx(0.6)
    assert train.lr_factor(cfg, 0.075) == pytest.approx(0.5)
    assert train.lr_factor(cfg, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert train.lr_factor(cfg, 0.5) < train.lr_factor(cfg, 0.2)


def test_variants_differing_only_in_their_schedule_share_a_step_cost():
    def cost(n):
        return {k: v for k, v in cr.settings(n, 0.99).items() if k not in cr.SCHEDULE_FIELDS}
    assert cost("nfgsm_cosine") == cost("nfgsm") == cost("nfgsm_lr04")
    assert cost("pgd3") != cost("nfgsm")


def test_runs_name_variant_and_seed_and_refuse_unknown_names():
    assert cr.parse_runs(["nfgsm:1", "pgd2"]) == [("nfgsm", 1), ("pgd2", 0)]
    with pytest.raises(SystemExit, match="unknown variant 'nfgsmm'.*nfgsm_cosine"):
        cr.parse_runs(["nfgsmm:1"])
    with pytest.raises(SystemExit, match="must be an integer"):
        cr.parse_runs(["nfgsm:one"])


def test_appended_rows_keep_the_existing_table_and_reading():
    old = "# Title\n\nCommand: `a`.\n\n| variant |\n|---|\n| PGD-2 |\n\n## Reading\n\n- text\n"
    new = "# CIFAR-10 CPU recipes at equal steps (3.52 epochs a run)\n\nCommand: `b`.\n\n| variant |\n|---|\n| N |"
    out = cr.append_rows(old, new)
    assert out.startswith(old.rstrip("\n"))
    assert "\n\n## Added rows: CIFAR-10 CPU recipes at equal steps (3.52 epochs a run)\n\nCommand: `b`." in out
    assert out.endswith("| N |\n")
