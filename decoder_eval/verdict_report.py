"""The verdict's summary as people read it: a Markdown page and a plot against layer executions.

Both are drawn from the summary JSON ``painters search verdict`` writes, so a page can be remade
without evaluating anything.
"""

from __future__ import annotations

from pathlib import Path

from glue_painters.results import atomic_write_text


def verdict_markdown(summary: dict) -> str:
    """The verdict summary JSON as a Markdown page: per budget, the plans found and the equal-cost
    baselines with their perplexities and benchmark scores, best held-out (else calibration)
    perplexity first, so the page answers "which plan at this cost" without the JSON."""
    tasks, rows = summary["tasks"], summary["rows"]
    held = "heldout" in summary
    ppl = "heldout_perplexity" if held else "calibration_perplexity"
    lines = [f"# Plan search verdict: {summary['model']}", "", "Command:", "", f"```bash\n{summary['command']}\n```", "",
             f"Calibration (the search's objective): {summary['calibration']['source']}, "
             f"{summary['calibration']['n_tokens']} tokens." + (
                 f" Held-out text (never seen by the search): {summary['heldout']['source']}, "
                 f"{summary['heldout']['n_tokens']} tokens." if held else ""),
             f"Benchmarks: the first {summary['limit']} documents of " + ", ".join(
                 f"{t} ({summary['primary'][t]}, n={summary['n'][t]})" for t in tasks) + ".", ""]
    for task, why in summary.get("flagged", {}).items():
        lines.append(f"- flagged {task}: {why}; left out of the normalized median")
    head = ["budget", "name", "executions", "calib. ppl"] + (["held-out ppl"] if held else []) + tasks + [
        "norm. median", "plan"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for budget in sorted({r["budget"] for r in rows}, reverse=True):
        for r in sorted((r for r in rows if r["budget"] == budget), key=lambda r: (r[ppl] is None, r[ppl] or 0)):
            med = "–" if r["normalized_median"] is None else f"{r['normalized_median']:.2f}"
            cells = [f"{r['budget']:g}", r["name"], str(r["executions"]), _num(r["calibration_perplexity"])]
            cells += [_num(r["heldout_perplexity"])] if held else []
            cells += [f"{r['scores'][t]:.3f} ± {r['stderr'][t]:.3f}" if r["stderr"].get(t) is not None
                      else f"{r['scores'][t]:.3f}" for t in tasks]
            lines.append("| " + " | ".join(cells + [med, f"`{r['plan']}`"]) + " |")
    lines += ["", "Scores are the primary metric ± its standard error; perplexities are exp(mean token loss)."]
    return "\n".join(lines) + "\n"


def _num(x) -> str:
    return "–" if x is None else f"{x:.1f}"


def write_verdict_markdown(summary: dict, path: Path) -> Path:
    atomic_write_text(Path(path), verdict_markdown(summary))
    return Path(path)


def _series(name: str) -> str:
    """The line a verdict row belongs to: the paper's equal-depth variants form one line per kind."""
    if name.endswith("[equal depth]"):
        kind, _, params = name.split(" [")[0].partition(":")
        k = [p for p in params.split(",") if p.startswith("k=")]
        return f"{kind}{' ' + k[0] if k else ''} (equal depth)"
    return name


def plot_verdict(result: dict, tasks: list[str], path: Path, title: str = "") -> Path:
    """Against layer executions: calibration perplexity, held-out perplexity (when measured) and
    each task's primary score; one line per search method or baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    panels = [("calibration perplexity", lambda r: r["calibration_perplexity"], True)]
    if "heldout" in result:
        panels.append((f"held-out perplexity ({result['heldout']['source']})", lambda r: r["heldout_perplexity"], True))
    for task in tasks:
        flag = " - flagged" if task in result["flagged"] else ""
        panels.append((f"{task} ({result['primary'][task]}){flag}", lambda r, t=task: r["scores"][t], False))
    series = list(dict.fromkeys(_series(r["name"]) for r in rows))
    markers = dict(zip(series, "*ovs^D<>ph+x"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.9 * len(panels) + 2.2, 3.7), squeeze=False)
    for ax, (label, value, log) in zip(axes[0], panels):
        for name in series:
            pts = [(r["executions"], value(r)) for r in sorted(rows, key=lambda r: r["budget"])
                   if _series(r["name"]) == name]  # in budget order: equal-depth rows share their executions
            ax.plot(*zip(*pts), marker=markers.get(name, "."), linestyle="-" if len(pts) > 1 else "", label=name,
                    alpha=0.85)
        if log:
            ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("layer executions per token", fontsize=8)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


__all__ = ["plot_verdict", "verdict_markdown", "write_verdict_markdown"]
