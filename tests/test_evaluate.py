from __future__ import annotations

import json

import pytest

from advlib import evaluate


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
                                         "random_start": True}
    assert "| fast_cnn | " in evaluate.format_table({"fast_cnn": res})


@pytest.mark.parametrize("spec, name", [("pgd-20", "PGD-20"), ("pgd-50x10", "PGD-50×10"), ("cw-20", "CW∞-20"),
                                        ("pgd-20-kl", "PGD-TRADES-20"), ("aa", "AutoAttack"), ("fgsm", "FGSM"),
                                        ("pgd-7-nors", "PGD-7 (no random start)")])
def test_attack_specs(spec, name):
    assert evaluate.parse_attack(spec, 8 / 255).name == name


def test_bad_specs():
    with pytest.raises(ValueError, match="Unknown attack spec"):
        evaluate.parse_attack("deepfool", 0.1)
    with pytest.raises(ValueError, match="eps must be in"):
        evaluate.parse_attack("fgsm", 8)
