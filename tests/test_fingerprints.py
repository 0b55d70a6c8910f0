"""Content hashes used in results keys, pinned: a refactor that changes any of these values would
orphan every record written before, so each value below was computed by the code that wrote those
records (models.py's file_sha256/folder_fingerprint, glue/modeling.py::weights_fingerprint,
decoder_eval/sweep.py::model_fingerprint's fallback, the data-file hashes of both tracks)."""

import pytest
import torch

from glue_painters import fingerprints as fp

FILE_SHA256 = "b9eda17f426d7e98179e4df93815c3a99b19474b308e998c67afa44d136b1f9a"
FOLDER = "sha256:6585995dc14de26220e794b2cd5dba6bb1d8e167721ebdb4fdd1149357d0b6c8"
GLUE_TENSORS = "59db772993d45088"
DECODER_WEIGHTS = "weights:8c0c810d5540bb69"


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINTERS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"glue-painters\n" * 1000)
    return path


class _Config:
    num_hidden_layers = 2

    def to_dict(self):
        return {"model_type": "tiny", "num_hidden_layers": 2}

    def to_json_string(self, use_diff=True):
        return '{"model_type": "tiny", "num_hidden_layers": 2}'


class _Tiny(torch.nn.Module):
    """Fixed weights (no random init: torch's initialisers may change between releases), with a
    float16 and a bool buffer so dtype handling is pinned too; rewirable (a layer list)."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(4, 2)
        self.layers = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(2)])
        self.register_buffer("scale", torch.arange(4, dtype=torch.float16) / 3)
        self.register_buffer("mask", torch.tensor([True, False, True]))
        with torch.no_grad():
            for i, p in enumerate(self.parameters()):
                p.copy_(torch.arange(p.numel(), dtype=p.dtype).reshape(p.shape) / (i + 2))
        self.config = _Config()


def test_file_hashes_are_pinned(data_file, tmp_cache):
    assert fp.sha256_file(data_file) == FILE_SHA256
    assert fp.file_sha16(data_file) == FILE_SHA256[:16]
    assert fp.file_sha256(data_file) == FILE_SHA256
    assert list((tmp_cache / "fingerprints").glob("*.json")), "the full hash is remembered"
    assert fp.file_sha256(data_file) == FILE_SHA256  # read back from the cache record


def test_cached_hash_follows_a_changed_file(data_file):
    first = fp.file_sha256(data_file)
    data_file.write_bytes(b"other bytes, other size")
    assert fp.file_sha256(data_file) != first == FILE_SHA256


def test_folder_fingerprint_is_pinned_and_ignores_docs_and_subfolders(tmp_path):
    folder = tmp_path / "m"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"a")
    (folder / "README.md").write_text("x")
    assert fp.folder_fingerprint(folder) == FOLDER
    (folder / "README.md").write_text("docs do not count")
    (folder / "sub" / "extra.bin").write_bytes(b"nor do subfolders")
    assert fp.folder_fingerprint(folder) == FOLDER


def test_in_memory_fingerprints_are_pinned():
    assert fp.tensors_fingerprint(_Tiny()) == GLUE_TENSORS
    assert fp.config_weights_fingerprint(_Tiny()) == DECODER_WEIGHTS


def test_in_memory_fingerprints_follow_the_weights():
    changed = _Tiny()
    with torch.no_grad():
        changed.layers[1].bias[0] += 1
    assert fp.tensors_fingerprint(changed) != GLUE_TENSORS
    assert fp.config_weights_fingerprint(changed) != DECODER_WEIGHTS
    retyped = _Tiny()
    retyped.mask = retyped.mask.to(torch.uint8)  # same bytes, another dtype: another model for GLUE
    assert fp.tensors_fingerprint(retyped) != GLUE_TENSORS


def test_decoder_key_of_an_in_memory_model_is_the_pinned_value():
    """decoder_eval's record key uses the shared computation when load_model did not load the model."""
    from decoder_eval.sweep import model_fingerprint

    assert model_fingerprint(_Tiny()) == DECODER_WEIGHTS


def test_decoder_data_files_key_by_the_short_hash(tmp_path):
    from decoder_eval.data import Split, load_split

    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "test.jsonl").write_bytes(b'{"q": 1}\n')
    docs = load_split(Split("task/test.jsonl", "x", None, "test"), tmp_path)
    assert docs.fingerprint == "727c16eb1b22614d"  # sha256 of the file, first 16 hex
