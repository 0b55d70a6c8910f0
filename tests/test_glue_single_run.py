"""The one-run command as ``run_glue.py`` users expect it (issue 18): the fine-tuned model and
tokenizer in ``--output-dir``, ``$PAINTERS_RESULTS`` respected, every ``TrainingArguments`` field
accepted (and keyed only when it changes a result), eval curves while training and the probe's
head loss in W&B. Tiny saved BERT, CPU, seconds per run."""

import glob
import json
import time
import struct

import pytest
import torch

from painters.cli import main as painters
from glue_painters.errors import UserError
from painters.commands import finetune as ft
from glue_eval.hparams import FinetuneHParams

from test_glue_cli import offline, one_thread, records, tiny_dir, toy_rte, write_config  # noqa: F401 - fixtures


def _argv(tiny_dir, data, out, *more):
    return ["--model", str(tiny_dir), "--task", "rte", "--output-dir", str(out), "--data-dir", str(data),
            "--sample-train", "16", "--epochs", "1", "--batch-size", "8", "--max-length", "32", *more]


def _eval_logits(model, tok, data, n=12):
    from glue_eval.tasks import load_rows
    rows, _ = load_rows("rte", "validation", data)
    enc = tok([r["sentence1"] for r in rows[:n]], [r["sentence2"] for r in rows[:n]], padding=True,
              truncation=True, max_length=32, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        return model(**enc).logits


@pytest.mark.parametrize("plan,layers,plan_file", [("skip:n=1", 3, False), ("looped_parallel:n=1,k=2", 6, True)])
def test_output_dir_holds_the_fine_tuned_model_and_tokenizer(tmp_path, tiny_dir, capsys, plan, layers, plan_file):
    """A sequential plan leaves a materialized checkpoint (plain from_pretrained is the run); a
    parallel one leaves all layers + painters_plan.json (load_finetuned puts the plan back).
    Either way the reloaded model predicts what the trained one does: the last checkpoint is the
    trained model itself (all layers + its plan, as Trainer saved it)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from glue_eval.saved_model import load_finetuned
    data, out = toy_rte(tmp_path / "data"), tmp_path / "run"
    assert ft.main(_argv(tiny_dir, data, out, "--plan", plan, "--save-steps", "1", "--no-wandb")) == 0
    assert "fine-tuned model and tokenizer in" in capsys.readouterr().err
    assert (out / "metrics.json").exists() and (out / "painters_plan.json").exists() == plan_file
    plain = AutoModelForSequenceClassification.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert plain.config.num_hidden_layers == layers
    model, tok2 = load_finetuned(out)
    trained, _ = load_finetuned(out / "checkpoint-2")  # the weights at the end of training, plan on
    want = _eval_logits(trained, tok, data)
    torch.testing.assert_close(_eval_logits(model, tok2, data), want, rtol=1e-5, atol=1e-6)
    if not plan_file:
        assert plain.config.painters_plan == "0,1,5"
        torch.testing.assert_close(_eval_logits(plain, tok, data), want, rtol=1e-5, atol=1e-6)
    # and the reloaded model scores what metrics.json says
    from glue_eval.metrics import predictions_from_logits, score_split
    from glue_eval.tasks import get_task, load_rows
    rows, _ = load_rows("rte", "validation", data)
    preds = predictions_from_logits(get_task("rte"), _eval_logits(model, tok2, data, len(rows)).numpy())
    rec = json.loads((out / "metrics.json").read_text())
    assert score_split("rte", "validation", preds, [r["label"] for r in rows]) == pytest.approx(rec["metrics"])


def test_painters_results_is_the_default_store_and_folders_are_checked_first(tmp_path, tiny_dir, capsys, monkeypatch):
    data, store = toy_rte(tmp_path / "data"), tmp_path / "store"
    monkeypatch.setenv("PAINTERS_RESULTS", str(store))
    assert ft.main(_argv(tiny_dir, data, tmp_path / "run", "--no-wandb")) == 0
    assert len(records(store)) == 1
    capsys.readouterr()
    (tmp_path / "file").write_text("x")
    for flag in ("--results", "--output-dir"):
        argv = _argv(tiny_dir, data, tmp_path / "run2", "--no-wandb") + [flag, str(tmp_path / "file")]
        assert ft.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(f"{flag} {tmp_path / 'file'} is a file, not a folder") and len(err.splitlines()) == 1
    assert not (tmp_path / "run2").exists()


def test_old_records_keep_their_key():
    """The key's hyperparameters without TrainingArguments extras are what records always had."""
    assert FinetuneHParams().key_dict() == {
        "learning_rate": 2e-5, "batch_size": 32, "epochs": 3.0, "max_length": 128, "weight_decay": 0.0,
        "warmup_steps": 0.0, "eval_batch_size": 128, "bf16": False, "fp16": False}


def test_training_arguments_reach_trainer_and_the_key_only_when_they_change_a_result(tmp_path):
    from glue_eval.finetune import training_args
    parse = ft._hparams
    base = parse(ft.build_parser().parse_args(["--task", "rte", "--output-dir", "x"]))[0]
    hp = parse(ft.build_parser().parse_args(["--task", "rte", "--output-dir", "x", "--gradient_accumulation_steps", "4",
                                             "--lr_scheduler_type", "cosine", "--warmup-steps", "0.1",
                                             "--num_train_epochs", "2", "--eval_strategy", "epoch"]))[0]
    args = training_args(tmp_path, hp, seed=0)
    assert (args.gradient_accumulation_steps, args.lr_scheduler_type.value, args.warmup_steps,
            args.num_train_epochs, args.eval_strategy.value) == (4, "cosine", 0.1, 2.0, "epoch")
    assert hp.key_dict() == {**base.key_dict(), "epochs": 2.0, "warmup_steps": 0.1,
                             "trainer": {"gradient_accumulation_steps": 4, "lr_scheduler_type": "cosine",
                                         "loss": "mean"}}  # accumulated losses averaged since issue 24: a new key
    same = parse(ft.build_parser().parse_args(["--task", "rte", "--output-dir", "x", "--gradient_accumulation_steps",
                                               "1", "--logging_steps", "3", "--eval_strategy", "steps",
                                               "--do_train", "--num-train-epochs", "3"]))[0]
    assert same.key_dict() == base.key_dict() and same.trainer["logging_steps"] == 3
    # the sweep config's finetune: section takes the same fields, read the same way
    cfg = FinetuneHParams.from_dict({"gradient_accumulation_steps": 4, "lr_scheduler_type": "cosine",
                                     "warmup_steps": 0.1, "num_train_epochs": 2, "eval_strategy": "epoch"}, "cfg")
    assert cfg.key_dict() == hp.key_dict()
    for bad, needle in [({"gradient_accumulation_steps": "x"}, "invalid int value: 'x'"),
                        ({"lr_scheduler_type": "nope"}, "invalid choice: 'nope'"),
                        ({"colour": 1}, "unknown setting(s) colour"), ({"seed": 1}, "seed is set by the run"),
                        ({"epochs": 1, "num_train_epochs": 2}, "epochs is given twice")]:
        with pytest.raises(UserError) as e:
            FinetuneHParams.from_dict(bad, "config x: finetune")
        assert needle in str(e.value) and str(e.value).startswith("config x: finetune:")


def test_a_training_argument_changes_the_run_and_its_key(tmp_path, tiny_dir):
    data = toy_rte(tmp_path / "data")
    assert ft.main(_argv(tiny_dir, data, tmp_path / "a", "--no-wandb")) == 0
    assert ft.main(_argv(tiny_dir, data, tmp_path / "b", "--no-wandb", "--gradient_accumulation_steps", "2")) == 0
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in "ab")
    assert (a["steps"], b["steps"]) == (2, 1)  # 16 rows, batch 8: two steps, or one of two batches


