"""What a finding is and how it is decided and shown: the verdict rule, shared by every claim.

Why apart from the claims: claim (i) (a similarity report, ``similarity_claim.py``) and claims
(ii)–(vii) (groups of records, ``findings.py``) are judged by one rule and shown in one table;
the rule and the table live here so that both use them and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from glue_painters import stats
from glue_painters.errors import UserError
from painters.report.paired import LEVEL

SUPPORTED, NOT_SUPPORTED, NO_DATA = "supported", "not supported", "not enough data"
CONTRADICTED, INCONCLUSIVE, NEGLIGIBLE = stats.CONTRADICTED, stats.INCONCLUSIVE, stats.NEGLIGIBLE
HOLDS, FAILS = "holds", "does not hold"

# The smallest effect of interest (SESOI, δ) of each scale, and why that size. Overridden with
# ``painters report --sesoi SCALE=VALUE`` (or a claim: ``--sesoi v=0.1``), or ``build_report(sesoi=...)``.
SESOI = {"normalized": 0.05, "cosine": 0.05, "correlation": 0.5}
SESOI_WHY = {
    "normalized": "5% of the full model's margin over chance: the paper's claims are orderings it reads off its "
                  "figures on the 0–1 normalized scale, where a smaller gap is not visible, and it is smaller than "
                  "the spread between random order's permutation seeds",
    "cosine": "a cosine 0.05 apart is the smallest step between blocks of Fig. 3's heatmap a reader sees as a group "
              "boundary; below it the middle is as alike with an end as inside (one group, not three)",
    "correlation": "the rule of the paper's Fig. 10 reading (ρ ≥ 0.5): a weaker rank correlation is not growth",
}
SCALE = {"i": "cosine", "vi-b": "correlation"}  # every other claim: "normalized"
RULE = ("Verdicts, one rule for every claim, on the effect the claim names with its smallest effect of interest δ "
        "(the δ column; {deltas}): supported when the effect's paired bootstrap interval lies above zero and its "
        "estimate reaches δ; negligible when the interval lies inside ±δ (an equivalence verdict: too small to matter "
        "whatever its sign); contradicted when the interval lies below zero and the estimate reaches −δ; otherwise "
        "inconclusive, with the documents that would decide it at the observed effect (80% power; for the decoder, "
        "with the CPU-hours more they would take at the rate this store's runs measured) and what the full "
        "benchmarks could do (decidable there at the observed effect; undecidable there; or open). Intervals: 95% "
        "family-wise, Bonferroni-adjusted over the {m} claims of this report with an interval (each at {level:.2%}), "
        "from {resamples:,} resamples (at least {tail} beyond each end) of documents (GLUE: evaluation rows) and "
        "seeds (random order's permutations, GLUE's training runs), each resample drawn from a generator seeded by "
        "what it resamples; a basic bootstrap interval, and for an effect that is a minimum over components (rivals, "
        "N, thresholds) the smallest of the components' lower ends and of their simultaneous upper ends (valid where "
        "components tie, as a percentile interval of a minimum is not); for (vi-b), a rank correlation of each row's "
        "best k (bounded, and often at its bound), the percentile interval. A cell is the mean over its seeds of each "
        "seed's median over the tasks, in the tables, the pattern and the interval alike. Draws whose effect is not "
        "finite are counted, never silently dropped; a normalization whose full-model margin over chance has an "
        "interval reaching zero is refused. The pattern column says whether the point estimate of the same effect "
        "reaches δ (the paper's pattern); it does not decide.")
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
    # (resamples, level) -> the effect's components, (1 + resamples, k): observed, then resampled;
    # the effect is their minimum. Made once the report's level (and so its resample count) is known.
    measure: Callable | None = field(default=None, repr=False)
    bounds: tuple[float, float] | None = None  # the effect's range (a correlation: [-1, 1])
    method: str = "basic"  # the interval (``stats.effect_interval``): basic, or percentile for (vi-b)
    sesoi: float | None = None  # δ it was decided with
    point: float | None = None  # the effect from the tables' numbers (the pattern: it reaches δ or not)
    claims: tuple[str, ...] = ()  # a collapsed row: the claims it stands for

    @property
    def scale(self) -> str:
        return SCALE.get(self.claim, "normalized")

    @property
    def text(self) -> str:
        if self.claims:
            return "; ".join(f"({c}) {CLAIMS[c]}" for c in self.claims)
        return CLAIMS[self.claim]

    @property
    def decided(self) -> bool:
        """An effect with an interval: one member of the report's multiple-comparison family."""
        return self.measure is not None or self.effect is not None

    @property
    def cpu_hours_to_decide(self) -> float | None:
        """CPU-hours more that ``docs_needed`` documents would take at the store's measured rate:
        the cells' runs again, scaled by documents needed / documents run (each task grown in the
        proportion the store has it, as ``docs_needed`` assumes)."""
        if self.docs_needed is None or not self.cpu_seconds or not self.units:
            return None
        return self.cpu_seconds * (self.docs_needed / self.units - 1) / 3600


def pattern(point: float, sesoi: float) -> str:
    """The pattern of a point estimate: it reaches δ (holds) or not. To 1e-6, the precision records
    keep per-document scores at (and 0.85 − 0.8 is 0.04999999999999993)."""
    return HOLDS if point >= sesoi - 1e-6 else FAILS


class Refused(Exception):
    """A claim's effect cannot be formed (e.g. a normalization by a margin that may be nil): why."""


