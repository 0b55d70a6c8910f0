"""Tiny random models of every supported architecture, for the exactness battery (built in ms).

One row per ``model_type``: the config fields that make it tiny (8 layers, width 32) and whatever
that architecture needs to be exercised fully (Gemma3's and ModernBERT's mixed sliding/full
layers, SmolLM3's layers without RoPE, MoE routing, DeepSeek-V3's latent attention and dense
first layers). Models are built by ``AutoConfig.for_model`` and the Auto classes, as a user's
model would be.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

LAYERS = 8
_COMMON = dict(vocab_size=97, hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=4,
          intermediate_size=48, max_position_embeddings=128)
_KV = dict(_COMMON, num_key_value_heads=2)
_SLIDING = ["sliding_attention", "sliding_attention", "full_attention"] * 2 + ["sliding_attention", "full_attention"]

DECODER_CONFIGS: dict[str, dict] = {
    "llama": _KV,
    "mistral": dict(_KV, sliding_window=None),
    "qwen2": _KV,
    "qwen3": dict(_KV, head_dim=8),
    "qwen2_moe": dict(_KV, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
                      shared_expert_intermediate_size=24),
    "qwen3_moe": dict(_KV, head_dim=8, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16),
    "mixtral": dict(_KV, num_local_experts=4, num_experts_per_tok=2),
    "gemma": dict(_KV, head_dim=8),
    "gemma2": dict(_KV, head_dim=8, sliding_window=4),
    "gemma3_text": dict(_KV, head_dim=8, sliding_window=4, layer_types=_SLIDING),
    "olmo": _KV,
    "olmo2": _KV,
    "phi": dict(_COMMON, partial_rotary_factor=0.5, pad_token_id=0),
    "phi3": dict(_KV, pad_token_id=0),
    "starcoder2": dict(_KV, sliding_window=None),
    "granite": _KV,
    "stablelm": dict(_KV, partial_rotary_factor=0.5, pad_token_id=0),
    "smollm3": dict(_KV, no_rope_layer_interval=4, pad_token_id=0),
    "deepseek_v3": dict(_COMMON, num_key_value_heads=4, n_routed_experts=4, num_experts_per_tok=2, n_group=1, topk_group=1,
                        moe_intermediate_size=16, first_k_dense_replace=2, q_lora_rank=16, kv_lora_rank=8,
                        qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=8),
    "falcon": dict(_COMMON, new_decoder_architecture=True, num_kv_heads=2, alibi=False),
    "gpt_neox": dict(_COMMON, rotary_pct=0.5),
    "gptj": dict(_COMMON, rotary_dim=4, n_inner=48),
    "gpt2": dict(_COMMON, n_inner=48),
    "opt": dict(_COMMON, ffn_dim=48, word_embed_proj_dim=32, pad_token_id=1),
    "bloom": dict(_COMMON),
}
ENCODER_CONFIGS: dict[str, dict] = {
    "bert": _COMMON,
    "roberta": dict(_COMMON, pad_token_id=1),
    "xlm-roberta": dict(_COMMON, pad_token_id=1),
    "mpnet": _COMMON,
    "distilbert": dict(_COMMON, hidden_dim=48),
    "electra": dict(_COMMON, embedding_size=16),
    "deberta-v2": dict(_COMMON, relative_attention=True, position_buckets=8, max_relative_positions=16,
                       pos_att_type=["p2c", "c2p"]),
    "modernbert": dict(_COMMON, global_attn_every_n_layers=3, local_attention=4, pad_token_id=0),
}


def _build(model_type: str, attn: str | None = "eager"):
    kw = {"attn_implementation": attn} if attn else {}
    if model_type in DECODER_CONFIGS:
        config = AutoConfig.for_model(model_type, **DECODER_CONFIGS[model_type])
        return AutoModelForCausalLM.from_config(config, **kw)
    config = AutoConfig.for_model(model_type, **ENCODER_CONFIGS[model_type])
    return AutoModel.from_config(config, **kw)


DECODERS = {name: (lambda attn="eager", name=name: _build(name, attn)) for name in DECODER_CONFIGS}
ENCODERS = {name: (lambda attn="eager", name=name: _build(name, attn)) for name in ENCODER_CONFIGS}
ALL = {**DECODERS, **ENCODERS}


def make(name: str, seed: int = 0, attn: str | None = "eager", dtype: torch.dtype = torch.float32):
    """A tiny random model; ``attn=None`` takes transformers' default attention (sdpa where the
    architecture has it), "eager" the reference implementation. ``dtype=EXACT`` builds it in
    float64 (weights and the constants made at init, e.g. Gemma's embedding scale), for comparing
    two computations that should be equal (see ``EXACT``)."""
    if dtype == EXACT and name == "modernbert" and attn == "eager":
        # its eager attention takes a float32 softmax of float64 scores, whose masked entries
        # (float64's minimum) become -inf: a fully masked row is NaN and spreads; sdpa has no such step
        attn = "sdpa"
    torch.manual_seed(seed)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == EXACT else torch.float32)  # constants made at init too
    try:
        model = ALL[name](attn)
    finally:
        torch.set_default_dtype(before)
    model.eval()
    return in_exact(model) if dtype == EXACT else model.to(dtype)


# ---- comparing two computations that should be equal ---------------------------------------------
# Cached vs uncached decoding, rewired vs hand-built, batched vs loop: the same arithmetic grouped
# differently, so in float32 they differ by rounding, and by how much depends on how many threads
# split each reduction (SmolLM2 under middle_repeat:n=7: 6.5e-5 to 1.5e-4 in float32 by machine and
# thread count, against the 1e-4 its test used to allow). Such checks run in float64 instead. There
# the same computations differ by ~1e-16 on most tiny models, by up to 4e-8 where the model keeps a
# float32 step inside (DeepSeek-V3's router, GPT-J's attention scores), while a wrong result (two
# entries sharing a KV-cache slot, as transformers 5.24's renamed keyword made happen) moves the
# tiny models' logits (about 0.4 in size) by 0.06 to 0.2. EXACT_ATOL sits more than two orders of
# magnitude from both, so rounding cannot decide the verdict; test_battery.py and
# test_real_models.py run 1 and 2 threads in one process to show it.
EXACT = torch.float64
EXACT_ATOL = 1e-5  # absolute, on float64 logits or hidden states of the tiny models
THREAD_COUNTS = (1, 2)


def in_exact(model):
    """``model`` in float64 (in place). Mixture-of-experts layers leave the grouped-matmul kernel,
    which takes no float64, for transformers' batched-matmul experts (eager where that is missing)."""
    if getattr(model.config, "_experts_implementation", None) not in (None, "eager", "batched_mm") \
            and hasattr(model, "set_experts_implementation"):
        try:
            model.set_experts_implementation("batched_mm")
        except (ValueError, KeyError):
            model.set_experts_implementation("eager")
    return model.to(EXACT)


def assert_same_computation(got: torch.Tensor, want: torch.Tensor, atol: float = EXACT_ATOL) -> None:
    """``got`` equals ``want`` up to float64 rounding (both must be float64: a float32 comparison's
    verdict could depend on the thread count)."""
    assert got.dtype == want.dtype == EXACT, (got.dtype, want.dtype)
    torch.testing.assert_close(got, want, rtol=0, atol=atol)


@contextmanager
def num_threads(n: int):
    """torch's intra-op thread count set to ``n`` inside, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def cached_and_uncached(model, ids, prefill: int):
    """Logits of decoding ``ids`` with the KV cache (a prefill of ``prefill`` tokens, then one token
    at a time) and of one uncached forward, at the same positions: (cached, uncached)."""
    full = model(input_ids=ids, use_cache=False).logits
    out = model(input_ids=ids[:, :prefill], use_cache=True)
    steps = [out.logits[:, -1]]
    for t in range(prefill, ids.shape[1]):
        out = model(input_ids=ids[:, t:t + 1], past_key_values=out.past_key_values, use_cache=True)
        steps.append(out.logits[:, -1])
    return torch.stack(steps, dim=1), full[:, prefill - 1:]
