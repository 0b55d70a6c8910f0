import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/tiny.py
os.environ.setdefault("WANDB_MODE", "offline")

# The upstream-sensitive part of the suite (`pytest -m upstream`): the tests whose verdict a new
# transformers, peft, accelerate or lm-eval release can change, because the code they check meets
# upstream internals (layer calls, KV caches, vmapped layers, LoRA, lm-eval's requests). `bash
# .ci/run --widen` runs them on the newest releases before pyproject.toml's window is widened.
UPSTREAM_FILES = {
    "test_battery.py",  # the exactness battery on a tiny model of every architecture
    "test_rewire.py",
    "test_rewire_batched.py",  # parallel groups as one vmapped call
    "test_mutation_guards.py",  # the slot guard, batched stacks, packing at a window's edge
    "test_speculative.py",  # drafts as views of the same weights, assisted generation
    "test_decoder_engine.py",  # prefix sharing and packing against plain forwards
    "test_decoder_heal.py",  # LoRA healing (peft)
    "test_decoder_heal_adapter.py",
    "test_decoder_lm_eval.py",  # against stock lm-evaluation-harness
    "test_decoder_lm_eval_tasks.py",
    "test_real_models.py",  # SmolLM2 and MiniLM, real weights
    "test_models.py",  # loading, GGUF conversion (transformers 5.5.4 converted SmolLM2's tokenizer wrongly)
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).name in UPSTREAM_FILES:
            item.add_marker(pytest.mark.upstream)
