"""Export format: save_pretrained -> from_pretrained/load_pretrained round trip is exact; clear errors otherwise."""

from __future__ import annotations

import json
import resource
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from fastt2i import __version__
from fastt2i.assets import asset_path
from fastt2i.errors import AssetNotFoundError, ConfigError
from fastt2i.models import load_pretrained
from fastt2i.serialization import FORMAT_VERSION, MODEL_CLASSES, PretrainedMixin, read_export_config, register_model


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
    with pytest.raises(ConfigError, match=r"holds a 'no-such-model' model, which no imported module registers"):
        load_pretrained(out)
    (out / "config.json").write_text(json.dumps({**meta, "config": {"dim": 6, "depth": 2}}))
    with pytest.raises(ConfigError, match=r"does not match TinyTied .*unexpected \['blocks\.2\.bias', 'blocks\.2\.w"):
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


def test_tied_weights_are_stored_once(model, tmp_path):
    out = model.save_pretrained(tmp_path / "export")
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        names = set(f.keys())
    assert "embed.weight" in names and "head.weight" not in names  # one copy of the tied tensor
    assert names | {"head.weight"} == set(model.state_dict())


def test_exports_written_with_aliases_metadata_still_load(model, tmp_path):
    """The format before `save_model`: one copy per shared tensor, the others named in an "aliases" JSON entry."""
    out = model.save_pretrained(tmp_path / "export", text_encoder="minilm")
    meta = json.loads((out / "config.json").read_text())
    state = {k: v.contiguous().clone() for k, v in model.state_dict().items() if k != "head.weight"}
    old_meta = {"format": "pt", "fastt2i": json.dumps(meta), "aliases": json.dumps({"head.weight": "embed.weight"})}
    save_file(state, str(out / "model.safetensors"), metadata=old_meta)
    loaded = load_pretrained(out)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert loaded.head.weight.data_ptr() == loaded.embed.weight.data_ptr()


@pytest.mark.parametrize("name", ["gigagan-emoji64", "emoji-clip", "emoji-net"])
def test_bundled_exports_load(name):
    model = load_pretrained(asset_path(name))
    assert type(model).model_name == read_export_config(asset_path(name))["class"]


def _address_space_limit(extra_bytes: int):
    """Soft RLIMIT_AS at the current virtual size + `extra_bytes` (restored by the caller)."""
    vm = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
              if line.startswith("VmSize:"))
    old = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra_bytes, old[1]))
    return old


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc for the memory limit")
def test_huge_config_is_refused_before_allocating(model, tmp_path):
    """dim=100_000 asks for three 10^10-parameter layers (120 GB): the header check refuses it without allocating."""
    out = model.save_pretrained(tmp_path / "export")
    meta = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**meta, "config": {"dim": 100_000, "depth": 3}}))
    old = _address_space_limit(2 << 30)  # allocating even one of the layers (40 GB) would fail under this limit
    try:
        with pytest.raises(ConfigError, match=r"wrong shapes \['blocks\.0\.bias \(6,\) vs \(100000,\)"):
            load_pretrained(out)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)
