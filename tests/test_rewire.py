"""Exactness of the rewiring on tiny random models of every supported architecture."""

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from glue_painters import rewire, variants
from glue_painters.plans import Layer, Plan, PlanError
from glue_painters.rewire import (
    RewireError, apply_plan, current_plan, export_plan, num_layers, original_layers, remove_plan, rewired,
)
from tiny import ALL, DECODERS, LAYERS, make

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


def _final_norm(model):
    base = model.base_model
    return getattr(base, "norm", None) or getattr(base, "final_layer_norm", None)


def _last_hidden(model, ids, mask):
    """The hidden state after the last layer, before any final norm."""
    seen = {}
    norm = _final_norm(model)
    hook = norm.register_forward_pre_hook(lambda m, a: seen.setdefault("h", a[0])) if norm is not None else None
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, use_cache=False)
    if hook is not None:
        hook.remove()
        return seen["h"]
    return out.last_hidden_state


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
        model(input_ids=ids, attention_mask=mask, use_cache=False)
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
        out = model(input_ids=ids, attention_mask=mask, use_cache=False)
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
    model = make("llama")
    ids, mask = _inputs()
    # a group of two equals the mean of the two members applied to the same input
    one = _by_hand(model, Plan.parse("0-2"), ids, mask)
    with rewired(model, "0-2,[3,4]"):
        got = _last_hidden(model, ids, mask)
    run, _ = _layer_runner(model, ids, mask)
    mean = (run(3, one) + run(4, one)) / 2
    torch.testing.assert_close(got, mean, rtol=0, atol=1e-6)
    # looping k times equals applying the group k times in sequence
    with rewired(model, "0-2,[3,4]x3"):
        looped = _last_hidden(model, ids, mask)
    with rewired(model, "0-2,[3,4],[3,4],[3,4]"):
        assert torch.equal(_last_hidden(model, ids, mask), looped)
    assert not torch.equal(looped, got)


@pytest.mark.parametrize("arch", sorted(DECODERS))
def test_generation_with_cache_equals_without(arch):
    model = make(arch)
    ids, _ = _inputs()
    for name, plan in [("full", variants.full(T)), *PLANS.items()]:
        with rewired(model, plan):
            kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
            cached = model.generate(ids[:1], use_cache=True, **kw)
            uncached = model.generate(ids[:1], use_cache=False, **kw)
        assert torch.equal(cached, uncached), (arch, name)


def test_cache_slots_matter(monkeypatch):
    """The generation test has teeth: writing by the layer's own index breaks a repeat plan."""
    model = make("llama")
    ids, _ = _inputs()
    monkeypatch.setattr(rewire.SlotCache, "update",
                        lambda self, k, v, layer_idx=None, *a, **kw: self._cache.update(k, v, layer_idx, *a, **kw))
    with rewired(model, "0,1x4,2-7"):
        kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
        cached = model.generate(ids[:1], use_cache=True, **kw)
        uncached = model.generate(ids[:1], use_cache=False, **kw)
    assert not torch.equal(cached, uncached)


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


def test_unknown_architecture_says_how_to_add_a_row():
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(RewireError, match=r"Add a row to glue_painters.rewire.ARCHITECTURES"):
        apply_plan(model, "0")


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "gpt_neox", "bert", "mpnet"])
def test_export_is_an_ordinary_checkpoint(arch, tmp_path):
    model = make(arch)
    ids, mask = _inputs()
    plan = Plan.parse("0,3,2,5x2,7")
    with rewired(model, plan):
        expected = _logits(model, ids, mask)
    export_plan(model, plan, tmp_path)
    loader = AutoModelForCausalLM if arch in DECODERS else AutoModel
    reloaded = loader.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == plan.executions
    assert torch.equal(_logits(reloaded, ids, mask), expected)
    assert current_plan(model) is None  # exporting leaves the source model alone


def test_export_refuses_parallel_groups(tmp_path):
    with pytest.raises(RewireError, match="parallel group"):
        export_plan(make("llama"), PLANS["parallel"], tmp_path)
