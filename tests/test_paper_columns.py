"""The RSLAD table's columns as the papers' code defines them, one set of images per comparison, the
weak-attack check, and AutoAttack's first attacks completed into the standard version on a subset."""
from __future__ import annotations

import pytest
import torch

from advlib import attack_registry, autoattack, checks, data, evaluate, record, zoo
from advlib.course import files

from .conftest import SHARED_DATA

EPS = 8 / 255


# ------------------------------------------------------------------ the columns' definitions


def test_each_column_is_the_attack_of_the_papers_code():
    s = {c: evaluate.parse_attack(sp, EPS).settings() for c, sp in evaluate.RSLAD_SPECS.items()}
    # SAT (Madry et al., cifar10_challenge): 20 steps of 2/255 on the cross-entropy from a uniform start
    assert (s["PGD_SAT"]["loss"], s["PGD_SAT"]["steps"], s["PGD_SAT"]["random_start"]) == ("ce", 20, "uniform")
    assert s["PGD_SAT"]["alpha"] == pytest.approx(2 / 255)
    # TRADES' evaluation (pgd_attack_cifar10.py), as the RSLAD code runs it: 20 steps of 0.003, CE, uniform start
    assert (s["PGD_TRADES"]["loss"], s["PGD_TRADES"]["steps"], s["PGD_TRADES"]["random_start"]) == ("ce", 20, "uniform")
    assert s["PGD_TRADES"]["alpha"] == 0.003
    assert (s["CW∞"]["loss"], s["CW∞"]["steps"], s["CW∞"]["alpha"]) == ("cw", 20, pytest.approx(2 / 255))
    assert s["AA"]["version"] == "standard" and s["AA"]["attacks"] == list(autoattack.STANDARD)
    assert all(s[c]["eps"] == EPS for c in s)
    for c in evaluate.RSLAD_SPECS:  # each column cites where it comes from
        assert evaluate.RSLAD_SOURCES[c]


def test_the_kl_attack_keeps_a_name_of_its_own_outside_the_table():
    kl = evaluate.parse_attack("pgd-20-kl", EPS)
    assert kl.name == "PGD-KL-20" and kl.settings()["random_start"] == "normal"
    assert attack_registry.published_column(kl.settings()) is None
    assert "pgd-20-kl" not in evaluate.RSLAD_SPECS.values()


@pytest.mark.parametrize("column", ["PGD_SAT", "PGD_TRADES"])
def test_the_pgd_columns_agree_with_torchattacks(trained_mnist, mnist_sample, column):
    """The column's attack, run plainly (no bookkeeping), gives torchattacks' PGD images, same seed."""
    import torchattacks

    x, y = mnist_sample[1].tensors(64)
    spec = evaluate.parse_attack(evaluate.RSLAD_SPECS[column], EPS)
    torch.manual_seed(3)
    ours = spec(trained_mnist, x, y)
    torch.manual_seed(3)
    theirs = torchattacks.PGD(trained_mnist, eps=EPS, alpha=spec.alpha, steps=20, random_start=True)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)


# ------------------------------------------------------------------ the weak-attack check


def test_weaker_than_fires_beyond_the_noise_only():
    assert checks.weaker_than(0.39, 0.04, 1017, "PGD-KL-20", "FGSM").raised
    assert not checks.weaker_than(0.05, 0.04, 1017, "PGD-20", "FGSM").raised  # within the intervals
    assert not checks.weaker_than(0.30, 0.40, 1017, "PGD-20", "FGSM").raised  # stronger, as it should be
    assert not checks.weaker_than(0.30, 0.25, 40, "PGD-20", "PGD-10").raised  # 40 images cannot tell


def _raised(res):
    return [f["name"] for f in res["flags"] if f["raised"]]


def test_the_check_fires_on_the_old_kl_column_and_not_on_cross_entropy_pgd(trained_mnist, mnist_sample):
    """A natural model (MNIST, ε = 0.3): the KL attack from x + 0.001·N is weaker than FGSM; PGD on the
    cross-entropy or the CW margin with a step that reaches the ball's edge is not. (A step too small
    for the budget is weak too: 20 steps of CIFAR's 0.003 cannot leave a ball of 0.3, and are flagged.)"""
    res = evaluate.evaluate(trained_mnist, mnist_sample[1], ["fgsm", "pgd-20-kl"], eps=0.3, n=300, progress=False)
    assert "PGD-KL-20 at least as strong as FGSM" in _raised(res)
    new = evaluate.evaluate(trained_mnist, mnist_sample[1], ["fgsm", "pgd-20", "cw-20"], eps=0.3, n=300, progress=False)
    assert not [f for f in _raised(new) if "at least as strong" in f]
    tiny = evaluate.evaluate(trained_mnist, mnist_sample[1], ["fgsm", "pgd-20@0.003"], eps=0.3, n=300, progress=False)
    assert "PGD-20 (step 0.003) at least as strong as FGSM" in _raised(tiny)


