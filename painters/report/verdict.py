"""What a finding is and how it is decided and shown: the verdict rule, shared by every claim.

Why apart from the claims: claim (i) (a similarity report, ``similarity_claim.py``) and claims
(ii)–(vii) (groups of records, ``findings.py``) are judged by one rule and shown in one table;
the rule and the table live here so that both use them and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from glue_painters import stats
from painters.report.paired import LEVEL

SUPPORTED, NOT_SUPPORTED, NO_DATA = "supported", "not supported", "not enough data"
CONTRADICTED, INCONCLUSIVE = stats.CONTRADICTED, stats.INCONCLUSIVE
HOLDS, FAILS = "holds", "does not hold"
RULE = ("Verdicts: supported (contradicted) only when the effect's 95% paired bootstrap interval over "
        "documents (GLUE: evaluation rows and seeds), Bonferroni-adjusted over the {m} claims of this report "
        "with an interval (each at {level:.2%}), lies entirely above (below) zero; otherwise inconclusive, "
        "with the documents that would decide it at the observed effect (80% power; for the decoder, with the CPU-hours "
        "more they would take at the rate this store's runs measured) and what the full "
        "benchmarks could do: decidable there at the observed effect; undecidable there (even the interval's far "
        "end lies within the full set's own interval half-width, so the model and benchmarks cannot decide it); "
        "or open (decided there only if the effect is at least that half-width). The pattern column says "
        "whether the point estimates show the paper's pattern; it does not decide.")
CLAIMS = {
    "i": "first and last layers differ from a uniform middle",
    "ii": "middle layers can be skipped with graceful degradation",
    "iii": "middle_repeat is the most harmful variant",
    "iv": "random order beats reverse and skip",
    "v": "parallel beats skip",
    "vi-a": "looping helps parallel",
    "vi-b": "the best k grows with the number of parallel layers",
    "vii": "math (GSM8K) and ARC degrade fastest",
}


@dataclass
class Finding:
    claim: str  # key of CLAIMS
    subject: str  # group title or similarity model
    status: str
    evidence: str  # the numbers of the pattern (and why a claim is inconclusive)
    numbers: dict = field(default_factory=dict)
    pattern: str | None = None  # HOLDS / FAILS: the point estimates under the rule above
    effect: np.ndarray | None = field(default=None, repr=False)  # (1 + resamples,): observed, then draws
    units: int = 0  # documents / evaluation rows behind the effect
    unit_name: str = "documents"
    seeds: str = ""  # seeds per plan behind it
    interval: stats.Interval | None = None
    docs_needed: int | None = None
    available: int | None = None  # documents / rows the full benchmarks hold
    outlook: stats.Outlook | None = None  # inconclusive: could the full benchmarks decide it?
    cpu_seconds: float | None = None  # what its cells' runs took (decoder records' timing x threads)

    @property
    def text(self) -> str:
        return CLAIMS[self.claim]

    @property
    def cpu_hours_to_decide(self) -> float | None:
        """CPU-hours more that ``docs_needed`` documents would take at the store's measured rate:
        the cells' runs again, scaled by documents needed / documents run (each task grown in the
        proportion the store has it, as ``docs_needed`` assumes)."""
        if self.docs_needed is None or not self.cpu_seconds or not self.units:
            return None
        return self.cpu_seconds * (self.docs_needed / self.units - 1) / 3600


def decide(f: Finding, level: float = LEVEL) -> Finding:
    """The verdict of a finding with an effect: the rule of the module docstring at ``level``."""
    if f.effect is None:
        return f
    f.interval = stats.interval_of(f.effect[0], f.effect[1:], level, f.units)
    f.status = stats.verdict(f.interval, +1)
    f.docs_needed = stats.docs_needed(f.interval) if f.status == INCONCLUSIVE else None
    f.outlook = stats.outlook(f.interval, f.available) if f.status == INCONCLUSIVE else None
    return f


def number_text(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def adjusted_level(findings: list[Finding]) -> float:
    return stats.bonferroni(LEVEL, sum(f.effect is not None for f in findings))


def rule_text(findings: list[Finding]) -> str:
    return RULE.format(m=sum(f.effect is not None for f in findings), level=adjusted_level(findings))


def columns(f: Finding) -> list[str]:
    """The findings table's cells: claim, subject, verdict, effect [interval], documents, seeds,
    documents needed, pattern and its numbers."""
    iv = f.interval
    effect = "–" if iv is None else iv.text(2)
    hours = f.cpu_hours_to_decide
    needed = "" if f.docs_needed is None else f"{f.docs_needed:,}" + ("" if hours is None else f" (~{hours:,.1f} CPU-h more)")
    full = "" if f.outlook is None else f"{f.outlook.status}: {f.outlook.text}"
    pattern = f"{f.pattern}: " if f.pattern else ""
    return [f"({f.claim}) {f.text}", f.subject, f.status, effect, f"{f.units:,}" if f.units else "–",
            f.seeds or "–", needed, full, pattern + f.evidence]


HEADER = ["claim", "subject", "verdict", "effect [interval]", "documents / rows", "seeds", "documents needed",
          "at the full benchmarks", "pattern (point estimates)"]


def markdown_table(findings: list[Finding]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for f in findings:
        c = [x.replace("|", "/") for x in columns(f)]
        c[2] = f"**{c[2]}**"
        lines.append("| " + " | ".join(c) + " |")
    return "\n".join(lines)
