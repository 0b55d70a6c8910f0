"""The embedded models named as they are (issue 24, "What a new user met" 9 and 10): ``smollm2`` is
SmolLM2-135M-*Instruct* dequantized from GGUF *Q4_1*, ``qwen2.5-1.5b`` is Qwen2.5-*Coder*-1.5B-Instruct;
the README, ``painters models``, every record and every report header say so, and no report the
repository ships shows verdicts made without an interval."""

from __future__ import annotations

import re
from pathlib import Path

from glue_painters import models
from painters.cli import main

REPO = Path(__file__).resolve().parents[1]
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1"
QWEN = "Qwen/Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M"


def test_aliases_name_their_exact_weights(capsys):
    assert models.identity("smollm2").startswith(SMOLLM2) and "float32" in models.identity("smollm2")
    assert models.identity("qwen2.5-1.5b").startswith(QWEN)
    assert "Q4_K_M" in models.identity("gemma3-270m")
    assert models.identity("some/hub-model") == "some/hub-model"  # a hub id or path says what it is
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    line = next(x for x in listing.splitlines() if x.startswith("smollm2"))
    assert SMOLLM2 in line and "dequantized to float32" in line
    assert QWEN in next(x for x in listing.splitlines() if x.startswith("qwen2.5-1.5b"))


def test_records_carry_the_identity_without_changing_their_keys(tmp_path):
    from glue_eval.records import make_record
    from glue_eval.runs import RunSpec

    spec = RunSpec.of("minilm", "skip:n=1", "rte", "probe", 0)
    rec = make_record(spec, spec.plan(6), "minilm", {}, {"metrics": {}, "score": 1.0}, {})
    assert rec["model_identity"].startswith("sentence-transformers/all-MiniLM-L6-v2")


def test_decoder_records_carry_the_identity(tmp_path):
    from decoder_eval import sweep as S
    from test_decoder_fixtures import byte_tokenizer, make_data_dir, tiny_lm

    cfg = S.parse_config({"model": "smollm2", "variants": ["full"], "tasks": ["arc_easy"], "limit": 2})
    out = S.run_sweep(cfg, results_dir=tmp_path / "r", data_dir=make_data_dir(tmp_path / "d"), model=tiny_lm("llama"),
                      tokenizer=byte_tokenizer(), progress=False)
    (rec,) = out.records
    assert rec["model_identity"].startswith(SMOLLM2) and "model_identity" not in rec["key"]


def test_report_header_names_the_weights(tmp_path):
    from test_report_fixtures import write_glue_store
    from painters.report import build_report

    write_glue_store(tmp_path / "r", model="minilm", modes=("probe",), seeds=(0,), variants=("skip",), tasks=("rte",))
    out = build_report(tmp_path / "r", tmp_path / "out", similarity_dir=tmp_path)
    md, html = out.markdown_path.read_text(), out.html_path.read_text()
    assert "**Models**: minilm = sentence-transformers/all-MiniLM-L6-v2, float32 safetensors" in md
    assert "<b>Models</b>: minilm = sentence-transformers/all-MiniLM-L6-v2" in html
    assert "- weights: sentence-transformers/all-MiniLM-L6-v2" in md  # and under each table


def test_the_readme_names_the_weights_as_they_are():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "SmolLM2-135M-**Instruct**, GGUF **Q4_1**" in readme and "Qwen2.5-**Coder**-1.5B-Instruct" in readme
    assert not re.search(r"SmolLM2-135M[ ,;)]", readme), "SmolLM2-135M without -Instruct names another model"


def test_no_shipped_report_shows_verdicts_without_an_interval():
    """reports/report.md showed 19 verdicts decided by majority rules without an interval; every
    report.md the repository ships has the findings table with intervals (or is gone)."""
    shipped = list((REPO / "reports").rglob("report.md"))
    assert shipped, "the replication report is shipped"
    for path in shipped:
        text = path.read_text(encoding="utf-8")
        header = next(line for line in text.splitlines() if line.startswith("| claim |"))
        assert "effect [interval]" in header, path
