"""One dialect: the flags every command shares come from one table (``painters.options``), so a
flag has one spelling and one meaning in both tracks and the one-run commands."""

from __future__ import annotations

import json

import pytest
import yaml

from glue_painters.errors import UserError
from painters.cli import build_parser, main
from test_glue_cli import offline, one_thread, records, tiny_dir, toy_rte, write_config  # noqa: F401 - fixtures


def _args(*argv):
    return build_parser().parse_args(list(argv))


def test_tasks_take_the_same_form_in_both_tracks():
    """``--tasks`` took a space list in the decoder track and one comma string in GLUE."""
    from painters.options import names

    for track, a, b in (("decoder", "arc_easy", "hellaswag"), ("glue", "rte", "mrpc")):
        for form in ([a, b], [f"{a},{b}"], [f"{a},", b]):
            assert names(_args(track, "run", "c.yaml", "--tasks", *form).tasks) == [a, b], (track, form)


def test_wandb_and_quiet_have_one_spelling_and_one_default_everywhere():
    """W&B was opt-in in one track and opt-out in the other; now ``--wandb/--no-wandb`` in every
    command, off unless asked for or the config has a ``wandb:`` section."""
    from painters.commands import finetune as ft
    from painters.options import wandb_on

    parsers = {"decoder": lambda *a: _args("decoder", "run", "c.yaml", *a),
               "glue": lambda *a: _args("glue", "run", "c.yaml", *a),
               "heal": lambda *a: _args("heal", "--plan", "skip:n=1", *a),
               "finetune": lambda *a: ft.build_parser().parse_args(["--task", "rte", "--output-dir", "x", *a])}
    for name, parse in parsers.items():
        assert parse().wandb is None and wandb_on(parse(), None) is False, name
        assert wandb_on(parse(), {"project": "p"}) is True, name
        assert wandb_on(parse("--wandb"), None) is True and wandb_on(parse("--no-wandb"), {"project": "p"}) is False
        if name != "heal":  # healing has no bars of its own to silence
            assert parse("--quiet").quiet and parse("--no-progress").quiet, name


def test_limit_and_seeds_read_alike_and_old_spellings_name_their_replacement(capsys):
    from painters.options import seeds, task_numbers

    assert task_numbers(["20", "gsm8k=2"], "--limit") == task_numbers(["20,gsm8k=2"], "--limit") == {"default": 20, "gsm8k": 2}
    assert seeds(_args("glue", "run", "c.yaml", "--seeds", "1")) == [1]  # the seed 1, not "one seed: 0"
    assert seeds(_args("glue", "run", "c.yaml", "--seed-count", "3")) == [0, 1, 2]
    from painters.commands import finetune as ft

    with pytest.raises(SystemExit) as e:
        ft.build_parser().parse_args(["--task", "rte", "--output-dir", "x", "--limit-eval", "8"])
    assert e.value.code == 2 and "--sample N evaluates a fixed random subset" in capsys.readouterr().err


def test_glue_run_takes_epochs_for_every_mode(tmp_path):
    from painters.commands.glue import _config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": "minilm", "variants": ["full"], "tasks": ["rte"],
                                    "finetune": {"epochs": 3}, "probe": {"epochs": 5}}))
    cfg = _config(_args("glue", "run", str(path), "--epochs", "2"))
    assert cfg.finetune_hp.epochs == 2 and cfg.probe_hp.epochs == 2
    with pytest.raises(UserError, match="--epochs must be positive"):
        _config(_args("glue", "run", str(path), "--epochs", "0"))


def test_quiet_silences_the_tokenizing_bars_too(tmp_path, tiny_dir, capfd):
    """``--quiet`` left datasets' ``Map`` bars (tokenizing) on stderr."""
    data = toy_rte(tmp_path / "data")
    cfg = write_config(tmp_path / "c.yaml", model=str(tiny_dir), variants=["full"], modes=["probe"], seeds=[0],
                       probe={"epochs": 1, "max_length": 32, "batch_size": 8})
    assert main(["glue", "run", str(cfg), "--results", str(tmp_path / "r"), "--data-dir", str(data), "--quiet"]) == 0
    err = capfd.readouterr().err
    assert "Map" not in err and "%|" not in err, err[-2000:]


def test_one_run_finetune_takes_limit_as_the_first_rows(tmp_path, tiny_dir):
    """``--limit`` in the one-run command is the sweep's ``--limit`` (the first N rows), keyed so."""
    from painters.commands import finetune as ft

    data = toy_rte(tmp_path / "data")
    assert ft.main(["--model", str(tiny_dir), "--task", "rte", "--output-dir", str(tmp_path / "run"), "--data-dir",
                    str(data), "--sample-train", "8", "--limit", "5", "--epochs", "1", "--batch-size", "8",
                    "--max-length", "32", "--results", str(tmp_path / "r"), "--quiet"]) == 0
    (rec,) = [json.loads(p.read_text()) for p in records(tmp_path / "r")]
    assert rec["sizes"]["validation"] == 5 and rec["key"]["subset"]["eval_first"] == 5
    assert rec["key"]["subset"]["eval"] is None  # not a random subset


def test_report_tasks_accept_any_task_in_the_store(tmp_path, capsys, monkeypatch):
    """``painters report --tasks`` checked names against the six hand-written decoder tasks, so an
    lm-eval task a store holds could not be picked."""
    import painters.report as report
    from glue_painters.results import ResultsStore

    store = ResultsStore(tmp_path / "r")
    store.put("decoder", {"task": "my_lm_eval_task"}, {"task": "my_lm_eval_task", "model": "m"})
    asked = []
    monkeypatch.setattr(report, "build_report", lambda results, out, **kw: asked.append(kw["tasks"]) or 1 / 0)
    with pytest.raises(ZeroDivisionError):  # got past the check to the report itself
        main(["report", "--results", str(tmp_path / "r"), "--tasks", "my_lm_eval_task", "--out", str(tmp_path / "o")])
    assert asked == [["my_lm_eval_task"]]
    assert main(["report", "--results", str(tmp_path / "r"), "--tasks", "nosuch", "--out", str(tmp_path / "o")]) == 2
    assert "tasks in the store: my_lm_eval_task" in capsys.readouterr().err
