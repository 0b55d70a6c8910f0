"""Self-speculative decoding, measured: a rewired plan drafts for its own model, the full model
verifies (the core of ``painters speculative`` and of the search's ``speculative`` objective).

The draft is ``draft.draft_view(model, plan)``: a second module tree over the same tensors.
transformers' assisted generation (``generate(..., assistant_model=draft)``) does the decoding:
the draft proposes ``draft_tokens`` tokens, the full model scores them in one forward and keeps
the longest prefix it agrees with (greedy), or applies the speculative-sampling acceptance rule
(sampling), so the output is the full model's. Nothing here re-implements that loop; what this
module adds is the measurement transformers lacks: acceptance, tokens per verification, ms per
token, the speed-up over plain greedy decoding of the full model timed in the same run, and a
token-for-token exactness check against that plain greedy output.

How the counts are taken: temporary forward pre-hooks count the full model's calls (each is one
verification, the first also the prefill) and the draft's calls (each proposes one token).
``accepted = new tokens - verifications`` (every verification adds one token of the full model's
own after the accepted draft tokens); ``acceptance = accepted / proposed``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import torch

from .draft import draft_view
from .errors import UserError
from .plans import Plan


@dataclass
class SpecResult:
    """One plan as a draft over a prompt set (times in ms, summed over prompts)."""

    plan: str
    draft_tokens: int
    adaptive: bool
    prompts: int
    new_tokens: int
    verifications: int
    draft_calls: int
    acceptance: float
    tokens_per_verification: float
    ms_per_token: float
    baseline_ms_per_token: float
    speedup: float
    exact: bool | None  # greedy: output equal to plain greedy token for token; sampling: None


class _Calls:
    """Counts forward calls of one module while in a ``with`` block (a removable hook)."""

    def __init__(self, module):
        self.module, self.count, self._hook = module, 0, None

    def __enter__(self):
        self._hook = self.module.register_forward_pre_hook(lambda m, a: self._add())
        return self

    def _add(self):
        self.count += 1

    def __exit__(self, *exc):
        self._hook.remove()


def _configure_draft(draft, draft_tokens: int, adaptive: bool) -> None:
    cfg = draft.generation_config
    cfg.num_assistant_tokens = draft_tokens
    # heuristic_transient: +2 after a fully accepted round, -1 otherwise, reset for every prompt
    cfg.num_assistant_tokens_schedule = "heuristic_transient" if adaptive else "constant"
    cfg.assistant_confidence_threshold = 0.0  # a fixed length means fixed: no early stop on doubt


def _generate(model, ids, max_new_tokens: int, pad_id: int, sample: dict | None, draft=None):
    kw = dict(max_new_tokens=max_new_tokens, pad_token_id=pad_id, attention_mask=torch.ones_like(ids))
    kw.update(dict(do_sample=True, **sample) if sample else dict(do_sample=False))
    if draft is not None:
        kw["assistant_model"] = draft
    with torch.no_grad():
        return model.generate(ids, **kw)[0, ids.shape[1]:]


def greedy_outputs(model, tokenizer, prompts: list[str], max_new_tokens: int) -> tuple[list[torch.Tensor], float]:
    """Plain greedy decoding of the full model: the outputs and the seconds it took."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outs, seconds = [], 0.0
    for text in prompts:
        ids = tokenizer(text, return_tensors="pt")["input_ids"].to(model.device)
        start = time.perf_counter()
        outs.append(_generate(model, ids, max_new_tokens, pad, None))
        seconds += time.perf_counter() - start
    return outs, seconds


def speculative_run(model, tokenizer, plan: Plan | str, prompts: list[str], max_new_tokens: int = 48,
                    draft_tokens: int = 4, adaptive: bool = False, parallel: str = "loop",
                    sample: dict | None = None, seed: int = 0,
                    baseline: tuple[list[torch.Tensor], float] | None = None) -> SpecResult:
    """Decode ``prompts`` with ``plan`` drafting for ``model``; compare with plain greedy decoding
    (``baseline``: its outputs and seconds, computed here when not given)."""
    if draft_tokens < 1:
        raise UserError(f"--draft-tokens must be >= 1, got {draft_tokens}")
    plan = Plan.parse(plan) if isinstance(plan, str) else plan
    if baseline is None:
        baseline = greedy_outputs(model, tokenizer, prompts, max_new_tokens)
    reference, base_seconds = baseline
    draft = draft_view(model, plan, parallel)
    _configure_draft(draft, draft_tokens, adaptive)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    new_tokens = base_tokens = 0
    seconds, exact = 0.0, True
    with _Calls(model) as verify, _Calls(draft) as proposed:
        for i, text in enumerate(prompts):
            ids = tokenizer(text, return_tensors="pt")["input_ids"].to(model.device)
            torch.manual_seed(seed + i)
            start = time.perf_counter()
            out = _generate(model, ids, max_new_tokens, pad, sample, draft)
            seconds += time.perf_counter() - start
            new_tokens += len(out)
            base_tokens += len(reference[i])
            exact = exact and torch.equal(out.cpu(), reference[i].cpu())
    del draft
    accepted = new_tokens - verify.count
    return SpecResult(
        plan=plan.text, draft_tokens=draft_tokens, adaptive=adaptive, prompts=len(prompts), new_tokens=new_tokens,
        verifications=verify.count, draft_calls=proposed.count,
        acceptance=round(accepted / proposed.count, 4) if proposed.count else 0.0,
        tokens_per_verification=round(new_tokens / max(1, verify.count), 3),
        ms_per_token=round(1000 * seconds / max(1, new_tokens), 2),
        baseline_ms_per_token=round(1000 * base_seconds / max(1, base_tokens), 2),
        speedup=round((base_seconds / max(1, base_tokens)) / (seconds / max(1, new_tokens)), 3),
        exact=None if sample else exact,
    )



