"""Claim (i) from the similarity reports: first and last layers differ from a uniform middle.

Why a module of its own: unlike claims (ii)–(vii) it compares no plans; it reads one
``similarity_*.json`` (``glue_painters.similarity.save``'s output) per model and resamples the
documents of its text, each report keeping every document's summed matrix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glue_painters import stats
from glue_painters.errors import UserError
from glue_painters.similarity import middle_groups
from painters.report.verdict import INCONCLUSIVE, NO_DATA, SESOI, Finding, number_text, pattern


@dataclass
class Similarity:
    model: str
    path: Path
    matrix: list[list[float]]
    groups: list[list[int]]
    plan: str
    n_tokens: int
    per_document: dict | None = None  # ``similarity.Similarity.per_document``: each document's sums


def _per_document(p: Path, d: dict) -> dict | None:
    """The report's per-document sums, checked: one upper triangle of the K x K matrix and one token
    count per document (absent in reports written before they were kept)."""
    per = d.get("per_document")
    if per is None:
        return None
    k = len(d["matrix"])
    try:
        sums, tokens = per["sums"], per["tokens"]
        ok = len(sums) == len(tokens) > 0 and all(len(s) == k * (k + 1) // 2 for s in sums)
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise UserError(f"{p}: 'per_document' does not fit its matrix (expected, per document, the "
                        f"{k * (k + 1) // 2} numbers of a {k}x{k} upper triangle and a token count)")
    return per


def load_similarities(folder: Path, models: list[str] | None = None) -> list[Similarity]:
    """``similarity_*.json`` of a reports folder (``glue_painters.similarity.save``'s output)."""
    out = []
    for p in sorted(Path(folder).glob("similarity_*.json")):
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise UserError(f"{p}: not valid JSON ({e.msg})") from None
        if not isinstance(d, dict) or not isinstance(d.get("matrix"), list):
            raise UserError(f"{p}: not a similarity report (no 'matrix')")
        model = d.get("model") or p.stem[len("similarity_"):]
        if models and model not in models:
            continue
        out.append(Similarity(model, p, d["matrix"], d.get("groups") or [], d.get("plan", ""), d.get("n_tokens", 0),
                              _per_document(p, d)))
    return out



def similarity_finding(sim: Similarity) -> Finding:
    m, drawn = sim.matrix, sim.groups
    groups = middle_groups(m) if len(m) >= 4 else None
    if groups is None:
        return Finding("i", sim.model, NO_DATA, f"{len(m)} boundaries (needs at least 4)")
    within, first, last = _block_means(np.asarray(m, dtype=float)[None], groups)[0]
    (a0, a1), (b0, b1), (c0, c1) = groups
    nums = {"groups": groups, "drawn_groups": drawn, "within_middle": within, "middle_vs_first": first,
            "middle_vs_last": last}
    seg = " | ".join(f"{a}–{b}" for a, b in drawn)
    ev = (f"middle of at least half the {len(m)} boundaries: {b0}–{b1} (ends {a0}–{a1}, {c0}–{c1}); mean cosine "
          f"within middle {number_text(within)}, middle↔first {number_text(first)}, middle↔last {number_text(last)}"
          + (f"; free grouping (Fig. 3): {seg}" if drawn else ""))
    point = min(within - first, within - last)
    f = Finding("i", sim.model, INCONCLUSIVE, ev, nums, pattern=pattern(point, SESOI["cosine"]), point=point)
    if sim.per_document is None:
        f.evidence = (f"no per-document similarities (a report written before they were kept: rerun "
                      f"`painters similarity --model {sim.model}`); {ev}")
        return f
    _middle_margin(sim, groups, (within, first, last), 0)  # refuses sums from another run, now
    f.measure = lambda resamples, level: _middle_margin(sim, groups, (within, first, last), resamples)
    f.units = len(sim.per_document["tokens"])
    return f


def _block_means(mats: np.ndarray, groups) -> np.ndarray:
    """(within middle, middle↔first, middle↔last) of each of ``mats`` (..., K, K): block means,
    the diagonal left out of the middle with itself."""
    (a0, a1), (b0, b1), (c0, c1) = groups
    mid = mats[..., b0:b1 + 1, b0:b1 + 1]
    n = b1 - b0 + 1
    within = (mid.sum((-1, -2)) - np.trace(mid, axis1=-2, axis2=-1)) / (n * n - n)
    first = mats[..., a0:a1 + 1, b0:b1 + 1].mean((-1, -2))
    last = mats[..., c0:c1 + 1, b0:b1 + 1].mean((-1, -2))
    return np.stack([within, first, last], axis=-1)


def _middle_margin(sim: Similarity, groups, observed, resamples: int) -> np.ndarray:
    """Claim (i)'s effect's components, observed then over ``resamples`` resamples (1 + resamples,
    2): how much more alike the middle group is inside than with the first and with the last
    group (the effect: the smaller), the documents of the similarity text drawn with replacement
    (a generator seeded by the model and its documents' count). The groups stay those of the observed
    matrix (the interval is conditional on them). Refuses per-document sums that do not give back
    the matrix itself: they would be another run's."""
    k = len(sim.matrix)
    tri = np.asarray(sim.per_document["sums"], dtype=float)  # (documents, K(K+1)/2)
    tokens = np.asarray(sim.per_document["tokens"], dtype=float)
    iu = np.triu_indices(k)
    docs = np.zeros((tokens.size, k, k))
    docs[:, iu[0], iu[1]] = tri
    docs[:, iu[1], iu[0]] = tri
    per_doc = _block_means(docs, groups)  # (documents, 3): block means of each document's summed matrix
    scorer = stats.Scorer((tokens.size,), lambda w, _rng: (w @ per_doc) / (w @ tokens)[:, None])
    mean = stats.bootstrap_scores({sim.model: scorer}, resamples=resamples)[sim.model]  # the claims' one resampler
    if not np.allclose(mean[0], observed, atol=1e-4):
        raise UserError(f"{sim.path}: its per-document similarities do not give back its matrix "
                        f"(another run's?); rerun `painters similarity --model {sim.model}`")
    return np.stack([mean[:, 0] - mean[:, 1], mean[:, 0] - mean[:, 2]], axis=1)
