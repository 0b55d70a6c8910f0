"""The model cache: damaged entries are noticed and rebuilt, leftovers of killed builds are removed
(never a live builder's), and a GGUF's converted folder that was cut short is converted again."""

import gc
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from glue_painters import cachedir, models
from glue_painters.errors import UserError
from glue_painters.models import gguf

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINTERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cachedir, "_CLEANED", set(), raising=False)
    return tmp_path / "cache"


def _writer(calls):
    def build(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "weights.bin").write_bytes(b"x" * 1000)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "config.json").write_text("{}")
    return build


def _cut(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


# ---- completion marker ---------------------------------------------------------------------------
def test_entry_is_built_once_with_a_marker_listing_sizes(cache):
    calls = []
    target = cache / "assembled" / "thing-1"
    assert cachedir.build_dir(target, _writer(calls)) == target
    assert cachedir.build_dir(target, _writer(calls)) == target and len(calls) == 1
    listed = json.loads((target / cachedir.MARKER).read_text())["files"]
    assert listed == {"weights.bin": 1000, "sub/config.json": 2}
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")], "no temporary folder left"


def test_truncated_entry_is_named_and_rebuilt(cache, caplog):
    calls = []
    target = cache / "assembled" / "thing-1"
    cachedir.build_dir(target, _writer(calls))
    _cut(target / "weights.bin", 10)
    with caplog.at_level(logging.WARNING):
        cachedir.build_dir(target, _writer(calls))
    assert len(calls) == 2 and (target / "weights.bin").stat().st_size == 1000
    assert f"cache folder {target} is damaged (weights.bin has 10 bytes, 1000 were written)" in caplog.text
    (target / "sub" / "config.json").unlink()
    cachedir.build_dir(target, _writer(calls))
    assert len(calls) == 3 and (target / "sub" / "config.json").is_file()


def test_unmarked_entries_of_older_versions_are_judged_by_check(cache):
    target = cache / "assembled" / "old"
    target.mkdir(parents=True)
    (target / "weights.bin").write_bytes(b"ok")
    calls = []
    assert cachedir.build_dir(target, _writer(calls)) == target and not calls, "trusted, as before"
    cachedir.build_dir(target, _writer(calls), check=lambda folder: "too short")
    assert len(calls) == 1 and (target / cachedir.MARKER).is_file()


def test_a_damaged_entry_that_cannot_be_moved_names_the_folder_to_delete(cache, monkeypatch):
    target = cache / "assembled" / "thing-1"
    cachedir.build_dir(target, _writer([]))
    _cut(target / "weights.bin", 0)
    real = os.rename
    monkeypatch.setattr(os, "rename", lambda a, b: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
                        if Path(a) == target else real(a, b))
    with pytest.raises(UserError, match=rf"cache folder {target} is damaged .*: delete it and run again"):
        cachedir.build_dir(target, _writer([]))


def test_entries_get_the_mode_the_umask_gives(cache):
    def private(tmp):
        _writer([])(tmp)
        os.chmod(tmp / "weights.bin", 0o600)  # as safetensors writes its files

    old = os.umask(0o022)
    try:
        target = cachedir.build_dir(cache / "assembled" / "m", private)
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o755  # mkdtemp made it 0700
    assert (target / "weights.bin").stat().st_mode & 0o777 == 0o644


# ---- leftovers of killed builds ------------------------------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _leftover(folder: Path, name: str, age_hours: float = 0) -> Path:
    path = folder / name
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"half")
    if age_hours:
        then = time.time() - age_hours * 3600
        for p in (path / "model.safetensors", path):
            os.utime(p, (then, then))
    return path


def test_stale_build_folders_go_live_ones_stay(cache):
    host, conv = cachedir._HOST, cache / "converted"
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
        try:
            dead = _leftover(conv, f".smollm2-ab.build.{_dead_pid()}.{host}.0a1b2c3d")
            alive = _leftover(conv, f".smollm2-ab.build.{live.pid}.{host}.0a1b2c3d")
            mine = _leftover(conv, f".smollm2-ab.build.{os.getpid()}.{host}.0a1b2c3d")
            other_host = _leftover(conv, f".smollm2-ab.build.{_dead_pid()}.elsewhere.0a1b2c3d")
            other_host_old = _leftover(conv, ".smollm2-cd.build.1.elsewhere.0a1b2c3d", age_hours=30)
            old_version = _leftover(cache / "assembled", ".mpnet-12.k2j4_x8q", age_hours=30)
            old_version_fresh = _leftover(cache / "assembled", ".mpnet-34.k2j4_x8q")
            (cache / "fingerprints").mkdir()
            tmp_file = cache / "fingerprints" / f".abc.json.{_dead_pid()}.x1y2.tmp"
            tmp_file.write_text("{")
            assert cachedir.clean_stale() == 4
        finally:
            live.kill()
    assert not dead.exists() and not other_host_old.exists() and not old_version.exists()
    assert not tmp_file.exists()
    assert alive.exists() and mine.exists() and other_host.exists() and old_version_fresh.exists()


