"""Tokenization with lm-evaluation-harness's rules, so our token ids are exactly lm-eval's.

Why it matters: a loglikelihood depends on where the context ends and the continuation begins
in *token* space. lm-eval (``api/model.py: _encode_pair``, ``models/huggingface.py: tok_encode``)

* moves trailing spaces of the context onto the continuation;
* encodes ``context + continuation`` as one string and takes the continuation as the tokens
  after ``len(encode(context))`` (so a merge across the boundary goes to the continuation);
* encodes with the tokenizer's default special tokens (``add_bos_token=None``): a tokenizer
  that adds BOS adds it, one that does not, does not; a string that already starts with the
  BOS text is encoded without adding another;
* for an empty context, uses the BOS (else EOS) token as the context;
* truncates from the left to the model's maximum length (config ``n_positions``,
  ``max_position_embeddings``, ``n_ctx``, else the tokenizer's ``model_max_length``, else 2048).
"""

from __future__ import annotations

from dataclasses import dataclass

TOKENIZER_INFINITY = 1000000000000000019884624838656
DEFAULT_MAX_LENGTH = 2048


def max_length(config, tokenizer) -> int:
    """lm-eval ``resolve_max_length``."""
    cfg = getattr(config, "text_config", None) or config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, attr, None)
        if value is not None:
            return int(value)
    model_max = getattr(tokenizer, "model_max_length", None)
    if model_max is not None and model_max != TOKENIZER_INFINITY:
        return int(model_max)
    return DEFAULT_MAX_LENGTH


@dataclass(frozen=True)
class EncodedPair:
    context: tuple[int, ...]
    continuation: tuple[int, ...]


class Encoder:
    """A tokenizer seen through lm-eval's encoding rules."""

    def __init__(self, tokenizer, model_config=None):
        self.tokenizer = tokenizer
        self.prefix_token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self._prefix_text = tokenizer.decode(self.prefix_token_id) if self.prefix_token_id is not None else None
        self.max_length = max_length(model_config, tokenizer)

    def encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        kwargs = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        if add_special_tokens is None and self._prefix_text and text.startswith(self._prefix_text):
            kwargs = {"add_special_tokens": False}
        return list(self.tokenizer.encode(text, **kwargs))

    def pair(self, context: str, continuation: str) -> EncodedPair:
        if context == "":
            cont = self.encode(continuation, add_special_tokens=False)
            if cont and cont[0] == self.prefix_token_id:
                return EncodedPair(tuple(cont[:1]), tuple(cont[1:]))
            return EncodedPair((self.prefix_token_id,), tuple(cont))
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        return EncodedPair(tuple(ctx), tuple(whole[len(ctx):]))

    def model_input(self, pair: EncodedPair) -> list[int]:
        """The tokens the model reads: context + continuation, left-truncated, minus the last."""
        return list((pair.context + pair.continuation)[-(self.max_length + 1):][:-1])
