#!/usr/bin/env bash
# The best MNIST recipe of notebook 02 (PGD-5 adversarial training of fast_cnn_wide with an eps ramp and a
# one-cycle learning rate), trained and evaluated through the command line: the same engine, the same settings.
#   bash benchmarks/mnist_recipe.sh [out_dir]
# Prints the training wall time, then Clean / PGD-50x10 (alpha 0.01) / AutoAttack on the first 1,000 test images.
set -euo pipefail
out=${1:-runs/bench/mnist_pgd}
py=${PYTHON:-.venv/bin/python}
$py -m advlib train --model fast_cnn_wide --dataset mnist --method pgd --eps 0.3 --steps 5 --eps-ramp-epochs 2 \
    --epochs 8 --batch-size 100 --optimizer adam --lr 1e-3 --weight-decay 0 --schedule cyclic --cyclic-peak 0.4 \
    --eval-samples 500 --eval-steps 10 --eval-alpha 0.03 --out-dir "$out"
$py -m advlib evaluate --checkpoint "$out/last.pt" --eps 0.3 --alpha 0.01 --attacks pgd-50x10 aa --n 1000 \
    --out "$out/eval_metrics.json"
