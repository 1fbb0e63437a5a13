"""`step_seconds`: the CPU step-time benchmark behind the presets' cost notes, for every family that has one."""

from __future__ import annotations

import pytest

from fastt2i.training.presets import families
from fastt2i.training import gigagan, paella, vqgan


@pytest.mark.parametrize("family,module", [("gigagan", gigagan), ("paella", paella), ("vqgan", vqgan)])
def test_step_seconds_times_the_requested_steps(family, module, monkeypatch):
    calls = []
    trainer_cls = {"gigagan": gigagan.GigaGANTrainer, "paella": paella.PaellaTrainer,
                   "vqgan": vqgan.VQGANTrainer}[family]
    real = trainer_cls.train_step
    monkeypatch.setattr(trainer_cls, "train_step",
                        lambda self, batch, step: calls.append((step, sorted(batch))) or real(self, batch, step))
    times = module.step_seconds(families()[family].presets["tiny"](), steps=2, warmup=1)
    assert len(times) == 2 and all(t > 0 for t in times)
    assert [s for s, _ in calls] == [0, 1, 2]  # warm-up step untimed, then the timed ones
    keys = ["image"] if family == "vqgan" else ["caption", "image"]
    assert all(k == keys for _, k in calls)
