"""The self-contained HTML report (reports/index.html) of a pipeline run."""

from histosynth.report.build import build_report

__all__ = ["build_report"]
