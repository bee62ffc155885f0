"""HTML reports: of alignment runs (``carealign report RUN_DIR``) and of judge agreement (``carealign judge agree``).

Templates live in ``templates/`` (a shared ``base.html`` and ``macros.html``, one template a page),
the style sheets in ``static/``; :mod:`carealign.report.formatting` formats values and
:mod:`carealign.report.plots` draws the figures.
"""

from carealign.report.run_report import build_report

__all__ = ["build_report"]
