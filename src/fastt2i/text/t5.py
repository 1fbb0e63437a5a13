"""T5 and ByT5 encoders (transformers T5EncoderModel, encoder only) and their seeded tiny-random variants."""

from __future__ import annotations

from pathlib import Path

from fastt2i.text._hf import (
    HFTextEncoder,
    check_max_length,
    load_pretrained,
    load_tokenizer,
    module_id,
    resolve_source,
    seeded,
    source_id,
    wordpiece_tokenizer,
)
from fastt2i.text.base import TextEmbedding, masked_mean

T5_DEFAULT = "google/t5-v1_1-xl"
BYT5_DEFAULT = "google/byt5-xl"
_T5_TYPES = ("t5", "mt5", "umt5")


class T5Encoder(HFTextEncoder):
    """The encoder half of a T5 / ByT5 model.

    tokens = last hidden state of the encoder (after its final RMS norm) [B, L, d_model]; mask = attention mask (the
    closing </s> included); pooled = mean of the tokens over the mask [B, d_model] (not normalised).
    T5 has relative positions, so max_length is a choice, not a limit: default 128 tokens for T5 (sentencepiece
    pieces) and 256 for ByT5 (UTF-8 bytes).

    Use `T5Encoder.from_pretrained(source)` to load (full encoder-decoder checkpoints work; the decoder is ignored).

    Args:
        model: a transformers T5EncoderModel.
        tokenizer: its tokenizer.
        max_length: tokens kept per text.
        weights_id: identity of the weights (see TextEncoder.identity).
        trainable: let gradients flow into the encoder (default frozen).
        name: registry name recorded in `identity` (t5, byt5, ...).
    """

    name = "t5"

    def __init__(self, model, tokenizer, *, max_length: int, weights_id: str, trainable: bool = False,
                 name: str = "t5"):
        super().__init__(model, tokenizer, max_length=max_length, weights_id=weights_id, trainable=trainable)
        self.name = name
        self.dim = self.pooled_dim = model.config.d_model
        self._finish_init()

    @classmethod
    def from_pretrained(cls, source: str | Path = T5_DEFAULT, max_length: int | None = None,
                        trainable: bool = False, name: str = "t5") -> T5Encoder:
        """Load from a hub id (cache first, fails fast when the hub is unreachable) or a local directory.

        Args:
            source: hub id or directory (defaults: google/t5-v1_1-xl for t5, google/byt5-xl for byt5).
            max_length: tokens kept per text (default 128 for t5, 256 for byt5).
            trainable: let gradients flow into the encoder.
            name: `t5` or `byt5` (sets the default max_length and the identity).
        """
        from transformers import T5EncoderModel

        src = resolve_source(str(source), name, _T5_TYPES)
        model = load_pretrained(T5EncoderModel.from_pretrained, src, name)
        return cls(
            model,
            load_tokenizer(src, name),
            max_length=check_max_length(max_length, 256 if name == "byt5" else 128, None, name),
            weights_id=source_id(src),
            trainable=trainable,
            name=name,
        )

    def _encode(self, texts: list[str]) -> TextEmbedding:
        ids, attn = self._tokenize(texts)  # [B, L], [B, L]
        hidden = self.model(input_ids=ids, attention_mask=attn).last_hidden_state  # [B, L, d_model]
        mask = attn.bool()  # [B, L]
        return TextEmbedding(tokens=hidden, mask=mask, pooled=masked_mean(hidden, mask))  # pooled [B, d_model]


def _tiny_t5(vocab_size: int, pad_id: int, eos_id: int, seed: int):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, dropout_rate=0.1,
        feed_forward_proj="gated-gelu", pad_token_id=pad_id, eos_token_id=eos_id, decoder_start_token_id=pad_id,
        tie_word_embeddings=False,
    )
    return seeded(seed, lambda: T5EncoderModel(config))


def tiny_random_t5(max_length: int | None = None, trainable: bool = False, seed: int = 0) -> T5Encoder:
    """A 2-layer T5 v1.1-style encoder (gated-GELU) with random weights (seeded): d_model 32, 4 heads.

    The tokenizer is the uncased BERT WordPiece vocab shipped with the MiniLM package (vocab_size 30522, so each text
    is `[CLS] ... [SEP]` rather than T5's `... </s>`), so it works offline. Outputs: tokens [B, L, 32],
    mask [B, L] (L <= max_length, default 64), pooled [B, 32] (masked mean). Builds in well under 1 s.

    Args:
        max_length: tokens kept per text (default 64).
        trainable: let gradients flow into the encoder (dropout 0.1 when training).
        seed: seed of the random weights.
    """
    tokenizer = wordpiece_tokenizer()
    model = _tiny_t5(tokenizer.vocab_size, tokenizer.pad_token_id, tokenizer.sep_token_id, seed)
    return T5Encoder(
        model, tokenizer, max_length=check_max_length(max_length, 64, None, "t5-tiny-random"),
        weights_id=module_id(model, f"seed={seed}"), trainable=trainable, name="t5-tiny-random",
    )


def tiny_random_byt5(max_length: int | None = None, trainable: bool = False, seed: int = 0) -> T5Encoder:
    """A 2-layer ByT5-style encoder with random weights (seeded): d_model 32, 4 heads, byte vocab 384.

    The tokenizer is transformers' ByT5Tokenizer (needs no files: UTF-8 bytes + 3, then </s> = 1; pad = 0).
    Outputs: tokens [B, L, 32] with L = bytes + 1 (<= max_length, default 64), mask [B, L], pooled [B, 32].

    Args:
        max_length: bytes kept per text, </s> included (default 64).
        trainable: let gradients flow into the encoder (dropout 0.1 when training).
        seed: seed of the random weights.
    """
    from transformers import ByT5Tokenizer

    tokenizer = ByT5Tokenizer()
    tokenizer.padding_side = "right"
    model = _tiny_t5(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, seed)
    return T5Encoder(
        model, tokenizer, max_length=check_max_length(max_length, 64, None, "byt5-tiny-random"),
        weights_id=module_id(model, f"seed={seed}"), trainable=trainable, name="byt5-tiny-random",
    )
