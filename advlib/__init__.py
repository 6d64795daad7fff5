"""advlib: the small library behind the adversarial-robustness course.

Modules: ``data`` (MNIST, CIFAR-10 in memory), ``models`` (registry by name), ``attacks``
(FGSM, PGD, AutoAttack), ``losses`` (training objectives), ``train`` (one engine),
``evaluate`` (robust accuracy tables), ``viz`` and ``widgets`` (figures and the epsilon slider).
"""
__version__ = "0.1.0"
