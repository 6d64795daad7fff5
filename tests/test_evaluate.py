from __future__ import annotations

import json

import pytest
import torch

from advlib import attack_registry, autoattack, evaluate

from .conftest import counting_images


def test_table_is_json_serialisable_and_eps_zero_is_clean(trained_mnist, mnist_sample):
    res = evaluate.evaluate(trained_mnist, mnist_sample[1], ["fgsm", "pgd-5", "cw-5", "pgd-5-kl", "noise"],
                            eps=0.0, n=200, progress=False)
    json.dumps(res)
    assert res["n"] == 200 and res["data"] == "MNIST (shipped sample)"
    assert set(res["robust"].values()) == {res["clean"]}


def test_robust_below_clean_and_per_attack_sizes(trained_mnist, mnist_sample):
    res = evaluate.evaluate(trained_mnist, mnist_sample[1], ["fgsm", "pgd-10x2"], eps=0.1, alpha=0.02, n=300,
                            n_per_attack={"pgd-10x2": 100}, progress=False)
    assert res["robust"]["PGD-10×2"] < res["clean"] and res["robust"]["FGSM"] < res["clean"]
    assert res["n_attack"] == {"FGSM": 300, "PGD-10×2": 100}
    assert res["attacks"]["PGD-10×2"] == {"spec": "pgd-10x2", "name": "PGD-10×2", "kind": "pgd", "eps": 0.1,
                                         "alpha": 0.02, "steps": 10, "restarts": 2, "loss": "ce",
                                         "random_start": "uniform"}
    assert "| fast_cnn | " in evaluate.format_table({"fast_cnn": res})


@pytest.mark.parametrize("spec, name", [("pgd-20", "PGD-20"), ("pgd-50x10", "PGD-50×10"), ("cw-20", "CW∞-20"),
                                        ("pgd-20-kl", "PGD-KL-20"), ("aa", "AutoAttack"), ("fgsm", "FGSM"),
                                        ("aa-apgd", "APGD-CE+T"), ("pgd-7-nors", "PGD-7 (no random start)"),
                                        ("pgd-20@0.003", "PGD-20 (step 0.003)"), ("cw-20@2/255", "CW∞-20 (step 2/255)")])
def test_attack_specs(spec, name):
    assert evaluate.parse_attack(spec, 8 / 255).name == name


def test_a_spec_with_its_own_step_overrides_alpha():
    assert evaluate.parse_attack("pgd-20@2/255", 8 / 255, alpha=0.01).alpha == pytest.approx(2 / 255)
    assert evaluate.parse_attack("pgd-20@0.003", 8 / 255).alpha == 0.003
    assert evaluate.parse_attack("pgd-20", 8 / 255, alpha=0.01).alpha == 0.01
    with pytest.raises(ValueError, match="step size alpha must be > 0"):
        evaluate.parse_attack("pgd-20@0", 8 / 255)
    with pytest.raises(ValueError, match="Unknown attack spec"):
        evaluate.parse_attack("pgd-20@-1", 8 / 255)


def test_bad_specs():
    with pytest.raises(ValueError, match="Unknown attack spec"):
        evaluate.parse_attack("deepfool", 0.1)
    with pytest.raises(ValueError, match="eps must be in"):
        evaluate.parse_attack("fgsm", 8)


# ------------------------------------------------------------------ the attack registry


def test_every_registration_names_functions_that_exist():
    """attack_registry is below attacks in the layers, so it names what runs; every name must resolve."""
    for spec in [*attack_registry.examples(), "aa", "aa-apgd", "aa-ta", *evaluate.RSLAD_SPECS.values()]:
        s = evaluate.parse_attack(spec, 8 / 255)
        name, kw = s.family.run(s)
        assert callable(evaluate._resolve(name)) and "eps" in kw, spec
        made_by = s.family.provenance(s) if s.family.provenance else None
        assert made_by is None or callable(evaluate._resolve(made_by[0]))
    with pytest.raises(ValueError, match="not a function of advlib"):
        evaluate._resolve("attacks.no_such_attack")


def test_autoattack_specs_name_the_packages_sub_attacks():
    assert evaluate.parse_attack("aa", 0.1).subattacks == autoattack.STANDARD
    assert evaluate.parse_attack("autoattack", 0.1).subattacks == autoattack.STANDARD
    assert evaluate.parse_attack("aa-apgd", 0.1).subattacks == autoattack.APGD


