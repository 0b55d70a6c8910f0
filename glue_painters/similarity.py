"""Cosine similarity of hidden states between every pair of layer boundaries (the paper's Fig. 3).

Boundary 0 is the input of the first layer (the embeddings); boundary t is the residual stream
after step t of the plan (a parallel group counts as one step: its mean output). Every boundary
is taken *before* any final norm, so the last entry is comparable with the others (HF's
``output_hidden_states`` replaces the last state by the normed one). Per token, padding masked,
the cosine between two boundaries; the matrix is the mean over every real token of the dataset
(a token-weighted mean, accumulated in float64).

Each document's token-summed matrix is kept too (``per_document``), so that a claim read off
the matrix (the report's claim (i): a large uniform middle unlike the first and last layers) can
carry a bootstrap interval over documents like every other claim.
"""

from __future__ import annotations

import inspect
import re

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .jsonl import jsonl_records
from .plans import Plan
from .rewire import ParallelMember, _get_list, apply_plan, current_plan, num_layers, remove_plan
from .variants import full

BUNDLED_TEXT = Path(__file__).parent / "data" / "wikitext2_sample.txt"


@dataclass
class Similarity:
    matrix: list[list[float]]
    plan: str
    n_tokens: int
    n_docs: int
    doc_sums: list | None = None  # per document: its token-summed K x K cosine matrix (float64 tensor)
    doc_tokens: list[int] | None = None  # per document: its real tokens

    @property
    def size(self) -> int:
        return len(self.matrix)

    def to_json(self, **extra) -> dict:
        return {"plan": self.plan, "n_tokens": self.n_tokens, "n_docs": self.n_docs,
                "boundaries": self.size, "matrix": self.matrix, **extra}

    def per_document(self) -> dict | None:
        """Each document's token-summed matrix, upper triangle row by row (the matrix is symmetric),
        and its tokens: dividing a resample's summed matrices by its tokens gives the matrix under
        that resample of documents (what claim (i)'s interval needs)."""
        if self.doc_sums is None:
            return None
        iu = torch.triu_indices(self.size, self.size)
        return {"tokens": list(self.doc_tokens),
                "sums": [[round(float(x), 5) for x in s[iu[0], iu[1]]] for s in self.doc_sums]}


def read_documents(path: str | Path | None = None, max_docs: int | None = None) -> list[str]:
    """Paragraphs of a text file (blank-line separated) or the ``text``/``sentence`` field of a
    JSON Lines file; the bundled WikiText-2 sample when no path is given. A line of only spaces
    counts as blank: WikiText-2's raw files separate paragraphs with " " lines, and splitting on
    empty lines alone made the whole file one document (so ``max_docs`` did nothing)."""
    from .errors import UserError

    path = Path(path) if path else BUNDLED_TEXT
    if not path.exists():
        raise UserError(f"text file not found: {path}")
    docs: list[str] = []
    if path.suffix == ".jsonl":
        for where, row in jsonl_records(path):
            text = row.get("text") or row.get("sentence")
            if not isinstance(text, str):
                raise UserError(f"{where}: no 'text' or 'sentence' field")
            docs.append(text)
    else:
        docs = [p.strip() for p in re.split(r"\n[ \t\r]*\n", path.read_text(encoding="utf-8")) if p.strip()]
    if not docs:
        raise UserError(f"{path} holds no text")
    return docs[:max_docs] if max_docs else docs


def _takes_use_cache(body) -> bool:
    """Decoders take ``use_cache`` (and would build a cache nobody reads); encoders do not."""
    return "use_cache" in inspect.signature(body.forward).parameters


def _boundary_hooks(model, store: list):
    """Hooks on the rewired list's entries that append each step's output (and the first input)."""
    entries = _get_list(model)

    def first_input(module, args, kwargs):
        store.append(args[0] if args else kwargs["hidden_states"])

    def output(module, args, out):
        if isinstance(module, ParallelMember) and not module.last:
            return
        store.append(out[0] if isinstance(out, tuple) else out)

    hooks = [entries[0].register_forward_pre_hook(first_input, with_kwargs=True)]
    hooks += [e.register_forward_hook(output) for e in entries]
    return hooks


