"""Export format: save_pretrained -> from_pretrained/load_pretrained round trip is exact; clear errors otherwise."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from safetensors import safe_open
from torch import nn

from fastt2i import __version__
from fastt2i.errors import AssetNotFoundError, ConfigError
from fastt2i.inference import FORMAT_VERSION, MODEL_CLASSES, PretrainedMixin, load_pretrained, register_model


@dataclass(frozen=True)
class TinyConfig:
    """Config of the test model."""

    dim: int = 6
    depth: int = 2


class TinyTied(PretrainedMixin, nn.Module):
    """Embedding tied to the output layer (shared tensor), a non-contiguous buffer and a view buffer."""

    config_class = TinyConfig

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(10, config.dim)
        self.blocks = nn.ModuleList(nn.Linear(config.dim, config.dim) for _ in range(config.depth))
        self.head = nn.Linear(config.dim, 10, bias=False)
        self.head.weight = self.embed.weight  # tied: one storage, two state-dict names
        self.register_buffer("mix", torch.randn(config.dim, config.dim).t())  # non-contiguous
        self.register_buffer("scale_view", self.mix.new_ones(config.dim * 2)[:config.dim])  # view into a larger storage

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)  # [B,L,D]
        for blk in self.blocks:
            h = torch.tanh(blk(h @ self.mix)) * self.scale_view  # [B,L,D]
        return self.head(h)  # [B,L,10]


class Other(PretrainedMixin, nn.Module):
    """A second registered class, for class-mismatch errors."""

    config_class = TinyConfig

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.lin = nn.Linear(config.dim, 1)


for _name, _cls in (("test-tiny-tied", TinyTied), ("test-other", Other)):
    if _name not in MODEL_CLASSES:
        register_model(_name)(_cls)


@pytest.fixture()
def model() -> TinyTied:
    torch.manual_seed(0)
    m = TinyTied(TinyConfig(dim=6, depth=3)).eval()
    with torch.no_grad():
        m.scale_view.mul_(torch.linspace(0.5, 1.5, 6))
    return m


def test_round_trip_is_exact(model, tmp_path):
    out = model.save_pretrained(tmp_path / "export", text_encoder="minilm")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp dir renamed away
    meta = json.loads((out / "config.json").read_text())
    assert meta == {"class": "test-tiny-tied", "format_version": FORMAT_VERSION, "fastt2i_version": __version__,
                    "text_encoder": "minilm", "config": {"dim": 6, "depth": 3}}
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert json.loads(f.metadata()["fastt2i"]) == meta  # the config also travels inside the weights file
    tokens = torch.randint(0, 10, (2, 5))
    for loaded in (TinyTied.from_pretrained(out), load_pretrained(out)):
        assert type(loaded) is TinyTied and loaded.config == model.config and not loaded.training
        assert loaded.text_encoder_spec == "minilm"
        sd, ref = loaded.state_dict(), model.state_dict()
        assert sd.keys() == ref.keys()
        for k in ref:
            assert torch.equal(sd[k], ref[k]), k
        assert loaded.head.weight.data_ptr() == loaded.embed.weight.data_ptr()  # still tied
        assert torch.equal(loaded(tokens), model(tokens))


def test_dtype_and_overwrite(model, tmp_path):
    model.save_pretrained(tmp_path / "e")
    model.save_pretrained(tmp_path / "e")  # replacing an export works
    m64 = load_pretrained(tmp_path / "e", dtype=torch.float64)
    assert m64.embed.weight.dtype == torch.float64
    assert json.loads((tmp_path / "e" / "config.json").read_text())["text_encoder"] is None


def test_wrong_class_version_and_missing_files(model, tmp_path):
    out = model.save_pretrained(tmp_path / "export")
    with pytest.raises(ConfigError, match=r"holds a 'test-tiny-tied' model, not 'test-other' \(Other\)"):
        Other.from_pretrained(out)
    meta = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**meta, "format_version": 2}))
    with pytest.raises(ConfigError, match=r"format version 2 .* reads version 1"):
        load_pretrained(out)
    (out / "config.json").write_text(json.dumps({**meta, "class": "no-such-model"}))
    with pytest.raises(ConfigError, match=r"unknown model class 'no-such-model'"):
        load_pretrained(out)
    (out / "config.json").write_text(json.dumps({**meta, "config": {"dim": 6, "depth": 2}}))
    with pytest.raises(ConfigError, match=r"does not match TinyTied .*unexpected \['blocks\.2\.bias', 'blocks\.2\.weight'"):
        load_pretrained(out)
    (out / "config.json").write_text(json.dumps({**meta, "config": {"dim": 4, "depth": 3}}))
    with pytest.raises(ConfigError, match=r"wrong shapes \['blocks\.0\.bias \(6,\) vs \(4,\)"):
        load_pretrained(out)
    (out / "config.json").write_text(json.dumps({**meta, "config": {"dim": 6, "width": 2}}))
    with pytest.raises(ConfigError, match="unknown field"):
        load_pretrained(out)
    with pytest.raises(AssetNotFoundError, match="not a fastt2i export"):
        load_pretrained(tmp_path / "missing")
    (out / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_pretrained(out)


def test_unregistered_or_configless_models_cannot_be_saved(tmp_path):
    class Loose(PretrainedMixin, nn.Module):
        config_class = TinyConfig

        def __init__(self, config):
            super().__init__()
            self.config = config

    with pytest.raises(ConfigError, match="not registered"):
        Loose(TinyConfig()).save_pretrained(tmp_path / "x")
    m = TinyTied(TinyConfig())
    m.config = {"dim": 6}
    with pytest.raises(ConfigError, match="must be a TinyConfig instance"):
        m.save_pretrained(tmp_path / "x")
    with pytest.raises(ConfigError, match="must subclass nn.Module and PretrainedMixin"):
        register_model("bad")(TinyConfig)
