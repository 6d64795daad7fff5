"""Interactive widgets: a thin layer over :mod:`advlib.viz`.

``epsilon_slider(explorer)`` shows an epsilon slider, an accuracy readout and the picture grid
(original, perturbation at its true scale, adversarial image). All computation lives in
:class:`advlib.viz.FGSMExplorer`; this module only wires it to ipywidgets. CSS classes
(``advlib-eps-slider``, ``advlib-readout``, ``advlib-grid``) let tests find the parts in a browser.
"""
from __future__ import annotations

import ipywidgets as W

from .viz import FGSMExplorer


def epsilon_slider(explorer: FGSMExplorer, eps: float = 0.1, eps_max: float = 0.3, step: float = 0.01,
                   continuous_update: bool = True) -> W.VBox:
    """An epsilon slider driving ``explorer``. Each move costs one forward pass on the cached FGSM
    direction (and nothing for a value seen before), so it can update while dragging."""
    slider = W.FloatSlider(value=eps, min=0.0, max=eps_max, step=step, description="ε",
                           continuous_update=continuous_update, readout_format=".2f",
                           layout=W.Layout(width="480px"))
    slider.add_class("advlib-eps-slider")
    readout = W.HTML()
    readout.add_class("advlib-readout")
    image = W.Image(format="png")
    image.add_class("advlib-grid")

    def update(change=None):
        e = slider.value
        readout.value = f"<b>{explorer.readout(e)}</b>"
        image.value = explorer.png(e)

    slider.observe(update, names="value")
    update()
    box = W.VBox([slider, readout, image])
    box.explorer, box.slider, box.readout, box.image = explorer, slider, readout, image
    return box
