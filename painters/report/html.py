"""The report as one self-contained HTML file and a Markdown summary beside it.

Why self-contained: a report is mailed, attached to an issue or opened from a laptop long after
the results folder is gone, so the HTML holds everything: the figures as base64 PNG ``<img>``
data URIs, the tables as HTML, and the configs and package versions that produced the records.
It loads no script, font or stylesheet from anywhere (a browser shows it offline, with no console
errors). The Markdown summary links PNG copies of the figures written next to it.
"""

from __future__ import annotations

import base64
import html
import json
import platform
from dataclasses import dataclass, field

from glue_painters import recipes
from painters.report.data import SWEEP_ORDER, Cell, Group
from painters.report.figures import Figure
from painters.report.verdict import HEADER, Finding, collapsed, columns, markdown_table, rule_text


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"#### {self.title}", "", "| " + " | ".join(self.header) + " |",
                 "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in self.rows]
        return "\n".join(lines + [""] + [f"- {n}" for n in self.notes]) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in self.rows)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<h4>{html.escape(self.title)}</h4><table class='num'><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                f"</table>" + (f"<ul class='notes'>{notes}</ul>" if notes else ""))


def _order(c: Cell):
    base = c.variant.split(":")[0]
    idx = SWEEP_ORDER.index(base) if base in SWEEP_ORDER else len(SWEEP_ORDER) + (base == "custom")
    return (idx, c.variant, -1 if c.n is None else c.n, c.k or 0, -1 if c.i is None else c.i)


def _num(s, digits: int, std=None) -> str:
    if s is None:
        return "–"
    return f"{s:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _seed_count(c) -> str:
    """How many seeds a row's scores average: "3", or "1–3" when its benchmarks ran different
    numbers of seeds (a sweep that added seeds on some tasks only), so no row claims more than
    each of its cells holds."""
    counts = sorted({len(v) for v in c.raw.values()}) or [0]
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def group_table(g: Group) -> Table:
    """variant × N × k (× i) → headline (mean ± std over seeds) and each benchmark.

    Decoder: normalized scores; a flagged (‡) benchmark shows its raw score in parentheses.
    GLUE: task scores ×100; a flagged benchmark is marked ‡ and left out of the average."""
    digits = 2 if g.track == "decoder" else 1
    header = ["variant", "N", "k", "i", "seeds", g.headline_name] + [f"{t} ‡" if t in g.flagged else t for t in g.tasks]
    rows = []
    for c in sorted(g.cells.values(), key=_order):
        cells = []
        for t in g.tasks:
            if t in g.flagged and g.track == "decoder":
                raw = c.raw.get(t)
                cells.append(f"({_num(sum(raw) / len(raw), 3)})" if raw else "–")
            else:
                s = c.task_stat(t)
                cells.append(_num(s.mean, digits, s.std))
        rows.append([c.variant, "" if c.n is None else str(c.n), "" if c.k is None else str(c.k),
                     "" if c.i is None else str(c.i), _seed_count(c), _num(c.headline.mean, digits, c.headline.std)]
                    + cells)
    notes = []
    used = ", ".join(g.reliable) or "no benchmark"
    if g.track == "decoder":
        notes.append("normalized score = (score − chance) / (full − chance) on each benchmark's primary metric ("
                     + ", ".join(f"{t}: {g.primary[t]}" for t in g.tasks) + f"); median over {used}")
    else:
        notes.append(f"task score ×100 (mean of the task's official metrics), mean ± std over seeds; "
                     f"GLUE average = the paper's unnormalized mean over {', '.join(g.tasks)} (‡ tasks included, "
                     f"as in the paper); the findings' normalized median uses {used}")
        notes.append("‡ = the full model does not clear chance by more than 3 standard errors (binomial SE on the "
                     "evaluation rows, combined with the seeds' spread), the decoder track's rule; chance = the "
                     "better of uniform guessing and always answering the evaluation rows' majority label (when "
                     "the rows can be re-read here)")
    for t, why in g.flagged.items():
        if g.track == "decoder":
            notes.append(f"‡ {t}: {why}: left out of the {g.headline_name} (raw score in parentheses)")
        else:
            notes.append(f"‡ {t}: {why}: kept in the GLUE average, left out of the normalized median (findings)")
    notes += g.notes
    if g.identity:
        notes.insert(0, f"weights: {g.identity}")
    if g.recipe:
        notes.insert(1 if g.identity else 0, f"recipe (shared by every record of this table; seeds pool within it): "
                     f"{recipes.describe(g.recipe)}")
    return Table(g.title, header, rows, notes)


def findings_table(findings: list[Finding]) -> Table:
    return Table("Findings", list(HEADER), [columns(f) for f in collapsed(findings)], [rule_text(findings)])


