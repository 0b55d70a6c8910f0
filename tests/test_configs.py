"""Every committed sweep config loads and expands to plans for its model's depth, so a config in
the README cannot rot unnoticed (the runs themselves are too slow for the suite)."""

from pathlib import Path

import pytest

from decoder_eval import sweep as decoder_sweep
from glue_eval import config as glue_config, runs as glue_runs

ROOT = Path(__file__).resolve().parent.parent / "configs"
DEPTH = {"smollm2": 30, "minilm": 6, "mpnet": 12, "bert-large-uncased": 24}


@pytest.mark.parametrize("path", sorted((ROOT / "decoder").glob("*.yaml")), ids=lambda p: p.name)
def test_decoder_config_expands(path):
    cfg = decoder_sweep.load_config(path)
    specs = decoder_sweep.expand(cfg, DEPTH[cfg.model])
    assert specs and any(s.variant == "full" for s in specs)


@pytest.mark.parametrize("path", sorted((ROOT / "glue").glob("*.yaml")), ids=lambda p: p.name)
def test_glue_config_expands(path):
    cfg = glue_config.load_config(path)
    specs = glue_runs.expand(cfg, DEPTH[cfg.model])
    assert specs and {s.task for s in specs} == set(cfg.tasks)
