"""A healed adapter used later, end to end on a tiny decoder saved as an ordinary model folder:
``painters heal`` -> ``painters heal eval --adapter`` (scores again, reuses what is stored, adds new
tasks, refuses other weights) -> ``painters decoder summary`` (the pair side by side) ->
``painters export --adapter`` (a plain checkpoint with LoRA merged, shallower per the plan, giving
the healed model's logits after ``from_pretrained``)."""

import json

import pytest
import torch

from glue_painters import adapters
from painters.cli import main
from glue_painters.models import load_model
from glue_painters.results import ResultsStore
from glue_painters.rewire import apply_plan
from test_decoder_fixtures import byte_tokenizer, make_data_dir, tiny_lm

HEAL = ["--steps", "6", "--lr", "1e-2", "--rank", "4", "--alpha", "8", "--seq-len", "32", "--train-batch-size", "2",
        "--device", "cpu", "--batch-size", "4"]


def save_tiny(folder, seed=0):
    tiny_lm("llama", seed).save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def healed(tmp_path_factory):
    """One healing run shared by the tests below: (root, model folder, adapter folder, data dir, results)."""
    root = tmp_path_factory.mktemp("heal")
    model_dir, data = save_tiny(root / "tiny"), make_data_dir(root / "data")
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(f"paragraph {i}: the quick brown fox jumps over the lazy dog " * 3 for i in range(12)))
    torch.set_num_threads(1)
    assert main(["heal", "--model", str(model_dir), "--plan", "skip:n=2", "--tasks", "arc_easy", "--corpus", str(corpus),
                 "--data-dir", str(data), "--results", str(root / "results"), "--out", str(root / "run"), *HEAL]) == 0
    return root, model_dir, root / "run" / "adapter", data, root / "results"


def test_the_adapter_records_the_base_model_as_named_with_its_folder(healed):
    root, model_dir, adapter, _, _ = healed
    info = adapters.read_adapter(adapter)
    assert info.base_model == str(model_dir) and info.base_path == str(model_dir.resolve())
    assert info.fingerprint.startswith("sha256:") and info.plan == "0-2,6,7"
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(model_dir.resolve())


def test_heal_eval_scores_the_adapter_again_and_adds_tasks(healed, capsys):
    root, _, adapter, data, results = healed
    store = ResultsStore(results)
    first = {r["key_hash"]: r for r in store.records("decoder")}
    capsys.readouterr()
    assert main(["heal", "eval", "--adapter", str(adapter), "--tasks", "arc_easy", "hellaswag", "--data-dir", str(data),
                 "--results", str(results), "--device", "cpu", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "| unhealed | healed | Δ |" in out and "hellaswag" in out and "arc_easy" in out
    now = {r["key_hash"]: r for r in store.records("decoder")}
    assert set(first) < set(now), "arc_easy reused (same keys as `painters heal` wrote), hellaswag added"
    assert sorted((r["task"], r["healed"]) for h, r in now.items() if h not in first) == [
        ("hellaswag", False), ("hellaswag", True)]
    (new_healed,) = [r for h, r in now.items() if h not in first and r["healed"]]
    (new_before,) = [r for h, r in now.items() if h not in first and not r["healed"]]
    assert new_healed["unhealed"] == {"key_hash": new_before["key_hash"], "metrics": new_before["metrics"]}


def test_heal_eval_refuses_other_weights(healed, tmp_path, capsys):
    _, _, adapter, data, results = healed
    other = save_tiny(tmp_path / "other", seed=5)
    assert main(["heal", "eval", "--adapter", str(adapter), "--model", str(other), "--tasks", "arc_easy",
                 "--data-dir", str(data), "--results", str(results)]) == 2
    assert "is not the base model of adapter" in capsys.readouterr().err


def test_summary_shows_healed_and_unhealed_side_by_side(healed, capsys):
    _, _, _, _, results = healed
    capsys.readouterr()
    assert main(["decoder", "summary", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("| ") and "skip:n=2" in line and "arc_easy" in line]
    cells = [c.strip() for c in row.strip("|").split("|")]
    store = {r["healed"]: r for r in ResultsStore(results).records("decoder") if r["task"] == "arc_easy"}
    assert cells[4:6] == [f"{store[False]['metrics']['acc']:.4f}", f"{store[True]['metrics']['acc']:.4f}"]


def test_export_with_the_adapter_gives_the_healed_models_logits(healed, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    _, model_dir, adapter, _, _ = healed
    assert main(["export", "--adapter", str(adapter), "--out", str(tmp_path / "x")]) == 0
    assert "LoRA adapter" in capsys.readouterr().out
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "x").eval()
    assert exported.config.num_hidden_layers == 5 and exported.config.painters_plan == "0-2,6,7"
    assert not any("lora" in n for n, _ in exported.named_parameters())
    base, tok = load_model(model_dir)
    peft_model = adapters.load_adapter(base, adapters.read_adapter(adapter))
    apply_plan(peft_model.get_base_model(), "0-2,6,7")
    ids = tok(["the quick brown fox", "jumps over"], return_tensors="pt", padding=True)
    with torch.no_grad():
        want, got = peft_model(**ids).logits, exported(**ids).logits
        plain = load_model(model_dir)[0]
        apply_plan(plain, "0-2,6,7")
        unhealed = plain(**ids).logits
    assert not torch.allclose(want, unhealed, atol=1e-4), "the adapter changes the logits"
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_export_refuses_another_plan_than_the_adapters(healed, tmp_path, capsys):
    _, _, adapter, _, _ = healed
    assert main(["export", "--adapter", str(adapter), "--plan", "skip:n=1", "--out", str(tmp_path / "x")]) == 2
    assert "was healed under plan 0-2,6,7" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
