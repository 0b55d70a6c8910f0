"""What a search keeps between runs: the objective's cache, its progress file, and what it found.

Determinism and resumption: every random choice comes from a local ``random.Random`` seeded from
``seed`` (and the budget), and an objective value depends only on the plan. So a re-run with the
same settings replays the same choices, finds every plan it already evaluated in the cache
(``Memo``, a JSON file written atomically after every step or generation), and carries on from
where the interrupted run stopped: resuming cannot drift from an uninterrupted run, by
construction. The run file next to the cache (``Progress``) records the progress for readers;
``found_plans`` reads back what finished runs found (evolve's seeds, the decoder track's verdict).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UserError
from ..plans import Plan
from ..results import atomic_write_json
from .cost import Cost

Objective = Callable[[Plan], float]

SEARCH_VERSION = 1


class Memo:
    """The objective with a cache keyed by plan hash, optionally kept in a JSON file.

    ``identity`` names the objective (model, calibration tokens, ...): a cache file written for
    another identity is refused rather than silently reused.
    """

    def __init__(self, objective: Objective, path: str | Path | None = None, identity: dict | None = None):
        self.objective = objective
        self.path = Path(path) if path else None
        self.identity = identity or {}
        self.values: dict[str, tuple[str, float]] = {}  # hash -> (text, value)
        self.evaluated = 0  # plans this process evaluated (cache misses)
        self.hits = 0
        if self.path and self.path.exists():
            data = json.loads(self.path.read_text())
            if data.get("identity") != json.loads(json.dumps(self.identity, default=str)):
                raise UserError(f"cache {self.path} belongs to another objective ({data.get('identity')}); "
                                f"pass another --out or remove it")
            self.values = {h: (v["plan"], float(v["value"])) for h, v in data.get("values", {}).items()}

    def __len__(self) -> int:
        return len(self.values)

    def __call__(self, plan: Plan) -> float:
        return self.many([plan])[0]

    def many(self, plans: Sequence[Plan]) -> list[float]:
        todo = list({p.hash: p for p in plans if p.hash not in self.values}.values())
        self.hits += sum(1 for p in plans if p.hash in self.values)
        if todo:
            batch = getattr(self.objective, "many", None)
            values = batch(todo) if batch else [self.objective(p) for p in todo]
            for p, v in zip(todo, values):
                self.values[p.hash] = (p.text, float(v))
            self.evaluated += len(todo)
        return [self.values[p.hash][1] for p in plans]

    def get(self, plan: Plan) -> float | None:
        hit = self.values.get(plan.hash)
        return None if hit is None else hit[1]

    def save(self) -> None:
        if self.path:
            atomic_write_json(self.path, {"identity": self.identity, "values": {
                h: {"plan": t, "value": v} for h, (t, v) in sorted(self.values.items())}})


def as_memo(objective) -> Memo:
    """The objective as a ``Memo`` (a plain function gets an in-memory cache), so a search never
    evaluates a plan twice whatever it was given."""
    return objective if isinstance(objective, Memo) else Memo(objective)


@dataclass
class Found:
    """The best plan a search found within one budget."""

    method: str
    budget: float
    plan: str
    value: float  # the objective (calibration loss)
    cost: float
    executions: int
    depth: int

    @property
    def perplexity(self) -> float:
        return math.exp(self.value) if self.value < 700 else float("inf")

    def to_json(self) -> dict:
        return dict(asdict(self), perplexity=self.perplexity)

    @classmethod
    def of(cls, method: str, budget: float, plan: Plan, value: float, cost: Cost) -> "Found":
        return cls(method, budget, plan.text, value, cost(plan), plan.executions, plan.depth)


def order_key(item):
    """Sort key of (plan, value): lower value first; ties broken by plan text, so deterministic."""
    plan, value = item
    return (value if not math.isnan(value) else math.inf, plan.text)


class Progress:
    """The run file beside the cache: what a search has done so far (written atomically)."""

    def __init__(self, path: Path | None, header: dict):
        self.path, self.header, self.steps = path, header, []

    def step(self, memo: Memo, **info) -> None:
        self.steps.append(info)
        memo.save()
        if self.path:
            atomic_write_json(self.path, dict(self.header, steps=self.steps, done=False))

    def finish(self, memo: Memo, found: dict) -> None:
        memo.save()
        if self.path:
            atomic_write_json(self.path, dict(self.header, steps=self.steps, done=True,
                                              found={str(b): f.to_json() for b, f in found.items()}))


def run_key(**fields) -> str:
    """A short, stable name for a run's settings (its run file is named by it)."""
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def finished_runs(folder: Path, method: str) -> list[dict]:
    """Finished run files of one method, newest first."""
    runs = []
    for path in sorted(folder.glob(f"run-{method}-*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        data = json.loads(path.read_text())
        if data.get("done"):
            runs.append(data)
    return runs


def found_plans(folder: Path, methods: list[str], budgets: list[float]) -> dict[tuple[float, str], str]:
    """``{(budget, method): plan text}`` from the newest finished run of each method that has the budget."""
    out = {}
    for method in methods:
        for data in finished_runs(folder, method):
            for b, f in data.get("found", {}).items():
                key = (float(b), method)
                if float(b) in budgets and key not in out:
                    out[key] = f["plan"]
    return out
