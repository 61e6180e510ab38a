"""Reports: figures, tables, paired tests and the study report.

Public API: :func:`plot_contour_grid`, :func:`save_figure`, :func:`corruption_figure`,
:func:`markdown_table`, :func:`paired_test`, :func:`interpolated_precision`,
:class:`Document`, :func:`study_report`, :func:`write_study_report`.
"""

from noisyseg.corrupt.figures import corruption_figure
from noisyseg.plot import (
    CLASS_COLOURS,
    display_window,
    plot_contour_grid,
    plot_volume_planes,
    save_figure,
)
from noisyseg.report.document import Document
from noisyseg.report.stats import PairedTest, interpolated_precision, paired_test
from noisyseg.report.study import study_report, write_study_report
from noisyseg.report.tables import markdown_table

__all__ = ["CLASS_COLOURS", "Document", "PairedTest", "corruption_figure", "display_window",
           "interpolated_precision", "markdown_table", "paired_test", "plot_contour_grid",
           "plot_volume_planes", "save_figure", "study_report",
           "write_study_report"]
