"""The study's report: collect results into tidy frames (collect), decide the findings by
confidence intervals (findings), draw the figures (figures_steering, figures_units) and render
reports/report.md with its tables (render). Entry point: `make_report`."""
from ipg.report.render import make_report

__all__ = ["make_report"]
