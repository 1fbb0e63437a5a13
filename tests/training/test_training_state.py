"""Training-state files: atomic writes, temp files ignored, weights_only loads, pruning, unreadable newest state skipped."""

from __future__ import annotations

import os

import pytest
import torch

from fastt2i.errors import DataError
from fastt2i.training import latest_state, list_states, load_state, prune_states, save_state, state_path


def make_state(step: int) -> dict:
    return {"step": step, "cur_nimg": step * 4, "trainer": {"w": torch.full((3,), float(step))}, "names": ["a", "b"],
            "opt": {"param_groups": [{"lr": 0.1, "betas": (0.9, 0.99)}], "state": {}}}


def test_save_then_load_round_trip(tmp_path):
    path = save_state(make_state(3), state_path(tmp_path, 3))
    assert path == tmp_path / "state" / "state-00000003.pt"
    st = load_state(path)
    assert st["step"] == 3 and torch.equal(st["trainer"]["w"], torch.full((3,), 3.0))
    assert st["opt"]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert os.listdir(tmp_path / "state") == ["state-00000003.pt"]  # no temp file left


def test_crash_between_temp_write_and_rename_keeps_the_previous_state(tmp_path, monkeypatch):
    save_state(make_state(1), state_path(tmp_path, 1))
    target = state_path(tmp_path, 1)

    def crash(src, dst):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_state(make_state(2), target)  # overwrite attempt of the same name
    monkeypatch.undo()
    assert load_state(target)["step"] == 1
    # a temp file left by a process killed mid-write (not cleaned up) is ignored
    (tmp_path / "state" / ".state-00000009.pt.tmp4242").write_bytes(b"partial garbage")
    assert latest_state(tmp_path) == target
    assert [p.name for p in list_states(tmp_path)] == ["state-00000001.pt"]


def test_weights_only_load_refuses_pickled_objects(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "state" / "state-00000001.pt"
    path.parent.mkdir()
    torch.save({"step": 1, "payload": Evil()}, path)
    with pytest.raises(DataError, match="cannot load training state"):
        load_state(path)
    assert not marker.exists()


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_state(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot load training state"):
        load_state(bad)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DataError, match="holds a list"):
        load_state(tmp_path / "list.pt")


def test_prune_keeps_the_newest(tmp_path):
    for s in (5, 10, 100, 20, 1000):
        save_state(make_state(s), state_path(tmp_path, s))
    deleted = prune_states(tmp_path, keep=2)
    assert [p.name for p in list_states(tmp_path)] == ["state-00000100.pt", "state-00001000.pt"]
    assert len(deleted) == 3
    assert prune_states(tmp_path, keep=0) == []  # 0 keeps all
    assert latest_state(tmp_path).name == "state-00001000.pt"
    assert latest_state(tmp_path / "empty") is None


def test_resume_skips_an_unreadable_newest_state(tmp_path, capsys):
    from toy_trainer import ToyRunConfig, ToyTrainer

    from fastt2i.training import TrainConfig

    cfg = ToyRunConfig(train=TrainConfig(run_dir=str(tmp_path), resolution=8, batch_size=4, kimg=0.02,
                                         snapshot_kimg=0.02, sample_kimg=0, num_workers=0))
    ToyTrainer(cfg, synthetic=True, progress=False, tensorboard=False).run()
    state_path(tmp_path, 99).write_bytes(b"corrupt")
    longer = ToyRunConfig(train=TrainConfig(**{**cfg.train.__dict__, "kimg": 0.024}))
    result = ToyTrainer(longer, synthetic=True, progress=False, tensorboard=False).run()
    err = capsys.readouterr().err
    assert "skipping unreadable state" in err and "state-00000099.pt" in err
    assert "resuming from" in err and result.step == 6


@pytest.mark.parametrize("content", [b"", b"not a torch file at all" * 10], ids=["empty", "garbage"])
def test_unreadable_states_give_one_line_errors(tmp_path, content):
    path = tmp_path / "state-00000001.pt"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:  # an empty file used to raise IndexError from the message formatting
        load_state(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    expected = "the file is empty" if not content else "not a complete torch.save file"
    assert expected in msg
