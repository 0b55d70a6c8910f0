"""A task pass's finished batches on disk, so a sweep killed mid-pass resumes mid-pass.

Why: a loglikelihood pass scores every pending plan together (they share prefixes) and its
records are written when the pass ends; at paper scale a pass is hours, and a kill used to lose
all of it. Each finished batch's results (every plan's ``(loglikelihood, is_greedy)`` of the
batch's requests) are now written atomically to ``<store>/decoder/.progress/<pass>/<batch>.json``;
a re-run of the same pass reads them back instead of computing them and computes the rest.

Exactness: a batch's numbers do not depend on which batches ran before it, the batches of a pass
are rebuilt identically from the same documents, and a float written with ``repr`` reads back
bit for bit - so a resumed pass gives the records an uninterrupted one gives. The pass's key
hashes everything that decides the batches and their numbers (model fingerprint, dtype, the
plans, the batches' token ids and positions, batch settings, scoring version); anything else is
a new pass. The folder is removed when the pass's records are written; folders of abandoned
passes (the sweep changed before it was resumed) are removed by ``ResultsStore.clean_stale`` after
a week.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Sequence

from glue_painters.plans import Plan
from glue_painters.results import atomic_write_text, record_key

FOLDER = ".progress"


def batches_digest(prepared) -> str:
    """A hash of every batch's token ids, positions and scored spans (what decides its numbers)."""
    h = hashlib.sha256()
    for b in prepared.batches:
        for name in ("input_ids", "attention_mask", "position_ids", "rows", "nodes", "tokens"):
            t = getattr(b, name, None)
            if t is not None:
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
        h.update(json.dumps(b.spans).encode())
    return h.hexdigest()[:20]


class PassProgress:
    """Finished batches of one pass: ``load(i)`` / ``save(i, part)``, ``finish()`` when done."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @classmethod
    def of(cls, root: Path, key: dict, prepared, plans: Sequence[Plan]) -> "PassProgress":
        fields = dict(key, plans=sorted(p.text for p in plans), batches=batches_digest(prepared))
        return cls(Path(root) / FOLDER / record_key(fields))

    def load(self, index: int) -> dict[str, list] | None:
        try:
            part = json.loads((self.folder / f"{index}.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None  # not done, or written by a writer killed mid-way: compute it again
        return {text: [(r, float(ll), bool(g)) for r, ll, g in rows] for text, rows in part.items()}

    def save(self, index: int, part: dict[str, list]) -> None:
        atomic_write_text(self.folder / f"{index}.json",
                          json.dumps({t: [[r, repr(ll), g] for r, ll, g in rows] for t, rows in part.items()}))

    def finish(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def generation_digest(prepared) -> str:
    """A hash of a generation pass's prompt batches, stop strings and lengths (what decides its texts)."""
    h = hashlib.sha256()
    for ids, mask, idx in prepared.batches:
        for t in (ids, mask):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        h.update(json.dumps(idx).encode())
    h.update(json.dumps([prepared.stops, prepared.max_gen_toks]).encode())
    return h.hexdigest()[:20]


class GenerationProgress(PassProgress):
    """Finished units (prompt batch x plan group) of a generation pass: ``{plan text: [(request,
    text), ...]}`` each, the texts kept exactly (JSON strings)."""

    @classmethod
    def of(cls, root: Path, key: dict, prepared, plans: Sequence[Plan], units: str = "") -> "GenerationProgress":
        fields = dict(key, plans=sorted(p.text for p in plans), batches=generation_digest(prepared),
                      units=units, kind="generate_until")
        return cls(Path(root) / FOLDER / record_key(fields))

    def load(self, index: int) -> dict[str, list] | None:
        try:
            part = json.loads((self.folder / f"{index}.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return {text: [(int(r), str(s)) for r, s in rows] for text, rows in part.items()}

    def save(self, index: int, part: dict[str, list]) -> None:
        atomic_write_text(self.folder / f"{index}.json",
                          json.dumps({t: [[r, s] for r, s in rows] for t, rows in part.items()}))
