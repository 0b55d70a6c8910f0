"""What a plan costs, for the searches' budgets.

By default ``plan.executions`` (layer runs per token); with a latency table
(``reports/latency_<model>.json``) the measured milliseconds per token, so a budget can be the
speed a user actually gets rather than a count that ignores parallel groups sharing a step.
"""

from __future__ import annotations

import glob
import json
import math
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..plans import Plan

Cost = Callable[[Plan], float]


def executions(plan: Plan) -> float:
    """Layer executions per token (a parallel group of m costs m, a loop k times its body)."""
    return float(plan.executions)


class LatencyCost:
    """Milliseconds per token of a plan, from a measured latency table.

    The table is ``benchmarks/latency.py``'s JSON (``rows`` with ``plan`` and ``decode_ms_per_token``;
    a plan timed in several parallel modes costs its fastest) or the simpler ``{"records": [{"plan":
    text, "ms_per_token": x}, ...]}`` (a bare list of records also works). A plan measured in the table gets its measurement; any other
    plan gets the least-squares fit ``ms = a + b * executions + c * depth`` over the table (``c``
    only when the table's depths vary independently of executions), which is how a layer stack's
    latency behaves: a fixed part (embeddings, head), a part per layer run, and a part per
    sequential step (a parallel group's members can share a step on parallel hardware).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"latency table {self.path}: {e}") from None
        rows = (raw.get("records") or raw.get("rows") or []) if isinstance(raw, dict) else raw
        self.measured: dict[str, float] = {}
        for i, r in enumerate(rows):
            ms = r.get("ms_per_token", r.get("decode_ms_per_token")) if isinstance(r, dict) else None
            if ms is None or "plan" not in r:
                raise UserError(f"latency table {self.path}: record {i} needs 'plan' and 'ms_per_token' "
                                f"(or 'decode_ms_per_token')")
            text = Plan.parse(str(r["plan"])).text
            self.measured[text] = min(float(ms), self.measured.get(text, math.inf))
        points = [(p.executions, p.depth, ms) for p, ms in ((Plan.parse(t), ms) for t, ms in self.measured.items())]
        if len({(e, d) for e, d, _ in points}) < 2:
            raise UserError(f"latency table {self.path}: needs at least two plans of different cost to fit")
        self.coef = _fit(points)

    def __call__(self, plan: Plan) -> float:
        if plan.text in self.measured:
            return self.measured[plan.text]
        a, b, c = self.coef
        return a + b * plan.executions + c * plan.depth

    def describe(self) -> dict:
        return {"cost": "latency_ms_per_token", "table": str(self.path), "fit": list(self.coef)}


def _fit(points) -> tuple[float, float, float]:
    import numpy as np

    e = np.array([p[0] for p in points], float)
    d = np.array([p[1] for p in points], float)
    y = np.array([p[2] for p in points], float)
    if np.linalg.matrix_rank(np.stack([np.ones_like(e), e, d], 1)) == 3:
        a, b, c = np.linalg.lstsq(np.stack([np.ones_like(e), e, d], 1), y, rcond=None)[0]
        return float(a), float(b), float(c)
    a, b = np.linalg.lstsq(np.stack([np.ones_like(e), e], 1), y, rcond=None)[0]
    return float(a), float(b), 0.0


def latency_table(model_name: str, reports_dir: str | Path = "reports") -> Path | None:
    """``reports/latency_<model>.json`` (or the one ``reports/latency_*.json`` naming the model)."""
    direct = Path(reports_dir) / f"latency_{model_name}.json"
    if direct.is_file():
        return direct
    for path in sorted(glob.glob(str(Path(reports_dir) / "latency_*.json"))):
        try:
            if json.loads(Path(path).read_text()).get("model") == model_name:
                return Path(path)
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
    return None
