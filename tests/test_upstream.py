"""The tested window of upstream releases (glue_painters.upstream): read from pyproject.toml's
dependency list, and one line on stderr from `painters --version` and every sweep when the installed
transformers is newer than the newest release the suite passed on (and not otherwise)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from glue_painters import __version__, upstream
from glue_painters.upstream import Window, parse_window, untested_warning

windows = upstream.tested_windows  # not collected as a test, and not the monkeypatched one

ROOT = Path(__file__).resolve().parent.parent
REQS = ["torch>=2.13.0", "transformers>=5.5.4,<=5.25.0", "accelerate>=1.15.0", "datasets>=3.0", "peft>=0.21.2",
        "pyyaml", 'pytest>=7; extra == "test"', 'lm_eval>=0.4.13; extra == "test"']
INSIDE = {"transformers": "5.25.0", "torch": "2.14.1+cu130", "peft": "0.22.0", "accelerate": "1.16.0",
          "lm_eval": "0.4.13"}


def _versions(**changed):
    table = {**INSIDE, **{k: v for k, v in changed.items()}}
    return lambda name: table.get(name)


# ---- bounds ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, oldest, newest, below", [
    ("transformers>=5.5.4,<=5.25.0", "5.5.4", "5.25.0", None),
    ("transformers<=5.25.0,>=5.5.4", "5.5.4", "5.25.0", None),  # as importlib.metadata spells it
    ("torch>=2.13.0", "2.13.0", None, None),
    ('lm_eval>=0.4.13; extra == "test"', "0.4.13", None, None),
    ("peft==0.21.2", "0.21.2", "0.21.2", None),
    ("accelerate>=1.15,<2", "1.15", None, "2"),
    ("transformers~=5.5", "5.5", None, None),
])
def test_bounds_are_parsed_from_a_requirement(text, oldest, newest, below):
    w = parse_window(text)
    assert (w.oldest, w.newest, w.below) == (oldest, newest, below)


def test_a_requirement_without_a_version_has_no_window():
    assert parse_window("pyyaml") is None and parse_window('pytest; extra == "test"') is None


def test_windows_of_the_upstream_packages_only():
    w = windows(REQS)
    assert set(w) == {"transformers", "torch", "peft", "accelerate", "lm_eval"}  # not datasets, pyyaml, pytest
    assert (w["transformers"].oldest, w["transformers"].newest) == ("5.5.4", "5.25.0")
    assert w["lm_eval"].oldest == "0.4.13" and w["torch"].newest is None


def test_pyproject_is_the_source_and_caps_only_transformers():
    """The window read at run time is pyproject.toml's dependency list: lower bounds on the five
    upstream packages, an upper bound on transformers alone (no exact pins)."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    assert windows() == windows(listed)
    w = windows()
    assert set(w) == set(upstream.UPSTREAM)
    assert all(x.oldest is not None for x in w.values())
    assert [n for n, x in w.items() if x.newest is not None or x.below is not None] == ["transformers"]


def test_pyproject_is_read_without_tomllib_too(monkeypatch):
    """Python 3.10 has no tomllib (and tomli may be missing): the same list, read by hand."""
    want = upstream.requirements()
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    assert upstream.requirements() == want and "lm_eval>=0.4.13" in want


def test_the_installed_metadata_is_read_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(upstream.metadata, "requires", lambda dist: REQS if dist == "glue-painters" else None)
    assert upstream.requirements(tmp_path / "pyproject.toml") == REQS  # no pyproject.toml there
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "another"\ndependencies = ["transformers<5"]\n')
    assert upstream.requirements(tmp_path / "pyproject.toml") == REQS  # another project's file is ignored


# ---- the warning ----------------------------------------------------------------------------------
def test_no_warning_inside_the_window():
    w = windows(REQS)
    assert untested_warning(w, _versions()) is None
    assert untested_warning(w, _versions(transformers="5.5.4")) is None  # both ends are inside
    assert untested_warning(w, _versions(torch="2.15.0+cu130", peft="0.30.0")) is None  # no cap on those
    assert untested_warning(w, _versions(lm_eval=None)) is None  # not installed: nothing to say


def test_one_line_when_transformers_is_newer_than_the_newest_tested():
    w = windows(REQS)
    for newer in ("5.26.0", "5.25.1", "6.0.0", "5.26.0.dev0", "5.25.1+local"):
        line = untested_warning(w, _versions(transformers=newer))
        assert line is not None and "\n" not in line
        assert f"transformers {newer} is newer than the newest release its tests passed on (5.25.0)" in line
        assert "bash .ci/run --widen" in line and "refuse" in line
    assert untested_warning(w, _versions(transformers="5.25.0+local")) is None  # a local build of 5.25.0


