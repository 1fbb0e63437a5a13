"""GigaGAN generator presets: every preset builds on `meta`, ablation rows add one component each, paper = 652.5M."""

from __future__ import annotations

import pytest
import torch

from fastt2i.config import from_dict, to_dict
from fastt2i.models.gigagan import GIGAGAN_PRESETS, GigaGANGenerator, GigaGANGeneratorConfig
from fastt2i.nn.attention import CrossAttention, SelfAttention

PAPER_G_PARAMS = 652.5e6  # GigaGAN 64 px text-to-image generator (Kang et al. 2023)


def _meta_count(cfg: GigaGANGeneratorConfig) -> tuple[GigaGANGenerator, int]:
    with torch.device("meta"):
        g = GigaGANGenerator(cfg)
    return g, sum(p.numel() for p in g.parameters())


def test_paper_preset_has_the_papers_parameter_count():
    cfg = GIGAGAN_PRESETS.build("paper")
    g, n = _meta_count(cfg)
    print(f"gigagan paper G params: {n/1e6:.1f}M")
    assert abs(n - PAPER_G_PARAMS) / PAPER_G_PARAMS < 0.05
    assert next(g.parameters()).device.type == "meta"
    assert cfg.resolution == 64 and cfg.z_dim == 128 and cfg.text_dim == 768 and cfg.num_outputs == 5


@pytest.mark.parametrize("name", GIGAGAN_PRESETS.names())
def test_every_preset_builds_and_round_trips_as_json(name):
    cfg = GIGAGAN_PRESETS.build(name)
    assert from_dict(GigaGANGeneratorConfig, to_dict(cfg)) == cfg
    _, n = _meta_count(cfg)
    print(f"gigagan {name} G params: {n/1e6:.2f}M")
    assert n > 0


def test_ablation_rows_switch_on_one_component_each():
    rows = ["ablation-1-stylegan2", "ablation-2-attention", "ablation-3-adaptive-kernels", "ablation-4-depth",
            "ablation-5-multiscale"]
    cfgs = [GIGAGAN_PRESETS.build(r) for r in rows]
    base, attn, kern, depth, multi = cfgs
    assert not base.attention and not base.cross_attention and base.num_kernels == 1 and not base.kernels
    assert base.num_outputs == 1
    assert attn.attention and attn.cross_attention and attn.attention_type == "l2"
    assert max(kern.kernels) > 1 and not attn.kernels
    assert sum(depth.blocks_at(i) for i in range(5)) > sum(kern.blocks_at(i) for i in range(5))
    assert multi.multiscale and multi.num_outputs == 5 and depth.num_outputs == 1
    g_base, _ = _meta_count(base)
    assert not any(isinstance(m, (SelfAttention, CrossAttention)) for m in g_base.synthesis.modules())
    g_attn, _ = _meta_count(attn)
    assert any(isinstance(m, CrossAttention) for m in g_attn.synthesis.modules())


def test_tiny_and_emoji64_run():
    torch.manual_seed(0)
    for name, batch in (("tiny", 2), ("emoji64", 1)):
        cfg = GIGAGAN_PRESETS.build(name)
        g = GigaGANGenerator(cfg)
        text = (torch.randn(batch, 4, cfg.text_dim), torch.ones(batch, 4, dtype=torch.bool),
                torch.randn(batch, cfg.pooled_width))
        out = g(torch.randn(batch, cfg.z_dim), text)
        assert out[0].shape == (batch, 3, cfg.resolution, cfg.resolution) and len(out) == cfg.num_outputs
        assert all(torch.isfinite(o).all() for o in out)
