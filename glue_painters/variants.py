"""The paper's variants as pure functions returning plans, and a parser for a user's spec.

Index convention (from the paper's released code, ``routing_*.py``, argument ``start_layer``):
with ``N = start_layer`` and ``T`` layers numbered ``0..T-1``,

* kept at the start: layers ``0..N``          (N + 1 layers)
* the middle:        layers ``N+1..T-N-1``    (T - 2N - 1 layers)
* kept at the end:   layers ``T-N..T-1``      (N layers)

The paper's text says "skip layers N to T-N"; in the code both ends of that range are kept, so
it is the open interval (N, T-N). ``N`` is valid from 0 to ``(T-2)//2`` (the middle is never
empty). The variants, all on that middle:

=====================  ============================================================================
full                   0..T-1
skip                   the middle dropped
middle_repeat          layer ``T//2`` run (T - 2N - 1) times in place of the middle
reverse                the middle in reverse order
random (seed)          the middle shuffled by ``random.Random(seed)`` - the same permutation as the
                       paper's ``random.seed(seed); random.shuffle(...)``, without touching the
                       global RNG
parallel               the middle as one parallel group (every member on the same input, mean out)
looped_parallel (k)    that group applied k times, each time to the previous mean (paper: k=3)
skip_one (i)           every layer but i (Fig. 2)
switch (i)             layer i+1 runs before layer i (Fig. 2)
duplicate (i, j, t)    relayering ("Repeat Your Self"): layers ``0..j-1``, then the block
                       ``i..j-1`` run ``t-1`` more times, then ``j..T-1`` (j exclusive, as RYS's
                       (i, j); t=2 by default: the block runs twice)
=====================  ============================================================================
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass

from .plans import Layer, Parallel, Plan, PlanError, Repeat, full_plan


def middle(num_layers: int, n: int) -> list[int]:
    """The layers the variants act on: N+1..T-N-1 (see the module docstring)."""
    max_n = max_start(num_layers)
    if not 0 <= n <= max_n:
        raise PlanError(
            f"N={n} is out of range for a model of {num_layers} layers: N keeps layers 0..N and "
            f"T-N..T-1, so it must be between 0 and {max_n}"
        )
    return list(range(n + 1, num_layers - n))


def max_start(num_layers: int) -> int:
    """The largest N that leaves a non-empty middle."""
    if num_layers < 2:
        raise PlanError(f"the variants need a model of at least 2 layers, got {num_layers}")
    return (num_layers - 2) // 2


def n_range(num_layers: int) -> list[int]:
    """Every valid N, the x-axis of the paper's Figs. 4-9."""
    return list(range(0, max_start(num_layers) + 1))


def _around(num_layers: int, n: int, middle_steps) -> Plan:
    head = [Layer(i) for i in range(0, n + 1)]
    tail = [Layer(i) for i in range(num_layers - n, num_layers)]
    return Plan(tuple(head + list(middle_steps) + tail))


def full(num_layers: int) -> Plan:
    return full_plan(num_layers)


def skip(num_layers: int, n: int) -> Plan:
    middle(num_layers, n)
    return _around(num_layers, n, [])


