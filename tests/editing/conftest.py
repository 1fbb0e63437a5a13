"""Fixtures for the editing tests: a tiny random GigaGAN export with the t5-tiny-random encoder, loaded as a pipeline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from fastt2i.inference.gigagan import GigaGANPipeline
from fastt2i.models.gigagan import GIGAGAN_PRESETS, GigaGANGenerator


@pytest.fixture(scope="session")
def edit_export(tmp_path_factory) -> Path:
    cfg = dataclasses.replace(GIGAGAN_PRESETS.build("tiny"), text_encoder="t5-tiny-random")
    torch.manual_seed(0)
    g = GigaGANGenerator(cfg)
    with torch.no_grad():
        g.mapping.w_avg.normal_()  # a non-zero unconditional mean, so the truncation formula is exercised
    return g.save_pretrained(tmp_path_factory.mktemp("gg") / "export", text_encoder="t5-tiny-random")


@pytest.fixture(scope="session")
def pipe(edit_export) -> GigaGANPipeline:
    return GigaGANPipeline.from_pretrained(edit_export)