def test_settings_are_recorded_as_before():
    """metrics.json files and committed notebooks hold these dicts: the registry must not change them."""
    assert evaluate.parse_attack("fgsm", 0.1).settings() == {"spec": "fgsm", "name": "FGSM", "kind": "fgsm", "eps": 0.1}
    assert evaluate.parse_attack("noise", 0.1).settings() == {"spec": "noise", "name": "Random noise", "kind": "noise",
                                                              "eps": 0.1}
    assert evaluate.parse_attack("pgd-20-kl@0.01", 0.1).settings() == {
        "spec": "pgd-20-kl@0.01", "name": "PGD-KL-20 (step 0.01)", "kind": "pgd", "eps": 0.1, "alpha": 0.01,
        "steps": 20, "restarts": 1, "loss": "kl", "random_start": "normal"}
    assert evaluate.parse_attack("CW-5x2-nors", 0.1, 0.02).settings() == {
        "spec": "CW-5x2-nors", "name": "CW∞-5×2 (no random start)", "kind": "pgd", "eps": 0.1, "alpha": 0.02,
        "steps": 5, "restarts": 2, "loss": "cw", "random_start": "none"}
    aa = evaluate.parse_attack("aa-apgd", 0.1).settings()
    assert list(aa) == ["spec", "name", "kind", "eps", "implementation", "package_version", "version", "attacks",
                        "iterations"]
    assert aa["implementation"].startswith("pyautoattack") and aa["attacks"] == ["apgd-ce", "apgd-t"]
    ta = evaluate.parse_attack("aa-ta", 0.1).settings()
    assert list(ta) == ["spec", "name", "kind", "eps", "implementation", "package_version", "version", "iterations"]
    assert ta["implementation"] == "torchattacks" and ta["version"] == "standard"


def test_the_help_and_the_error_list_every_registered_spelling():
    from advlib.__main__ import build_parser

    forms = [form for fam in attack_registry.FAMILIES.values() for form, _ in fam.forms]
    assert {"fgsm", "aa", "aa-apgd", "aa-ta", "noise"} <= set(forms)
    evaluate_parser = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    attacks_help = next(a.help for a in evaluate_parser._actions if a.dest == "attacks")
    with pytest.raises(ValueError) as err:
        evaluate.parse_attack("deepfool", 0.1)
    for form in forms:
        assert form in attacks_help and form in str(err.value)


def test_a_registration_is_checked_when_it_is_made(monkeypatch):
    monkeypatch.setattr(attack_registry, "FAMILIES", dict(attack_registry.FAMILIES))
    fgsm = attack_registry.FAMILIES["fgsm"]
    with pytest.raises(ValueError, match="already registered"):
        attack_registry.register_attack("fgsm", forms=fgsm.forms, parse=fgsm.parse, run=fgsm.run)
    with pytest.raises(ValueError, match="not a column of the paper"):
        attack_registry.register_attack("fgsm2", forms=(("fgsm2", ""),), parse=fgsm.parse, run=fgsm.run,
                                        reproduces={"FGSM-2": ("fgsm", "somewhere")})
    with pytest.raises(ValueError, match="reads the settings of 'fgsm' as None"):
        attack_registry.register_attack("fgsm2", forms=(("fgsm2", ""),), parse=fgsm.parse, run=fgsm.run,
                                        reproduces={"FGSM": ("fgsm", "somewhere")})
    # two families that claim the same spelling: the spec is refused rather than read either way
    attack_registry.register_attack("fgsm2", forms=(("fgsm", "the same spelling again"),), parse=fgsm.parse,
                                    run=fgsm.run)
    with pytest.raises(ValueError, match="claimed by the families"):
        evaluate.parse_attack("fgsm", 0.1)


# ------------------------------------------------------------------ bookkeeping, intervals, checks, resume


