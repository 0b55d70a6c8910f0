"""The core subcommands: output, and one clear line with exit 2 for bad input."""

import argparse
import json
from pathlib import Path

import pytest

from painters.cli import main


def test_plan_prints_text_hash_and_cost(capsys):
    assert main(["plan", "--layers", "32", "looped_parallel:n=7,k=3"]) == 0
    out = capsys.readouterr().out
    assert "0-7,[8-24]x3,25-31" in out and "executions:  66" in out and "depth:       18" in out


def test_plan_json(capsys):
    assert main(["plan", "--layers", "8", "0-2,[3-5]x2,6,7", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["text"] == "0-2,[3-5]x2,6,7" and data["layers"] == 8 and len(data["hash"]) == 12


def test_plan_variants_table(capsys):
    assert main(["plan", "--layers", "12", "--variants", "--n", "2"]) == 0
    out = capsys.readouterr().out
    for name in ["full", "skip", "middle_repeat", "reverse", "random", "parallel", "looped_parallel"]:
        assert f"  {name} " in out


@pytest.mark.parametrize("argv, message", [
    (["plan", "--layers", "8", "skip:n=9"], "N=9 is out of range"),
    (["plan", "--layers", "8", "0-3,[4-9]"], "uses layer 8"),
    (["plan", "--layers", "8", "0-3,,4"], "empty step"),
    (["plan", "--layers", "8", "skp:n=1"], "unknown variant 'skp'"),
    (["plan", "--layers", "0", "skip:n=1"], "--layers is the model's number of layers, at least 1; got 0"),
    (["plan", "--layers", "-2", "--variants"], "--layers is the model's number of layers, at least 1; got -2"),
    (["similarity", "--model", "minilm", "--text", "/nonexistent/file.txt"], "text file not found"),
    (["export", "--model", "minilm", "--kind", "encoder", "--plan", "[0-5]", "--out", "{tmp}/x"], "parallel group"),
    (["export", "--model", "minilm", "--kind", "encoder", "--plan", "0-3", "--out", "{tmp}/afile/x"], "afile is a file, not a folder"),
    (["export", "--model", "minilm", "--kind", "encoder", "--plan", "0-3", "--out", "{tmp}/afile"], "afile is a file, not a folder"),
    (["similarity", "--model", "minilm", "--out", "{tmp}/afile/sim"], "afile is a file, not a folder"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    (tmp_path / "afile").write_text("not a folder")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("painters ")
    assert not (tmp_path / "x").exists()


@pytest.mark.real
def test_similarity_and_export_on_minilm(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["similarity", "--model", "minilm", "--max-docs", "4", "--max-length", "32", "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["boundaries"] == 7 and len(data["matrix"]) == 7
    assert out.with_suffix(".png").exists()
    assert main(["export", "--model", "minilm", "--kind", "encoder", "--plan", "0,1,4,5", "--out", str(tmp_path / "m"),
                 "--dtype", "bfloat16"]) == 0
    from transformers import AutoModel, AutoTokenizer
    import torch
    reloaded = AutoModel.from_pretrained(tmp_path / "m")
    assert reloaded.config.num_hidden_layers == 4 and reloaded.config.painters_plan == "0,1,4,5"
    assert next(AutoModel.from_pretrained(tmp_path / "m", dtype="auto").parameters()).dtype == torch.bfloat16
    assert AutoTokenizer.from_pretrained(tmp_path / "m")("a layer").input_ids  # the folder is complete


@pytest.mark.real
def test_the_quick_start_writes_nothing_a_checkout_tracks(tmp_path, monkeypatch, capsys):
    """The README's first command once rewrote reports/similarity_smollm2.json, a tracked file, and
    ``painters report`` defaulted to --out reports (the shipped reports). Run from a folder laid out
    as a checkout (cwd), the defaults land under results/reports, which git ignores and where the
    repository tracks nothing: ``git status`` of a fresh clone stays clean."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    for var in ("PAINTERS_RESULTS", "PAINTERS_REPORTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--model", "minilm", "--variants"]) == 0
    assert main(["similarity", "--model", "minilm", "--max-docs", "2", "--max-length", "16"]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["results/reports/similarity_minilm.json", "results/reports/similarity_minilm.png"]
    from painters.report import cli as report_cli
    from glue_painters.outputs import reports_dir

    parser = argparse.ArgumentParser()
    report_cli.add_subparsers(parser.add_subparsers())
    assert parser.parse_args(["report"]).out is None and reports_dir() == Path("results/reports")
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    for path in written + ["results/reports/report.md", "results/reports/report_figures/fig.png"]:
        assert subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", path]).returncode == 0, path
    tracked = subprocess.run(["git", "-C", str(repo), "ls-files", "results"], capture_output=True, text=True)
    assert tracked.stdout == ""


def test_version_names_the_upstream_releases(capsys):
    import transformers

    from painters.cli import main as cli_main

    with pytest.raises(SystemExit) as e:
        cli_main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("glue-painters 0.1.0 (") and f"transformers {transformers.__version__}" in out


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    import os
    import stat

    from glue_painters.results import atomic_write_text

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == mode


def test_output_checks_name_an_unwritable_folder(tmp_path, monkeypatch):
    """As root every folder is writable, so the permission answer is stubbed: the check must ask it."""
    from glue_painters import outputs as cli_options
    from glue_painters.errors import UserError

    monkeypatch.setattr(cli_options.os, "access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(UserError, match=f"--results {tmp_path / 'r'}: {tmp_path} is not writable"):
        cli_options.output_folder(tmp_path / "r", "--results")
    with pytest.raises(UserError, match="is not writable"):
        cli_options.output_file(tmp_path / "sub" / "report.md", "--report")
    monkeypatch.setattr(cli_options.os, "access", lambda path, mode: True)
    assert cli_options.output_folder(tmp_path / "r" / "deeper", "--results", empty=True) == tmp_path / "r" / "deeper"


def test_an_existing_output_file_is_overwritten_not_refused(tmp_path):
    """A second run of the README's first job rewrites the similarity JSON the first one wrote."""
    from glue_painters import outputs as cli_options

    existing = tmp_path / "similarity_x.json"
    existing.write_text("{}")
    assert cli_options.output_file(existing, "--out") == existing
    (tmp_path / "store").mkdir()
    assert cli_options.output_folder(tmp_path / "store", "--results") == tmp_path / "store"


@pytest.mark.parametrize("track", ["decoder", "glue"])
def test_both_tracks_take_both_spellings_of_no_progress(track, capsys):
    """``--quiet`` and ``--no-progress`` mean the same in both tracks (users switch between them)."""
    from painters.cli import main as painters

    with pytest.raises(SystemExit) as e:
        painters([track, "run", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--quiet, --no-progress" in text or "--no-progress, --quiet" in text
