"""W&B runs (``glue_painters.tracking``): W&B's environment respected, one run per record."""

import os
import time
from pathlib import Path

import pytest

from glue_painters.plans import Plan
from glue_painters.tracking import Tracker, remove_orphans, run_config, run_group
from glue_painters.variants import VariantSpec


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_GROUP", "WANDB_DIR", "WANDB_TAGS", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_wandb_environment_wins_over_our_defaults_but_not_over_the_users_config(clean_env, tmp_path):
    t = Tracker(True, tmp_path)
    kw = t._init_kwargs("abc", name="n", group="g", job_type="eval", config={})
    assert kw["project"] == "glue-painters" and kw["group"] == "g" and kw["dir"] == str(tmp_path)
    clean_env.setenv("WANDB_PROJECT", "theirs")
    clean_env.setenv("WANDB_RUN_GROUP", "their-group")
    clean_env.setenv("WANDB_DIR", str(tmp_path / "wdir"))
    t = Tracker(True, tmp_path)
    kw = t._init_kwargs("abc", name="n", group="g", job_type="eval", config={})
    assert "project" not in kw and kw["group"] == "their-group" and kw["dir"] == str(tmp_path / "wdir")
    t = Tracker(True, tmp_path, settings={"project": "cfg", "group": "cfg-group"})
    kw = t._init_kwargs("abc", name="n", group="g", job_type="eval", config={})
    assert kw["project"] == "cfg" and kw["group"] == "cfg-group"


def test_same_config_fields_for_every_run():
    spec = VariantSpec.parse("looped_parallel:n=2,k=3")
    plan = spec.plan(8)
    cfg = run_config(track="glue", model="minilm", spec=spec, plan=plan, task="rte", mode="probe", seed=1)
    assert cfg == {"track": "glue", "model": "minilm", "variant": "looped_parallel", "spec": "looped_parallel:n=2,k=3",
                   "N": 2, "k": 3, "i": None, "seed": 1, "task": "rte", "mode": "probe", "plan": plan.text,
                   "executions": plan.executions}
    assert run_group("/x/minilm", "rte", "probe", spec) == "minilm/rte/probe/looped_parallel:n=2,k=3"


def test_one_offline_run_per_record_and_the_sync_line(clean_env, tmp_path, capsys):
    from glue_painters import tracking

    # W&B's service may touch a finished run's files for a moment; the age rule itself is tested below
    clean_env.setattr(tracking, "ORPHAN_MINUTES", -1.0)
    t = Tracker(True, tmp_path)
    rec = {"metrics": {"acc": 0.5, "note": "x"}, "stderr": {"acc": 0.1}}
    t.log_record("k1", rec, name="a", group="g", job_type="eval", config={"spec": "full"})
    runs = list((tmp_path / "wandb").glob("offline-run-*-k1"))
    assert len(runs) == 1
    time.sleep(1.1)  # offline folder names carry the second they were made
    t.log_record("k1", rec, name="a", group="g", job_type="eval", config={"spec": "full"})
    assert len(list((tmp_path / "wandb").glob("offline-run-*-k1"))) == 1  # the old attempt was replaced
    line = t.finish()
    assert line == f"W&B: 1 offline runs in {tmp_path / 'wandb'}; upload with: wandb sync {tmp_path / 'wandb'}/offline-run-*"


def test_a_live_attempt_is_kept_a_stale_one_removed(tmp_path):
    live = tmp_path / "wandb" / "offline-run-20260101_000000-k2"
    live.mkdir(parents=True)
    (live / "run-k2.wandb").write_text("x")
    assert remove_orphans(tmp_path, "k2") == 0 and live.exists()
    stale = time.time() - 3600
    for p in [live, *live.rglob("*")]:
        os.utime(p, (stale, stale))
    assert remove_orphans(tmp_path, "k2") == 1 and not live.exists()


def test_disabled_tracker_does_nothing(tmp_path):
    t = Tracker(False, tmp_path)
    assert t.start("k", name="a", group="g", job_type="eval", config={}) is None and t.finish() is None
    assert not (tmp_path / "wandb").exists()


def test_a_decoder_sweep_logs_one_run_per_record_it_writes(clean_env, tmp_path):
    from decoder_eval import sweep as S
    from test_decoder_fixtures import byte_tokenizer, make_data_dir, tiny_lm

    data = make_data_dir(tmp_path / "data")
    cfg = S.parse_config({"model": "tiny", "variants": ["full", "random"], "n": [1], "permutation_seeds": [0, 1],
                          "tasks": ["arc_easy"], "limit": 2, "wandb": {"project": "p"}})
    run = dict(data_dir=data, model=tiny_lm("llama"), tokenizer=byte_tokenizer(), progress=False, wandb=True)
    out = S.run_sweep(cfg, results_dir=tmp_path / "r", **run)
    folders = sorted((tmp_path / "r" / "wandb").glob("offline-run-*"))
    assert len(folders) == len(out.records) == 3
    assert {f.name.rsplit("-", 1)[1] for f in folders} == {r["key_hash"] for r in out.records}
    blob = b"".join(p.read_bytes() for f in folders for p in f.glob("run-*.wandb"))
    for field in (b"random:n=1,seed=1", b"tiny/arc_easy/eval/random:n=1"):
        assert field in blob
    assert "wandb sync" in out.wandb
    again = S.run_sweep(cfg, results_dir=tmp_path / "r", **run)
    assert again.written == 0 and again.wandb is None  # nothing new, nothing logged
    assert len(list((tmp_path / "r" / "wandb").glob("offline-run-*"))) == 3
