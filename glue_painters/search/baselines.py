"""Equal-cost baselines: the plans the literature would try at a budget, to judge a search against.

Contiguous skip blocks (centred, or least angular distance after Gromov et al.), ShortGPT's
Block Influence pruning, skip-one pruning, and the paper's variants of equal executions or depth.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import UserError
from ..plans import Layer, Plan, PlanError


def drop(num_layers: int, dropped: Iterable[int]) -> Plan:
    """The full model without the layers ``dropped``."""
    gone = set(dropped)
    keep = [i for i in range(num_layers) if i not in gone]
    if not keep:
        raise PlanError("cannot drop every layer")
    return Plan(tuple(Layer(i) for i in keep))


def skip_block(num_layers: int, start: int, n: int) -> Plan:
    """Layers ``start .. start+n-1`` dropped (a contiguous block)."""
    if not (0 <= start and n >= 0 and start + n <= num_layers):
        raise PlanError(f"block {start}..{start + n - 1} does not fit {num_layers} layers")
    return drop(num_layers, range(start, start + n))


def baselines(num_layers: int, budget: int, scores=None) -> dict[str, Plan]:
    """Plans of exactly ``budget`` executions that the literature would try, by name.

    * ``skip_centred``: the middle block of ``T - budget`` layers dropped (the paper's ``skip``
      keeps ``0..N`` and ``T-N..T-1``, an odd number of layers; at an even budget this keeps one
      layer more at the front);
    * ``skip_angular``: the block of least angular distance (Gromov et al.), from ``scores``;
    * ``prune_bi``: the ``T - budget`` layers of least Block Influence dropped (ShortGPT);
    * ``prune_skip_one``: the ``T - budget`` layers whose single removal costs least dropped;
    * every paper variant whose executions equal ``budget`` (none but ``skip`` can cost less
      than T: ``parallel`` runs every layer once, ``looped_parallel`` more).
    """
    from .. import variants

    n = num_layers - int(budget)
    if not 0 < n < num_layers:
        raise UserError(f"budget {budget} must be between 1 and {num_layers - 1} layer executions")
    out = {"skip_centred": skip_block(num_layers, (num_layers - n) // 2, n)}
    if scores is not None:
        if n in scores.best_block:
            out["skip_angular"] = skip_block(num_layers, scores.best_block[n][0], n)
        order_bi = sorted(range(num_layers), key=lambda i: (scores.block_influence[i], i))
        out["prune_bi"] = drop(num_layers, order_bi[:n])
        inc = scores.skip_one_increase
        out["prune_skip_one"] = drop(num_layers, sorted(range(num_layers), key=lambda i: (inc[i], i))[:n])
    for name in ("skip", "parallel", "looped_parallel"):
        for nn in variants.n_range(num_layers):
            for k in ((2, 3, 4) if name == "looped_parallel" else (None,)):
                plan = variants.build(name, num_layers, n=nn, **({"k": k} if k else {}))
                if plan.executions == budget:
                    out[f"{name}:n={nn}" + (f",k={k}" if k else "")] = plan
    return out


def equal_depth_variants(num_layers: int, budget: int) -> dict[str, Plan]:
    """The paper's ``parallel`` / ``looped_parallel`` (k = 2..4) plans whose *depth* (sequential
    steps) equals ``budget``. They run more layer executions than the budget, so they are not an
    equal-cost comparison in executions; they are the equal-latency one on hardware that runs a
    parallel group's members side by side, which is what those variants are for."""
    from .. import variants

    out = {}
    for nn in variants.n_range(num_layers):
        for k in (1, 2, 3, 4):
            plan = variants.looped_parallel(num_layers, nn, k)
            if plan.depth == budget:
                out[("parallel" if k == 1 else "looped_parallel") + f":n={nn}" + (f",k={k}" if k > 1 else "")
                    + " [equal depth]"] = plan
    return out
