"""Paella (Rampas et al. 2022, v3): f=4 VQGAN tokenizer, token predictor, renoising scheduler, presets."""

from fastt2i.models.paella.patchgan import PatchGAN, PatchGANConfig
from fastt2i.models.paella.quantizer import QuantizerOutput, VectorQuantizer
from fastt2i.models.paella.vqgan import VQGAN, VQGAN_PRESETS, VQGANConfig

__all__ = [
    "PatchGAN",
    "PatchGANConfig",
    "QuantizerOutput",
    "VQGAN",
    "VQGAN_PRESETS",
    "VQGANConfig",
    "VectorQuantizer",
]

# H2 (token predictor)
from fastt2i.models.paella.config import PaellaConfig  # noqa: E402
from fastt2i.models.paella.conditioning import ConditionDropout, PaellaCondition, PaellaConditioner  # noqa: E402
from fastt2i.models.paella.conditioning import cat_conditions, null_condition, sample_dropout  # noqa: E402
from fastt2i.models.paella.denoiser import PaellaDenoiser, count_parameters  # noqa: E402
from fastt2i.models.paella.presets import PAELLA_PRESETS  # noqa: E402

__all__ += ["ConditionDropout", "PAELLA_PRESETS", "PaellaCondition", "PaellaConditioner", "PaellaConfig",
            "PaellaDenoiser", "cat_conditions", "count_parameters", "null_condition", "sample_dropout"]

# H3 (sampler)
from fastt2i.models.paella.schedule import RenoiseScheduler, cfg_logits  # noqa: E402

__all__ += ["RenoiseScheduler", "cfg_logits"]
