"""LoRA healing on a tiny random decoder: it trains under the plan, saves an adapter for the layers
the plan runs (with its base model, plan and settings beside it), writes before/after records
keyed apart and shown side by side, and the adapter scores again later and merges into an export."""

import json
import subprocess

import pytest
import torch

from decoder_eval import heal
from decoder_eval.sweep import model_fingerprint
from painters.cli import main
from glue_painters.errors import UserError
from glue_painters.results import ResultsStore
from glue_painters.rewire import current_plan
from test_decoder_fixtures import byte_tokenizer, make_data_dir, tiny_lm

CFG = heal.HealConfig(steps=6, lr=1e-2, rank=4, alpha=8, seq_len=32, batch_size=2)


def wikitext_like(path, paragraphs: int):
    """WikiText-2's raw layout: paragraphs and headings between lines holding one space."""
    body = "".join(f" = Heading {i} = \n \n paragraph {i} : the quick brown fox jumps over the lazy dog . \n \n"
                   for i in range(paragraphs // 2))
    path.write_text(" \n" + body, encoding="utf-8")
    return path


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(f"paragraph {i}: the quick brown fox jumps over the lazy dog " * 3 for i in range(12)))
    return path


def test_heal_trains_under_the_plan_and_records_both_scores(tmp_path, corpus):
    data = make_data_dir(tmp_path / "data")
    model, tok = tiny_lm("llama"), byte_tokenizer()
    untouched = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = heal.heal("tiny", "skip:n=2", tasks=["arc_easy", "lambada_openai"], corpus=corpus, data_dir=data,
                    results_dir=tmp_path / "results", out_dir=tmp_path / "run", cfg=CFG, model=model, tokenizer=tok)
    assert out["plan"] == "0-2,6,7"
    # the adapter trained something and was saved under the plain model's names (no plan entries)
    adapter = tmp_path / "run" / "adapter"
    assert (adapter / "adapter_config.json").exists()
    from safetensors.torch import load_file
    weights = load_file(adapter / "adapter_model.safetensors")
    assert weights and not any(".layer." in k for k in weights)
    trained = [k for k, v in weights.items() if "lora_B" in k and v.abs().sum() > 0]
    assert trained
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


def test_the_adapter_holds_the_executed_layers_and_records_what_it_heals(tmp_path, corpus):
    data = make_data_dir(tmp_path / "data")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "run" / f".adapter.tmp-{dead.pid}").mkdir(parents=True)  # a killed save's leftover
    out = heal.heal("tiny", "skip:n=2", tasks=["arc_easy"], corpus=corpus, data_dir=data, results_dir=tmp_path / "r",
                    out_dir=tmp_path / "run", cfg=CFG, model=tiny_lm("llama"), tokenizer=byte_tokenizer())
    adapter = tmp_path / "run" / "adapter"
    from safetensors.torch import load_file
    layers = {int(k.split(".layers.")[1].split(".")[0]) for k in load_file(adapter / "adapter_model.safetensors")}
    assert layers == {0, 1, 2, 6, 7}, "skipped layers 3-5 get no adapter at all"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["layers_to_transform"] == [0, 1, 2, 6, 7] and config["base_model_name_or_path"] == "tiny"
    meta = json.loads((adapter / "painters_heal.json").read_text())
    assert meta["base_model"] == {"name": "tiny", "source": None, "path": None,
                                  "fingerprint": model_fingerprint(tiny_lm("llama"))}
    assert meta["plan"] == {"spec": "skip:n=2", "text": "0-2,6,7", "hash": meta["plan"]["hash"], "num_layers": 8,
                            "layers": [0, 1, 2, 6, 7]}
    (healed,) = [r for r in ResultsStore(tmp_path / "r").records("decoder") if r["healed"]]
    assert meta["heal"] == healed["key"]["heal"] == out["heal"] and meta["heal"]["steps"] == 6
    assert not list(tmp_path.joinpath("run").glob(".adapter.*")), "no temporary folder left, a dead one's removed"


def test_max_docs_counts_wikitext_paragraphs(tmp_path):
    path = wikitext_like(tmp_path / "wiki.txt", 20)
    docs = heal.corpus_documents(path, None)
    assert len(docs) == 20 and docs[0] == "= Heading 0 =" and docs[1].startswith("paragraph 0 :")
    assert len(heal.corpus_documents(path, 3)) == 3
    with pytest.raises(UserError, match="--max-docs must be at least 1"):
        heal.corpus_documents(path, 0)


