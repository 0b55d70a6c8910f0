"""Decoder track: frozen causal LMs under rewiring plans on LAMBADA, ARC, HellaSwag, WinoGrande, GSM8K.

Benchmarks follow lm-evaluation-harness 0.4 exactly (prompts, context/continuation split,
tokenization, metrics, GSM8K filters); tests compare per-item loglikelihoods and accuracies with
stock lm-eval on SmolLM2. What is ours is the speed of a sweep: requests are tokenized and batched
once, the requests of one multiple-choice item share one forward, the hidden state after the layers
a sweep's plans share is computed once, and only scored positions reach the output embedding.

API::

    from decoder_eval import evaluate_plan, evaluate_plans
    evaluate_plan(model, tokenizer, "skip:n=8", ["arc_easy", "hellaswag"], limit=100)
        # -> {"arc_easy": {"acc": .., "acc_norm": ..}, "hellaswag": {...}}
    evaluate_plans(model, tokenizer, [plan_a, plan_b, ...], tasks, limit=..., data_dir=..., batch_size=16,
                   log_samples=False)   # -> {plan text: {task: TaskResult}}, sharing work between plans

Stock lm-eval on a rewired model, for any lm-eval task (``pip install lm_eval``)::

    from decoder_eval.lm_eval_interop import lm_eval_evaluate
    lm_eval_evaluate(model, tokenizer, "skip:n=8", ["arc_easy", "piqa"], limit=100)

Sweeps and results: ``painters decoder run configs/decoder/<config>.yaml`` (``sweep.run_sweep``),
``painters decoder summary`` (``summary``). A step that evaluates its own model per plan (LoRA
healing) stores results with ``sweep.save_result(store, sweep.key_fields(..., healed=True, heal=...), ...)``.

Any other lm-eval task (by name or from a folder of task YAMLs) runs in the same engine:
``lm_eval_loading`` loads it, ``lm_eval_tasks`` turns its requests into ours and scores the
responses with lm-eval's own filters and metrics; with lm-eval installed our six names take that
path too.

Modules: ``data`` (JSON Lines / hub loading, limits), ``tasks`` (the benchmarks), ``metrics``,
``encoding`` (lm-eval tokenization), ``packing`` (rows and batches), ``prefix`` (shared layer
prefixes), ``loglikelihood``, ``rolling`` and ``generation`` (the request types),
``lm_eval_loading`` and ``lm_eval_tasks`` (lm-eval's tasks), ``evaluate`` (the API),
``sweep`` (configs, records, resume), ``summary`` (normalized median), ``cli``, ``lm_eval_interop``.
"""

__all__ = ["evaluate_plan", "evaluate_plans", "load_tasks", "TaskResult"]


def __getattr__(name):
    # lazy: ``import decoder_eval`` (e.g. by the CLI's parser) should not import torch
    if name in __all__:
        from . import evaluate

        return getattr(evaluate, name)
    raise AttributeError(f"module 'decoder_eval' has no attribute {name!r}")
