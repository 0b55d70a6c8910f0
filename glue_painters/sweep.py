"""The sweep skeleton both tracks fill in: rows -> pending -> shares across processes -> compute ->
records -> summary.

What is the same in both tracks lives here, with one name each: what a sweep returns
(``SweepOutcome``), the baseline rule (``with_baseline``: ``full`` first in every sweep that
normalizes), and the steps around a track's own compute (``run_skeleton``). A track adds its own
rows (tasks, modes, seeds), its scoring or training, and its record keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SweepOutcome:
    """What ``run_sweep`` returns in both tracks."""

    records: list[dict]      # every record of the sweep (found or written), in row order
    written: int             # records this invocation computed (all processes together)
    skipped: int             # records found in the store (or copied from a record of the same computation)
    seconds: float
    specs: list = field(default_factory=list)   # the sweep's rows (decoder: PlanSpec, GLUE: RunSpec)
    tasks: list[str] = field(default_factory=list)
    wandb: str | None = None  # where the W&B runs went and the `wandb sync` line, when logged