def environment() -> dict:
    """Versions of what produced the report itself (each group lists what produced its records)."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("glue-painters", "matplotlib", "numpy", "torch", "transformers", "wandb"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}th,td{border:1px solid #ccc;padding:2px 6px;text-align:left}table.num td{text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:.5em;vertical-align:top;max-width:48%}
figure img{max-width:100%}figcaption{font-size:12px;color:#444}.notes{font-size:12px;color:#555}
pre{background:#f7f7f7;padding:.5em;font-size:11px;overflow-x:auto}.supported{color:#1a7f37}.not-supported{color:#b42318}
.not-enough-data,.inconclusive{color:#777}.contradicted{color:#b42318}
figure.wide{display:block;max-width:100%}
"""


def render_html(*, title: str, command: str, groups: list[Group], figures: list[Figure], missing: list[tuple],
                findings: list[Finding], sources: dict, sections=()) -> str:
    """``sections``: ``section.Section``s made elsewhere (the relayering scan, the paths), after the tables."""
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
             f"<p>Generated by <code>{e(command)}</code> from {e(sources.get('summary', ''))}.</p>"]
    if sources.get("models"):
        parts.append(f"<p><b>Models</b>: {e(sources['models'])}.</p>")
    toc = ["<a href='#findings'>Findings</a>"] + (["<a href='#similarity'>Fig. 3</a>"] if any(
        f.group is None for f in figures) else []) + [f"<a href='#{e(g.slug)}'>{e(g.title)}</a>" for g in groups]
    toc += [f"<a href='#{e(s.anchor)}'>{e(s.title.split(':')[0])}</a>" for s in sections]
    if missing:
        toc.append("<a href='#not-drawn'>not drawn</a>")
    parts.append("<nav>" + " · ".join(toc) + "</nav>")
    parts.append(f"<h2 id='findings'>Findings</h2><p class='notes'>{e(rule_text(findings))}</p><table><thead><tr>"
                 + "".join(f"<th>{e(h)}</th>" for h in HEADER) + "</tr></thead><tbody>")
    for f in collapsed(findings):
        cells = [f"<td>{e(c)}</td>" for c in columns(f)]
        cells[2] = f"<td class='{f.status.replace(' ', '-')}'><b>{e(f.status)}</b></td>"
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    sims = [f for f in figures if f.group is None]
    if sims:
        parts.append("<h2 id='similarity'>Fig. 3: similarity</h2>" + "".join(_figure_html(f) for f in sims))
    for g in groups:
        parts.append(f"<h2 id='{e(g.slug)}'>{e(g.title)}</h2>")
        parts += [_figure_html(f) for f in figures if f.group == g.slug]
        parts.append(group_table(g).html())
        parts.append("<details><summary>configs and versions that produced these records</summary><pre>"
                     + html.escape(json.dumps({"configs": g.configs, "versions": g.versions}, indent=1, default=str),
                                   quote=False)
                     + "</pre></details>")
    parts += [s.html() for s in sections]
    if missing:
        parts.append("<h2 id='not-drawn'>Figures not drawn</h2><ul>" + "".join(
            f"<li>{e(fid)} — {e(who)}: {e(why)}</li>" for fid, who, why in missing) + "</ul>")
    parts.append("<h2>Environment of this report</h2><pre>" + html.escape(json.dumps(environment(), indent=1), quote=False)
                 + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


HALF_WIDTH = ("fig3", "fig10")  # square-ish figures; the curves (Figs. 2, 4–9, 11) get the full width


def _figure_html(f: Figure) -> str:
    data = base64.b64encode(f.png).decode()
    cls = "" if f.fig_id in HALF_WIDTH or f.fig_id.startswith("frontier") else " class='wide'"
    return (f"<figure{cls}><img alt='{html.escape(f.title)}' src='data:image/png;base64,{data}'>"
            f"<figcaption><b>{html.escape(f.title)}</b>. {html.escape(f.caption)}</figcaption></figure>")


def render_markdown(*, title: str, command: str, groups: list[Group], figures: list[Figure], missing: list[tuple],
                    findings: list[Finding], sources: dict, figure_dir: str, sections=()) -> str:
    lines = [f"# {title}", "", f"Generated by `{command}` from {sources.get('summary', '')}. "
             f"The full report with every figure and table: `report.html` (self-contained).", "",
             *([f"**Models**: {sources['models']}.", ""] if sources.get("models") else []),
             "## Findings", "", rule_text(findings), "", markdown_table(findings), ""]
    lines += ["## Figures", ""]
    for f in figures:
        lines.append(f"- [{f.title}]({figure_dir}/{f.name}.png)")
    if missing:
        lines += ["", "### Not drawn", ""] + [f"- {fid} — {who}: {why}" for fid, who, why in missing]
    lines += ["", "## Tables", ""]
    for g in groups:
        lines.append(group_table(g).markdown())
    lines += [s.markdown(figure_dir) for s in sections]
    return "\n".join(lines) + "\n"
