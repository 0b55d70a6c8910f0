"""A plan is a value: the ordered steps a rewired model runs.

Each step is one of

* ``Layer(i)``           - run layer ``i`` of the original model;
* ``Parallel((i, j, …))`` - run every member on the same input and average their outputs
  (each output already includes its layer's residual, as in the paper's released code);
* ``Repeat(step, k)``    - run a ``Layer`` or ``Parallel`` step ``k`` times in a row, each time
  on the previous output (a looped parallel group is ``Repeat(Parallel(...), k)``).

Plans have one canonical text form that parses and prints back identically::

    0-7,[8-23]x3,24-31      layers 0..7, the group 8..23 looped 3 times, layers 24..31
    0-9,15x10,20-29         middle_repeat: layer 15 run ten times
    0-3,27-4,28-31          a descending range is the reversed middle

Construction canonicalises, so two spellings of the same computation are the same value (and so
the same hash): adjacent equal steps merge into a ``Repeat``, a one-member group is a ``Layer``,
``x1`` disappears. This module imports no torch: plans are built, printed, parsed, hashed and
validated without a model.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Iterator, Union

from .errors import UserError


class PlanError(UserError, ValueError):
    """A plan that cannot be parsed or does not fit the model; the message names the problem."""


@dataclass(frozen=True)
class Layer:
    index: int


@dataclass(frozen=True)
class Parallel:
    members: tuple[int, ...]


@dataclass(frozen=True)
class Repeat:
    step: Union[Layer, Parallel]
    times: int


Step = Union[Layer, Parallel, Repeat]


def _unit(step: Step) -> tuple[Union[Layer, Parallel], int]:
    """A step as (the thing run, how many times)."""
    return (step.step, step.times) if isinstance(step, Repeat) else (step, 1)


def _normal_step(step: Step) -> Step:
    if isinstance(step, Parallel):
        members = tuple(int(m) for m in step.members)
        if not members:
            raise PlanError("a parallel group needs at least one layer: '[]'")
        if len(set(members)) != len(members):
            dup = next(m for m in members if members.count(m) > 1)
            raise PlanError(f"parallel group {_group_text(members)} lists layer {dup} twice")
        return Layer(members[0]) if len(members) == 1 else Parallel(members)
    if isinstance(step, Repeat):
        if isinstance(step.step, Repeat):
            inner, k = _unit(_normal_step(step.step))
            return _normal_step(Repeat(inner, k * step.times))
        if int(step.times) < 1:
            raise PlanError(f"repeat count must be at least 1, got x{step.times}")
        inner = _normal_step(step.step)
        return inner if step.times == 1 else Repeat(inner, int(step.times))
    if isinstance(step, Layer):
        return Layer(int(step.index))
    raise PlanError(f"not a plan step: {step!r}")


def _canonical(steps) -> tuple[Step, ...]:
    """Merge adjacent equal units into one Repeat so equal computations compare equal."""
    out: list[tuple[Union[Layer, Parallel], int]] = []
    for step in steps:
        unit, k = _unit(_normal_step(step))
        if out and out[-1][0] == unit:
            out[-1] = (unit, out[-1][1] + k)
        else:
            out.append((unit, k))
    return tuple(u if k == 1 else Repeat(u, k) for u, k in out)


@dataclass(frozen=True)
class Plan:
    """An ordered, canonical tuple of steps. Build with ``Plan(steps)`` or ``Plan.parse(text)``."""

    steps: tuple[Step, ...]

    def __post_init__(self):
        steps = _canonical(self.steps)
        if not steps:
            raise PlanError("a plan needs at least one step")
        object.__setattr__(self, "steps", steps)

    # ---- forms -------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> "Plan":
        return cls(tuple(_parse(text)))

    @property
    def text(self) -> str:
        return _to_text(self.steps)

    def __str__(self) -> str:
        return self.text

    def to_json(self) -> dict:
        """A JSON-able dict; the text is the source of truth, the steps are for readers."""
        return {"text": self.text, "steps": [_step_json(s) for s in self.steps]}

    @classmethod
    def from_json(cls, obj) -> "Plan":
        if isinstance(obj, str):
            obj = json.loads(obj)
        if isinstance(obj, dict) and "text" in obj:
            return cls.parse(obj["text"])
        if isinstance(obj, dict) and "steps" in obj:
            return cls(tuple(_step_from_json(s) for s in obj["steps"]))
        raise PlanError(f"a plan in JSON is an object with 'text' or 'steps', got {obj!r:.80}")

    @property
    def hash(self) -> str:
        """Stable across processes and versions: sha256 of the canonical text (12 hex digits)."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    # ---- what it runs ------------------------------------------------------------------
    def units(self) -> Iterator[Union[Layer, Parallel]]:
        """The steps with repeats unrolled: what the model executes one after another."""
        for step in self.steps:
            unit, k = _unit(step)
            for _ in range(k):
                yield unit

    @property
    def executions(self) -> int:
        """Layer executions per token (the plan's compute cost; a group of m costs m)."""
        return sum(len(u.members) if isinstance(u, Parallel) else 1 for u in self.units())

    @property
    def depth(self) -> int:
        """Sequential steps per token (the plan's latency if a group ran as one step)."""
        return sum(1 for _ in self.units())

    def layers_used(self) -> set[int]:
        return {i for u in self.units() for i in (u.members if isinstance(u, Parallel) else (u.index,))}

    @property
    def is_sequential(self) -> bool:
        """True when every step is a single layer (the plan is an ordinary stack of layers)."""
        return all(isinstance(u, Layer) for u in self.units())

    def validate(self, num_layers: int) -> "Plan":
        """Check every index against a model of ``num_layers`` layers; returns self."""
        if num_layers < 1:
            raise PlanError(f"the model has {num_layers} layers")
        for step in self.steps:
            unit, _ = _unit(step)
            for i in unit.members if isinstance(unit, Parallel) else (unit.index,):
                if not 0 <= i < num_layers:
                    raise PlanError(
                        f"plan '{self.text}': step '{_to_text((step,))}' uses layer {i}, but the model "
                        f"has {num_layers} layers (0-{num_layers - 1})"
                    )
        return self