@torch.no_grad()
def layer_similarity(model, tokenizer, documents: list[str], plan: Plan | str | None = None,
                     max_length: int = 128, batch_size: int = 8, progress: bool = True) -> Similarity:
    """The boundary-by-boundary cosine-similarity matrix of ``model`` under ``plan`` (default full)."""
    before = current_plan(model)
    plan = Plan.parse(plan) if isinstance(plan, str) else plan or full(num_layers(model))
    apply_plan(model, plan)
    device = next(model.parameters()).device
    body = getattr(model, "base_model", model)
    doc_sums: list[torch.Tensor] = []
    doc_tokens: list[int] = []
    try:
        for start in tqdm(range(0, len(documents), batch_size), desc="similarity", disable=not progress):
            batch = tokenizer(documents[start:start + batch_size], return_tensors="pt", padding=True,
                              truncation=True, max_length=max_length).to(device)
            states: list[torch.Tensor] = []
            hooks = _boundary_hooks(model, states)
            try:
                # the body alone: the boundaries are all inside it, and a vocabulary-sized head
                # would cost more than several layers
                body(**batch, **({"use_cache": False} if _takes_use_cache(body) else {}))
            finally:
                for h in hooks:
                    h.remove()
            valid = batch["attention_mask"].bool()
            for row in range(valid.shape[0]):
                h = torch.stack([s[row][valid[row]].double() for s in states])  # (K, tokens, D)
                h = torch.nn.functional.normalize(h, dim=-1)
                doc_sums.append(torch.einsum("ind,jnd->ij", h, h))           # summed over its tokens
                doc_tokens.append(int(valid[row].sum()))
    finally:
        remove_plan(model)
        if before is not None:
            apply_plan(model, before)
    count = sum(doc_tokens)
    matrix = (torch.stack(doc_sums).sum(0) / count).clamp(-1, 1)
    return Similarity(matrix=[[round(float(x), 6) for x in row] for row in matrix],
                      plan=plan.text, n_tokens=count, n_docs=len(documents), doc_sums=doc_sums, doc_tokens=doc_tokens)


def segments(matrix, k: int = 3) -> list[tuple[int, int]]:
    """Split boundaries 0..K-1 into ``k`` contiguous groups that are most alike inside.

    The paper reads Fig. 3 as "first layers, a uniform middle, last layers"; this names the
    groups from the numbers instead of by eye. Dynamic programming over cut points minimizes the
    within-group scatter, sum over groups of sum_{i,j in g} (1 - sim_ij) / |g| (k-means' cost
    for a cosine kernel, which unlike a sum of group means does not reward splitting off
    singletons). Returns (first, last) boundary pairs.
    """
    m = 1.0 - torch.tensor(matrix, dtype=torch.float64)
    n = m.shape[0]
    k = max(1, min(k, n))

    def cost(a, b):
        return float(m[a:b + 1, a:b + 1].sum()) / (b - a + 1)

    best = {(0, j): (cost(0, j), [(0, j)]) for j in range(n)}
    for g in range(1, k):
        for j in range(g, n):
            best[(g, j)] = min(
                ((best[(g - 1, i)][0] + cost(i + 1, j), best[(g - 1, i)][1] + [(i + 1, j)])
                 for i in range(g - 1, j)),
                key=lambda t: t[0],
            )
    return best[(k - 1, n - 1)][1]


def middle_groups(matrix) -> list[tuple[int, int]] | None:
    """The three contiguous groups of least within-group scatter (``segments``' cost) whose middle
    holds at least half of the boundaries and whose ends hold at least one each; None under four
    boundaries.

    Why a second grouping: the paper's claim (i) is about a *large* uniform middle. ``segments``
    is free to call a short run the middle (Gemma 3 270M: boundaries 1-5 of 19, the long uniform
    run reaching the last layer), and a margin measured for that run would be about something
    else. Exhaustive over the two cut points (K^2 / 2 candidates, block costs from 2-D prefix sums)."""
    m = 1.0 - np.asarray(matrix, dtype=float)
    n = len(m)
    prefix = np.zeros((n + 1, n + 1))
    prefix[1:, 1:] = m.cumsum(0).cumsum(1)

    def cost(a, b):
        return (prefix[b + 1, b + 1] - prefix[a, b + 1] - prefix[b + 1, a] + prefix[a, a]) / (b - a + 1)

    best = None
    for i in range(n - 2):  # first group 0..i
        for j in range(i + (n + 1) // 2, n - 1):  # middle i+1..j holds j - i >= n/2 boundaries
            c = cost(0, i) + cost(i + 1, j) + cost(j + 1, n - 1)
            if best is None or c < best[0] - 1e-12:
                best = (c, [(0, i), (i + 1, j), (j + 1, n - 1)])
    return best[1] if best and n >= 4 else None


def save(sim: Similarity, out: str | Path, title: str = "", groups: int = 3, **extra) -> tuple[Path, Path]:
    """Write ``<out>.json`` (atomically) and a ``<out>.png`` heatmap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .results import atomic_write_json

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    groups = segments(sim.matrix, groups)
    json_path, png_path = out.with_suffix(".json"), out.with_suffix(".png")
    per_document = sim.per_document()
    atomic_write_json(json_path, sim.to_json(groups=groups, **extra, **({"per_document": per_document} if per_document else {})))
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    im = ax.imshow(sim.matrix, cmap="viridis", vmin=min(0.0, min(map(min, sim.matrix))), vmax=1.0, origin="upper")
    ax.set_xlabel("layer boundary (0 = embeddings)")
    ax.set_ylabel("layer boundary")
    ax.set_title(title or f"hidden-state cosine similarity ({sim.n_tokens} tokens)", fontsize=10)
    for a, b in groups:
        ax.add_patch(matplotlib.patches.Rectangle((a - 0.5, a - 0.5), b - a + 1, b - a + 1, fill=False, ec="white", lw=1.2))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(png_path)
    return json_path, png_path
