"""parallel="batched" (one vmapped call per parallel group) equals the loop, on every tiny model:
compared in float64 (``tiny.EXACT``), where rounding cannot decide the verdict, and run in float32
too, with the kernels users run."""

import warnings

import pytest
import torch

from glue_painters import batched, variants
from glue_painters.plans import Plan
from glue_painters.rewire import _get_list, ARCHITECTURES, Arch, RewireError, apply_plan, parallel_mode, remove_plan, rewired
from tiny import ALL, DECODERS, EXACT, LAYERS, assert_same_computation, make

T = LAYERS
PLANS = {
    "parallel": variants.parallel(T, 2),
    "looped_parallel": variants.looped_parallel(T, 1, 3),
    "mixed": Plan.parse("0,2x2,[3,6]x2,5,4,7"),
}


def _inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 90, (2, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0
    return ids, mask


def _out(model, ids, mask):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, **({"use_cache": False} if model.config.model_type in DECODERS else {}))
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


# GPT-J's block returns its attention weights beside the hidden state in transformers releases
# before 5.24: the batched path refuses (it could not hand them on) and that group runs the loop,
# which the equality assertions still check
_RETURNS_WEIGHTS = "the layer returns more than its hidden state (e.g. attention weights)"


def _no_fallback(model):
    """Every batch class of every group ran vmapped (none fell back to the loop)."""
    groups = {id(e._buffer.runner): e._buffer.runner for e in _get_list(model)
              if getattr(getattr(e, "_buffer", None), "runner", None)}
    assert groups, "no batched group"
    allowed = {"a class of one member runs as is"}
    if model.config.model_type == "gptj":
        allowed.add(_RETURNS_WEIGHTS)
    broken = {c.broken for g in groups.values() for c in g.classes.values() if c.broken and c.broken not in allowed}
    assert not broken, broken


def _batchable(arch):
    return ARCHITECTURES.get(arch, Arch()).batchable


@pytest.mark.parametrize("arch", sorted(ALL))
@pytest.mark.parametrize("name", sorted(PLANS))
def test_batched_equals_loop(arch, name):
    plan = PLANS[name]
    ids, mask = _inputs()
    for dtype in (EXACT, torch.float32):
        model = make(arch, attn=None, dtype=dtype)  # the default attention, as users run it
        with rewired(model, plan):
            loop = _out(model, ids, mask)
        with rewired(model, plan, parallel="batched"):
            assert parallel_mode(model) == ("batched" if _batchable(arch) else "loop")
            got = _out(model, ids, mask)
            if _batchable(arch):
                _no_fallback(model)  # float32: with the kernels users run (MoE: grouped matmuls)
        if dtype == EXACT:
            assert_same_computation(got, loop)
        else:  # float32 rounding, which the thread count moves, is ~1e-7 here: only a gross error fails
            torch.testing.assert_close(got, loop, rtol=0, atol=1e-4)


def test_members_with_different_settings_are_not_merged():
    """SmolLM3 turns RoPE off on every 4th layer (a Python attribute, not a weight): a group
    holding such a layer runs it in its own class, so batched equals the loop exactly."""
    model = make("smollm3", dtype=EXACT)
    ids, mask = _inputs()
    plan = Plan.parse("0,[1-6],7")  # layer 3 has use_rope=False, the others True
    with rewired(model, plan):
        loop = _out(model, ids, mask)
    with rewired(model, plan, parallel="batched"):
        got = _out(model, ids, mask)
        runner = _get_list(model)[1]._buffer.runner
        classes = {id(c): c.positions for c in runner.classes.values()}
    assert sorted(classes.values()) == [[0, 1, 3, 4, 5], [2]]
    assert_same_computation(got, loop)


# generate() end to end on a few architectures (test_battery.py checks every architecture's batched
# cached decoding step by step, by logits)
@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "qwen3_moe", "gpt2", "gptj"])
@pytest.mark.parametrize("name", ["parallel", "looped_parallel"])
def test_batched_generation_with_cache_equals_without(arch, name):
    model = make(arch, attn=None, dtype=EXACT)  # greedy tokens: no near-tie decided by rounding
    ids, _ = _inputs()
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    with rewired(model, PLANS[name]):
        loop = model.generate(ids[:1], use_cache=False, **kw)
    with rewired(model, PLANS[name], parallel="batched"):
        cached = model.generate(ids[:1], use_cache=True, **kw)
        uncached = model.generate(ids[:1], use_cache=False, **kw)
        if _batchable(arch):
            _no_fallback(model)
    assert torch.equal(cached, uncached), arch
    assert torch.equal(cached, loop), arch


def test_batched_cache_holds_each_members_own_states():
    """After a prefill, every member's slot holds that member's keys (not a neighbour's)."""
    model = make("llama", dtype=EXACT)
    ids, _ = _inputs()
    plan = PLANS["parallel"]
    caches = {}
    for mode in ("loop", "batched"):
        with rewired(model, plan, parallel=mode), torch.no_grad():
            caches[mode] = model(input_ids=ids[:1], use_cache=True).past_key_values
    for a, b in zip(caches["loop"].layers, caches["batched"].layers):
        assert_same_computation(a.keys, b.keys)
        assert_same_computation(a.values, b.values)
    keys = [l.keys for l in caches["batched"].layers]
    assert not torch.equal(keys[3], keys[4])


