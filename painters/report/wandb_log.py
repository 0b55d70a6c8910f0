"""``painters report --wandb``: the report's figures and tables as a W&B summary run, and one W&B
run per plan and seed with the sweep's config fields, for W&B's run comparer and parallel
coordinates.

Offline by default (``WANDB_MODE=offline`` unless the environment sets it; no key is read or
written here, W&B takes it from the environment at sync time). What is logged:

* one run per report, ``job_type="report"``, group ``report``: every figure as ``wandb.Image``
  under ``figures/<name>``, every table as ``wandb.Table`` under ``tables/<group>``, and the
  findings table under ``tables/findings``;
* one run per (group, variant, N, k, i, seed) of the records (``--wandb-summary-only`` skips
  these), ``job_type="plan"``, group ``report/<group>``, config
  ``{variant, N, k, i, seed, task, mode, plan, model, track}`` — the same names the GLUE sweep
  gives its own training runs (``glue_eval.wandb_runs.wandb_config``), so runs of both compare in one
  view — and summary ``headline`` (normalized median / GLUE average of that seed), ``relative``
  (normalized median), ``score/<task>`` and, for decoder benchmarks above chance, ``norm/<task>``.

Compare runs::

    painters report --results results --out reports --wandb     # writes results/wandb/wandb/offline-run-*
    wandb sync results/wandb/wandb/offline-run-*                 # upload (needs WANDB_API_KEY)

Then in the W&B project: the *Runs* table, filter ``job_type = plan`` and group by ``variant``;
add a *Parallel coordinates* panel with columns ``variant``, ``N``, ``k``, ``seed`` and the
metric ``relative`` (or ``score/<task>``); pick runs and open *Compare runs* to see config
and summary side by side. The report run's *Tables* and *Media* panels hold the figures.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from pathlib import Path

from painters.report.data import Group
from painters.report.figures import Figure
from painters.report.verdict import Finding
from painters.report.html import findings_table, group_table


def _setup() -> None:
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")


def plan_runs(g: Group) -> list[dict]:
    """One entry per (variant, N, k, i, seed) of a group's records: config and summary."""
    by: dict[tuple, list[dict]] = defaultdict(list)
    for r in g.records:
        if g.track == "decoder":
            p = r.get("params") or {}
            variant, n, k, i, seed = r["variant"], p.get("n"), p.get("k"), p.get("i"), p.get("seed")
            plan = r["plan"]["text"] if isinstance(r.get("plan"), dict) else r.get("plan_hash")
        else:
            from painters.report.data import _glue_cell_key

            (variant, n, k, i), seed = _glue_cell_key(r), r.get("seed")
            plan = r.get("plan_text")
        by[(variant, n, k, i, seed, plan)].append(r)
    out = []
    for (variant, n, k, i, seed, plan), recs in by.items():
        scores = {}
        norm = {}
        for r in recs:
            t = r["task"]
            s = r["metrics"][r["primary_metric"]] if g.track == "decoder" else r["score"]
            scores[t] = s
            if t not in g.flagged and g.full_score.get(t) is not None and g.chance.get(t) is not None \
                    and g.full_score[t] != g.chance[t]:
                norm[t] = (s - g.chance[t]) / (g.full_score[t] - g.chance[t])
        reliable = [t for t in g.reliable if t in norm]
        complete = reliable and len(reliable) == len(g.reliable)
        relative = statistics.median(norm[t] for t in reliable) if complete else None
        if g.track == "decoder":
            headline = relative
        else:
            headline = statistics.fmean(scores[t] for t in g.reliable) if complete else None
        summary = {"headline": headline, "relative": relative, **{f"score/{t}": v for t, v in scores.items()}}
        if g.track == "decoder":
            summary.update({f"norm/{t}": v for t, v in norm.items()})
        out.append({
            "name": f"{g.slug}/{variant}" + "".join(f",{a}={b}" for a, b in (("n", n), ("k", k), ("i", i), ("seed", seed))
                                                      if b is not None),
            "config": {"variant": variant, "N": n, "k": k, "i": i, "seed": seed, "task": "+".join(sorted(scores)),
                       "mode": g.mode or "eval", "plan": plan, "model": g.model, "track": g.track,
                       "num_layers": g.num_layers},
            "summary": {k_: v for k_, v in summary.items() if v is not None}})
    return out


def _wandb_table(wandb, table):
    return wandb.Table(columns=table.header, data=[list(r) for r in table.rows])


def log_report(groups: list[Group], figures: list[Figure], findings: list[Finding], *, directory: Path,
               project: str = "glue-painters", summary_only: bool = False, config: dict | None = None) -> list[Path]:
    """Log the report; returns the run folders written (offline) or created."""
    _setup()
    import io

    import wandb
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    runs: list[Path] = []
    run = wandb.init(project=project, dir=str(directory), job_type="report", group="report", name="report",
                     config=config or {}, reinit="finish_previous")
    try:
        payload = {f"figures/{f.name}": wandb.Image(Image.open(io.BytesIO(f.png)), caption=f.title) for f in figures}
        payload["tables/findings"] = _wandb_table(wandb, findings_table(findings))
        for g in groups:
            payload[f"tables/{g.slug}"] = _wandb_table(wandb, group_table(g))
        run.log(payload)
        run.summary.update({"findings/" + f"{f.claim}:{f.subject}": f.status for f in findings})
        runs.append(Path(run.dir).parent)
    finally:
        run.finish()
    if summary_only:
        return runs
    for g in groups:
        for entry in plan_runs(g):
            r = wandb.init(project=project, dir=str(directory), job_type="plan", group=f"report/{g.slug}",
                           name=entry["name"], config=entry["config"], reinit="finish_previous")
            try:
                r.summary.update(entry["summary"])
                runs.append(Path(r.dir).parent)
            finally:
                r.finish()
    return runs
