"""How realistic are the simulated annotation errors? Measured against LIDC-IDRI's radiologists.

Public API: :func:`measure_raters` (every reader of every nodule against the others'
consensus), :func:`compare_models` (each error model calibrated to the real readers' Dice,
measured like a reader and ranked by the distance of its statistics' distributions from
the real ones), :func:`fit_model` (a grid of a model's options searched for the
simulated readers most like the real ones), :func:`model_modes`, :data:`DEFAULT_MODELS`
and :func:`write_raters`
(tables, figures and a markdown report written atomically into a folder);
:func:`analyse_raters` does it all from a ``--data`` string (``noisyseg raters``), with
:func:`fitted_preset` the preset ``noisyseg corrupt --like`` reads.
"""

from noisyseg.raters.analyse import FIT_GRIDS, RatersResult, analyse_raters, fitted_preset
from noisyseg.raters.compare import DEFAULT_MODELS, compare_models, fit_model, model_modes
from noisyseg.raters.measure import measure_raters
from noisyseg.raters.write import write_raters

__all__ = ["DEFAULT_MODELS", "FIT_GRIDS", "RatersResult", "analyse_raters", "compare_models",
           "fit_model", "fitted_preset", "measure_raters", "model_modes", "write_raters"]
