#!/usr/bin/env bash
# The best MNIST recipe of notebook 02 (advlib.recipes "mnist_pgd": PGD-5 adversarial training of fast_cnn_wide
# with an eps ramp and a one-cycle learning rate), trained and evaluated through the command line: the same
# engine, the same named settings as the notebook.
#   bash benchmarks/mnist_recipe.sh [out_dir]
# Prints the training wall time, then Clean / PGD-50x10 (alpha 0.01) / AutoAttack on the first 1,000 test images.
set -euo pipefail
out=${1:-runs/bench/mnist_pgd}
py=${PYTHON:-.venv/bin/python}
$py -m advlib train --recipe mnist_pgd --out-dir "$out"
$py -m advlib evaluate --checkpoint "$out/last.pt" --eps 0.3 --alpha 0.01 --attacks pgd-50x10 aa --n 1000 \
    --out "$out/eval_metrics.json"