def test_heal_uses_max_docs_documents_of_a_wikitext_corpus(tmp_path):
    data = make_data_dir(tmp_path / "data")
    path = wikitext_like(tmp_path / "wiki.txt", 40)
    out = heal.heal("tiny", "skip:n=2", tasks=["arc_easy"], corpus=path, data_dir=data, results_dir=tmp_path / "r",
                    out_dir=tmp_path / "run", cfg=CFG, max_docs=6, model=tiny_lm("llama"), tokenizer=byte_tokenizer())
    assert out["documents"] == 6 and out["heal"]["max_docs"] == 6
    assert json.loads((tmp_path / "run/adapter/painters_heal.json").read_text())["documents"] == 6


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
    corpus = wikitext_like(tmp_path / "wiki.txt", 4)
    (tmp_path / "afile").write_text("x")
    common = ["--corpus", str(corpus), "--data-dir", str(data), "--tasks", "arc_easy"]
    for argv, message in [
            (["heal", *common], "--plan is required"),
            (["heal", "--plan", "skip:n=2", "--max-docs", "0", *common], "--max-docs must be at least 1"),
            (["heal", "--plan", "skip:n=2", "--out", str(tmp_path / "afile"), *common], "afile is a file"),
            (["heal", "--plan", "skip:n=2", "--results", str(tmp_path / "afile" / "r"), *common], "afile is a file"),
            (["heal", "eval", "--adapter", str(tmp_path / "none")], "adapter folder not found"),
            (["heal", "eval", "--adapter", str(data)], "is not a healed adapter folder"),
            (["export", "--adapter", str(data), "--out", str(tmp_path / "x")], "is not a healed adapter folder"),
            (["export", "--out", str(tmp_path / "x")], "--model and --plan are required")]:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "x").exists()


def test_corpus_is_recorded_relative_to_the_data_dir(tmp_path):
    from decoder_eval.heal import _corpus_name

    (tmp_path / "wikitext2").mkdir()
    inside, outside = tmp_path / "wikitext2" / "train.txt", tmp_path.parent / "mine.txt"
    assert _corpus_name(inside, tmp_path) == "data:wikitext2/train.txt"
    assert _corpus_name(outside, tmp_path) == str(outside)


def test_heal_logs_one_wandb_run_with_its_loss_and_both_scores(tmp_path, corpus, monkeypatch):
    from test_glue_single_run import wandb_history

    for var in ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_RUN_GROUP"):
        monkeypatch.delenv(var, raising=False)
    data = make_data_dir(tmp_path / "data")
    out = heal.heal("tiny", "skip:n=2", tasks=["arc_easy"], corpus=corpus, data_dir=data, results_dir=tmp_path / "r",
                    out_dir=tmp_path / "run", cfg=CFG, model=tiny_lm("llama"), tokenizer=byte_tokenizer(), wandb=True)
    (run,) = list((tmp_path / "r" / "wandb").glob("offline-run-*"))
    rows = wandb_history(next(run.glob("run-*.wandb")), lambda rows: any("train/loss" in r for r in rows))
    assert any("train/loss" in r for r in rows)  # Trainer's curve while the adapter trains
    blob = next(run.glob("run-*.wandb")).read_bytes()
    assert b"healed/arc_easy/acc" in blob and b"unhealed/arc_easy/acc" in blob and b"skip:n=2" in blob
    assert "wandb sync" in out["wandb"]


def test_a_heal_with_other_settings_never_replaces_an_adapter(tmp_path, corpus, monkeypatch):
    """A 40-step heal once replaced the 10-step adapter already exported: the default folder now
    names the settings (one folder per distinct setting), and a folder given with --out that holds
    an adapter of other settings is refused before any training, the adapter untouched."""
    import dataclasses

    data = make_data_dir(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    kw = dict(tasks=["arc_easy"], corpus=corpus, data_dir=data, results_dir=tmp_path / "r")
    first = heal.heal("tiny", "skip:n=2", cfg=CFG, model=tiny_lm("llama"), tokenizer=byte_tokenizer(), **kw)
    longer = dataclasses.replace(CFG, steps=CFG.steps + 2)
    second = heal.heal("tiny", "skip:n=2", cfg=longer, model=tiny_lm("llama"), tokenizer=byte_tokenizer(), **kw)
    assert first["adapter"] != second["adapter"]
    folders = sorted(p.name for p in (tmp_path / "runs" / "heal").iterdir())
    assert len(folders) == 2 and all(f.startswith(f"tiny-{heal.plan_spec('skip:n=2', 8).plan.hash}-") for f in folders)
    steps = {json.loads((tmp_path / p / "painters_heal.json").read_text())["heal"]["steps"]
             for p in (first["adapter"], second["adapter"])}
    assert steps == {CFG.steps, CFG.steps + 2}
    # the same settings again: the same folder (the same run, trained again)
    again = heal.heal("tiny", "skip:n=2", cfg=CFG, model=tiny_lm("llama"), tokenizer=byte_tokenizer(), **kw)
    assert again["adapter"] == first["adapter"]
    # --out holding an adapter of other settings: refused, one line, the adapter as it was
    out_dir = tmp_path / first["adapter"]
    before = (out_dir / "adapter_model.safetensors").read_bytes()
    with pytest.raises(UserError, match=r"holds an adapter healed with other settings \(steps 6 there, 8 here\)"):
        heal.heal("tiny", "skip:n=2", cfg=longer, out_dir=out_dir.parent, model=tiny_lm("llama"),
                  tokenizer=byte_tokenizer(), **kw)
    assert (out_dir / "adapter_model.safetensors").read_bytes() == before
    with pytest.raises(UserError, match=r"plan .* there, .* here"):
        heal.heal("tiny", "skip:n=1", cfg=CFG, out_dir=out_dir.parent, model=tiny_lm("llama"),
                  tokenizer=byte_tokenizer(), **kw)