def sesoi_of(f: Finding, sesoi: dict | None = None) -> float:
    """δ for a finding: ``sesoi[claim]``, else ``sesoi[scale]``, else the default of its scale."""
    given = sesoi or {}
    return float(given.get(f.claim, given.get(f.scale, SESOI[f.scale])))


def parse_sesoi(items) -> dict[str, float]:
    """``["normalized=0.1", "i=0.02"]`` (or comma separated) -> {key: δ}; a key is a scale of
    ``SESOI`` or a claim of ``CLAIMS``. Anything else is a ``UserError`` naming it."""
    out = {}
    for item in items or []:
        for part in str(item).split(","):
            if not part.strip():
                continue
            key, eq, value = part.partition("=")
            key = key.strip()
            try:
                number = float(value)
            except ValueError:
                number = -1.0
            if not eq or key not in {**SESOI, **CLAIMS} or not number >= 0:
                raise UserError(f"--sesoi {part.strip()!r}: expected SCALE=VALUE or CLAIM=VALUE with VALUE ≥ 0, "
                                f"SCALE one of {', '.join(SESOI)}, CLAIM one of {', '.join(CLAIMS)}")
            out[key] = number
    return out


def decide(f: Finding, level: float = LEVEL, sesoi: dict | None = None) -> Finding:
    """The verdict of a finding with an effect: the rule of ``RULE`` at ``level``, with the
    resample count that level needs (``stats.resamples_for``)."""
    f.sesoi = sesoi_of(f, sesoi)
    if f.point is not None:
        f.pattern = pattern(f.point, f.sesoi)
    if f.measure is not None:
        try:
            f.effect = np.asarray(f.measure(stats.resamples_for(level), level), dtype=float)
        except Refused as why:
            f.status, f.evidence, f.interval = INCONCLUSIVE, f"{why}; {f.evidence}", None
            return f
    if f.effect is None:
        return f
    effect = f.effect.reshape(f.effect.shape[0], -1)
    f.interval = stats.effect_interval(effect[0], effect[1:], level, f.units, f.bounds, f.method)
    f.status = stats.verdict(f.interval, +1, f.sesoi)
    undecided = f.status == INCONCLUSIVE
    f.docs_needed = stats.docs_needed(f.interval, sesoi=f.sesoi) if undecided else None
    f.outlook = stats.outlook(f.interval, f.available, sesoi=f.sesoi) if undecided else None
    if f.interval.dropped:
        f.evidence = (f"{f.interval.dropped:,} of {f.interval.draws:,} resamples dropped (effect not finite: a "
                      f"denominator at zero); {f.evidence}")
    return f


def number_text(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def adjusted_level(findings: list[Finding]) -> float:
    return stats.bonferroni(LEVEL, sum(f.decided for f in findings))


def rule_text(findings: list[Finding], sesoi: dict | None = None) -> str:
    """The method line: the rule, each scale's δ with why, the level and the resample count."""
    level = adjusted_level(findings)
    used = {f.scale: f.sesoi for f in findings if f.sesoi is not None}
    deltas = "; ".join(f"{scale} {used.get(scale, (sesoi or {}).get(scale, d)):g}: {SESOI_WHY[scale]}"
                       for scale, d in SESOI.items())
    return RULE.format(m=sum(f.decided for f in findings), level=level, resamples=stats.resamples_for(level),
                       tail=stats.TAIL_DRAWS, deltas=deltas)


def collapsed(findings: list[Finding]) -> list[Finding]:
    """The table's rows: each decided (or inconclusive) finding, then one row per subject for the
    claims it has no data for (their reasons joined), so a store that cannot decide most claims
    does not fill the table with "not enough data"."""
    rows = [f for f in findings if f.status != NO_DATA]
    empty: dict[str, list[Finding]] = {}
    for f in findings:
        if f.status == NO_DATA:
            empty.setdefault(f.subject, []).append(f)
    for subject, fs in empty.items():
        if len(fs) == 1:
            rows.append(fs[0])
            continue
        why = " · ".join(f"({f.claim}) {f.evidence}" for f in fs)
        rows.append(Finding(fs[0].claim, subject, NO_DATA, why, claims=tuple(f.claim for f in fs)))
    return rows


def columns(f: Finding) -> list[str]:
    """The findings table's cells: claim, subject, verdict, effect [interval], δ, documents, seeds,
    documents needed, pattern and its numbers."""
    iv = f.interval
    effect = "–" if iv is None else iv.text(2)
    delta = "–" if f.sesoi is None else f"±{f.sesoi:g} ({f.scale})"
    hours = f.cpu_hours_to_decide
    needed = "" if f.docs_needed is None else f"{f.docs_needed:,}" + ("" if hours is None else f" (~{hours:,.1f} CPU-h more)")
    full = "" if f.outlook is None else f"{f.outlook.status}: {f.outlook.text}"
    pattern = f"{f.pattern}: " if f.pattern else ""
    claim = f.text if f.claims else f"({f.claim}) {f.text}"
    return [claim, f.subject, f.status, effect, delta, f"{f.units:,}" if f.units else "–",
            f.seeds or "–", needed, full, pattern + f.evidence]


HEADER = ["claim", "subject", "verdict", "effect [interval]", "δ (smallest effect of interest)", "documents / rows",
          "seeds", "documents needed",
          "at the full benchmarks", "pattern (point estimates)"]


def markdown_table(findings: list[Finding]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for f in collapsed(findings):
        c = [x.replace("|", "/") for x in columns(f)]
        c[2] = f"**{c[2]}**"
        lines.append("| " + " | ".join(c) + " |")
    return "\n".join(lines)