def test_columns_never_weaker_than_naive_and_worst_case_is_per_image(trained_mnist, mnist_sample):
    x, y = mnist_sample[1].tensors(300)
    res = evaluate.evaluate(trained_mnist, (x, y), ["fgsm", "pgd-10-nors", "cw-10-nors"], eps=0.1, alpha=0.02,
                            progress=False, sanity_checks=False)
    spec = evaluate.parse_attack("pgd-10-nors", 0.1, 0.02)
    naive = evaluate.batched_accuracy(trained_mnist, x, y, spec)  # plain PGD over every image
    assert res["robust"]["PGD-10 (no random start)"] <= naive + 1 / 300
    fgsm_naive = evaluate.batched_accuracy(trained_mnist, x, y, evaluate.parse_attack("fgsm", 0.1))
    assert abs(res["robust"]["FGSM"] - fgsm_naive) <= 1 / 300
    masks = {k: torch.tensor([c == "1" for c in v]) for k, v in res["masks"].items()}
    for name in res["robust"]:
        assert not (masks[name] & ~masks["Clean"]).any(), "an image wrong when clean counts as broken"
    worst = masks["FGSM"] & masks["PGD-10 (no random start)"] & masks["CW∞-10 (no random start)"]
    assert res["worst_case"]["accuracy"] == pytest.approx(worst.float().mean().item())
    assert res["worst_case"]["accuracy"] <= min(res["robust"].values())
    for name, (lo, hi) in res["interval"].items():
        acc = res["clean"] if name == "Clean" else res["robust"][name]
        assert lo <= acc <= hi and hi - lo < 0.15
    assert evaluate.as_rows({"m": res})["m"][evaluate.WORST] == res["worst_case"]["accuracy"]
    assert "(" in evaluate.format_table({"m": res}, with_intervals=True)


def test_misclassified_images_are_not_attacked(trained_mnist, mnist_sample):
    x, y = mnist_sample[1].tensors(200)
    wrong = (trained_mnist(x).argmax(1) != y).sum().item()
    assert wrong > 0
    with counting_images(trained_mnist) as seen:
        evaluate.evaluate(trained_mnist, (x, y), ["pgd-5-nors"], eps=0.0001, alpha=0.00001, progress=False,
                          sanity_checks=False)
    # logits check (200), clean pass (200), then on the correct images only: 5 steps, the check of the
    # last iterate and the final prediction (and one probe of the number of classes)
    assert seen["n"] <= 400 + 7 * (200 - wrong) + 1


def test_sanity_checks_flag_a_masked_model(trained_mnist, mnist_sample):
    """Logits scaled by 10^4 saturate the softmax: cross-entropy gradients vanish, FGSM does nothing, and
    random noise of the same size hurts more: the checks say so."""
    masked = torch.nn.Sequential(trained_mnist, Scale(1e4)).eval()
    res = evaluate.evaluate(masked, mnist_sample[1], ["fgsm", "pgd-10"], eps=0.3, alpha=0.03, n=200, progress=False,
                            n_checks=100)
    raised = {f["name"] for f in res["flags"] if f["raised"]}
    assert "FGSM beats random noise" in raised, res["flags"]
    ok = evaluate.evaluate(trained_mnist, mnist_sample[1], ["fgsm", "pgd-10"], eps=0.1, alpha=0.025, n=200,
                           progress=False, n_checks=100)
    assert not [f for f in ok["flags"] if f["raised"]], ok["flags"]
    assert len(ok["flags"]) >= 5 and "No sanity check raised a flag" in evaluate.flags_table({"m": ok})


class Scale(torch.nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, z):
        return z * self.k


def test_probabilities_instead_of_logits_are_refused(trained_mnist, mnist_sample):
    probs = torch.nn.Sequential(trained_mnist, torch.nn.Softmax(1)).eval()
    with pytest.raises(ValueError, match="probabilities"):
        evaluate.evaluate(probs, mnist_sample[1], ["fgsm"], eps=0.1, n=50, progress=False)


def test_an_interrupted_evaluation_resumes_per_attack(trained_mnist, mnist_sample, tmp_path, monkeypatch):
    path = tmp_path / "eval_state.json"
    args = (trained_mnist, mnist_sample[1], ["fgsm", "pgd-5"])
    kw = dict(eps=0.1, n=100, progress=False, sanity_checks=False, state_path=path)
    real = evaluate.robust_mask
    calls = []

    def failing(spec, *a, **k):
        calls.append(spec.name)
        if spec.name == "PGD-5":
            raise KeyboardInterrupt
        return real(spec, *a, **k)

    monkeypatch.setattr(evaluate, "robust_mask", failing)
    with pytest.raises(KeyboardInterrupt):
        evaluate.evaluate(*args, **kw)
    monkeypatch.setattr(evaluate, "robust_mask", lambda spec, *a, **k: calls.append(spec.name) or real(spec, *a, **k))
    res = evaluate.evaluate(*args, **kw)
    assert calls == ["FGSM", "PGD-5", "PGD-5"], "FGSM was saved and not run again"
    again = evaluate.evaluate(*args, **kw)
    assert again["robust"] == res["robust"] and calls[-1] == "PGD-5" and len(calls) == 3
    other = evaluate.evaluate(*args, **{**kw, "eps": 0.05})  # other settings: a fresh evaluation
    assert len(calls) == 5 and other["eps"] == 0.05


