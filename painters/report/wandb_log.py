"""``painters report --wandb``: the report's figures and tables as one W&B run beside the sweeps'
own runs, with W&B's own settings respected.

What a user of W&B expects, and why each rule is here:

* **W&B's environment wins.** The run starts through ``glue_painters.tracking.Tracker``, as every
  sweep's runs do: ``WANDB_PROJECT``, ``WANDB_ENTITY``, ``WANDB_DIR`` and ``WANDB_MODE`` are
  honoured (``--wandb-project`` / ``--wandb-dir`` only when given), offline without ``WANDB_MODE``.
* **Beside the sweeps' runs, not in a folder of its own.** Sweeps write ``<results>/wandb/
  offline-run-*``; so does the report run (it once wrote ``<results>/wandb/wandb/``), so one
  ``wandb sync <results>/wandb/offline-run-*`` uploads both.
* **No copies.** Every record already has its W&B run, logged by the sweep that wrote it (id =
  the record's key hash, config ``track, model, variant, N, k, i, seed, task, mode, plan`` and the
  recipe, summary = the record's metrics). The report once logged one more run per plan and seed
  repeating them (25 for a small store); now it logs only what the sweeps' runs lack: the figures,
  the tables (normalized medians, GLUE averages) and the findings. The comparison report
  (``wandb_report``) draws its panels from the sweeps' runs, and ``sweep_runs`` says how many of
  the report's records have theirs in the run folder.

Compare runs::

    painters report --wandb          # the report run in results/wandb/offline-run-*, beside the sweeps'
    wandb sync results/wandb/offline-run-*
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from glue_painters.results import record_key
from glue_painters.tracking import Tracker
from painters.report.data import Group
from painters.report.figures import Figure
from painters.report.html import findings_table, group_table
from painters.report.verdict import Finding


def tracker(results: Path, *, directory=None, project: str | None = None) -> Tracker:
    """The sweeps' ``Tracker`` over the results root: the same run folder, W&B's environment first;
    ``directory`` / ``project`` are the command's explicit flags (they win when given)."""
    # W&B's environment, read now and passed on: wandb keeps the settings of its first setup in a
    # process, so a variable set later would otherwise be missed
    settings = {"project": project or os.environ.get("WANDB_PROJECT"), "entity": os.environ.get("WANDB_ENTITY")}
    t = Tracker(True, Path(results), {k: v for k, v in settings.items() if v})
    if directory:
        t.directory = Path(directory)
    return t


def report_run_id(groups: list[Group]) -> str:
    """One W&B run per report of one selection of records: a re-run of the same report resumes
    it, a store with other records makes another."""
    return "report-" + record_key({"records": sorted(r.get("key_hash", "") for g in groups for r in g.records)})[:12]


def sweep_runs(groups: list[Group], t: Tracker) -> tuple[int, int]:
    """(records whose sweep run is in ``t``'s offline folder, records): the runs the comparison
    report shows. Online runs are on the server and not counted here."""
    have = {p.name.rsplit("-", 1)[-1] for p in (t.directory / "wandb").glob("offline-run-*")}
    keys = [r.get("key_hash") for g in groups for r in g.records]
    return sum(k in have for k in keys), len(keys)


def _wandb_table(wandb, table):
    return wandb.Table(columns=table.header, data=[list(r) for r in table.rows])


def log_report(groups: list[Group], figures: list[Figure], findings: list[Finding], *, t: Tracker,
               config: dict | None = None) -> list[Path]:
    """Log the report run; returns its run folder."""
    import wandb
    from PIL import Image

    run = t.start(report_run_id(groups), name="report", group="report", job_type="report", config=config or {})
    try:
        payload = {f"figures/{f.name}": wandb.Image(Image.open(io.BytesIO(f.png)), caption=f.title) for f in figures}
        payload["tables/findings"] = _wandb_table(wandb, findings_table(findings))
        for g in groups:
            payload[f"tables/{g.slug}"] = _wandb_table(wandb, group_table(g))
        run.log(payload)
        run.summary.update({"findings/" + f"{f.claim}:{f.subject}": f.status for f in findings})
        return [Path(run.dir).parent]
    finally:
        run.finish()
