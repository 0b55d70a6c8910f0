"""One sweep skeleton above both tracks (issue 24, item 3): the same names, return types and
baseline rule, from the library (``glue_painters.sweep``, ``.processes``, ``.tracking``)."""

from __future__ import annotations

import inspect

import torch

from decoder_eval import config as decoder_config
from decoder_eval import sweep as decoder_sweep
from glue_eval import pipeline as glue_pipeline
from glue_eval import processes as glue_processes
from glue_eval import runs as glue_runs
from glue_eval import wandb_runs
from glue_eval.config import GlueSweepConfig
from glue_eval.modeling import weights_fingerprint
from glue_painters import processes, sweep, tracking
from glue_painters.fingerprints import tensors_fingerprint


def test_run_sweep_has_one_form_and_one_return_type_in_both_tracks():
    for module in (decoder_sweep, glue_pipeline):
        sig = inspect.signature(module.run_sweep)
        params = list(sig.parameters.values())
        assert params[0].name == "cfg" and all(p.kind is p.KEYWORD_ONLY for p in params[1:]), module.__name__
        assert sig.return_annotation in ("SweepOutcome", sweep.SweepOutcome), module.__name__
        assert "results_dir" in sig.parameters and "data_dir" in sig.parameters and "progress" in sig.parameters
    assert decoder_sweep.SweepOutcome is sweep.SweepOutcome


def test_full_is_in_every_sweep_that_normalizes():
    """A ``--variants skip`` GLUE sweep had no full model to normalize by; the decoder's always had."""
    glue = GlueSweepConfig.from_mapping({"model": "m", "variants": ["skip"], "n": [1], "tasks": ["rte"],
                                         "modes": ["finetune"], "seeds": [0]})
    assert [r.label for r in glue_runs.expand(glue, 6)] == ["full", "skip:n=1"]
    dec = decoder_config.parse_config({"model": "m", "variants": ["skip"], "n": [1], "tasks": ["arc_easy"]})
    assert [r.spec.text for r in decoder_config.expand(dec, 6)] == ["full", "skip:n=1"]
    named = GlueSweepConfig.from_mapping({"model": "m", "variants": ["skip", "full"], "n": [1], "tasks": ["rte"],
                                          "modes": ["probe"], "seeds": [0]})
    assert [r.label for r in glue_runs.expand(named, 6)] == ["skip:n=1", "full"]  # named: kept where it is, once


def test_one_process_state_one_tracker_one_fingerprint_one_row_type():
    assert decoder_sweep.process_state is processes.process_state
    assert glue_processes.Processes is processes.Processes and isinstance(processes.process_state(), processes.Processes)
    assert not hasattr(wandb_runs, "WandbRuns") and decoder_sweep.Tracker is tracking.Tracker
    assert decoder_sweep.model_fingerprint is sweep.model_fingerprint
    assert decoder_config.PlanSpec is decoder_sweep.PlanSpec is sweep.PlanSpec
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=8, max_position_embeddings=16))
    assert weights_fingerprint(bert) == sweep.model_fingerprint(bert, "tensors") == tensors_fingerprint(bert)


def test_both_tracks_run_the_one_loop(tmp_path):
    """rows -> pending -> shares -> compute -> records: ``run_steps``, filled in by each track."""
    from glue_painters.results import ResultsStore

    assert decoder_sweep.run_steps is glue_pipeline.run_steps is sweep.run_steps
    store = ResultsStore(tmp_path)
    store.put("t", {"run": 1}, {"score": 1})
    computed = []

    def compute(runs):
        computed.extend(runs)
        for run in runs:
            store.put("t", {"run": run}, {"score": run})

    class Off:
        def finish(self):
            return None

    steps = sweep.Steps([0, 1, 2], find=lambda run: store.get("t", {"run": run}), share=lambda pending, procs: [],
                        compute=compute, read=lambda run: store.get("t", {"run": run}))
    out = sweep.run_steps(steps, store=store, procs=processes.Processes(), tracker=Off(), started=0.0,
                          specs=["a"], tasks=["t"])
    assert computed == [0, 2] and [r["score"] for r in out.records] == [0, 1, 2]  # alone: no share taken
    assert (out.written, out.skipped, out.specs, out.tasks) == (2, 1, ["a"], ["t"])
