"""Search for the best rewiring of a model under a compute budget.

The objective is any function ``plan -> float`` to minimise (for a real model: the calibration
loss, ``scores.CalibrationLoss``; in tests: a synthetic function with a planted optimum). An
objective may also have ``many(plans) -> list[float]`` to evaluate several plans together (the
calibration loss shares their common prefixes that way); the searches hand it whole steps or
generations at once.

Where things are:

* ``cost``: what a plan costs (layer executions, or measured ms/token from a latency table);
* ``state``: the cache (``Memo``), the run file, ``Found``, reading finished runs back: resuming;
* ``beam``: ``greedy`` and ``beam`` search by removal;
* ``grow``: search above the full model's cost, by duplicating blocks (relayering compositions);
* ``genome`` and ``evolve``: the evolutionary search and its representation;
* ``baselines``: equal-cost plans from the literature, to judge a search against;
* ``cli``, ``cli_setup``, ``commands``: ``painters search scores`` and ``painters search run``.

The benchmark verdict (the plans found, evaluated on the decoder track's benchmarks and stored
as its records) belongs to that track: ``decoder_eval.verdict``, which adds ``painters search
verdict``. This package imports no track.
"""

from __future__ import annotations

from .baselines import baselines, drop, equal_depth_variants, skip_block
from .beam import beam, greedy, removals
from .cost import Cost, LatencyCost, executions, latency_table
from .evolve import evolve
from .grow import blocks, duplications, grow
from .genome import JOIN, MUTATIONS, SKIP, Genome, drop_weights_from
from .state import SEARCH_VERSION, Found, Memo, Objective, found_plans, run_key

__all__ = [
    "Cost", "Found", "Genome", "JOIN", "LatencyCost", "MUTATIONS", "Memo", "Objective", "SEARCH_VERSION", "SKIP",
    "baselines", "beam", "blocks", "drop", "drop_weights_from", "duplications", "equal_depth_variants", "evolve",
    "executions", "found_plans", "greedy", "grow", "latency_table", "removals", "run_key", "skip_block",
]
