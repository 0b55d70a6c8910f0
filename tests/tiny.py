"""Tiny random models of every supported architecture, for the exactness battery (built in ms).

One row per ``model_type``: the config fields that make it tiny (8 layers, width 32) and whatever
that architecture needs to be exercised fully (Gemma3's and ModernBERT's mixed sliding/full
layers, SmolLM3's layers without RoPE, MoE routing, DeepSeek-V3's latent attention and dense
first layers). Models are built by ``AutoConfig.for_model`` and the Auto classes, as a user's
model would be.
"""

from __future__ import annotations

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


def make(name: str, seed: int = 0, attn: str | None = "eager"):
    """A tiny random model; ``attn=None`` takes transformers' default attention (sdpa where the
    architecture has it), "eager" the reference implementation."""
    torch.manual_seed(seed)
    model = ALL[name](attn)
    model.eval()
    return model


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
