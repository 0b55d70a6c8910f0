"""A W&B *comparison report* of a sweep: one section per model and track, panels per paper figure.

The runs it shows are the per-plan runs ``painters report --wandb`` logs (``wandb_log``: job type
``plan``, config ``variant, N, k, i, seed, track, model``, summary ``relative`` - the normalized
median - and ``score/<task>``). Each section has: the normalized median against N by variant (the
paper's Figs. 4-9 and 11 in one scatter, grouped by variant), one panel per task, a parallel
coordinates panel (variant, N, k, seed -> relative) and a run comparer.

Why a spec first: building a report with W&B's reports API (``wandb-workspaces``) needs the W&B
server (it looks up the project's id), so offline nothing can be built. ``report_spec`` is a plain
JSON-able description, written next to the HTML report; ``build_report`` turns a spec into
``wandb_workspaces`` objects, and ``publish`` saves it when W&B is online and logged in - at once,
or later from the written spec (``painters report --wandb-publish SPEC``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from glue_painters.errors import UserError
from glue_painters.results import atomic_write_text

SPEC_NAME = "wandb_report_spec.json"


def _section(g) -> dict:
    filters = (f"Config('track') == '{g.track}' and Config('model') == '{g.model}'"
               + (f" and Config('mode') == '{g.mode}'" if g.mode else ""))
    panels = [{"type": "scatter", "x": "config:N", "y": "summary:relative",
               "title": "normalized median vs N, by variant (Figs. 4-9, 11)"}]
    panels += [{"type": "scatter", "x": "config:N", "y": f"summary:score/{t}", "title": f"{t} vs N"}
               for t in g.tasks]
    panels += [{"type": "parallel", "columns": ["config:variant", "config:N", "config:k", "config:seed",
                                                 "summary:relative"], "title": "variant, N, k, seed -> relative"},
               {"type": "comparer", "title": "compare runs"}]
    return {"title": f"{g.model} ({g.track}{', ' + g.mode if g.mode else ''})", "filters": filters,
            "groupby": ["variant"], "panels": panels}


def report_spec(groups, *, project: str, entity: str | None = None, title: str = "glue-painters sweep") -> dict:
    """The report as plain data: one section per table of the report."""
    return {"project": project, "entity": entity or os.environ.get("WANDB_ENTITY"), "title": title,
            "description": "Layer-rewiring variants compared: normalized median and per-task scores against N.",
            "sections": [_section(g) for g in groups]}


def _metric(wr, name: str):
    kind, _, key = name.partition(":")
    return wr.Config(key) if kind == "config" else wr.SummaryMetric(key)


def _panel(wr, p: dict):
    if p["type"] == "scatter":
        return wr.ScatterPlot(title=p["title"], x=_metric(wr, p["x"]), y=_metric(wr, p["y"]))
    if p["type"] == "parallel":
        return wr.ParallelCoordinatesPlot(title=p["title"], columns=[
            wr.ParallelCoordinatesPlotColumn(metric=_metric(wr, c)) for c in p["columns"]])
    if p["type"] == "comparer":
        return wr.RunComparer()
    raise UserError(f"W&B report spec: unknown panel type {p['type']!r}")


def build_report(spec: dict):
    """``wandb_workspaces`` objects for a spec (no network until ``save``)."""
    import wandb_workspaces.reports.v2 as wr

    if not spec.get("entity"):
        raise UserError("W&B report: no entity (set WANDB_ENTITY or log in so W&B knows your default entity)")
    blocks = [wr.P(spec["description"])]
    for s in spec["sections"]:
        runset = wr.Runset(project=spec["project"], entity=spec["entity"], name=s["title"], filters=s["filters"],
                           groupby=s["groupby"])
        blocks += [wr.H2(s["title"]), wr.PanelGrid(runsets=[runset], panels=[_panel(wr, p) for p in s["panels"]])]
    return wr.Report(project=spec["project"], entity=spec["entity"], title=spec["title"],
                     description=spec["description"], blocks=blocks)


def online() -> bool:
    return os.environ.get("WANDB_MODE", "offline") not in ("offline", "dryrun", "disabled")


def write_spec(spec: dict, folder: Path) -> Path:
    path = Path(folder) / SPEC_NAME
    atomic_write_text(path, json.dumps(spec, indent=1) + "\n")
    return path


def publish(spec: dict) -> str:
    """Save the report on W&B; returns its URL. Offline this is an error saying what to do."""
    if not online():
        raise UserError("W&B is offline (WANDB_MODE is offline or unset): set WANDB_MODE=online, run "
                        "`wandb login` and sync the runs first (wandb sync ...)")
    report = build_report(spec)
    report.save()
    return report.url


def load_spec(path) -> dict:
    try:
        spec = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"W&B report spec {path} not found") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("sections"), list):
        raise UserError(f"{path}: not a W&B report spec (no 'sections')")
    return spec