def full_plan(num_layers: int) -> Plan:
    return Plan(tuple(Layer(i) for i in range(num_layers)))


# ---- text ----------------------------------------------------------------------------------
def _runs(indices) -> list[tuple[int, int]]:
    """Split a list of ints into maximal runs stepping by +1 or -1 (as (first, last))."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs:
            a, b = runs[-1]
            direction = b - a
            if (direction == 0 and abs(i - b) == 1) or (direction != 0 and i - b == (1 if direction > 0 else -1)):
                runs[-1] = (a, i)
                continue
        runs.append((i, i))
    return runs


def _runs_text(indices) -> str:
    """Runs of three or more print as a range; two stay as two numbers (``6,5`` reads better
    than ``6-5``)."""
    parts = []
    for a, b in _runs(indices):
        parts.append(str(a) if a == b else f"{a},{b}" if abs(a - b) == 1 else f"{a}-{b}")
    return ",".join(parts)


def _group_text(members) -> str:
    return f"[{_runs_text(members)}]"


def _to_text(steps) -> str:
    parts: list[str] = []
    singles: list[int] = []
    for step in steps:
        unit, k = _unit(step)
        if isinstance(unit, Layer) and k == 1:
            singles.append(unit.index)
            continue
        if singles:
            parts.append(_runs_text(singles))
            singles = []
        body = str(unit.index) if isinstance(unit, Layer) else _group_text(unit.members)
        parts.append(body if k == 1 else f"{body}x{k}")
    if singles:
        parts.append(_runs_text(singles))
    return ",".join(parts)


_TOKEN = re.compile(r"\s*(?:(\[)([^\]]*)\]|(\d+)(?:-(\d+))?)(?:x(\d+))?\s*$")


def _parse_range(item: str, where: str) -> list[int]:
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", item)
    if not m:
        raise PlanError(f"bad plan text {where}: expected a layer index or a range like 8-23, got '{item}'")
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) is not None else a
    return list(range(a, b + 1)) if a <= b else list(range(a, b - 1, -1))


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets, checking bracket balance."""
    items, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
            if depth > 1:
                raise PlanError(f"bad plan text '{text}': groups cannot be nested")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise PlanError(f"bad plan text '{text}': ']' without '['")
        if ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise PlanError(f"bad plan text '{text}': '[' without ']'")
    items.append("".join(cur))
    return items


def _parse(text: str) -> list[Step]:
    if not isinstance(text, str) or not text.strip():
        raise PlanError("empty plan text")
    text = re.sub(r"\s+", "", text)
    steps: list[Step] = []
    for pos, item in enumerate(_split_top(text), start=1):
        where = f"'{text}' (step {pos})"
        if not item.strip():
            raise PlanError(f"bad plan text {where}: empty step")
        m = _TOKEN.match(item)
        if not m:
            raise PlanError(
                f"bad plan text {where}: '{item.strip()}' is not a layer, a range a-b, a group [..] "
                f"or one of those followed by xK"
            )
        times = int(m.group(5)) if m.group(5) else 1
        if times < 1:
            raise PlanError(f"bad plan text {where}: repeat count must be at least 1")
        if m.group(1):
            inner = m.group(2)
            if not inner.strip():
                raise PlanError(f"bad plan text {where}: empty group '[]'")
            members = [i for part in inner.split(",") for i in _parse_range(part, where)]
            steps.append(Repeat(Parallel(tuple(members)), times))
        elif m.group(4) is not None:
            if times != 1:
                raise PlanError(
                    f"bad plan text {where}: 'xK' repeats one layer or one [group]; "
                    f"'{item.strip()}' is a range (write each layer, or use a group)"
                )
            steps.extend(Layer(i) for i in _parse_range(f"{m.group(3)}-{m.group(4)}", where))
        else:
            steps.append(Repeat(Layer(int(m.group(3))), times))
    return steps


# ---- JSON ----------------------------------------------------------------------------------
def _step_json(step: Step) -> dict:
    if isinstance(step, Layer):
        return {"layer": step.index}
    if isinstance(step, Parallel):
        return {"parallel": list(step.members)}
    return {"repeat": _step_json(step.step), "times": step.times}


def _step_from_json(obj) -> Step:
    if not isinstance(obj, dict):
        raise PlanError(f"a plan step in JSON is an object, got {obj!r:.60}")
    if "layer" in obj:
        return Layer(int(obj["layer"]))
    if "parallel" in obj:
        return Parallel(tuple(int(i) for i in obj["parallel"]))
    if "repeat" in obj:
        return Repeat(_step_from_json(obj["repeat"]), int(obj.get("times", 1)))
    raise PlanError(f"unknown plan step in JSON: {obj!r:.60}")
