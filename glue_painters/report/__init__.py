"""``painters report``: the paper's figures, tables and findings from our own results store.

    from glue_painters.report import build_report
    out = build_report("results", "reports", track="all", models=["smollm2"], tasks=None)
    out.html_path, out.markdown_path, out.figures, out.missing, out.findings

Modules: ``data`` (records -> groups, reusing each track's summary code), ``figures`` (Figs. 2-11),
``findings`` (the paper's claims as decision rules), ``html`` (the self-contained HTML and the
Markdown summary), ``wandb_log`` (``--wandb``), ``cli``.
"""

from .build import ReportOutput, build_report

__all__ = ["build_report", "ReportOutput"]