def test_original_autoattack_matches_the_package_called_directly(trained_mnist, mnist_sample):
    """advlib drives pyautoattack's standard version sub-attack by sub-attack; on the same images and
    seed it breaks exactly the images the package's own run_standard_evaluation breaks."""
    from pyautoattack import AutoAttack

    x, y = mnist_sample[1].tensors(40)
    eps = 0.2  # APGD-CE breaks nearly everything, so FAB-T and Square run on few images
    state = torch.get_rng_state()
    res = evaluate.evaluate(trained_mnist, (x, y), ["aa"], eps=eps, progress=False, sanity_checks=False)
    assert torch.equal(state, torch.get_rng_state()), "the global random state is left alone"
    aa = AutoAttack(trained_mnist, norm="Linf", eps=eps, version="standard", seed=0, device="cpu")
    aa.verbose = False
    _, y_adv = aa.run_standard_evaluation(x, y, batch_size=500)
    assert res["masks"]["AutoAttack"] == "".join("1" if b else "0" for b in (y_adv == y).tolist())
    settings = res["attacks"]["AutoAttack"]
    assert settings["implementation"].startswith("pyautoattack") and settings["version"] == "standard"
    assert set(res["autoattack"]["AutoAttack"]["after"]) == {"apgd-ce", "apgd-t", "fab-t", "square"}


def test_rslad_columns_use_the_papers_names(trained_mnist, mnist_sample, monkeypatch):
    monkeypatch.setitem(evaluate.RSLAD_SPECS, "AA", "aa-ta")  # the fast re-implementation, for the test's speed
    res = evaluate.rslad_columns(trained_mnist, mnist_sample[1], eps=0.1, n=60, progress=False, sanity_checks=False)
    assert list(res["robust"]) == ["FGSM", "PGD_SAT", "PGD_TRADES", "CW∞", "AA"]
    assert set(res["sources"]) == {"Clean", "FGSM", "PGD_SAT", "PGD_TRADES", "CW∞", "AA"} - {"Clean"}


def test_image_counts_of_an_evaluation():
    x, y = torch.rand(6, 1, 4, 4), torch.arange(6) % 2
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    res = evaluate.evaluate(model, (x, y), ["fgsm", "pgd-2"], eps=0.1, n_per_attack={"pgd-2": 4}, progress=False,
                            sanity_checks=False)
    assert evaluate.image_counts(res) == {"Clean": 6, "FGSM": 6, "PGD-2": 4}


def test_forked_seed_repeats_the_block_and_leaves_the_caller_stream():
    from advlib import utils
    torch.manual_seed(3)
    expected_next = torch.rand(4)
    torch.manual_seed(3)
    with utils.forked_seed(7):
        first = torch.rand(5)
    with utils.forked_seed(7):
        again = torch.rand(5)
    assert torch.equal(first, again)
    assert torch.equal(torch.rand(4), expected_next)  # the block did not move the caller's generator
    with pytest.raises(ValueError, match="seed"):
        with utils.forked_seed(-1):
            pass


def test_evaluation_and_sweep_are_seeded():
    """Random starts come from the evaluation's seed: the same result twice, whatever the global generator holds,
    and the caller's random stream untouched; another seed draws other starts."""
    torch.manual_seed(0)
    x, y = torch.rand(64, 1, 6, 6), torch.randint(0, 3, (64,))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3))
    specs = ["pgd-1", "pgd-2"]  # one step from a random start: the start decides many images

    def run(seed, global_seed):
        torch.manual_seed(global_seed)
        res = evaluate.evaluate(model, (x, y), specs, eps=0.3, alpha=0.05, progress=False, seed=seed)
        return res, torch.rand(3)

    (a, after_a), (b, _) = run(0, 1), run(0, 2)
    assert a["masks"] == b["masks"] and a["flags"] == b["flags"]
    torch.manual_seed(1)
    assert torch.equal(after_a, torch.rand(3))
    others = [run(s, 1)[0]["masks"] for s in range(1, 6)]
    assert any(o != a["masks"] for o in others), "the seed does not reach the attacks' random starts"

    def noisy(m, xb, yb, e):
        return (xb + e * (2 * torch.rand_like(xb) - 1)).clamp(0, 1)
    curves = [evaluate.sweep(model, x, y, [0.0, 0.5, 1.0], noisy, progress=False) for _ in range(2)]
    assert curves[0] == curves[1]
