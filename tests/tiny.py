"""Tiny random models of every supported architecture, for exactness tests (built in ms)."""

from __future__ import annotations

import torch
from transformers import (
    BertConfig, BertModel, GPTNeoXConfig, GPTNeoXForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig,
    LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, MPNetConfig, MPNetModel,
    Qwen2Config, Qwen2ForCausalLM, RobertaConfig, RobertaModel,
)

LAYERS = 8
_COMMON = dict(vocab_size=97, hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=4,
               intermediate_size=48, max_position_embeddings=128)


def _decoder(cfg_cls, model_cls, **extra):
    def make():
        return model_cls(cfg_cls(**_COMMON, num_key_value_heads=2, **extra))
    return make


def _gemma3():
    cfg = Gemma3TextConfig(**_COMMON, num_key_value_heads=2, head_dim=8, sliding_window=4,
                           layer_types=["sliding_attention", "sliding_attention", "full_attention"] * 2
                           + ["sliding_attention", "full_attention"])
    return Gemma3ForCausalLM(cfg)


def _neox():
    return GPTNeoXForCausalLM(GPTNeoXConfig(**_COMMON, rotary_pct=0.5))


DECODERS = {
    "llama": _decoder(LlamaConfig, LlamaForCausalLM),
    "mistral": _decoder(MistralConfig, MistralForCausalLM, sliding_window=None),
    "qwen2": _decoder(Qwen2Config, Qwen2ForCausalLM),
    "gemma3_text": _gemma3,
    "gpt_neox": _neox,
}
ENCODERS = {
    "bert": lambda: BertModel(BertConfig(**_COMMON)),
    "roberta": lambda: RobertaModel(RobertaConfig(**_COMMON, pad_token_id=1)),
    "mpnet": lambda: MPNetModel(MPNetConfig(**_COMMON)),
}
ALL = {**DECODERS, **ENCODERS}


def make(name: str, seed: int = 0):
    torch.manual_seed(seed)
    model = ALL[name]()
    model.eval()
    return model