# ---- W&B: eval curves and the probe's loss, read back from the offline .wandb log ---------------
def wandb_history(path, want=lambda rows: True, seconds: float = 15.0) -> list[dict]:
    """``_read_history`` until ``want(rows)`` holds or ``seconds`` pass: W&B's service process may
    still be appending to a run's file for a moment after ``run.finish()`` returns (seen under load)."""
    deadline = time.monotonic() + seconds
    while True:
        rows = _read_history(path)
        if want(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.25)


def _read_history(path) -> list[dict]:
    """The history rows of an offline ``run-*.wandb`` file (W&B's LevelDB-style record log: 32 KiB
    blocks of chunks with a 7-byte header, each record a ``wandb_internal_pb2.Record``)."""
    from wandb.proto import wandb_internal_pb2 as pb
    data, pos, chunks, out, block = open(path, "rb").read(), 7, [], [], 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        chunks = [chunk] if kind in (1, 2) else chunks + [chunk]
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(b"".join(chunks))
            if rec.WhichOneof("record_type") == "history":
                out.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
    return out


def _runs(root, want=lambda rows: True):
    return {p: wandb_history(p, want) for p in sorted(glob.glob(f"{root}/**/offline-run-*/run-*.wandb", recursive=True))}


def test_eval_curves_while_fine_tuning_without_changing_the_scores(tmp_path, tiny_dir, capsys):
    data = toy_rte(tmp_path / "data")
    argv = _argv(tiny_dir, data, tmp_path / "plain", "--no-wandb", "--plan", "skip:n=1", "--epochs", "2")
    assert ft.main(argv) == 0
    assert ft.main(_argv(tiny_dir, data, tmp_path / "curves", "--plan", "skip:n=1", "--epochs", "2",
                         "--eval_strategy", "epoch", "--wandb")) == 0
    assert "wandb sync" in capsys.readouterr().err
    plain, curves = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("plain", "curves"))
    assert curves["metrics"] == plain["metrics"] and curves["train_loss"] == plain["train_loss"]
    (rows,) = _runs(tmp_path / "curves", lambda rows: any("eval/accuracy" in r for r in rows)).values()
    during = [r for r in rows if "eval/accuracy" in r and "train/epoch" in r]
    assert [r["train/epoch"] for r in during] == [1, 2] and all("eval/score" in r for r in during)


