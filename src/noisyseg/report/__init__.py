"""Reports: figures and tables of results.

Public API: :func:`plot_contour_grid`, :func:`save_figure`, :func:`corruption_figure`.
"""

from noisyseg.report.corruption import corruption_figure, corruption_summary
from noisyseg.report.figures import CLASS_COLOURS, plot_contour_grid, save_figure

__all__ = ["CLASS_COLOURS", "corruption_figure", "corruption_summary", "plot_contour_grid",
           "save_figure"]
