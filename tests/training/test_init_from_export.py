"""`train.init_from` naming an export or a bundled model (GANs, Paella): the generator and its EMA start from the
export's weights, D and the optimisers fresh, step 0; `d_warmup_kimg` trains D alone first; mismatches are refused."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from toy_trainer import ToyRunConfig, ToyTrainer

from fastt2i.errors import ConfigError
from fastt2i.inference.loader import resolve_model
from fastt2i.models.gigagan import GigaGANGenerator
from fastt2i.models.paella.denoiser import PaellaDenoiser
from fastt2i.models.stylegan_t import StyleGANTGenerator
from fastt2i.training import TrainConfig, latest_state, load_state
from fastt2i.training.gigagan import GigaGANTrainer
from fastt2i.training.paella import PaellaTrainer, random_tiny_vqgan
from fastt2i.training.presets import families
from fastt2i.training.stylegan_t import StyleGANTTrainer

FAMILIES = {"gigagan": (GigaGANTrainer, GigaGANGenerator), "stylegan-t": (StyleGANTTrainer, StyleGANTGenerator)}


def tiny(family: str, run_dir, data, **kw):
    cfg = families()[family].presets["tiny"]()
    train = dataclasses.replace(cfg.train, run_dir=str(run_dir), data=str(data), sample_kimg=0, eval_kimg=0,
                                **kw.pop("train", {}))
    return dataclasses.replace(cfg, train=train, **kw)


def run(family: str, cfg):
    torch.manual_seed(0)
    result = FAMILIES[family][0](cfg, tensorboard=False, progress=False).run()
    assert result.finished
    return result


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def source(request, tmp_path_factory, npz_data):
    """(family, a finished tiny run's export dir)."""
    family = request.param
    root = tmp_path_factory.mktemp(f"src-{family}")
    run(family, tiny(family, root / "src", npz_data, train={"kimg": 0.016}))
    return family, root / "src" / "export"


def test_g_and_ema_start_from_the_export_and_warmup_trains_d_alone(tmp_path, source, npz_data):
    family, export = source
    weights = FAMILIES[family][1].from_pretrained(export).state_dict()
    # the whole run in D warm-up: G and its EMA end exactly as the export, D has trained, no G loss was logged
    cfg = tiny(family, tmp_path / "warm", npz_data, d_warmup_kimg=1.0,
               train={"kimg": 0.024, "init_from": str(export)})
    result = run(family, cfg)
    assert result.step == 3  # a new run: step and images shown from 0
    state = load_state(latest_state(tmp_path / "warm"))
    for k, v in weights.items():
        assert torch.equal(state["trainer"]["G"][k], v), k
        assert torch.equal(state["ema"]["G"][k], v), k
    fresh = FAMILIES[family][0](tiny(family, tmp_path / "fresh", npz_data), tensorboard=False, progress=False)
    torch.manual_seed(0)
    fresh.setup()
    d0 = fresh.unwrap(fresh.D).state_dict()
    assert any(not torch.equal(v, d0[k]) for k, v in state["trainer"]["D"].items() if v.is_floating_point())
    logs = [json.loads(line) for line in (tmp_path / "warm" / "log.jsonl").read_text().splitlines()]
    assert logs and all(not any(k.startswith("loss/g_") for k in r) for r in logs)
    assert all(any(k.startswith("loss/d") for k in r) for r in logs)
    # without the warm-up G trains from the first step
    moved = tiny(family, tmp_path / "moved", npz_data, train={"kimg": 0.016, "init_from": str(export)})
    run(family, moved)
    g = load_state(latest_state(tmp_path / "moved"))["trainer"]["G"]
    assert any(not torch.equal(g[k], v) for k, v in weights.items() if v.is_floating_point())
    logs = [json.loads(line) for line in (tmp_path / "moved" / "log.jsonl").read_text().splitlines()]
    assert any(k.startswith("loss/g_") for k in logs[0])


def test_a_run_dir_with_an_export_but_no_state_is_read_as_its_export(tmp_path, source, npz_data):
    family, export = source
    run_dir = tmp_path / "exported-only"
    (run_dir / "export").mkdir(parents=True)
    for f in export.iterdir():
        (run_dir / "export" / f.name).write_bytes(f.read_bytes())
    cfg = tiny(family, tmp_path / "b", npz_data, d_warmup_kimg=1.0, train={"kimg": 0.008, "init_from": str(run_dir)})
    run(family, cfg)
    weights = FAMILIES[family][1].from_pretrained(export).state_dict()
    g = load_state(latest_state(tmp_path / "b"))["trainer"]["G"]
    assert all(torch.equal(g[k], v) for k, v in weights.items())


def test_another_architecture_or_family_is_refused(tmp_path, source, npz_data):
    family, export = source
    cfg = tiny(family, tmp_path / "wide", npz_data, train={"kimg": 0.008, "init_from": str(export)})
    gen = cfg.generator
    wider = tuple(c * 2 for c in gen.channels) if isinstance(gen.channels, tuple) else gen.channels * 2
    cfg = dataclasses.replace(cfg, generator=dataclasses.replace(gen, channels=wider))
    with pytest.raises(ConfigError, match=r"train\.init_from: .*generator differs from this run's \(channels: "):
        FAMILIES[family][0](cfg, tensorboard=False, progress=False).run()
    other = "stylegan-t" if family == "gigagan" else "gigagan"
    cfg = tiny(other, tmp_path / "other", npz_data, train={"kimg": 0.008, "init_from": str(export)})
    with pytest.raises(ConfigError, match=r"train\.init_from: .* holds a '.*' model; this run trains a"):
        FAMILIES[other][0](cfg, tensorboard=False, progress=False).run()


def test_a_bundled_name_resolves_and_a_family_without_export_support_refuses_it(tmp_path):
    # the GAN bundles are the emoji64 presets' generators: a fine-tune of the bundle uses that preset
    for family, name in (("gigagan", "gigagan-emoji64"), ("stylegan-t", "stylegan-t-emoji64")):
        meta = json.loads((resolve_model(name) / "config.json").read_text())
        assert meta["config"] == json.loads(json.dumps(dataclasses.asdict(
            families()[family].presets["emoji64"]().generator))), name
    cfg = ToyRunConfig(train=TrainConfig(run_dir=str(tmp_path / "toy"), resolution=8, batch_size=4, kimg=0.008,
                                         sample_kimg=0, eval_kimg=0, num_workers=0, init_from="gigagan-emoji64"))
    with pytest.raises(ConfigError, match=r"gigagan-emoji64 is an export, and ToyTrainer starts only from a training"):
        ToyTrainer(cfg, synthetic=True, progress=False, tensorboard=False).run()
    missing = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init_from=str(tmp_path / "nowhere")))
    with pytest.raises(ConfigError, match=r"nowhere is neither a training state file, a run directory .* nor a "
                                          r"bundled model \(.*gigagan-emoji64"):
        ToyTrainer(missing, synthetic=True, progress=False, tensorboard=False).run()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_d_warmup_kimg_must_be_finite_and_not_negative(family):
    make = families()[family].presets["tiny"]
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="d_warmup_kimg must be a finite number >= 0"):
            dataclasses.replace(make(), d_warmup_kimg=bad)