def test_more_steps_of_the_same_attack_must_not_be_weaker(monkeypatch, trained_mnist, mnist_sample):
    """The family comparison: a 'longer' run that leaves more images correct is flagged (here faked by
    swapping the two runs' masks)."""
    real = evaluate.robust_mask

    def swapped(spec, model, x, y, candidates, *a, **kw):
        other = {"PGD-10": "pgd-1", "PGD-1": "pgd-10"}.get(spec.name)
        return real(evaluate.parse_attack(other, spec.eps, spec.alpha) if other else spec, model, x, y, candidates,
                    *a, **kw)

    monkeypatch.setattr(evaluate, "robust_mask", swapped)
    res = evaluate.evaluate(trained_mnist, mnist_sample[1], ["pgd-1", "pgd-10"], eps=0.2, alpha=0.05, n=300,
                            progress=False)
    assert "PGD-10 at least as strong as PGD-1" in _raised(res)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / data.EXACT_SUBSET).exists(), reason="needs ../shared/data")
def test_a_natural_cifar_model_keeps_nothing_under_the_papers_pgd_columns():
    """The AutoAttack package's natural ResNet-18 on pixel-exact CIFAR-10 test images: PGD_SAT,
    PGD_TRADES and CW∞ leave nothing, as the paper's Natural rows; the old KL attack keeps a large share
    and the weak-attack check says so."""
    test = data.load("cifar10", "test", source="exact", root=SHARED_DATA)
    model = zoo.autoattack_example().to(memory_format=torch.channels_last)
    res = evaluate.rslad_columns(model, test, n=48, with_aa=False, progress=False, n_checks=16)
    assert res["clean"] > 0.85
    for c in ("PGD_SAT", "PGD_TRADES", "CW∞"):
        assert res["robust"][c] <= 0.01, (c, res["robust"][c])
    assert not [f for f in _raised(res) if "at least as strong" in f]
    old = evaluate.evaluate(model, test, ["fgsm", "pgd-20-kl"], eps=EPS, n=200, progress=False, sanity_checks=True,
                            n_checks=16)  # 200 images: enough for the gap (about 17 points) to exceed both intervals
    assert old["robust"]["PGD-KL-20"] > old["robust"]["FGSM"]
    assert "PGD-KL-20 at least as strong as FGSM" in _raised(old)


# ------------------------------------------------------------------ one set of images per comparison


def test_the_worst_case_leaves_out_attacks_run_on_fewer_images(trained_mnist, mnist_sample):
    res = evaluate.evaluate(trained_mnist, mnist_sample[1], ["fgsm", "pgd-5", "cw-5"], eps=0.1, alpha=0.02, n=200,
                            n_per_attack={"cw-5": 50}, progress=False, sanity_checks=False)
    w = res["worst_case"]
    assert w["n"] == 200 and w["attacks"] == ["FGSM", "PGD-5"] and w["left_out"] == {"CW∞-5": 50}
    table = evaluate.format_table({"m": res})
    assert "CW∞-5 (first 50)" in table and "| FGSM |" in table
    # every column on the same images: no count in the headers
    same = evaluate.evaluate(trained_mnist, mnist_sample[1], ["fgsm", "pgd-5"], eps=0.1, alpha=0.02, n=100,
                             progress=False, sanity_checks=False)
    assert "(first" not in evaluate.format_table({"m": same}) and same["worst_case"]["n"] == 100


def test_metrics_that_mix_image_sets_are_refused(tmp_path):
    meta = {"Clean": {"attack": record.CLEAN, "n": 1017}, "FGSM": {"attack": {"kind": "fgsm"}, "n": 1017},
            "AA": {"attack": {"kind": "aa"}, "n": 100},
            evaluate.WORST: {"attack": {"kind": "worst_case", "of": ["FGSM", "AA"]}, "n": 100}}
    bad = record.image_set_problems({"tables": {"t": {"columns_meta": meta}}})
    assert bad and "FGSM" in bad[0]
    meta[evaluate.WORST]["attack"]["of"] = ["FGSM"]
    meta[evaluate.WORST]["n"] = 1017
    assert record.image_set_problems({"tables": {"t": {"columns_meta": meta}}}) == []
    assert record.image_set_problems({"goal": {"SAT": {"p_value": 0.01}}})  # a paired test without its n
    assert record.image_set_problems({"goal": {"SAT": {"p_value": 0.01, "n": 300}}}) == []
    run = record.Run("x", "smoke", tmp_path)
    run.set(goal={"SAT": {"p_value": 0.01}})
    with pytest.raises(ValueError, match="different images"):
        run.finish()


def _metrics_the_course_wrote():
    """The metrics every committed notebook embeds, and every metrics.json of a course run on this machine."""
    out = []
    for p in files.find_notebooks():
        for cell in files.read_notebook(p)["cells"]:
            for o in cell.get("outputs", []):
                m = record.embedded_metrics(o)
                if m:
                    out.append(pytest.param(m, id=f"committed-{p.stem}"))
    for path in sorted(record.runs_root().glob("*/*/metrics.json")):
        out.append(pytest.param(path, id=f"{path.parent.parent.name}-{path.parent.name}"))
    return out


