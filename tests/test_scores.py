"""Layer scores and the calibration loss, checked against hand computations on a tiny Llama.

The hand computations run each text alone (no padding) through the untouched model, with plain
forward hooks on its layers and ``torch.nn.functional.cosine_similarity``; the library runs
padded batches through the rewired layer list and shares plan prefixes. Agreement therefore
checks the padding mask, the boundary bookkeeping and the prefix sharing at once.
"""

import json
import math

import pytest
import torch

from glue_painters import scores
from glue_painters.errors import UserError
from glue_painters.plans import Plan
from glue_painters.rewire import current_plan, rewired
from glue_painters.variants import skip_one
from tiny import LAYERS, make


class Tok:
    """A whitespace tokenizer over the tiny vocabulary, right-padding with id 0."""

    def __call__(self, texts, return_tensors=None, padding=True, truncation=True, max_length=64):
        ids = [[3 + sum(map(ord, w)) % 90 for w in t.split()][:max_length] for t in texts]
        width = max(map(len, ids))
        return {"input_ids": torch.tensor([r + [0] * (width - len(r)) for r in ids]),
                "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ids])}


DOCS = ["the cat sat on the mat today and slept", "a dog ran", "one two three four five six seven eight nine ten",
        "x y z w", "red green blue"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread while these run: the tiny model's ops are too small to split, and on a
    shared, busy CPU two threads spinning on each other made this file 15x slower (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    return make("llama")


@pytest.fixture(scope="module")
def calib():
    # batch size 2: rows of different lengths are padded together, and a batch holds one row
    return scores.tokenize_calibration(Tok(), DOCS, batch_size=2, source="test")


def _states_by_hand(model, text):
    """Inputs of every layer and the last layer's output, one text, no padding: (T+1, L, D)."""
    ids = Tok()([text])["input_ids"]
    states, hooks = [], []
    layers = model.model.layers
    for layer in layers:
        hooks.append(layer.register_forward_pre_hook(
            lambda m, args, kwargs: states.append((args[0] if args else kwargs["hidden_states"])[0]), with_kwargs=True))
    hooks.append(layers[-1].register_forward_hook(lambda m, a, out: states.append((out[0] if isinstance(out, tuple) else out)[0])))
    try:
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        for h in hooks:
            h.remove()
    return torch.stack(states).double()


def _loss_by_hand(model, plan, docs):
    """Mean next-token NLL over all texts, each run alone, from the model's own logits."""
    total, count = 0.0, 0
    for text in docs:
        ids = Tok()([text])["input_ids"]
        with torch.no_grad(), rewired(model, plan):
            logits = model(input_ids=ids).logits[0, :-1].double()
        total += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
        count += ids.shape[1] - 1
    return total / count


def test_block_influence_and_angular_distance_match_hand_computation(model, calib):
    got = scores.layer_scores(model, calib, progress=False)
    per_doc = [_states_by_hand(model, d) for d in DOCS]
    cos = lambda a, b: torch.nn.functional.cosine_similarity(a, b, dim=-1)  # noqa: E731
    n_tok = sum(s.shape[1] for s in per_doc)
    bi = [1 - sum(float(cos(s[i], s[i + 1]).sum()) for s in per_doc) / n_tok for i in range(LAYERS)]
    torch.testing.assert_close(torch.tensor(got.block_influence, dtype=torch.float64), torch.tensor(bi, dtype=torch.float64), atol=1e-6, rtol=0)
    for n in (1, 3, LAYERS - 1):
        want = [sum(float((torch.arccos(cos(s[l], s[l + n]).clamp(-1, 1)) / math.pi).sum()) for s in per_doc) / n_tok
                for l in range(LAYERS - n + 1)]
        torch.testing.assert_close(torch.tensor(got.angular[n], dtype=torch.float64), torch.tensor(want, dtype=torch.float64), atol=1e-6, rtol=0)
        start = min(range(len(want)), key=lambda l: want[l])
        assert got.best_block[n][0] == start
    assert current_plan(model) is None


def test_angular_distance_on_last_tokens_follows_gromov(model, calib):
    _, ang, _ = scores.boundary_statistics(model, calib, angular_tokens="last", progress=False)
    per_doc = [_states_by_hand(model, d) for d in DOCS]
    for l, n in ((0, 2), (3, 4)):
        want = sum(float(torch.arccos(torch.nn.functional.cosine_similarity(s[l, -1], s[l + n, -1], dim=0).clamp(-1, 1)))
                   / math.pi for s in per_doc) / len(DOCS)
        assert abs(float(ang[l, l + n]) - want) < 1e-6


def test_skip_one_increase_is_two_loss_evaluations(model, calib):
    got = scores.layer_scores(model, calib, progress=False)
    full = _loss_by_hand(model, Plan.parse(f"0-{LAYERS - 1}"), DOCS)
    assert abs(got.full_loss - full) < 1e-5
    for i in range(LAYERS):
        want = _loss_by_hand(model, skip_one(LAYERS, i), DOCS) - full
        assert abs(got.skip_one_increase[i] - want) < 1e-5, i


def test_shared_prefixes_give_the_same_losses_for_every_kind_of_plan(model, calib):
    plans = ["0-7", "0-2,[3-5]x2,6,7", "0-3,5-7", "0,1,4x3,7", "0-2,[3,5]x3,6", "1,0,2-7"]
    shared = scores.CalibrationLoss(model, calib, progress=False)
    alone = scores.CalibrationLoss(model, calib, progress=False, share_prefix=False)
    a, b = shared.many(plans), alone.many(plans)
    for p, x, y in zip(plans, a, b):
        assert abs(x - y) < 1e-5, p
        assert abs(x - _loss_by_hand(model, Plan.parse(p), DOCS)) < 1e-5, p
    assert shared.layer_runs < alone.layer_runs  # the prefix 0,1,2 ran once per batch, not five times
    assert shared(plans[1]) == a[1]


def test_split_forward_is_exact_on_llama(model, calib):
    ok, diff = scores.split_is_exact(model, calib.batches[0])
    assert ok and diff < 1e-5


def test_calibration_sources(tmp_path):
    docs, name = scores.calibration_documents(None, max_docs=3, data_dir=tmp_path)
    assert len(docs) == 3 and "bundled" in name
    (tmp_path / "arc_easy").mkdir()
    rec = {"question": {"stem": "What is hot?", "choices": [{"text": "ice", "label": "A"}, {"text": "fire", "label": "B"}]},
           "answerKey": "B"}
    (tmp_path / "arc_easy" / "train.jsonl").write_text(json.dumps(rec) + "\n")
    docs, name = scores.calibration_documents("arc_easy:train", data_dir=tmp_path)
    assert docs == ["Question: What is hot?\nAnswer: fire"] and name == "arc_easy:train"
    for bad in ("arc_easy:test", "lambada_openai:test", "hellaswag:validation", "arc_easy:validation"):
        with pytest.raises(UserError, match="train split"):
            scores.calibration_documents(bad, data_dir=tmp_path)
    (tmp_path / "wikitext2").mkdir()
    (tmp_path / "wikitext2" / "test.txt").write_text(" \n = Title = \n \n First paragraph . \n \n Second one . \n")
    docs, name = scores.calibration_documents("wikitext2:test", data_dir=tmp_path)
    assert docs == ["First paragraph .", "Second one ."] and name == "wikitext2:test"
    with pytest.raises(UserError, match="not found"):
        scores.calibration_documents("wikitext2:train", data_dir=tmp_path)
    (tmp_path / "wikitext2" / "train.txt").write_text(" Only train . \n")
    assert scores.calibration_documents(None, data_dir=tmp_path) == (["Only train ."], f"wikitext2:train ({tmp_path / 'wikitext2' / 'train.txt'})")
    with pytest.raises(UserError):
        scores.tokenize_calibration(Tok(), [], source="x")


def test_scores_json_round_trip(model, calib):
    s = scores.layer_scores(model, calib, progress=False)
    back = scores.LayerScores.from_json(json.loads(json.dumps(s.to_json())))
    assert back.block_influence == s.block_influence and back.best_block == s.best_block
    assert back.skip_one_increase == s.skip_one_increase and back.angular == s.angular
