"""A W&B *comparison report* of a store: one section per table of the report, titled as the table
is (so no two alike), a grid of panels per benchmark.

The runs it shows are the sweeps' own, one per record (``glue_painters.tracking``: config
``track, model, variant, N, k, i, seed, task, mode, plan`` and, for GLUE, the recipe as ``hp/*``,
``limit_train``, ``limit_eval`` and ``model_fingerprint``; decoder: ``dtype``; summary: the
record's metrics, GLUE's task ``score``). A section's runs are selected by the same fields that
make its table, so two tables of one model and mode (other epochs, say) show their own runs. Each
benchmark's grid: its score against N by variant (the paper's Figs. 4-9 and 11), a parallel
coordinates panel (variant, N, k, seed -> score) and a run comparer. Normalized medians and GLUE
averages are the report's own (no single run holds them): they are in the report run's tables.

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


def _literal(value) -> str:
    return repr(value) if isinstance(value, (str, int, float, bool)) else ""


def _filters(g) -> str:
    """The W&B filter that selects this table's records' runs: track, model, mode and the recipe
    fields the sweeps put in a run's config."""
    parts = [("track", g.track), ("model", g.model), ("mode", g.mode or "eval")]
    if g.track == "glue":
        parts += [(f"hp/{k}", v) for k, v in sorted((g.recipe.get("hparams") or {}).items())]
        subset = g.recipe.get("subset") or {}
        parts += [("limit_train", subset.get("train")), ("limit_eval", subset.get("eval")),
                  ("model_fingerprint", g.recipe.get("model"))]
    else:
        parts += [("dtype", g.recipe.get("dtype"))]
    return " and ".join(f"Config({k!r}) == {_literal(v)}" for k, v in parts if _literal(v))


def _section(g) -> dict:
    metric = {t: "score" if g.track == "glue" else g.primary.get(t, "acc") for t in g.tasks}
    grids = [{"title": f"{t} ({metric[t]})", "filters": f"{_filters(g)} and Config('task') == {t!r}",
              "panels": [{"type": "scatter", "x": "config:N", "y": f"summary:{metric[t]}",
                          "title": f"{t}: {metric[t]} vs N, by variant (Figs. 4-9, 11)"},
                         {"type": "parallel", "columns": ["config:variant", "config:N", "config:k", "config:seed",
                                                          f"summary:{metric[t]}"],
                          "title": f"{t}: variant, N, k, seed -> {metric[t]}"},
                         {"type": "comparer", "title": "compare runs"}]} for t in g.tasks]
    note = ""
    if g.recipe.get("heal"):  # healed scores have no per-record run: panels would show the unhealed ones
        grids, note = [], " Healed scores have no run per record (the heal's own run has job type heal): no panels."
    return {"title": g.title, "filters": _filters(g), "groupby": ["variant"], "grids": grids,
            "note": f"Weights: {g.identity or g.model}. Runs: the sweeps' own, one per record.{note}"}


def report_spec(groups, *, project: str, entity: str | None = None, title: str = "glue-painters sweep") -> dict:
    """The report as plain data: one section per table of the report, titled as it is; titles are
    unique (the tables are titled apart by ``data.titled_apart``; this checks it)."""
    sections = [_section(g) for g in groups]
    titles = [s["title"] for s in sections]
    if len(set(titles)) != len(titles):
        raise UserError(f"W&B report: two sections titled alike ({', '.join(sorted({t for t in titles if titles.count(t) > 1}))})")
    return {"project": project, "entity": entity or os.environ.get("WANDB_ENTITY"), "title": title,
            "description": "Layer-rewiring variants compared, from the sweeps' own runs (one per record): "
                           "each benchmark's score against N by variant.",
            "sections": sections}


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
        blocks += [wr.H2(s["title"])] + ([wr.P(s["note"])] if s.get("note") else [])
        for grid in s.get("grids") or [{"title": "", "filters": s["filters"], "panels": s.get("panels", [])}]:
            runset = wr.Runset(project=spec["project"], entity=spec["entity"], name=f"{s['title']} {grid['title']}".strip(),
                               filters=grid["filters"], groupby=s["groupby"])
            blocks += ([wr.H3(grid["title"])] if grid["title"] else []) + [
                wr.PanelGrid(runsets=[runset], panels=[_panel(wr, p) for p in grid["panels"]])]
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
