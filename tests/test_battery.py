"""The exactness battery, on a tiny random model of every supported architecture (tests/tiny.py).

Each check compares the rewired model with an independent computation, never with itself:
a hand-built shallower model (deep-copied layers, renumbered), the layers called by hand, and an
uncached forward for every step of cached decoding (logits, not only greedy tokens, which hid
several wrong results before). Every comparison runs in float64 (``tiny.EXACT``), where rounding
cannot decide the verdict whatever the thread count.
"""

import copy

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM

from glue_painters import variants
from glue_painters.plans import Plan
from glue_painters.rewire import RewireError, current_plan, export_plan, original_layers, rewired
from tiny import (ALL, DECODERS, EXACT, EXACT_ATOL, LAYERS, THREAD_COUNTS, assert_same_computation, cached_and_uncached,
                  in_exact, make, num_threads)

T = LAYERS
SEQUENTIAL = {
    "skip": variants.skip(T, 2),
    "reverse": variants.reverse(T, 1),
    "middle_repeat": variants.middle_repeat(T, 1),
    "random": variants.random(T, 1, seed=4),
    "mixed": Plan.parse("0,3,2,5x2,7"),
}
CACHED = {
    **SEQUENTIAL,
    "parallel": variants.parallel(T, 2),
    "looped_parallel": variants.looped_parallel(T, 2, 3),
    "parallel_mixed": Plan.parse("0,2x2,[3,6]x2,5,4,7"),
}


def _inputs(batch=2, length=9):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 90, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    if batch > 1:
        mask[1, -3:] = 0  # padding must stay masked under every plan
    return ids, mask


def _out(model, ids, mask):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, **({"use_cache": False} if _is_decoder(model) else {}))
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def _is_decoder(model):
    return model.config.model_type in DECODERS


def _hand_built(model, plan: Plan):
    """The plan as an ordinary model, built here without glue-painters: the layers deep-copied in
    the plan's order, every ``layer_idx`` renumbered, per-layer config lists reordered."""
    new = copy.deepcopy(model)
    layers = original_layers(model)
    path = next(n for n, m in model.named_modules() if m is layers)
    *parents, name = path.split(".")
    owner = new
    for p in parents:
        owner = getattr(owner, p)
    source = getattr(owner, name)
    order = [u.index for u in plan.units()]
    built = []
    for pos, i in enumerate(order):
        layer = copy.deepcopy(source[i])
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = pos
        built.append(layer)
    setattr(owner, name, torch.nn.ModuleList(built))
    config = new.config
    for key in ("layer_types", "no_rope_layers"):
        values = getattr(config, key, None)
        if values is not None:
            setattr(config, key, [values[i] for i in order])
    config.num_hidden_layers = len(order)
    return new.eval()


@pytest.mark.parametrize("arch", sorted(ALL))
@pytest.mark.parametrize("name", sorted(SEQUENTIAL))
def test_sequential_plan_equals_a_hand_built_model(arch, name):
    model = make(arch, dtype=EXACT)
    ids, mask = _inputs()
    plan = SEQUENTIAL[name]
    expected = _out(_hand_built(model, plan), ids, mask)
    with rewired(model, plan):
        got = _out(model, ids, mask)
    assert_same_computation(got, expected)


@pytest.mark.parametrize("arch", sorted(DECODERS))
@pytest.mark.parametrize("name", sorted(CACHED) + ["parallel/batched", "looped_parallel/batched"])
def test_cached_decoding_step_by_step_equals_one_uncached_forward(arch, name):
    """Prefill 4 tokens, then decode 6 one at a time with the KV cache: every step's logits equal
    the logits of one uncached forward over the whole sequence at that position."""
    model = make(arch, dtype=EXACT)
    ids, _ = _inputs(batch=1, length=10)
    name, _, mode = name.partition("/")
    with rewired(model, CACHED[name], parallel=mode or "loop"):
        cached, uncached = cached_and_uncached(model, ids, prefill=4)
    assert_same_computation(cached, uncached)


@pytest.mark.parametrize("arch", ["llama", "gptj", "deepseek_v3"])
def test_the_cached_decoding_verdict_holds_at_one_and_two_threads(arch):
    """The comparison above at 1, then 2 intra-op threads, in one process (GPT-J and DeepSeek-V3
    keep float32 steps inside the float64 model: attention scores, the MoE router)."""
    model = make(arch, dtype=EXACT)
    ids, _ = _inputs(batch=1, length=10)
    for threads in THREAD_COUNTS:
        for name, mode in [("middle_repeat", "loop"), ("looped_parallel", "batched"), ("parallel_mixed", "loop")]:
            with num_threads(threads), rewired(model, CACHED[name], parallel=mode):
                cached, uncached = cached_and_uncached(model, ids, prefill=4)
            assert_same_computation(cached, uncached)


def test_the_comparison_catches_cache_slots_shared_by_two_entries(monkeypatch):
    """Not a test that cannot fail: with the guard switched off, a layer writing its original
    index's KV slot (what transformers 5.24's renamed cache keyword did: repeats of one layer then
    share a slot) moves the cached logits by far more than the tolerance."""
    from glue_painters import slot_cache

    model = make("llama", attn=None, dtype=EXACT)  # sdpa, as SmolLM2 ran: no shape error, wrong numbers
    ids, _ = _inputs(batch=1, length=10)
    monkeypatch.setattr(slot_cache.SlotCache, "update",
                        lambda self, k, v, layer_idx=None, *a, **kw: self._cache.update(k, v, layer_idx, *a, **kw))
    monkeypatch.setattr(slot_cache.SlotGuard, "check", lambda self, what: None)
    with rewired(model, CACHED["middle_repeat"]):
        cached, uncached = cached_and_uncached(model, ids, prefill=4)
    assert (cached - uncached).abs().max() > 1e3 * EXACT_ATOL


@pytest.mark.parametrize("arch", sorted(ALL))
def test_export_reloads_with_equal_outputs(arch, tmp_path):
    model = make(arch, dtype=EXACT)
    ids, mask = _inputs()
    plan = Plan.parse("0,1,4,3,5x2,7")  # keeps positions 0-1 (DeepSeek-V3's dense layers here)
    with rewired(model, plan):
        expected = _out(model, ids, mask)
    export_plan(model, plan, tmp_path)
    loader = AutoModelForCausalLM if arch in DECODERS else AutoModel
    reloaded = in_exact(loader.from_pretrained(tmp_path, attn_implementation=model.config._attn_implementation,
                                               dtype=EXACT).eval())
    assert reloaded.config.num_hidden_layers == plan.executions
    assert_same_computation(_out(reloaded, ids, mask), expected)
    assert current_plan(model) is None  # exporting leaves the source model alone


def test_export_refuses_a_plan_the_config_cannot_rebuild(tmp_path):
    """DeepSeek-V3 builds its first ``first_k_dense_replace`` layers with a dense MLP: a plan that
    moves an MoE layer there would reload as another model, so export refuses it."""
    model = make("deepseek_v3")
    with pytest.raises(RewireError, match="builds position 1 as a different kind of layer"):
        export_plan(model, "0,3,2,5x2,7", tmp_path)
    assert not any(tmp_path.iterdir())
