"""HTML reports of alignment runs (``carealign report RUN_DIR``)."""

from carealign.report.html import build_report

__all__ = ["build_report"]
