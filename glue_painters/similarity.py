"""Cosine similarity of hidden states between every pair of layer boundaries (the paper's Fig. 3).

Boundary 0 is the input of the first layer (the embeddings); boundary t is the residual stream
after step t of the plan (a parallel group counts as one step: its mean output). Every boundary
is taken *before* any final norm, so the last entry is comparable with the others (HF's
``output_hidden_states`` replaces the last state by the normed one). Per token, padding masked,
the cosine between two boundaries; the matrix is the mean over every real token of the dataset
(a token-weighted mean, accumulated in float64).
"""

from __future__ import annotations

import inspect
import re

from dataclasses import dataclass
from pathlib import Path

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

    @property
    def size(self) -> int:
        return len(self.matrix)

    def to_json(self, **extra) -> dict:
        return {"plan": self.plan, "n_tokens": self.n_tokens, "n_docs": self.n_docs,
                "boundaries": self.size, "matrix": self.matrix, **extra}


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
    total = count = None
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
            h = torch.stack([s[valid].double() for s in states])        # (K, tokens, D)
            h = torch.nn.functional.normalize(h, dim=-1)
            sims = torch.einsum("ind,jnd->ij", h, h)                    # summed over tokens
            total = sims if total is None else total + sims
            count = (0 if count is None else count) + int(valid.sum())
    finally:
        remove_plan(model)
        if before is not None:
            apply_plan(model, before)
    matrix = (total / count).clamp(-1, 1)
    return Similarity(matrix=[[round(float(x), 6) for x in row] for row in matrix],
                      plan=plan.text, n_tokens=count, n_docs=len(documents))


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
    atomic_write_json(json_path, sim.to_json(groups=groups, **extra))
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
