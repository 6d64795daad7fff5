r"""Self-checking exercises for the course notebooks.

A student writes a function in a notebook cell and passes it to a check, e.g.
``advlib.exercises.check_fgsm(my_fgsm)``. The check runs the function on fixed, seeded inputs (a tiny
fixed network, a few 28x28 one-channel images in [0,1] with pixels at exactly 0 and 1, budgets where
clamping matters, and a network with batch norm in training mode), compares the result with the
library's own implementation, and prints a short verdict:

* ``✅ Correct: ...`` and returns ``True``;
* ``❌ <what is wrong> Hint: <what to do>`` and returns ``False``;
* ``Not attempted yet: ...`` and returns ``False`` for a stub that raises ``NotImplementedError``.

A check never raises for a wrong answer, so notebooks executed headless run through.

Checks, by notebook (one module each):

* 00_setup (:mod:`.setup`): :func:`check_linf_projection`, :func:`check_linf_distance`
* 01_fgsm_mnist (:mod:`.fgsm_mnist`): :func:`check_fgsm`, :func:`check_robust_accuracy`
* 02_adversarial_training_mnist (:mod:`.adversarial_training_mnist`): :func:`check_two_pass_step`,
  :func:`check_pgd_step`, :func:`check_weighted_fgsm_loss`
* 02b_adversarial_training_in_practice_mnist (:mod:`.practice_mnist`): :func:`check_prediction`,
  :func:`check_choose_eps`, :func:`check_masked_table` (answers, not computations: the function returns
  a prediction, a number or a set of letters)
* 03_pgd_training_cifar10 (:mod:`.pgd_training_cifar10`): :func:`check_pgd_attack` (SAT's inner maximisation, its
  random start given), :func:`check_choose_checkpoint` (best or last, by the monitor's Wilson interval)
* 04_trades_mart_cifar10 (:mod:`.trades_mart_cifar10`): :func:`check_trades_loss`, :func:`check_mart_loss`,
  :func:`check_awp_step`
* 05_rslad_distillation_cifar10 (:mod:`.distillation_cifar10`): :func:`check_rslad_loss`, :func:`check_ard_loss`,
  :func:`check_iad_loss`, :func:`check_rslad_attack` (RSLAD's inner maximisation),
  :func:`check_adaad_step` (one step of AdaAD's, through the student and the teacher)
* 06_evaluating_robustness (:mod:`.evaluating_robustness`): :func:`check_weak_attacks`, :func:`check_mcnemar`,
  :func:`check_worst_case` (per-image correctness masks: answers computed from an evaluation's bookkeeping)

What the checks share (running the student's code, guards, diagnostics, fixed inputs and models) is in
:mod:`.harness`. Each notebook module also defines ``NOTEBOOK`` and ``EXERCISES``, the cells of its
exercises (:class:`~.cells.Exercise`: statement, starter cell, check cell), the one source of the
notebooks' exercise cells: ``python -m advlib.exercises write`` writes them into the notebooks,
``python -m advlib.exercises verify`` fails when a notebook has drifted from them.

Adding an exercise: its check (named ``check_...`` and listed in the module's ``__all__``, which makes
it importable from here) and its :class:`~.cells.Exercise` in the notebook's module, its reference
answer in ``solutions/``, tests in ``tests/test_exercises.py``, then ``python -m advlib.exercises
write``. Adding a notebook's exercises: a module like the others in this package (every module that
defines ``NOTEBOOK`` is found, as :mod:`advlib.losses` finds its methods; nothing else needs editing).
"""
from __future__ import annotations

from .. import utils
from .cells import Exercise

# Every module of this package that defines NOTEBOOK holds that notebook's exercises; in course order (by notebook).
_MODULES = tuple(sorted((m for m in utils.import_submodules(__name__, __path__) if hasattr(m, "NOTEBOOK")),
                        key=lambda m: m.NOTEBOOK))

EXERCISES: dict[str, tuple[Exercise, ...]] = {m.NOTEBOOK: m.EXERCISES for m in _MODULES}
"""The exercises of each notebook, by notebook name (the file name without ``.ipynb``), in order."""

# Every check of every notebook module is importable from here: ``advlib.exercises.check_fgsm``.
for _m in _MODULES:
    globals().update({name: getattr(_m, name) for name in _m.__all__ if name.startswith("check_")})

__all__ = [name for _m in _MODULES for name in _m.__all__ if name.startswith("check_")] + ["Exercise", "EXERCISES"]
