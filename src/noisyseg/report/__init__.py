"""Reports: figures and tables of results.

Public API: :func:`plot_contour_grid`, :func:`save_figure`, :func:`corruption_figure`.
"""

from noisyseg.report.corruption import corruption_figure, corruption_summary
from noisyseg.report.figures import CLASS_COLOURS, plot_contour_grid, save_figure
from noisyseg.report.tables import markdown_table

__all__ = ["CLASS_COLOURS", "corruption_figure", "corruption_summary", "plot_contour_grid",
           "markdown_table", "save_figure"]
