"""CLIP text tower (transformers CLIPTextModelWithProjection) and its seeded tiny-random variant for tests."""

from __future__ import annotations

from pathlib import Path

import torch

from fastt2i.errors import AssetNotFoundError
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
from fastt2i.text.base import TextEmbedding

CLIP_DEFAULT = "openai/clip-vit-large-patch14"
_CLIP_TYPES = ("clip", "clip_text_model")


class CLIPEncoder(HFTextEncoder):
    """The text tower of a CLIP model.

    tokens = last hidden state after the final layer norm [B, L, hidden] (causal attention, so real tokens never see
    padding); mask = attention mask (start and end-of-text tokens included, L <= 77 for OpenAI CLIP);
    pooled = the hidden state at the end-of-text token passed through `text_projection` [B, projection_dim]
    (CLIP's `text_embeds`, not normalised) when the checkpoint has a projection, otherwise the un-projected
    end-of-text hidden state [B, hidden] (check `projected`).

    Use `CLIPEncoder.from_pretrained(source)` to load; a full CLIP checkpoint (text + vision) or a text-only one both
    work (the vision weights are ignored).

    Args:
        model: a transformers CLIPTextModelWithProjection.
        tokenizer: its tokenizer.
        projected: whether `text_projection` holds trained weights (else pooled is the raw end-of-text state).
        max_length: tokens kept per text (<= the model's max_position_embeddings).
        weights_id: identity of the weights (see TextEncoder.identity).
        trainable: let gradients flow into the encoder (default frozen).
        name: registry name recorded in `identity`.
    """

    name = "clip"

    def __init__(self, model, tokenizer, *, projected: bool, max_length: int, weights_id: str,
                 trainable: bool = False, name: str = "clip"):
        super().__init__(model, tokenizer, max_length=max_length, weights_id=weights_id, trainable=trainable)
        self.name = name
        self.projected = projected
        self.dim = model.config.hidden_size
        self.pooled_dim = model.config.projection_dim if projected else model.config.hidden_size
        self._finish_init()

    @classmethod
    def from_pretrained(cls, source: str | Path = CLIP_DEFAULT, max_length: int | None = None,
                        trainable: bool = False) -> CLIPEncoder:
        """Load from a hub id (cache first, fails fast when the hub is unreachable) or a local directory.

        Args:
            source: hub id or directory (default openai/clip-vit-large-patch14, as GigaGAN/StyleGAN-T use).
            max_length: tokens kept per text (default and maximum: max_position_embeddings, 77 for OpenAI CLIP).
            trainable: let gradients flow into the encoder.
        """
        from transformers import AutoConfig, CLIPTextModelWithProjection

        src = resolve_source(str(source), "clip", _CLIP_TYPES)
        config = load_pretrained(AutoConfig.from_pretrained, src, "clip")
        if config.model_type == "clip":  # a full checkpoint: the projection width lives on the outer config
            text_config = config.text_config
            text_config.projection_dim = config.projection_dim
            config = text_config
        model, info = load_pretrained(
            lambda s, **kw: CLIPTextModelWithProjection.from_pretrained(
                s, config=config, output_loading_info=True, **kw
            ),
            src,
            "clip",
        )
        bad = [k for k in info.get("missing_keys", []) if not k.startswith("text_projection")]
        bad += [k if isinstance(k, str) else k[0] for k in info.get("mismatched_keys", [])]
        if bad:
            raise AssetNotFoundError(f"clip: {str(source)!r} lacks or mismatches text-tower weights (e.g. {bad[0]})")
        projected = not any(k.startswith("text_projection") for k in info.get("missing_keys", []))
        limit = model.config.max_position_embeddings
        return cls(
            model,
            load_tokenizer(src, "clip"),
            projected=projected,
            max_length=check_max_length(max_length, limit, limit, "clip"),
            weights_id=source_id(src),
            trainable=trainable,
        )

    def _encode(self, texts: list[str]) -> TextEmbedding:
        ids, attn = self._tokenize(texts)  # [B, L], [B, L]
        out = self.model(input_ids=ids, attention_mask=attn)
        hidden = out.last_hidden_state  # [B, L, hidden]
        if self.projected:
            pooled = out.text_embeds  # [B, projection_dim]
        else:
            eos = attn.sum(dim=1) - 1  # [B] index of the last real token (end-of-text)
            pooled = hidden[torch.arange(len(texts), device=hidden.device), eos]  # [B, hidden]
        return TextEmbedding(tokens=hidden, mask=attn.bool(), pooled=pooled)


def tiny_random_clip(max_length: int | None = None, trainable: bool = False, seed: int = 0) -> CLIPEncoder:
    """A 2-layer CLIP text tower with random weights (seeded): hidden 32, projection 16, 4 heads, 64 positions.

    The tokenizer is the uncased BERT WordPiece vocab shipped with the MiniLM package (vocab_size 30522; [CLS] = 101
    is the start token, [SEP] = 102 the end-of-text token that is pooled), so it works offline. Outputs:
    tokens [B, L, 32], mask [B, L] (L <= 64, [CLS] and [SEP] included), pooled [B, 16]. Builds in well under 1 s.

    Args:
        max_length: tokens kept per text (default and maximum 64).
        trainable: let gradients flow into the encoder (dropout 0.1 on attention when training).
        seed: seed of the random weights.
    """
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    tokenizer = wordpiece_tokenizer()
    config = CLIPTextConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, projection_dim=16,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64, attention_dropout=0.1,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
    )
    model = seeded(seed, lambda: CLIPTextModelWithProjection(config))
    return CLIPEncoder(
        model, tokenizer, projected=True, max_length=check_max_length(max_length, 64, 64, "clip-tiny-random"),
        weights_id=module_id(model, f"seed={seed}"), trainable=trainable, name="clip-tiny-random",
    )