class SpeculativeObjective:
    """A search objective: minus the estimated speed-up of ``plan`` as a draft (lower is better).

    Acceptance is measured (greedy speculative decoding of ``prompts``: deterministic counts); the
    draft's cost per call relative to the full model is ``plan.executions / T`` (layer executions,
    the search's own cost). Estimated speed-up = tokens per verification / (1 + draft calls per
    verification x relative draft cost), taking one verification as one full forward (true where
    decoding is memory-bound; on a CPU verifying k tokens costs more, which ``painters speculative``
    measures directly). Timing noise would make the search irreproducible, so none is used here.
    """

    def __init__(self, model, tokenizer, prompts: list[str], max_new_tokens: int = 16, draft_tokens: int = 4,
                 model_id: str = ""):
        from .rewire import num_layers

        self.model, self.tokenizer, self.prompts = model, tokenizer, prompts
        self.max_new_tokens, self.draft_tokens, self.model_id = max_new_tokens, draft_tokens, model_id
        self.num_layers = num_layers(model)
        self.reference = greedy_outputs(model, tokenizer, prompts, max_new_tokens)

    def describe(self) -> dict:
        digest = hashlib.sha256("\x00".join(self.prompts).encode()).hexdigest()[:16]
        return {"objective": "speculative_speedup", "model": self.model_id, "layers": self.num_layers,
                "prompts": digest, "n_prompts": len(self.prompts), "max_new_tokens": self.max_new_tokens,
                "draft_tokens": self.draft_tokens}

    def __call__(self, plan: Plan | str) -> float:
        plan = Plan.parse(plan) if isinstance(plan, str) else plan
        r = speculative_run(self.model, self.tokenizer, plan, self.prompts, self.max_new_tokens, self.draft_tokens,
                            baseline=self.reference)
        if not r.exact:
            raise UserError(f"draft {plan.text}: speculative output differs from plain greedy decoding")
        rel = plan.executions / self.num_layers
        per_verification = r.draft_calls / max(1, r.verifications)
        return -r.tokens_per_verification / (1.0 + per_verification * rel)


def objective_for_search(model, tokenizer, calibration, folder, draft_tokens: int, new_tokens: int):
    """``painters search run --objective speculative``: the objective over the openings (first 32
    tokens) of the calibration texts, and its cache folder beside the loss cache."""
    from .models import source_of

    if draft_tokens < 1 or new_tokens < 1:
        raise UserError("--draft-tokens and --new-tokens must be >= 1")
    prompts = []
    for batch in calibration.batches:
        for ids, mask in zip(batch["input_ids"], batch["attention_mask"]):
            prompts.append(tokenizer.decode(ids[mask.bool()][:32], skip_special_tokens=True))
    objective = SpeculativeObjective(model, tokenizer, prompts, new_tokens, draft_tokens,
                                     model_id=source_of(model).fingerprint)
    key = objective.describe()
    return objective, folder / f"speculative-{key['prompts']}-k{draft_tokens}-n{new_tokens}"


def print_drafts(model_name: str, found: dict, memo, folder, seconds: float, num_layers: int,
                 draft_tokens: int, new_tokens: int) -> None:
    from .plans import full_plan

    full = -memo.many([full_plan(num_layers)])[0]
    print(f"{model_name}: best drafts for self-speculative decoding ({draft_tokens} draft tokens, {new_tokens} "
          f"tokens per prompt); estimated speed-up of the full model as its own draft: {full:.2f}x")
    print(f"{'budget':>7} {'method':>8} {'exec':>5} {'est. speed-up':>14}  plan")
    for b in sorted(found, reverse=True):
        f = found[b]
        print(f"{b:7g} {f.method:>8} {f.executions:5d} {-f.value:13.2f}x  {f.plan}")
    print(f"{memo.evaluated} plans evaluated now, {memo.hits} cache hits, {len(memo)} in the cache; {seconds:.0f} s; "
          f"state in {folder}; measure a draft: painters speculative --model {model_name} --plans PLAN")