def test_older_than_the_oldest_tested_is_said_too():
    line = untested_warning(windows(REQS), _versions(transformers="5.4.0", peft="0.20.0"))
    assert "transformers 5.4.0 is older than the oldest release its tests passed on (5.5.4)" in line
    assert "peft 0.20.0 is older" in line and "\n" not in line


def test_version_line_names_the_releases_and_warns_when_transformers_is_newer(monkeypatch):
    monkeypatch.setattr(upstream, "tested_windows", lambda reqs=None: windows(REQS))
    monkeypatch.setattr(upstream, "installed_version", _versions())
    assert upstream.version_line() == (f"glue-painters {__version__} (transformers 5.25.0, torch 2.14.1+cu130, peft 0.22.0, "
                                       "accelerate 1.16.0, lm_eval 0.4.13)")
    monkeypatch.setattr(upstream, "installed_version", _versions(transformers="5.26.0", lm_eval=None))
    first, second = upstream.version_line().split("\n")
    assert "transformers 5.26.0" in first and "lm_eval not installed" in first
    assert second.startswith("glue-painters: transformers 5.26.0 is newer")


@pytest.fixture
def newer_transformers(monkeypatch):
    monkeypatch.setattr(upstream, "tested_windows", lambda reqs=None: windows(REQS))
    monkeypatch.setattr(upstream, "installed_version", _versions(transformers="5.26.0"))


def test_the_decoder_sweep_says_so_once_on_stderr(newer_transformers, tmp_path, capsys):
    from test_decoder_fixtures import byte_tokenizer, make_data_dir, tiny_lm

    from decoder_eval import sweep as S

    cfg = S.parse_config({"model": "tiny", "variants": ["full"], "tasks": ["arc_easy"], "limit": 1})
    S.run_sweep(cfg, results_dir=tmp_path / "r", data_dir=make_data_dir(tmp_path / "d"), model=tiny_lm("llama"),
                tokenizer=byte_tokenizer(), progress=False)
    err = capsys.readouterr().err
    assert err.count("transformers 5.26.0 is newer than the newest release its tests passed on") == 1


def test_the_glue_sweep_says_so_on_stderr_before_it_starts(newer_transformers, monkeypatch, tmp_path, capsys):
    from glue_eval import pipeline

    class Started(Exception):
        pass

    monkeypatch.setattr(pipeline, "read_rows", lambda cfg, data_dir: {})
    monkeypatch.setattr(pipeline, "open_sweep", lambda *a, **k: (_ for _ in ()).throw(Started()))
    with pytest.raises(Started):
        pipeline.run_sweep(object(), results_dir=tmp_path, wandb_on=False, progress=False)
    assert "transformers 5.26.0 is newer" in capsys.readouterr().err
    with pytest.raises(Started):  # a dry run (summaries) runs nothing: nothing to say
        pipeline.run_sweep(object(), results_dir=tmp_path, wandb_on=False, progress=False, dry=True)
    assert capsys.readouterr().err == ""


def test_no_line_from_a_sweep_inside_the_window(monkeypatch, tmp_path, capsys):
    from glue_eval import pipeline

    monkeypatch.setattr(upstream, "tested_windows", lambda reqs=None: windows(REQS))
    monkeypatch.setattr(upstream, "installed_version", _versions())
    monkeypatch.setattr(pipeline, "read_rows", lambda cfg, data_dir: {})
    monkeypatch.setattr(pipeline, "open_sweep", lambda *a, **k: (_ for _ in ()).throw(KeyError("stop")))
    with pytest.raises(KeyError):
        pipeline.run_sweep(object(), results_dir=tmp_path, wandb_on=False, progress=False)
    assert capsys.readouterr().err == ""


def test_window_positions():
    w = Window("x", ">=1.0,<2", "1.0", None, "2")
    assert [w.position(v) for v in ("0.9", "1.0", "1.9.9", "2.0", "2.0rc1")] == ["older", None, None, "newer", None]


def test_painters_version_says_when_transformers_is_newer_than_tested(newer_transformers, capsys):
    """``painters --version`` is the line a bug report needs: the releases, and the untested one."""
    from painters.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    out = capsys.readouterr().out.splitlines()
    assert e.value.code == 0 and out[0].startswith("glue-painters ") and "transformers 5.26.0" in out[0]
    assert len(out) == 2 and "5.26.0" in out[1] and "5.25.0" in out[1]