def test_eval_curves_in_a_sweep_and_the_probes_head_loss(tmp_path, tiny_dir):
    data = toy_rte(tmp_path / "data")
    common = dict(model=str(tiny_dir), variants=["full"], n=[1], seeds=[0])
    plain = write_config(tmp_path / "plain.yaml", **common, modes=["finetune"],
                         finetune={"epochs": 2, "max_length": 32, "batch_size": 8})
    curves = write_config(tmp_path / "curves.yaml", **common, finetune={"epochs": 2, "max_length": 32, "batch_size": 8,
                                                                       "eval_strategy": "epoch"})
    base = ["--data-dir", str(data), "--no-progress"]
    assert painters(["glue", "run", str(plain), "--results", str(tmp_path / "a"), "--no-wandb", *base]) == 0
    assert painters(["glue", "run", str(curves), "--results", str(tmp_path / "b"), "--wandb", *base]) == 0
    (a,) = [json.loads(p.read_text()) for p in records(tmp_path / "a")]
    b = {r["mode"]: r for r in (json.loads(p.read_text()) for p in records(tmp_path / "b"))}
    assert b["finetune"]["key_hash"] == a["key_hash"] and b["finetune"]["metrics"] == a["metrics"]
    assert len(_runs(tmp_path / "b")) == 2  # one W&B run per record, named by its key hash

    def history(rec, key):
        (path,) = glob.glob(f"{tmp_path / 'b'}/**/offline-run-*-{rec['key_hash']}/run-*.wandb", recursive=True)
        return wandb_history(path, lambda rows: sum(key in r for r in rows) >= 2)

    tuned, probe = history(b["finetune"], "eval/accuracy"), history(b["probe"], "train/loss")
    assert [r["train/epoch"] for r in tuned if "eval/accuracy" in r and "train/epoch" in r] == [1, 2]
    losses = [r for r in probe if "train/loss" in r]
    assert [r["train/epoch"] for r in losses] == [1, 2]  # write_config's probe: epochs 2
    assert all(r["train/loss"] > 0 for r in losses)


def test_probe_head_losses_per_epoch_are_each_seeds_own():
    """The batched heads report each seed's loss as training it alone measures it."""
    from glue_eval.hparams import ProbeHParams
    from glue_eval.probe import train_head, train_heads
    from glue_eval.tasks import get_task
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 8, generator=g), torch.randint(2, (50,), generator=g)
    hp, task = ProbeHParams(batch_size=16, epochs=3), get_task("rte")
    together = []
    train_heads(lambda idx: x[idx], y, 8, task, hp, [0, 3], together)
    for i, seed in enumerate((0, 3)):
        alone = []
        train_head(lambda idx: x[idx], y, 8, task, hp, seed, alone)
        assert [epoch[i] for epoch in together] == pytest.approx(alone, rel=1e-5)
    assert len(together) == 3 and together[-1][0] < together[0][0]