def test_the_first_model_resolve_of_a_run_cleans(cache, tmp_path):
    leftover = _leftover(cache / "converted", f".smollm2-ab.build.{_dead_pid()}.{cachedir._HOST}.0a1b2c3d")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    models.resolve_model(str(tmp_path / "m"))
    assert not leftover.exists()


_KILLED_BUILDER = """
import sys, time
from pathlib import Path
from glue_painters import cachedir
def build(tmp):
    (tmp / "model.safetensors").write_bytes(b"half")
    print("building", flush=True)
    time.sleep(60)
cachedir.build_dir(Path(sys.argv[1]), build)
"""


def test_a_kill_9_leftover_is_removed_on_the_next_start(cache):
    target = cache / "converted" / "smollm2-0123"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with subprocess.Popen([sys.executable, "-c", _KILLED_BUILDER, str(target)], env=env,
                          stdout=subprocess.PIPE, text=True) as builder:
        assert builder.stdout.readline().strip() == "building"
        leftovers = list(target.parent.glob(".*"))
        assert len(leftovers) == 1
        cachedir.build_dir(cache / "converted" / "other", _writer([]))
        assert leftovers[0].exists(), "a live builder's folder is never removed"
        builder.kill()
        builder.wait()
    cachedir._CLEANED.clear()  # a new process
    cachedir.build_dir(cache / "converted" / "other", _writer([]))
    assert not leftovers[0].exists() and not target.exists()


# ---- a GGUF's converted folder -------------------------------------------------------------------
def _tiny_convert(calls):
    """Stands in for the minute-long dequantization: writes what it writes, for a tiny Llama."""
    from tokenizers import Tokenizer, models as tok_models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    def convert(src, out):
        calls.append(out)
        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
        LlamaForCausalLM(config).save_pretrained(out)
        vocab = {w: i for i, w in enumerate(["<unk>", "<eos>", "a", "b", "c"])}
        tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(tok_models.WordLevel(vocab, unk_token="<unk>")),
                                      unk_token="<unk>", eos_token="<eos>")
        tok.save_pretrained(out)
        (out / "painters_source.json").write_text(json.dumps({"gguf": str(src.gguf_path)}))
    return convert


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(gguf, "_convert_gguf", _tiny_convert(calls))
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF fake, never parsed: the conversion is stubbed")
    return path, calls


def test_truncated_converted_model_is_converted_again_on_load(fake_gguf, caplog):
    path, calls = fake_gguf
    model, _ = models.load_model(str(path))
    folder = gguf.converted_dir(models.source_of(model))
    expected = [t.clone() for t in model.state_dict().values()]
    del model  # its tensors may map the file: cutting a mapped file under them would crash this test
    gc.collect()
    weights = folder / "model.safetensors"
    _cut(weights, weights.stat().st_size // 2)
    with caplog.at_level(logging.WARNING):
        again, _ = models.load_model(str(path))
    assert len(calls) == 2 and f"cache folder {folder} is damaged (model.safetensors has" in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(expected, again.state_dict().values()))


def test_converted_folders_of_older_versions_are_checked_by_their_headers(fake_gguf):
    path, calls = fake_gguf
    src = models.resolve_model(str(path))
    folder = gguf.converted_folder(src)
    (folder / cachedir.MARKER).unlink()  # as an older version left it
    assert gguf.converted_ready(src) and gguf.converted_folder(src) == folder and len(calls) == 1
    weights = folder / "model.safetensors"
    _cut(weights, weights.stat().st_size - 1)
    assert "its header says" in gguf._unmarked_problem(folder) and not gguf.converted_ready(src)
    gguf.converted_folder(src)
    assert len(calls) == 2 and gguf.converted_ready(src)
    (folder / "painters_source.json").unlink()
    (folder / cachedir.MARKER).unlink()
    assert gguf._unmarked_problem(folder) == "painters_source.json is missing"