def middle_repeat(num_layers: int, n: int) -> Plan:
    count = len(middle(num_layers, n))
    return _around(num_layers, n, [Repeat(Layer(num_layers // 2), count)])


def reverse(num_layers: int, n: int) -> Plan:
    return _around(num_layers, n, [Layer(i) for i in reversed(middle(num_layers, n))])


def random(num_layers: int, n: int, seed: int = 0) -> Plan:
    order = middle(num_layers, n)
    _random.Random(seed).shuffle(order)
    return _around(num_layers, n, [Layer(i) for i in order])


def looped_parallel(num_layers: int, n: int, k: int = 3) -> Plan:
    if k < 1:
        raise PlanError(f"looped_parallel needs k >= 1 iterations, got k={k}")
    return _around(num_layers, n, [Repeat(Parallel(tuple(middle(num_layers, n))), k)])


def parallel(num_layers: int, n: int) -> Plan:
    return looped_parallel(num_layers, n, 1)


def _check_layer(num_layers: int, i: int, hi: int, what: str) -> None:
    if not 0 <= i <= hi:
        raise PlanError(f"{what} i={i} is out of range for a model of {num_layers} layers (0-{hi})")


def skip_one(num_layers: int, i: int) -> Plan:
    _check_layer(num_layers, i, num_layers - 1, "skip_one")
    if num_layers < 2:
        raise PlanError("skip_one needs a model of at least 2 layers")
    return Plan(tuple(Layer(j) for j in range(num_layers) if j != i))


def switch(num_layers: int, i: int) -> Plan:
    _check_layer(num_layers, i, num_layers - 2, "switch")
    order = list(range(num_layers))
    order[i], order[i + 1] = order[i + 1], order[i]
    return Plan(tuple(Layer(j) for j in order))


def duplicate(num_layers: int, i: int, j: int, times: int = 2) -> Plan:
    """Relayering (RYS): ``0..j-1``, the block ``i..j-1`` ``times - 1`` more times, ``j..T-1``.

    ``duplicate(30, 10, 14)`` is ``0-13,10-29``. j is exclusive so that (i, j) reads as RYS's
    published configurations do, and the width of the block is ``j - i``. A plain sequence of
    layers (no ``Repeat`` step), so it shares its first j layers with the full model in the
    engine's prefix trie and exports as an ordinary checkpoint of T + (j-i)(times-1) layers."""
    if not 0 <= i < j <= num_layers:
        raise PlanError(f"duplicate i={i},j={j} is out of range for a model of {num_layers} layers: "
                        f"the block i..j-1 needs 0 <= i < j <= {num_layers}")
    if times < 2:
        raise PlanError(f"duplicate i={i},j={j} needs times >= 2 (the block's run count), got times={times}")
    block = [Layer(x) for x in range(i, j)]
    return Plan(tuple([Layer(x) for x in range(j)] + block * (times - 1)
                      + [Layer(x) for x in range(j, num_layers)]))


def block_of(spec) -> tuple[int, int, int] | None:
    """``(i, j, times)`` of a duplicate spec (a ``VariantSpec`` or its text), else None: where a
    record of the relayering scan sits in the (i, j) grid."""
    if isinstance(spec, str):
        try:
            spec = VariantSpec.parse(spec)
        except PlanError:
            return None
    if getattr(spec, "variant", None) != "duplicate":
        return None
    p = spec.param_dict
    return p["i"], p["j"], p["times"]


# What each variant takes besides T: used by the CLI, the sweep configs and ``build``.
VARIANTS = {
    "full": (full, ()),
    "skip": (skip, ("n",)),
    "middle_repeat": (middle_repeat, ("n",)),
    "reverse": (reverse, ("n",)),
    "random": (random, ("n", "seed")),
    "parallel": (parallel, ("n",)),
    "looped_parallel": (looped_parallel, ("n", "k")),
    "skip_one": (skip_one, ("i",)),
    "switch": (switch, ("i",)),
    "duplicate": (duplicate, ("i", "j", "times")),
}
DEFAULTS = {"seed": 0, "k": 3, "times": 2}


def build(name: str, num_layers: int, **params) -> Plan:
    """Build a variant by name, e.g. ``build("looped_parallel", 32, n=8, k=3)``.

    Missing ``seed``/``k`` take the paper's defaults; unknown or missing parameters are errors.
    """
    return VariantSpec.of(name, **params).plan(num_layers)


def _parse_params(spec: str, rest: str) -> dict[str, int]:
    params = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not value.strip().lstrip("-").isdigit():
            raise PlanError(f"bad variant spec '{spec}': expected key=integer, got '{part}'")
        if key.strip() in params:
            raise PlanError(f"bad variant spec '{spec}': '{key.strip()}' is given twice")
        params[key.strip()] = int(value)
    return params


@dataclass(frozen=True)
class VariantSpec:
    """What a sweep row, a healed adapter, a searched plan and a report line are *named* by.

    A variant with every parameter it takes (defaults filled in, so ``random:n=2`` and
    ``random:n=2,seed=0`` are one spec), or ``custom`` with the canonical text of a plan the user
    wrote. It is a plain value like ``Plan``: its ``text`` parses back to an equal spec, and
    ``plan(T)`` builds the plan for a model of T layers. Why a name and not just the plan: two
    variants can give one plan (``reverse`` and ``full`` when the middle is a single layer), and
    a reader of a record or a figure asks for the variant, not the layer list.
    """

    variant: str
    params: tuple[tuple[str, int | str], ...] = ()  # in the variant's declared order

    @classmethod
    def of(cls, variant: str, **params) -> "VariantSpec":
        """``VariantSpec.of("looped_parallel", n=4)`` (k=3 filled in); checked like ``build``."""
        if variant == CUSTOM:
            text = params.get("plan")
            if not isinstance(text, str) or set(params) != {"plan"}:
                raise PlanError("a custom variant takes one parameter, plan=<plan text>")
            return cls(CUSTOM, (("plan", Plan.parse(text).text),))
        if variant not in VARIANTS:
            raise PlanError(f"unknown variant '{variant}'; known: {', '.join(VARIANTS)}")
        wanted = VARIANTS[variant][1]
        extra = sorted(k for k, v in params.items() if v is not None and k not in wanted)
        if extra:
            raise PlanError(f"variant '{variant}' takes {', '.join(wanted) or 'no parameters'}, not {', '.join(extra)}")
        values = []
        for key in wanted:
            value = params.get(key, DEFAULTS.get(key))
            if value is None:
                raise PlanError(f"variant '{variant}' needs {key}=…")
            values.append((key, int(value)))
        return cls(variant, tuple(values))

    @classmethod
    def parse(cls, spec: str) -> "VariantSpec":
        """``skip:n=8``, ``looped_parallel:n=4,k=3``, ``full``, or plan text (``0-7,[8-23]x3,24-31``)."""
        spec = spec.strip()
        name, _, rest = spec.partition(":")
        if name in VARIANTS:
            return cls.of(name, **_parse_params(spec, rest))
        if spec and spec[0].isalpha():
            raise PlanError(f"unknown variant '{name}'; known: {', '.join(VARIANTS)} (or give plan text like 0-7,[8-23]x3,24-31)")
        return cls(CUSTOM, (("plan", Plan.parse(spec).text),))

    @property
    def param_dict(self) -> dict:
        return dict(self.params)

    @property
    def text(self) -> str:
        if self.variant == CUSTOM:
            return self.param_dict["plan"]
        if not self.params:
            return self.variant
        return self.variant + ":" + ",".join(f"{k}={v}" for k, v in self.params)

    def __str__(self) -> str:
        return self.text

    def plan(self, num_layers: int) -> Plan:
        if self.variant == CUSTOM:
            return Plan.parse(self.param_dict["plan"]).validate(num_layers)
        fn = VARIANTS[self.variant][0]
        return fn(num_layers, *(v for _, v in self.params))


CUSTOM = "custom"  # the variant name of a plan given as text


def resolve(spec: str, num_layers: int) -> Plan:
    """A user's plan: a variant spec like ``skip:n=8`` / ``looped_parallel:n=4,k=3``, or plan text."""
    return VariantSpec.parse(spec).plan(num_layers)
