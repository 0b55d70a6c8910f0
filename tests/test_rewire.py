"""Exactness of the rewiring on tiny random models of every supported architecture (equalities of
two different computations in float64, ``tiny.EXACT``: rounding cannot decide them)."""

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from glue_painters import rewire, variants
from glue_painters.plans import Layer, Plan, PlanError
from glue_painters.rewire import (
    RewireError, apply_plan, current_plan, export_plan, num_layers, original_layers, remove_plan, rewired,
)
from tiny import ALL, DECODERS, EXACT, LAYERS, assert_same_computation, make

T = LAYERS
PLANS = {
    "skip": variants.skip(T, 2),
    "reverse": variants.reverse(T, 1),
    "middle_repeat": variants.middle_repeat(T, 1),
    "random": variants.random(T, 1, seed=4),
    "parallel": variants.parallel(T, 2),
    "looped_parallel": variants.looped_parallel(T, 2, 3),
    "switch": variants.switch(T, 3),
    "skip_one": variants.skip_one(T, 0),
    "mixed": Plan.parse("0,2x2,[3,6]x2,5,4,7"),
}


def _inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 90, (2, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0  # padding must stay masked under every plan
    return ids, mask


def _last_hidden(model, ids, mask):
    """The hidden state after the last layer (before any final norm): the last list entry's output."""
    seen = {}
    last = rewire._get_list(model)[-1]
    hook = last.register_forward_hook(lambda m, a, out: seen.update(h=out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, **({"use_cache": False} if "use_cache" in _params(model) else {}))
    hook.remove()
    return seen["h"]


def _params(model):
    import inspect
    return inspect.signature(model.forward).parameters


def _layer_runner(model, ids, mask):
    """A function ``run(i, h)`` calling layer i with the arguments the untouched model gives it
    (its mask, rotary table ...), and the input of layer 0."""
    layers = original_layers(model)
    calls = {}

    def record(module, args, kwargs, i):
        calls.setdefault(i, (args, kwargs))

    hooks = [layer.register_forward_pre_hook(lambda m, a, k, i=i: record(m, a, k, i), with_kwargs=True)
             for i, layer in enumerate(layers)]
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, **({"use_cache": False} if "use_cache" in _params(model) else {}))
    for h in hooks:
        h.remove()

    def run(i, h):
        args, kwargs = calls[i]
        with torch.no_grad():
            out = layers[i](h, *args[1:], **kwargs)
        return out[0] if isinstance(out, tuple) else out

    return run, calls[0][0][0]


def _by_hand(model, plan, ids, mask):
    """Run the plan layer by layer - an independent computation of what a plan means."""
    run, h = _layer_runner(model, ids, mask)
    with torch.no_grad():
        for unit in plan.units():
            if isinstance(unit, Layer):
                h = run(unit.index, h)
            else:
                h = torch.stack([run(i, h) for i in unit.members]).mean(dim=0)
    return h


def _logits(model, ids, mask):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, **({"use_cache": False} if "use_cache" in _params(model) else {}))
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


@pytest.mark.parametrize("arch", sorted(ALL))
def test_full_plan_is_bit_identical_and_removal_restores(arch):
    model = make(arch)
    ids, mask = _inputs()
    ref = _logits(model, ids, mask)
    layer_list = original_layers(model)
    config_before = model.config.to_dict()
    with rewired(model, variants.full(T)):
        assert current_plan(model) == variants.full(T)
        assert torch.equal(_logits(model, ids, mask), ref)
    apply_plan(model, PLANS["looped_parallel"])
    assert model.config.num_hidden_layers == PLANS["looped_parallel"].executions
    remove_plan(model)
    assert current_plan(model) is None
    assert original_layers(model) is layer_list
    assert model.config.to_dict() == config_before
    assert torch.equal(_logits(model, ids, mask), ref)


@pytest.mark.parametrize("arch", sorted(ALL))
@pytest.mark.parametrize("name", sorted(PLANS))
def test_plan_equals_layer_by_layer_computation(arch, name):
    model = make(arch)
    ids, mask = _inputs()
    plan = PLANS[name]
    expected = _by_hand(model, plan, ids, mask)
    with rewired(model, plan):
        got = _last_hidden(model, ids, mask)
    assert torch.equal(got, expected)


def test_parallel_is_mean_and_loop_is_repeated_application():
    model = make("llama", dtype=EXACT)
    ids, mask = _inputs()
    # a group of two equals the mean of the two members applied to the same input
    one = _by_hand(model, Plan.parse("0-2"), ids, mask)
    with rewired(model, "0-2,[3,4]"):
        got = _last_hidden(model, ids, mask)
    run, _ = _layer_runner(model, ids, mask)
    mean = (run(3, one) + run(4, one)) / 2
    assert_same_computation(got, mean)
    # looping k times equals applying the group k times in sequence
    with rewired(model, "0-2,[3,4]x3"):
        looped = _last_hidden(model, ids, mask)
    with rewired(model, "0-2,[3,4],[3,4],[3,4]"):
        assert torch.equal(_last_hidden(model, ids, mask), looped)
    assert not torch.equal(looped, got)


