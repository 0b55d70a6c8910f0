"""Benchmark: self-speculative decoding on SmolLM2 with the paper's plans and the search's drafts.

Runs ``painters speculative`` on one plan set: skip at several N, parallel, looped parallel, and
every draft a finished ``painters search run --objective speculative`` found (read from the run
files of its state folder), then writes ``reports/speculative_<model>_<device>.{md,json}``.
Timings are wall-clock on this machine: run it on an otherwise idle machine.

    OMP_NUM_THREADS=2 python benchmarks/speculative.py --search-state results/search_state
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from painters.cli import main as painters

PAPER_PLANS = ["skip:n=14", "skip:n=13", "skip:n=12", "skip:n=10", "parallel:n=13", "parallel:n=12",
               "looped_parallel:n=13,k=3", "looped_parallel:n=12,k=3"]


def searched_drafts(state: Path) -> list[str]:
    """Plans found by finished speculative-objective search runs under ``state``."""
    plans = []
    for run in sorted(state.glob("**/speculative-*/run-*.json")):
        data = json.loads(run.read_text())
        if data.get("done"):
            plans += [f["plan"] for f in data.get("found", {}).values()]
    return list(dict.fromkeys(plans))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2")
    p.add_argument("--search-state", default="results/search_state", help="painters search run --out folder")
    p.add_argument("--prompts", default="gsm8k:4,wikitext:4")
    p.add_argument("--max-new-tokens", default="32")
    p.add_argument("--draft-tokens", default="4")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="default reports/speculative_<model>_<device>")
    args = p.parse_args(argv)
    plans = PAPER_PLANS + searched_drafts(Path(args.search_state))
    out = args.out or f"reports/speculative_{Path(args.model).name}_{args.device}"
    return painters(["speculative", "--model", args.model, "--plans", *plans, "--prompts", args.prompts,
                     "--max-new-tokens", args.max_new_tokens, "--draft-tokens", args.draft_tokens,
                     "--device", args.device, "--out", out])


if __name__ == "__main__":
    sys.exit(main())
