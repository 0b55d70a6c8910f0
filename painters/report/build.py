"""Putting a report together: load the groups, draw, decide, write HTML + Markdown + PNGs.

Everything is drawn only from what the store (and the similarity reports) hold; a figure that
cannot be drawn is listed with the reason, so an empty or partial store still gives a report that
says what it is missing. Files are written atomically, so a report being regenerated is never
seen half-written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from glue_painters.errors import UserError
from glue_painters.results import atomic_write_text
from painters.report.data import Group, load_groups
from painters.report.extra_sections import extra_sections
from painters.report.similarity_claim import Similarity, load_similarities
from painters.report.figures import Figure, NotDrawn, draw_group, draw_similarity
from painters.report.findings import all_findings
from painters.report.verdict import Finding
from painters.report.frontier import draw_frontier, frontier, load_latencies, pairs
from painters.report.html import render_html, render_markdown

FIGURE_DIR = "report_figures"


@dataclass
class ReportOutput:
    html_path: Path
    markdown_path: Path
    groups: list[Group]
    similarities: list[Similarity]
    figures: list[Figure]
    missing: list[tuple[str, str, str]]
    findings: list[Finding]
    wandb_runs: list[Path] = field(default_factory=list)
    wandb_dir: Path | None = None  # the run folder (the sweeps' too): <results>, or WANDB_DIR / --wandb-dir
    wandb_sweep_runs: tuple[int, int] = (0, 0)  # (records with their sweep's run there, records)
    sections: list = field(default_factory=list)  # the relayering scan, the paths (extra_sections)


def build_report(results, out, *, track: str = "all", models: list[str] | None = None,
                 tasks: list[str] | None = None, similarity_dir=None, command: str = "painters report",
                 wandb: bool = False, wandb_dir=None, wandb_project: str | None = None,
                 latency: list | None = None, sesoi: dict | None = None) -> ReportOutput:
    """``latency``: benchmarks/latency.py JSON files for the accuracy-vs-latency plots (default:
    every ``latency_*.json`` in ``out``). ``sesoi``: smallest effects of interest by scale or claim
    (``verdict.parse_sesoi``; None: ``verdict.SESOI``)."""
    results, out = Path(results), Path(out)
    groups = load_groups(results, track, models, tasks)
    sims = load_similarities(Path(similarity_dir) if similarity_dir else out, models)
    if not groups and not sims:
        raise UserError(f"nothing to report: no {'' if track == 'all' else track + ' '}records in {results}"
                        f"{' for ' + ', '.join(models) if models else ''}"
                        f"{' on ' + ', '.join(tasks) if tasks else ''} and no similarity_*.json in "
                        f"{similarity_dir or out}")
    figures: list[Figure] = []
    missing: list[tuple[str, str, str]] = []
    for s in sims:
        try:
            figures.append(draw_similarity(s))
        except NotDrawn as e:
            missing.append(("fig3", s.model, str(e)))
    if not sims:
        missing.append(("fig3", "—", f"no similarity_*.json in {similarity_dir or out} (painters similarity --model NAME)"))
    for tr in ("decoder", "glue") if track == "all" else (track,):
        if not any(g.track == tr for g in groups):
            missing.append(("figs 2, 4–11", tr, f"no {tr} records in {results}"))
    for g in groups:
        f, m = draw_group(g)
        figures += f
        missing += m
    figures_frontier, missing_frontier = _frontiers(groups, out, latency)
    figures += figures_frontier
    missing += missing_frontier
    findings = all_findings(groups, sims, sesoi)
    sections, lost = extra_sections(results, track, models, tasks)
    missing += lost
    n_records = sum(len(g.records) for g in groups)
    sources = {"summary": f"{n_records} records in {results} ({', '.join(g.title for g in groups) or 'no records'})"
                          f" and {len(sims)} similarity report(s)"}
    sources["models"] = models_line(groups, sims)
    title = "Transformer Layers as Painters — our runs"
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / FIGURE_DIR
    fig_dir.mkdir(exist_ok=True)
    drawn = figures + [f for s in sections for f in s.figures]
    for old in fig_dir.glob("*.png"):  # figures of records no longer selected must not linger
        if old.stem not in {f.name for f in drawn}:
            old.unlink()
    for f in drawn:
        tmp = fig_dir / f".{f.name}.png.tmp"
        tmp.write_bytes(f.png)
        tmp.replace(fig_dir / f"{f.name}.png")
    html_path, md_path = out / "report.html", out / "report.md"
    kw = dict(title=title, command=command, groups=groups, figures=figures, missing=missing,
              findings=findings, sources=sources, sections=sections)
    atomic_write_text(html_path, render_html(**kw))
    atomic_write_text(md_path, render_markdown(**kw, figure_dir=FIGURE_DIR))
    output = ReportOutput(html_path, md_path, groups, sims, figures, missing, findings, sections=sections)
    if wandb:
        from painters.report import wandb_log

        t = wandb_log.tracker(results, directory=wandb_dir, project=wandb_project)
        output.wandb_runs = wandb_log.log_report(
            groups, figures, findings, t=t,
            config={"results": str(results), "track": track, "models": models, "tasks": tasks,
                    "groups": [g.title for g in groups]})
        output.wandb_dir, output.wandb_sweep_runs = t.directory, wandb_log.sweep_runs(groups, t)
    return output


def models_line(groups: list[Group], sims: list[Similarity]) -> str:
    """``smollm2 = HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1 ... dequantized to float32; ...``:
    the weights every model name of the report stands for, so a replication names what it ran."""
    from glue_painters.models import identity

    names = list(dict.fromkeys([g.model for g in groups] + [s.model for s in sims]))
    return "; ".join(f"{n} = {identity(n)}" if identity(n) != n else n for n in names)


def _frontiers(groups, out: Path, latency: list | None):
    """Accuracy-vs-latency plots of the decoder groups with a latency report to join."""
    figures, missing = [], []
    joined = pairs(groups, load_latencies(out, latency))
    for g in groups:
        if g.track == "decoder" and not any(j[0] is g for j in joined):
            missing.append(("frontier", g.title, f"no latency_{g.model}_*.json in {out} "
                                                 f"(python benchmarks/latency.py --model {g.model}; or --latency FILE)"))
    for g, lat in joined:
        try:
            figures.append(draw_frontier(frontier(g, lat)))
        except NotDrawn as e:
            missing.append(("frontier", g.title, str(e)))
    return figures, missing