# generate() end to end on a few architectures (every architecture's cached decoding is checked
# step by step, logits and not only tokens, in test_battery.py)
@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "gpt2", "gpt_neox", "falcon"])
def test_generation_with_cache_equals_without(arch):
    model = make(arch, dtype=EXACT)  # greedy tokens: no near-tie of two logits decided by rounding
    ids, _ = _inputs()
    for name, plan in [("full", variants.full(T)), *PLANS.items()]:
        with rewired(model, plan):
            kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
            cached = model.generate(ids[:1], use_cache=True, **kw)
            uncached = model.generate(ids[:1], use_cache=False, **kw)
        assert torch.equal(cached, uncached), (arch, name)


def test_a_write_around_the_slot_view_is_refused(monkeypatch):
    """The guard: a layer that writes its original index's slot (what a renamed cache keyword did
    in transformers 5.24) raises instead of computing on the wrong slots."""
    model = make("llama")
    ids, _ = _inputs()
    monkeypatch.setattr(rewire.SlotCache, "update",
                        lambda self, k, v, layer_idx=None, *a, **kw: self._cache.update(k, v, layer_idx, *a, **kw))
    with rewired(model, "0,6-1,7"):
        with pytest.raises(RewireError, match="without going through its slot view"):
            model.generate(ids[:1], use_cache=True, max_new_tokens=3, do_sample=False, pad_token_id=0)


def test_nested_and_repeated_application():
    model = make("qwen2")
    a, b = PLANS["skip"], PLANS["parallel"]
    with rewired(model, a):
        with rewired(model, b):
            assert current_plan(model) == b
        assert current_plan(model) == a
        apply_plan(model, b)  # replaces, never stacks
        assert current_plan(model) == b and num_layers(model) == T
    assert current_plan(model) is None
    assert model.config.num_hidden_layers == T


def test_layers_are_shared_not_copied():
    model = make("llama")
    count = lambda mods: sum(p.numel() for m in mods for p in m.parameters())  # noqa: E731
    n_params = count([model])
    plan = PLANS["middle_repeat"]
    unused = [l for i, l in enumerate(original_layers(model)) if i not in plan.layers_used()]
    with rewired(model, plan):
        # a rewired model's parameters are the ones it runs, each once however often it runs
        assert count([model]) == n_params - count(unused)
        entries = model.model.layers
        assert entries[2].layer is entries[3].layer is original_layers(model)[T // 2]


def test_gemma3_layer_types_follow_the_plan():
    model = make("gemma3_text")
    types = list(model.config.layer_types)
    with rewired(model, "0,5x2,2"):
        assert model.config.layer_types == [types[0], types[5], types[5], types[2]]
    assert model.config.layer_types == types


def test_bad_plan_leaves_model_untouched():
    model = make("llama")
    with pytest.raises(PlanError, match="uses layer 8"):
        apply_plan(model, "0-8")
    assert current_plan(model) is None and model.config.num_hidden_layers == T


def test_a_model_the_table_does_not_know_is_found_by_structure():
    """GPT-Neo has no row and no tiny model in the battery: its layer list (``h``) is found by
    structure, and its cached decoding under a repeat plan equals the uncached forward."""
    config = AutoConfig.for_model("gpt_neo", vocab_size=50, hidden_size=16, num_layers=4, num_heads=2,
                                  attention_types=[[["global", "local"], 2]], max_position_embeddings=64)
    model = AutoModelForCausalLM.from_config(config).eval().to(EXACT)
    ids = torch.arange(3, 11)[None]
    with rewired(model, "0,1x3,3"), torch.no_grad():
        full = model(input_ids=ids, use_cache=False).logits
        out = model(input_ids=ids[:, :4], use_cache=True)
        step = model(input_ids=ids[:, 4:5], past_key_values=out.past_key_values, use_cache=True).logits
    assert_same_computation(step[:, -1], full[:, 4])


def test_a_misdescribed_model_gets_one_clear_error():
    model = make("llama")
    model.config.num_hidden_layers = 7  # says 7, holds 8
    with pytest.raises(RewireError, match=r"no list of 7 layers of one class .* module lists found: layers \(8 x"):
        apply_plan(model, "0-6")


def test_albert_and_encoder_decoders_are_refused_not_misrun():
    albert = AutoModel.from_config(AutoConfig.for_model(
        "albert", vocab_size=50, embedding_size=8, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=24))
    with pytest.raises(RewireError, match="ALBERT applies one shared layer group"):
        apply_plan(albert, "0,1")
    t5 = AutoModel.from_config(AutoConfig.for_model("t5", vocab_size=50, d_model=16, d_kv=4, d_ff=24,
                                                    num_layers=2, num_heads=2))
    with pytest.raises(RewireError, match="is an encoder-decoder"):
        apply_plan(t5, "0")


def test_export_refuses_parallel_groups(tmp_path):
    with pytest.raises(RewireError, match="parallel group"):
        export_plan(make("llama"), PLANS["parallel"], tmp_path)


def test_a_table_row_naming_no_module_list_is_one_clear_error():
    model = make("llama")
    try:
        rewire.ARCHITECTURES["llama"] = rewire.Arch(layers="norm")
        with pytest.raises(RewireError, match="names 'norm', which is not a module list"):
            apply_plan(model, "0-6")
    finally:
        del rewire.ARCHITECTURES["llama"]
    assert current_plan(model) is None