def test_paella_starts_its_token_model_from_a_bundle_on_that_bundles_vqgan(tmp_path, npz_data):
    paella = families()["paella"].presets["tiny"]

    def cfg(name, **train):
        c = paella()
        return dataclasses.replace(c, train=dataclasses.replace(
            c.train, run_dir=str(tmp_path / name), data=str(npz_data), sample_kimg=0, eval_kimg=0, **train))

    torch.manual_seed(0)
    assert PaellaTrainer(cfg("src", kimg=0.016), tensorboard=False, progress=False).run().finished
    bundle = tmp_path / "src" / "export"
    weights = PaellaDenoiser.from_pretrained(bundle / "denoiser").state_dict()
    trainer = PaellaTrainer(cfg("ft", kimg=0.008, init_from=str(bundle)), tensorboard=False, progress=False)
    trainer.setup()
    assert trainer._resume() == bundle and trainer.step == 0
    for k, v in weights.items():
        assert torch.equal(trainer.denoiser.state_dict()[k], v) and torch.equal(trainer.denoiser_ema.state_dict()[k], v)
    # another VQGAN than the bundle's is refused: the token model knows only its own codebook
    other = tmp_path / "other-vqgan"
    random_tiny_vqgan(paella().model.codebook_size, seed=1).save_pretrained(other)
    wrong = dataclasses.replace(cfg("wrong", kimg=0.008, init_from=str(bundle)), vqgan=str(other))
    with pytest.raises(ConfigError, match=r"token model was trained on its own VQGAN, not on .*other-vqgan.*: set "
                                          r"vqgan=.*export/vqgan"):
        PaellaTrainer(wrong, tensorboard=False, progress=False).run()
