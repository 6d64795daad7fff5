"""The sanity checks: raised when the numbers say so, quiet when the difference is noise."""
from __future__ import annotations

import pytest
import torch

from advlib import checks


@pytest.mark.parametrize("check, bad, good", [
    (checks.fgsm_vs_noise, (0.95, 0.65, 200), (0.60, 0.65, 200)),
    (checks.label_leaking, (0.915, 0.798, 1000), (0.80, 0.81, 1000)),
    (checks.pgd_vs_autoattack, (0.872, 0.770, 1000), (0.914, 0.892, 1000)),
    (checks.converged, (0.90, 0.80, 200), (0.90, 0.895, 200)),
])
def test_flags_are_raised_beyond_noise_only(check, bad, good):
    flag = check(*bad)
    assert flag.raised and flag.suggests and flag.to_try and "%" in flag.observed
    assert str(flag).startswith("FLAG")
    assert not check(*good).raised


def test_small_samples_need_bigger_differences():
    assert checks.pgd_vs_autoattack(0.90, 0.85, 1000).raised  # intervals of about ±2 points each
    assert not checks.pgd_vs_autoattack(0.90, 0.85, 50).raised  # ±8 points on 50 images


def test_eps_zero_and_monotonicity():
    assert checks.eps_zero(0.95, 0.96, 100).raised and not checks.eps_zero(0.96, 0.96, 100).raised
    assert checks.monotone_in_eps(0.40, 0.60, 500, 0.1).raised
    assert not checks.monotone_in_eps(0.40, 0.30, 500, 0.1).raised


def test_square_and_autoattack_messages():
    after = {"apgd-ce": 0.80, "apgd-t": 0.78, "fab-t": 0.78, "square": 0.77}
    assert checks.square_after_white_box(after, 1000).raised
    assert not checks.square_after_white_box({**after, "square": 0.78}, 1000).raised
    assert checks.square_after_white_box({"apgd-ce": 0.5}, 10) is None
    flags = checks.autoattack_messages(["it seems to be a randomized defense!"])
    assert flags[0].raised and "randomized" in flags[0].observed


def test_the_report_lists_raised_flags():
    from advlib.course import report

    ok = checks.fgsm_vs_noise(0.60, 0.65, 200).as_dict()
    bad = checks.pgd_vs_autoattack(0.872, 0.770, 1000).as_dict()
    blocks = report.flag_blocks({"PGD": {"flags": [ok]}, "FGSM-RS": {"flags": [ok, bad]}})
    table = [b for b in blocks if b[0] == "table"][0]
    assert table[2][0][:2] == ["FGSM-RS", "PGD close to AutoAttack"] and "1 of 3" in table[3]
    assert "All 1 sanity checks" in report.flag_blocks({"PGD": {"flags": [ok]}})[1][1]
    assert report.flag_blocks({}) == []


def test_pgd_vs_other_attacks_threshold():
    assert checks.pgd_vs_other_attacks(0.85, 0.0, 200, "PGD-20", ["CW∞-20"]).raised
    assert not checks.pgd_vs_other_attacks(0.40, 0.33, 100, "PGD-20", ["AutoAttack"]).raised  # ±9 points each
    assert checks.pgd_vs_other_attacks(0.40, 0.33, 2000).raised


def test_scaled_logits_are_caught_by_the_checks(trained_mnist, mnist_sample):
    """Notebook 06's first masked model: the same predictions, a saturated softmax. PGD on the cross-entropy
    stands still, the CW margin does not, and the check comparing them raises its flag; the honest model
    raises none."""
    from advlib import evaluate, masking

    test = mnist_sample[1]
    flags = {}
    for name, model in (("plain", trained_mnist), ("scaled", masking.ScaledLogits(trained_mnist, 1e4))):
        res = evaluate.evaluate(model, test, ["pgd-20", "cw-20"], eps=0.3, alpha=0.03, n=200, progress=False,
                                n_checks=100)
        flags[name] = {f["name"]: f["raised"] for f in res["flags"]}
        flags[name + "_acc"] = (res["robust"]["PGD-20"], res["robust"]["CW∞-20"])
    key = "cross-entropy PGD close to the other attacks"
    assert flags["scaled"][key] and not flags["plain"][key], flags
    assert flags["scaled_acc"][0] > flags["scaled_acc"][1] + 0.3, flags


def test_quantized_input_has_no_gradient(trained_mnist, mnist_sample):
    from advlib import attacks, masking

    x, y = mnist_sample[1].tensors(32)
    q = masking.QuantizedInput(trained_mnist, 16)
    g, _, _ = attacks.input_gradient(q, x, y)
    assert torch.count_nonzero(g) == 0
    with torch.no_grad():
        assert (q(x).argmax(1) == trained_mnist(x).argmax(1)).float().mean() > 0.9
    with pytest.raises(ValueError, match="levels"):
        masking.QuantizedInput(trained_mnist, 1)


def test_catastrophic_overfitting_is_a_fall_from_the_peak_with_fgsm_still_high():
    def trace(pgd, fgsm):
        return [{"epoch": (i + 1) / 4, "holdout_clean": 0.95, "holdout_fgsm": f, "holdout_pgd": p}
                for i, (p, f) in enumerate(zip(pgd, fgsm))]
    fell = checks.catastrophic_overfitting(trace([0.1, 0.3, 0.05, 0.0], [0.5, 0.7, 0.9, 0.98]), n=500)
    assert fell["collapsed"] and fell["peak_pgd"] == 0.3 and fell["peak_epoch"] == 0.5 and fell["when"] == 0.75
    kept = checks.catastrophic_overfitting(trace([0.1, 0.5, 0.8, 0.84], [0.5, 0.8, 0.9, 0.96]), n=500)
    assert not kept["collapsed"] and kept["when"] is None
    never = checks.catastrophic_overfitting(trace([0.02, 0.01, 0.02, 0.01], [0.5, 0.8, 0.9, 0.96]), n=500)
    assert not never["collapsed"]  # never robust is not a collapse
    small = trace([0.05, 0.15, 0.02, 0.0], [0.5, 0.7, 0.9, 0.98])
    assert checks.catastrophic_overfitting(small, n=500)["collapsed"]
    assert not checks.catastrophic_overfitting(small, n=20)["collapsed"]  # 15% -> 0% on 20 images: noise
    with pytest.raises(ValueError, match="monitor_every"):
        checks.catastrophic_overfitting([], n=500)
