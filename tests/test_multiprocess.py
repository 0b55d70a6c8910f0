"""Sweeps across processes: how the pending plans are dealt out, a real decoder sweep run by 1, 2
and 4 local processes (``accelerate launch``, ``torchrun``) giving exactly the same records, and a
GLUE sweep on 2 processes writing each record and W&B run once."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from decoder_eval import sweep as S
from glue_painters import variants
from painters.cli import main
from glue_painters.results import ResultsStore
from test_decoder_fixtures import byte_tokenizer, make_data_dir, one_thread, tiny_lm  # noqa: F401
from test_glue_cli import tiny_dir, toy_rte, write_config  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
CONFIG = {"variants": ["full", "skip", "random", "parallel", "looped_parallel"], "n": [0, 1, 2], "permutation_seeds": 2,
          "k": [2], "tasks": ["arc_easy", "winogrande"], "limit": 2, "batch_size": 2, "device": "cpu"}


# ---- the split -----------------------------------------------------------------------------------
@pytest.mark.parametrize("procs", [1, 2, 3, 4, 7])
def test_share_work_gives_every_group_to_exactly_one_process(procs):
    rng = random.Random(procs)
    costs = {("task", i): rng.choice([1, 2, 5, 40]) for i in range(23)}
    shares = S.share_work(costs, procs)
    dealt = [k for share in shares for k in share]
    assert sorted(dealt) == sorted(costs) and len(dealt) == len(set(dealt))
    loads = [sum(costs[k] for k in share) for share in shares]
    assert max(loads) - min(loads) <= max(costs.values())  # largest-first keeps the loads close
    assert S.share_work(dict(reversed(costs.items())), procs) == shares  # insertion order does not matter


def test_prefix_groups_keep_plans_that_share_first_layers_together():
    def b(v, **kw):
        return variants.build(v, 8, **kw).text

    plans = [variants.build("full", 8)] + [variants.build(v, 8, n=n) for v in ("skip", "parallel") for n in (0, 1, 2)]
    plans += [variants.build("random", 8, n=1, seed=s) for s in range(3)]
    groups = S.prefix_groups(plans)
    assert set(groups) == {p.text for p in plans}
    assert groups[b("skip", n=1)] == groups[b("parallel", n=1)] == ("Layer(index=0)", "Layer(index=1)")
    assert groups[b("skip", n=2)] == groups[b("parallel", n=2)] == groups[b("full")]  # layers 0..2
    for p in plans:  # a group is the run of first steps its plans compute once
        assert groups[p.text] == tuple(repr(u) for u in p.units())[:len(groups[p.text])]
    assert S.prefix_groups([variants.build("full", 8)]) == {"0-7": ("0-7",)}  # alone: its own group


def test_glue_probes_of_a_task_go_to_one_process_and_tasks_spread():
    from glue_eval.config import SweepConfig
    from glue_eval.processes import _probe_owners
    from glue_eval.runs import expand

    cfg = SweepConfig.from_mapping({"model": "m", "variants": ["full", "skip"], "n": [1], "tasks": ["rte", "mrpc", "cola"],
                                    "seeds": [0, 1]})
    owners = _probe_owners(expand(cfg, 6), 2)
    assert set(owners) == {"rte", "mrpc", "cola"} and set(owners.values()) == {0, 1}
    assert _probe_owners(expand(cfg, 6), 1) == {"rte": 0, "mrpc": 0, "cola": 0}


class _Rank:
    def __init__(self, index, count):
        self.process_index, self.num_processes = index, count


@pytest.mark.parametrize("procs", [2, 4])
def test_every_pending_record_is_run_by_exactly_one_process(tmp_path, procs):
    cfg = S.parse_config({"model": "tiny", **CONFIG, "tasks": ["arc_easy", "winogrande", "gsm8k"]})
    model, tok = tiny_lm("llama"), byte_tokenizer()
    data = S.load_tasks(cfg.tasks, make_data_dir(tmp_path / "data"), cfg.limit)
    todo, found = S._pending(ResultsStore(tmp_path / "r"), "fp", S.expand(cfg, 8), data, "float32")
    evaluator = S.Evaluator(model, tok, 2)
    keys = [json.dumps(k, sort_keys=True) for pending in todo.values() for _, k in pending]
    dealt = [json.dumps(k, sort_keys=True) for r in range(procs)
             for pending in S._my_share(todo, data, evaluator, _Rank(r, procs)).values() for _, k in pending]
    assert not found and sorted(dealt) == sorted(keys) and len(set(dealt)) == len(dealt)


# ---- real processes --------------------------------------------------------------------------------
def _records(root: Path) -> dict[str, dict]:
    """Every record by key, without what legitimately differs between runs: time, writer, and the
    versions (others may commit to this checkout while the test runs, changing the git field)."""
    drop = {"timing", "created", "process", "versions"}
    return {r["key_hash"]: {k: v for k, v in r.items() if k not in drop} for r in ResultsStore(root).records("decoder")}


def _launch(launcher: list[str], args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_DATASETS_OFFLINE="1",
               WANDB_MODE="offline", WANDB_SILENT="true",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([*launcher, "-m", "painters.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)


ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--num_processes"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]


def test_sweep_on_2_and_4_processes_writes_exactly_the_single_process_records(tmp_path, capsys):
    folder = tmp_path / "tiny-llama"
    tiny_lm("llama").save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    data = make_data_dir(tmp_path / "data")
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({"model": str(folder), **CONFIG}))

    def args(results):
        return ["decoder", "run", str(config), "--data-dir", str(data), "--results", str(results), "--quiet"]

    assert main(args(tmp_path / "one")) == 0
    one = _records(tmp_path / "one")
    n_plans = len(S.expand(S.parse_config({"model": "m", **CONFIG}), 8))
    assert len(one) == 2 * n_plans and f"{n_plans} plans x 2 tasks: {2 * n_plans} records written" in capsys.readouterr().out

    for launcher, procs in ((ACCELERATE, 2), (TORCHRUN, 4)):
        results = tmp_path / f"procs{procs}"
        done = _launch(launcher + [str(procs)], args(results))
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("records written") == 1, "the main process alone prints the summary"
        assert f"{2 * n_plans} records written, 0 found" in done.stdout
        many = _records(results)
        assert set(many) == set(one), f"{procs} processes: other record keys"
        differ = [(k, f, one[k].get(f), many[k].get(f)) for k in one for f in set(one[k]) | set(many[k])
                  if one[k].get(f) != many[k].get(f)]
        assert not differ, f"{procs} processes: {differ[:3]}"
        writers = [r["process"] for r in ResultsStore(results).records("decoder")]
        assert set(writers) == set(range(procs)), "every process took a share"
        assert not [p for p in results.rglob("*") if p.name.endswith(".tmp")], "no temporary files left"

    assert main(args(tmp_path / "procs4")) == 0  # the store is whole: a plain re-run finds every record
    assert f"0 records written, {2 * n_plans} found" in capsys.readouterr().out


def test_glue_sweep_on_2_processes_writes_each_record_and_wandb_run_once(tmp_path, tiny_dir, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data = toy_rte(tmp_path / "data")
    (data / "mrpc").mkdir()
    for split in ("train", "validation"):  # a second task, so that both processes probe one
        (data / "mrpc" / f"{split}.jsonl").write_text((data / "rte" / f"{split}.jsonl").read_text())
    cfg = write_config(tmp_path / "sweep.yaml", model=str(tiny_dir), variants=["skip"], tasks=["rte", "mrpc"],
                       seeds=[0], probe={"epochs": 1, "max_length": 32, "batch_size": 8})

    def args(results):
        return ["glue", "run", str(cfg), "--results", str(results), "--data-dir", str(data), "--no-progress", "--wandb"]

    def records(results):
        return {r["key_hash"]: r for r in ResultsStore(results).records("glue")}

    assert main(args(tmp_path / "one")) == 0
    one = records(tmp_path / "one")
    assert len(one) == 2 * 2 * 2  # plans (skip and the baseline full) x tasks x modes, one seed
    capsys.readouterr()
    done = _launch(TORCHRUN + ["2"], args(tmp_path / "two"))
    assert done.returncode == 0, done.stderr[-3000:]
    two = records(tmp_path / "two")
    # probes are dealt out whole: the same records; a fine-tune is data-parallel over both processes
    # (a batch on each per step), a run of its own, keyed with its process count
    probes = {k: (r["metrics"], r["score"]) for k, r in one.items() if r["mode"] == "probe"}
    assert {k: (r["metrics"], r["score"]) for k, r in two.items() if r["mode"] == "probe"} == probes
    tuned = {(r["label"], r["task"]): r for r in one.values() if r["mode"] == "finetune"}
    tuned2 = {(r["label"], r["task"]): r for r in two.values() if r["mode"] == "finetune"}
    assert set(tuned2) == set(tuned) and len(two) == len(one)
    for k, r in tuned2.items():
        assert r["key"]["hparams"]["processes"] == 2 and r["processes"] == 2
        assert r["steps"] * 2 == tuned[k]["steps"] and abs(r["train_loss"] - tuned[k]["train_loss"]) < 0.05
    assert done.stdout.count("— probe (task score") == 1, "the main process alone prints the table"
    assert len(list((tmp_path / "two" / "wandb").rglob("offline-run-*/run-*.wandb"))) == len(one), "one W&B run per record"
    assert not [p for p in (tmp_path / "two").rglob("*") if p.name.endswith(".tmp")]
