"""benchmarks/latency.py runs end to end on a tiny model and writes the fields the report reads."""

import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "latency.py"


@pytest.fixture(scope="module")
def latency():
    spec = importlib.util.spec_from_file_location("latency_bench", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_writes_json_and_markdown(latency, tmp_path):
    result = latency.main(["--model", "tiny-llama", "--device", "cpu", "--n", "2", "--batch", "1", "--length", "8",
                           "--decode-batch", "1", "--decode-context", "8", "--decode-tokens", "2",
                           "--warmup", "0", "--repeats", "1", "--out", str(tmp_path)])
    js = tmp_path / "latency_tiny-llama_cpu.json"
    md = tmp_path / "latency_tiny-llama_cpu.md"
    assert js.exists() and md.exists()
    data = json.loads(js.read_text())
    assert data == json.loads(json.dumps(result, default=str))
    assert data["command"].startswith("python benchmarks/latency.py --model tiny-llama")
    assert data["num_layers"] == 8 and data["decoder"] is True and data["device"] == "cpu"
    assert len(data["loadavg"]) == 2 and data["threads"] >= 1 and data["bandwidth_tbs"] is None
    specs = [(r["spec"], r["parallel"]) for r in data["rows"]]
    assert specs == [("full", "loop"), ("skip:n=2", "loop"), ("parallel:n=2", "loop"), ("parallel:n=2", "batched"),
                     ("looped_parallel:n=2,k=3", "loop"), ("looped_parallel:n=2,k=3", "batched")]
    for row in data["rows"]:
        (p,) = row["prefill"]
        assert p["batch"] == 1 and p["length"] == 8 and p["ms"] > 0 and p["tokens_per_s"] > 0
        (d,) = row["decode"]
        assert d["batch"] == 1 and d["ms_per_token"] > 0 and row["decode_ms_per_token"] == d["ms_per_token"]
        assert "rss_growth_bytes" in d
    assert data["rows"][0]["plan"] == "0-7" and data["rows"][1]["executions"] == 5
    text = md.read_text()
    assert "## Prefill" in text and "## Decode" in text and data["command"] in text


def test_bandwidth_bound_counts_each_execution(latency):
    from glue_painters import variants

    model, _ = latency.build_model("tiny-llama", "cpu", latency.torch.float32, "sdpa")
    full, looped = variants.full(8), variants.looped_parallel(8, 2, 3)
    layer = sum(p.numel() * 4 for p in model.model.layers[0].parameters())
    # looped: 5 kept layers + the 3-member group three times = 14 executions vs 8
    assert latency.step_bytes(model, looped) - latency.step_bytes(model, full) == 6 * layer
