"""Prompt interpolation (endpoints are the plain generations), GIF / strip writing, and the `fastt2i edit` commands."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from fastt2i.cli import main
from fastt2i.editing import prompt_interpolation, save_frame_strip, save_gif, seed_interpolation
from fastt2i.errors import ConfigError

A, B = "a red heart", "a big blue star with sparkles"


def test_interpolation_endpoints_are_the_plain_generations(pipe):
    frames = prompt_interpolation(pipe, A, B, seed=2, steps=5)
    assert frames.shape == (5, 3, 16, 16)
    plain = pipe.generate([A, B], [2, 2])
    torch.testing.assert_close(frames[0], plain[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(frames[-1], plain[1], atol=1e-4, rtol=0)
    assert (frames[2] - frames[0]).abs().max() > 1e-2 and (frames[2] - frames[-1]).abs().max() > 1e-2
    with pytest.raises(ConfigError):
        prompt_interpolation(pipe, A, B, seed=2, steps=1)


def test_seed_interpolation_goes_from_one_seed_to_the_other(pipe):
    frames = seed_interpolation(pipe, "a cat", 3, 8, steps=4, truncation_psi=0.7)
    assert frames.shape == (4, 3, 16, 16)
    ends = pipe.generate(["a cat", "a cat"], [3, 8], truncation_psi=0.7)
    torch.testing.assert_close(frames[0], ends[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(frames[-1], ends[1], atol=1e-4, rtol=0)
    assert (frames[1] - ends[0]).abs().mean() > 1e-3 and (frames[1] - frames[2]).abs().mean() > 1e-3
    with pytest.raises(ConfigError, match="steps >= 2"):
        seed_interpolation(pipe, "a cat", 0, 1, steps=1)


def test_save_gif_and_strip(tmp_path):
    frames = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    gif = save_gif(frames, tmp_path / "sub" / "a.gif", fps=5)
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.size == (8, 8) and im.n_frames == 4
        assert im.info["duration"] == 200
    with Image.open(save_gif(frames, tmp_path / "b.gif", fps=5, boomerang=True)) as im:
        assert im.n_frames == 6
    with Image.open(save_frame_strip(frames, tmp_path / "s.png")) as im:
        assert im.size == (4 * 10 + 2, 12)
    with pytest.raises(ConfigError):
        save_gif(frames, tmp_path / "c.gif", fps=0)


def test_edit_cli_commands_write_their_files(edit_export, tmp_path, capsys):
    m = str(edit_export)
    assert main(["edit", "interpolate", "--model", m, A, B, "--steps", "3", "-o", str(tmp_path / "i.gif")]) == 0
    with Image.open(tmp_path / "i.gif") as im:
        assert im.n_frames == 3
    with Image.open(tmp_path / "i.png") as im:
        assert im.size == (3 * 18 + 2, 18 + 2)
    assert main(["edit", "mix", "--model", m, A, "--rows", "0-1", "--cols", "4-6", "--cutoff", "3",
                 "-o", str(tmp_path / "m.png")]) == 0
    with Image.open(tmp_path / "m.png") as im:
        assert im.size == (4 * 18 + 2, 3 * 18 + 2)
    assert main(["edit", "truncation", "--model", m, A, "--seeds", "0-2", "--psi", "1,0",
                 "-o", str(tmp_path / "t.png")]) == 0
    with Image.open(tmp_path / "t.png") as im:
        assert im.size == (2 * 18 + 2, 3 * 18 + 2)
    assert main(["edit", "prompt-mix", "--model", m, "--part", "0:4", A, "--part", "4:", B,
                 "-o", str(tmp_path / "p.png")]) == 0
    with Image.open(tmp_path / "p.png") as im:
        assert im.size == (3 * 18 + 2, 18 + 2)
    capsys.readouterr()
    assert main(["edit", "prompt-mix", "--model", m, "--part", "0:3", A, "-o", str(tmp_path / "q.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: styles [3, 4, 5, 6, 7] are in no layer range")
    assert main(["edit"]) == 2
