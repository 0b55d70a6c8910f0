"""LoRA healing on a tiny random decoder: it trains under the plan, saves an adapter with the
model's own layer names, and writes before/after records keyed apart."""

import json

import pytest
import torch

from decoder_eval import heal
from glue_painters.cli import main
from glue_painters.rewire import current_plan
from glue_painters.results import ResultsStore
from test_decoder_fixtures import byte_tokenizer, make_data_dir, tiny_lm


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(f"paragraph {i}: the quick brown fox jumps over the lazy dog " * 3 for i in range(12)))
    return path


def test_heal_trains_under_the_plan_and_records_both_scores(tmp_path, corpus):
    data = make_data_dir(tmp_path / "data")
    model, tok = tiny_lm("llama"), byte_tokenizer()
    untouched = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = heal.HealConfig(steps=6, lr=1e-2, rank=4, alpha=8, seq_len=32, batch_size=2)
    out = heal.heal("tiny", "skip:n=2", tasks=["arc_easy", "lambada_openai"], corpus=corpus, data_dir=data,
                    results_dir=tmp_path / "results", out_dir=tmp_path / "run", cfg=cfg, model=model, tokenizer=tok)
    assert out["plan"] == "0-2,6,7"
    # the adapter trained something and was saved under the plain model's names (no plan entries)
    adapter = tmp_path / "run" / "adapter"
    assert (adapter / "adapter_config.json").exists()
    from safetensors.torch import load_file
    weights = load_file(adapter / "adapter_model.safetensors")
    assert weights and not any(".layer." in k for k in weights)
    trained = [k for k, v in weights.items() if "lora_B" in k and v.abs().sum() > 0]
    assert trained and all(f"layers.{i}." not in k for k in trained for i in (3, 4, 5)), "skipped layers got no gradient"
    # base weights untouched (LoRA only), and no plan left on
    base = dict(model.named_parameters())
    assert all(torch.equal(base[n], p) for n, p in untouched.items() if n in base)
    assert current_plan(model) is None
    recs = list(ResultsStore(tmp_path / "results").records("decoder"))
    assert sorted((r["task"], r["healed"]) for r in recs) == [
        ("arc_easy", False), ("arc_easy", True), ("lambada_openai", False), ("lambada_openai", True)]
    healed = [r for r in recs if r["healed"]]
    assert all(r["key"]["heal"]["steps"] == 6 for r in healed)
    assert set(out["before"]) == set(out["after"]) == {"arc_easy", "lambada_openai"}


def test_plan_spec_names_variants_like_the_sweep():
    spec = heal.plan_spec("looped_parallel:n=2", 8)
    assert spec.variant == "looped_parallel" and spec.param_dict == {"n": 2, "k": 3}
    assert heal.plan_spec("0-3,5", 8).variant == "custom"


def test_heal_bad_input_exits_2(tmp_path, capsys):
    data = make_data_dir(tmp_path / "data")
    assert main(["heal", "--plan", "skip:n=2", "--corpus", str(tmp_path / "none.txt"),
                 "--data-dir", str(data), "--tasks", "arc_easy", "--results", str(tmp_path / "r")]) == 2
    assert "corpus file not found" in capsys.readouterr().err
    assert main(["heal", "--plan", "skip:n=2", "--tasks", "nope", "--data-dir", str(data)]) == 2
    assert not (tmp_path / "r").exists()


def test_corpus_is_recorded_relative_to_the_data_dir(tmp_path):
    from decoder_eval.heal import _corpus_name

    (tmp_path / "wikitext2").mkdir()
    inside, outside = tmp_path / "wikitext2" / "train.txt", tmp_path.parent / "mine.txt"
    assert _corpus_name(inside, tmp_path) == "data:wikitext2/train.txt"
    assert _corpus_name(outside, tmp_path) == str(outside)
