"""``painters report``: the paper's figures, tables and findings from our own results store.

    painters report                                                    # everything ./results holds -> results/reports
    painters report --track decoder --model smollm2 --tasks arc_easy,hellaswag
    painters report --track glue --out /tmp/r --similarity reports     # Fig. 3 from reports/similarity_*.json
    painters report --wandb                                            # + one W&B run beside the sweeps' (see wandb_log)

Writes OUT/report.html (self-contained: base64 PNGs, HTML tables, the records' configs and package
versions), OUT/report.md (findings, figure links, tables) and OUT/report_figures/*.png; lists the
figures the records cannot support, with the reason. ``python benchmarks/report_browser.py
OUT/report.html`` opens it in headless Chromium and checks every image and the console.

    from painters.report import build_report
    out = build_report("results", "results/reports", track="all", models=["smollm2"], tasks=None)
    out.html_path, out.markdown_path, out.figures, out.missing, out.findings

Modules: ``data`` (records -> groups, reusing each track's summary code), ``figures`` (Figs. 2-11),
``findings`` (the paper's claims as decision rules), ``html`` (the self-contained HTML and the
Markdown summary), ``wandb_log`` (``--wandb``), ``cli``.
"""

from painters.report.build import ReportOutput, build_report

__all__ = ["build_report", "ReportOutput"]
