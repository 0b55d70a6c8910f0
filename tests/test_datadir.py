"""The one data-folder resolver: explicit folder > $PAINTERS_DATA > ../shared/data, and a track's
sub-folder found the way the GLUE track always found ``glue/``."""

from pathlib import Path

import pytest

from glue_painters import datadir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(datadir.DATA_ENV, raising=False)


def test_data_root_order(tmp_path, monkeypatch, no_env):
    assert datadir.data_root() == REPO.parent / "shared" / "data"
    monkeypatch.setenv(datadir.DATA_ENV, str(tmp_path / "env"))
    assert datadir.data_root() == tmp_path / "env"
    assert datadir.data_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert datadir.data_root("~/x") == tmp_path / "x"


def _layout(root: Path, *folders: str) -> Path:
    for f in folders:
        (root / f).mkdir(parents=True)
    return root


def test_track_dir_under_an_explicit_folder(tmp_path, no_env):
    both = _layout(tmp_path / "both", "glue", "arc_easy")
    assert datadir.track_dir("glue", both, marker="cola") == both / "glue"
    itself = _layout(tmp_path / "itself", "cola", "glue")  # already the GLUE folder: stay
    assert datadir.track_dir("glue", itself, marker="cola") == itself
    assert datadir.track_dir("glue", itself) == itself / "glue"  # no marker: the sub-folder wins
    flat = _layout(tmp_path / "flat", "rte")
    assert datadir.track_dir("glue", flat, marker="cola") == flat


def test_track_dir_under_the_environment_and_the_checkout(tmp_path, monkeypatch, no_env):
    assert datadir.track_dir("glue") == (REPO.parent / "shared" / "data" / "glue").resolve()
    monkeypatch.setenv(datadir.DATA_ENV, str(tmp_path))
    assert datadir.track_dir("glue") == tmp_path  # no glue/ there: the folder itself
    _layout(tmp_path, "glue", "cola")
    assert datadir.track_dir("glue", marker="cola") == tmp_path / "glue"  # the marker is for explicit folders


def test_decoder_track_and_core_use_the_shared_root(tmp_path, monkeypatch):
    from decoder_eval.data import HUB, default_data_dir, resolve_data_dir
    from glue_painters.scores import _data_dir

    monkeypatch.setenv(datadir.DATA_ENV, str(tmp_path))
    assert default_data_dir() == resolve_data_dir(None) == _data_dir() == tmp_path
    assert resolve_data_dir(tmp_path / "x") == _data_dir(tmp_path / "x") == tmp_path / "x"
    assert resolve_data_dir("hub") == HUB