def test_batched_bf16_is_close_to_loop():
    model = make("llama").to(torch.bfloat16)
    ids, mask = _inputs()
    plan = PLANS["looped_parallel"]
    with rewired(model, plan):
        loop = _out(model, ids, mask).float()
    with rewired(model, plan, parallel="batched"):
        got = _out(model, ids, mask).float()
    # bf16 has 8 bits of mantissa: batched matmuls may round differently from single ones
    torch.testing.assert_close(got, loop, rtol=2e-2, atol=2e-2)


def test_static_cache_generation():
    model = make("llama", dtype=EXACT)
    ids, _ = _inputs()
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    with rewired(model, PLANS["looped_parallel"]):
        ref = model.generate(ids[:1], use_cache=False, **kw)
    with rewired(model, PLANS["looped_parallel"], parallel="batched"):
        got = model.generate(ids[:1], cache_implementation="static", **kw)
        _no_fallback(model)
    assert torch.equal(got, ref)


def test_hidden_state_recording_runs_the_loop_for_that_call():
    """transformers records layer outputs by hooks, which must see per-member tensors: such a call
    runs the loop (and gives the loop's hidden states); later calls are batched again."""
    model = make("llama")
    ids, mask = _inputs()
    plan = PLANS["parallel"]
    with rewired(model, plan), torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    with rewired(model, plan, parallel="batched"), torch.no_grad():
        got = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        _no_fallback(model)
    assert len(got) == len(ref) and all(torch.equal(a, b) for a, b in zip(got, ref))


def test_training_gradients_reach_member_parameters():
    model = make("bert", dtype=EXACT)
    model.train()
    ids, mask = _inputs()
    plan = PLANS["parallel"]
    grads = {}
    for mode in ("loop", "batched"):
        model.zero_grad()
        with rewired(model, plan, parallel=mode):
            for m in model.modules():  # dropout would draw different masks in the two modes
                if isinstance(m, torch.nn.Dropout):
                    m.p = 0.0
            model(input_ids=ids, attention_mask=mask).last_hidden_state.sum().backward()
        grads[mode] = [p.grad.clone() for p in model.encoder.layer[4].parameters()]
    for a, b in zip(grads["loop"], grads["batched"]):
        assert_same_computation(a, b)


def test_unbatchable_row_and_bad_mode():
    model = make("llama")
    with pytest.raises(RewireError, match="parallel must be one of"):
        apply_plan(model, PLANS["parallel"], parallel="vmap")
    assert "llama" not in ARCHITECTURES  # found by structure, batchable by default
    try:
        ARCHITECTURES["llama"] = Arch(batchable=False)
        apply_plan(model, PLANS["parallel"], parallel="batched")
        assert parallel_mode(model) == "loop"
    finally:
        del ARCHITECTURES["llama"]
        remove_plan(model)
    assert parallel_mode(model) is None
    apply_plan(model, variants.skip(T, 2), parallel="batched")  # no group: nothing to batch
    assert parallel_mode(model) == "loop"


def test_vmap_failure_falls_back_to_the_loop(monkeypatch):
    model = make("qwen2")
    ids, mask = _inputs()
    plan = PLANS["parallel"]
    with rewired(model, plan):
        ref = _out(model, ids, mask)

    def boom(*a, **k):
        raise RuntimeError("no batching rule")

    monkeypatch.setattr(batched.torch, "vmap", lambda *a, **k: boom)
    monkeypatch.setattr(batched, "_warned", set())  # warned once per process: a second run must warn too
    with rewired(model, plan, parallel="batched"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = _out(model, ids, mask)
        assert any("fall back to the loop" in str(w.message) for w in caught)
    assert torch.equal(got, ref)


def test_a_forward_hook_on_a_member_makes_the_call_a_loop():
    """A hook would see vmap's batched tensors: with one registered the group runs as the loop,
    so the hook sees every member's real output."""
    model = make("llama")
    ids, mask = _inputs()
    plan = PLANS["parallel"]
    seen = []
    layer = model.model.layers[3]
    hook = layer.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    try:
        with rewired(model, plan):
            ref = _out(model, ids, mask)
        n_loop = len(seen)
        with rewired(model, plan, parallel="batched"):
            got = _out(model, ids, mask)
            _no_fallback(model)  # transient: not marked broken
    finally:
        hook.remove()
    assert len(seen) == 2 * n_loop and torch.equal(got, ref)


def test_slot_cache_half_built_has_no_recursion():
    """torch.compile builds a SlotCache with object.__new__ and sets its fields after: looking a
    field up before then must be an AttributeError, not a recursion through __getattr__."""
    from glue_painters.rewire import SlotCache

    view = object.__new__(SlotCache)
    assert not hasattr(view, "_cache")
