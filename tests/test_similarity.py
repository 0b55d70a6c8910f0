import json

import numpy as np
import pytest
import torch

from glue_painters import similarity
from glue_painters.errors import UserError
from glue_painters.rewire import current_plan
from tiny import EXACT, LAYERS, make


class _Tok:
    """A whitespace tokenizer over the tiny vocab, enough to batch and pad."""

    def __call__(self, texts, return_tensors=None, padding=True, truncation=True, max_length=64):
        ids = [[3 + sum(map(ord, w)) % 90 for w in t.split()][:max_length] for t in texts]
        width = max(map(len, ids))
        out = {"input_ids": torch.tensor([r + [0] * (width - len(r)) for r in ids]),
               "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ids])}
        return _Batch(out)


class _Batch(dict):
    def to(self, device):
        return self


DOCS = ["the cat sat on the mat today", "a dog", "one two three four five six seven eight nine", "x y z"]


def _by_hand(model, docs):
    """Mean cosine over real tokens from BERT's own hidden states (no final norm in BERT)."""
    tok = _Tok()
    total, count = 0, 0
    for d in docs:
        b = tok([d])
        with torch.no_grad():
            hs = model(**b, output_hidden_states=True).hidden_states
        h = torch.nn.functional.normalize(torch.stack(hs)[:, 0].double(), dim=-1)  # (K, L, D)
        total = total + torch.einsum("ild,jld->ij", h, h)
        count += h.shape[1]
    return total / count


def test_matrix_matches_hand_computation_and_ignores_padding():
    model = make("bert", dtype=EXACT)  # batched with padding vs one by one: equal but for rounding
    sim = similarity.layer_similarity(model, _Tok(), DOCS, batch_size=4, progress=False)
    assert sim.size == LAYERS + 1
    m = torch.tensor(sim.matrix, dtype=torch.float64)
    torch.testing.assert_close(m, _by_hand(model, DOCS), atol=2e-6, rtol=0)
    assert torch.allclose(m.diagonal(), torch.ones(LAYERS + 1, dtype=torch.float64))
    assert torch.equal(m, m.T)
    one_by_one = similarity.layer_similarity(model, _Tok(), DOCS, batch_size=1, progress=False)
    torch.testing.assert_close(m, torch.tensor(one_by_one.matrix, dtype=torch.float64), atol=2e-6, rtol=0)
    assert sim.n_tokens == sum(len(d.split()) for d in DOCS)
    assert current_plan(model) is None


def test_per_document_sums_give_back_the_matrix_and_each_document_by_hand(tmp_path):
    """The per-document sums behind claim (i)'s interval: each document's own matrix (by hand,
    from BERT's hidden states, no padding); the saved upper triangles, token-weighted, give back
    the saved matrix."""
    model = make("bert")
    sim = similarity.layer_similarity(model, _Tok(), DOCS, batch_size=3, progress=False)
    assert sim.doc_tokens == [len(d.split()) for d in DOCS]
    for d, s, n in zip(DOCS, sim.doc_sums, sim.doc_tokens):
        torch.testing.assert_close(s / n, _by_hand(model, [d]), atol=1e-9, rtol=0)
    j, _ = similarity.save(sim, tmp_path / "sim", model="x")
    per = json.loads(j.read_text())["per_document"]
    k = LAYERS + 1
    assert per["tokens"] == sim.doc_tokens and all(len(t) == k * (k + 1) // 2 for t in per["sums"])
    iu = np.triu_indices(k)
    back = np.zeros((k, k))
    back[iu] = np.asarray(per["sums"]).sum(0) / sum(per["tokens"])
    np.testing.assert_allclose(back[iu], np.asarray(sim.matrix)[iu], atol=1e-5)


def test_middle_groups_hold_at_least_half_and_least_scatter():
    """A uniform run reaching the last layer: ``segments`` calls a short run the middle, while the
    claim's grouping takes a middle of at least half the boundaries, least scattered."""
    m = np.full((10, 10), 0.1)
    m[3:, 3:] = 0.9  # boundaries 3..9 alike
    m[1:3, 1:3] = 0.9
    np.fill_diagonal(m, 1.0)
    assert similarity.segments(m.tolist(), k=3) == [(0, 0), (1, 2), (3, 9)]
    a, (b0, b1), c = similarity.middle_groups(m.tolist())
    assert b1 - b0 + 1 >= 5 and a == (0, 2) and b0 == 3 and c[1] == 9  # the middle inside the uniform run
    assert similarity.middle_groups([[1.0] * 3] * 3) is None


def test_under_a_plan_a_group_is_one_boundary():
    model = make("llama")
    sim = similarity.layer_similarity(model, _Tok(), DOCS, plan="0-1,[2-5]x2,6-7", progress=False)
    assert sim.size == 1 + 2 + 2 + 2
    assert sim.plan == "0,1,[2-5]x2,6,7"


def test_segments_find_known_blocks():
    blocks = [(0, 1), (2, 6), (7, 8)]
    m = torch.full((9, 9), 0.1)
    for a, b in blocks:
        m[a:b + 1, a:b + 1] = 0.9
    assert similarity.segments(m.tolist(), k=3) == blocks
    assert similarity.segments(m.tolist(), k=1) == [(0, 8)]


def test_save_writes_json_and_png(tmp_path):
    sim = similarity.Similarity(matrix=[[1.0, 0.5], [0.5, 1.0]], plan="0", n_tokens=3, n_docs=1)
    j, p = similarity.save(sim, tmp_path / "sim", model="x")
    data = json.loads(j.read_text())
    assert data["matrix"] == sim.matrix and data["model"] == "x"
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_read_documents(tmp_path):
    assert len(similarity.read_documents(max_docs=5)) == 5
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: not valid JSON"):
        similarity.read_documents(bad)
    with pytest.raises(UserError, match="text file not found"):
        similarity.read_documents(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(UserError, match="holds no text"):
        similarity.read_documents(empty)