@pytest.mark.parametrize("metrics", _metrics_the_course_wrote())
def test_no_metrics_the_course_wrote_compare_different_image_sets(metrics):
    if not isinstance(metrics, dict):
        import json

        metrics = json.loads(metrics.read_text())
    assert record.image_set_problems(metrics) == []


# ------------------------------------------------------------------ AutoAttack's first attacks, then the rest


def test_continue_from_counts_what_the_first_run_did():
    info = {"attacks": ["apgd-ce", "apgd-t"], "broken_at": ["clean", None, "apgd-ce", None, "apgd-t", None],
            "messages": ["m"]}
    st = autoattack.continue_from(info, 4)
    assert st["robust"] == [False, True, False, True] and st["done"] == ["apgd-ce", "apgd-t"]
    assert st["broken_by"] == {"apgd-ce": 1, "apgd-t": 0}
    assert st["after"] == {"apgd-ce": 0.5, "apgd-t": 0.5}
    with pytest.raises(ValueError, match="at least 7"):
        autoattack.continue_from(info, 7)
    with pytest.raises(ValueError, match="first ones"):
        autoattack.check_attacks(["apgd-t", "apgd-ce"])


def test_the_standard_version_completes_the_proxy_on_a_subset(monkeypatch, trained_mnist, mnist_sample):
    """APGD-CE + APGD-T on 24 images, the standard version on the first 12 of them: the second run
    starts from the first (APGD is not run twice), its accuracy is never above the proxy's on those
    images, and the gap is reported on the same images."""
    from pyautoattack import AutoAttack

    ran = []
    real = AutoAttack.run_standard_evaluation

    def spy(self, x, y, **kw):
        ran.append(tuple(self.attacks_to_run))
        return real(self, x, y, **kw)

    monkeypatch.setattr(AutoAttack, "run_standard_evaluation", spy)
    x, y = mnist_sample[1].tensors(24)
    res = evaluate.evaluate(trained_mnist, (x, y), ["aa-apgd", "aa"], eps=0.1, n_per_attack={"aa": 12},
                            progress=False, sanity_checks=False)
    assert [r for r in ran if r[0] in ("apgd-ce", "apgd-t")] == [("apgd-ce",), ("apgd-t",)]  # once each, 24 images
    assert {r[0] for r in ran} <= set(autoattack.STANDARD)
    proxy = torch.tensor([c == "1" for c in res["masks"]["APGD-CE+T"]])
    full = torch.tensor([c == "1" for c in res["masks"]["AutoAttack"]])
    assert len(proxy) == 24 and len(full) == 12 and not (full & ~proxy[:12]).any()
    gap = res["autoattack_gap"]
    assert gap["n"] == 12 and gap["partial"] == pytest.approx(proxy[:12].float().mean().item())
    assert gap["standard"] == pytest.approx(full.float().mean().item()) and gap["gap"] >= 0
    assert "worst_case" not in res  # one attack on every image: no worst case over image sets that differ
    assert res["attacks"]["APGD-CE+T"]["attacks"] == ["apgd-ce", "apgd-t"]
    assert res["autoattack"]["AutoAttack"]["after"].keys() == set(autoattack.STANDARD)


def test_rslad_columns_with_the_proxy(monkeypatch, trained_mnist, mnist_sample):
    res = evaluate.rslad_columns(trained_mnist, mnist_sample[1], eps=0.15, n=16, aa_proxy=True, n_aa_check=8,
                                 progress=False, sanity_checks=False)
    assert list(res["robust"]) == ["FGSM", "PGD_SAT", "PGD_TRADES", "CW∞", "APGD-CE+T", "AA"]
    assert res["n_attack"]["AA"] == 8 and res["n_attack"]["APGD-CE+T"] == 16
    assert res["autoattack_gap"]["partial_attack"] == "APGD-CE+T" and res["autoattack_gap"]["standard_attack"] == "AA"
    assert res["worst_case"]["left_out"] == {"AA": 8} and res["worst_case"]["n"] == 16
    assert res["worst_case"]["attacks"] == ["FGSM", "PGD_SAT", "PGD_TRADES", "CW∞", "APGD-CE+T"]
    assert "cifar10_challenge" in res["attacks"]["PGD_SAT"]["source"]  # recorded with the column's settings
    with pytest.raises(ValueError, match="only run on images the proxy ran on"):
        evaluate.rslad_columns(trained_mnist, mnist_sample[1], eps=0.1, n=40, n_aa=10, aa_proxy=True, n_aa_check=20,
                               progress=False, sanity_checks=False)


def test_the_course_report_says_how_many_images_a_column_used():
    from advlib.course import report

    t = {"columns": ["Clean", "FGSM", "AA"], "rows": {"SAT": {"Clean": 0.6, "FGSM": 0.4, "AA": 0.3}},
         "units": {"Clean": "fraction", "FGSM": "fraction", "AA": "fraction"},
         "columns_meta": {"Clean": {"attack": record.CLEAN, "n": 1017}, "FGSM": {"attack": {"kind": "fgsm"}, "n": 1017},
                          "AA": {"attack": {"kind": "aa"}, "n": 200}}}
    head = report.table_blocks("t", t)[1][1]
    assert head == ["", "Clean", "FGSM", "AA (first 200)"]
