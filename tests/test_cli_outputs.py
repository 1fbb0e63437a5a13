"""Output paths of `generate`, `edit` and `eval`: unique --individual names, and bad destinations refused in one line
before any model is loaded or anything is computed (so no work is lost)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

from fastt2i.cli import main
from fastt2i.errors import ConfigError


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    from fastt2i.models.gigagan import GIGAGAN_PRESETS, GigaGANGenerator

    cfg = dataclasses.replace(GIGAGAN_PRESETS.build("tiny"), text_encoder="t5-tiny-random")
    torch.manual_seed(3)
    return GigaGANGenerator(cfg).save_pretrained(tmp_path_factory.mktemp("gg") / "export",
                                                 text_encoder="t5-tiny-random")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _writable(path: Path) -> bool:
    try:
        if path.is_dir():
            fd = os.open(path / ".probe", os.O_CREAT | os.O_WRONLY | os.O_EXCL)
            os.close(fd)
            os.unlink(path / ".probe")
        else:
            with open(path, "ab"):
                pass
        return True
    except OSError:
        return False


@pytest.fixture
def lock():
    """lock(path): make a file or directory unwritable (modes; `chattr +i` where modes do not bind, as for root)."""
    locked: list[Path] = []

    def _lock(path: Path) -> Path:
        path.chmod(0o555 if path.is_dir() else 0o444)
        locked.append(path)
        if _writable(path) and shutil.which("chattr"):
            subprocess.run(["chattr", "+i", str(path)], capture_output=True)
        if _writable(path):
            pytest.skip("cannot make a path unwritable here (root without chattr +i)")
        return path

    yield _lock
    for p in reversed(locked):
        if shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)
        p.chmod(0o755 if p.is_dir() else 0o644)


# ------------------------------------------------------------------------------------- defect 8: --individual names
def _expected_name(index: int, slug: str, prompt: str, seed: int) -> str:
    h = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8]
    return f"{index:03d}-{slug + '-' if slug else ''}{h}_s{seed}.png"


def test_individual_names_are_unique_readable_and_deterministic(export, tmp_path, capsys):
    prompts = ["a red heart", "A Red Heart!", "a red heart?", "❤️", "猫の顔", "café au lait", "a red heart"]
    slugs = ["a-red-heart", "a-red-heart", "a-red-heart", "", "", "cafe-au-lait", "a-red-heart"]
    d = tmp_path / "ind"
    assert main(["generate", "--model", str(export), *prompts, "--seeds", "0,7", "-o", str(tmp_path / "g.png"),
                 "--individual", str(d), "--device", "cpu"]) == 0
    assert "wrote" in capsys.readouterr().out
    expected = {_expected_name(i, slug, p, s) for i, (p, slug) in enumerate(zip(prompts, slugs)) for s in (0, 7)}
    assert len(expected) == 2 * len(prompts)
    assert {f.name for f in d.iterdir()} == expected
    # two non-ASCII prompts with the same seed are two different images, not one overwritten file
    a = Image.open(d / _expected_name(3, "", prompts[3], 7)).convert("RGB")
    b = Image.open(d / _expected_name(4, "", prompts[4], 7)).convert("RGB")
    assert a.size == (16, 16) and a.tobytes() != b.tobytes()


def test_individual_name_helper_is_deterministic():
    from fastt2i.utils.paths import prompt_file_stem

    assert prompt_file_stem(3, "Red heart!") == "003-red-heart-" + hashlib.sha256(b"Red heart!").hexdigest()[:8]
    assert prompt_file_stem(3, "Red heart!") == prompt_file_stem(3, "Red heart!")
    assert prompt_file_stem(3, "Red heart!") != prompt_file_stem(3, "red heart")
    assert prompt_file_stem(1234, "x", width=4).startswith("1234-x-")
    assert len(prompt_file_stem(0, "word " * 40)) <= 3 + 1 + 40 + 1 + 8


def test_individual_help_documents_the_name_pattern(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines (also at hyphens)
    assert "DIR/INDEX-SLUG-HASH_sSEED.png" in text and "sha256" in text and "003-red-heart-1a2b3c4d_s7.png" in text


# ---------------------------------------------------------------------------------- defect 9: the output checker
def test_checker_accepts_good_paths_and_creates_nothing(tmp_path):
    from fastt2i.utils.paths import check_output_dir, check_output_file

    assert check_output_file(tmp_path / "a" / "b" / "grid.png") == tmp_path / "a" / "b" / "grid.png"
    (tmp_path / "old.JPG").write_bytes(b"keep")
    assert check_output_file(tmp_path / "old.JPG") == tmp_path / "old.JPG"
    assert (tmp_path / "old.JPG").read_bytes() == b"keep"
    assert check_output_file(tmp_path / "m.gif", extensions=[".gif"]) == tmp_path / "m.gif"
    assert check_output_dir(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.JPG"]  # nothing created, no probe left behind


@pytest.mark.parametrize("name,match", [("grid.xyz", "image extension"), ("grid", "image extension"),
                                        ("grid.txt", "image extension")])
def test_checker_refuses_unknown_extensions(tmp_path, name, match):
    from fastt2i.utils.paths import check_output_file

    with pytest.raises(ConfigError, match=match):
        check_output_file(tmp_path / name, flag="-o")
    with pytest.raises(ConfigError, match=r"\.gif"):
        check_output_file(tmp_path / "m.png", flag="-o", extensions=[".gif"])


def _bad_generate_outputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "file.txt").write_text("x")
    (tmp / "dir").mkdir()
    return {
        "directory": (["-o", str(tmp / "dir")], "is a directory"),
        "extension": (["-o", str(tmp / "grid.xyz")], "image extension"),
        "no extension": (["-o", str(tmp / "grid")], "image extension"),
        "parent is a file": (["-o", str(tmp / "file.txt" / "grid.png")], "not a directory"),
        "ancestor is a file": (["-o", str(tmp / "file.txt" / "a" / "grid.png")], "not a directory"),
        "individual is a file": (["-o", str(tmp / "g.png"), "--individual", str(tmp / "file.txt")],
                                 "not a directory"),
        "individual under a file": (["-o", str(tmp / "g.png"), "--individual", str(tmp / "file.txt" / "ind")],
                                    "not a directory"),
    }


@pytest.mark.parametrize("case", ["directory", "extension", "no extension", "parent is a file",
                                  "ancestor is a file", "individual is a file", "individual under a file"])
def test_generate_bad_output_fails_in_one_line_before_loading(tmp_path, capsys, case):
    extra, match = _bad_generate_outputs(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    # the model does not exist: an error about the output (not the model) shows the output was checked first
    rc = main(["generate", "--model", str(tmp_path / "no-such-model"), "a red heart", "--seeds", "0", *extra])
    err = _one_line_error(capsys)
    assert rc == 2 and match in err and "no-such-model" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_generate_unwritable_outputs_fail_before_loading(tmp_path, capsys, lock):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "old.png").write_bytes(b"old")
    lock(ro / "old.png")
    lock(ro)
    for extra in (["-o", str(ro / "grid.png")], ["-o", str(ro / "sub" / "grid.png")], ["-o", str(ro / "old.png")],
                  ["-o", str(tmp_path / "g.png"), "--individual", str(ro / "ind")]):
        rc = main(["generate", "--model", str(tmp_path / "no-such-model"), "a red heart", "--seeds", "0", *extra])
        err = _one_line_error(capsys)
        assert rc == 2 and "cannot write" in err and "no-such-model" not in err, extra
    assert not (tmp_path / "g.png").exists()


def test_generate_output_directory_with_a_real_model_loses_no_work(export, tmp_path, capsys):
    rc = main(["generate", "--model", str(export), "a red heart", "--seeds", "0-1", "-o", str(tmp_path),
               "--device", "cpu"])
    err = _one_line_error(capsys)
    assert rc == 2 and "is a directory" in err and "-o" in err


def test_generate_with_the_default_model_and_a_bad_extension(tmp_path, capsys):
    assert main(["generate", "a red heart", "-o", str(tmp_path / "grid.bogus")]) == 2
    assert "image extension" in _one_line_error(capsys)


# ---------------------------------------------------------------------------------------------- edit outputs
@pytest.mark.parametrize("argv,match", [
    (["truncation", "a red heart", "-o", "{dir}"], "is a directory"),
    (["mix", "a red heart", "-o", "{tmp}/mix.xyz"], "image extension"),
    (["interpolate", "a", "b", "-o", "{tmp}/morph.png"], ".gif"),
    (["interpolate", "a", "b", "-o", "{file}/morph.gif"], "not a directory"),
    (["prompt-mix", "--part", "0:", "a", "-o", "{file}/p.png"], "not a directory"),
    (["variation", "{tmp}/in.png", "-o", "{dir}"], "is a directory"),
    (["inpaint", "{tmp}/in.png", "x", "--mask", "{tmp}/m.png", "-o", "{tmp}/i.xyz"], "image extension"),
    (["outpaint", "{tmp}/in.png", "x", "-o", "{file}/o.png"], "not a directory"),
    (["img2img", "{tmp}/in.png", "x", "-o", "{dir}"], "is a directory"),
])
def test_edit_outputs_are_checked_before_loading(tmp_path, capsys, argv, match):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "dir").mkdir()
    subs = {"tmp": str(tmp_path), "dir": str(tmp_path / "dir"), "file": str(tmp_path / "file.txt")}
    argv = [a.format(**subs) for a in argv]
    rc = main(["edit", argv[0], "--model", str(tmp_path / "no-such-model"), *argv[1:]])
    err = _one_line_error(capsys)
    assert rc == 2 and match in err and "no-such-model" not in err


def test_edit_interpolate_checks_its_png_strip_too(tmp_path, capsys):
    (tmp_path / "morph.png").mkdir()  # the strip would go to morph.png
    rc = main(["edit", "interpolate", "--model", str(tmp_path / "no-such-model"), "a", "b", "-o",
               str(tmp_path / "morph.gif")])
    err = _one_line_error(capsys)
    assert rc == 2 and "morph.png" in err and "is a directory" in err


# ---------------------------------------------------------------------------------------------- eval destination
def test_append_metrics_bad_destination_is_a_config_error(tmp_path):
    from fastt2i.metrics.results import append_metrics

    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        append_metrics(tmp_path / "file.txt", {"metric": "m", "value": 1.0})
    (tmp_path / "run" / "metrics.jsonl").mkdir(parents=True)
    with pytest.raises(ConfigError, match="metrics.jsonl"):
        append_metrics(tmp_path / "run", {"metric": "m", "value": 1.0})


def test_eval_run_dir_is_checked_before_computing(tmp_path, capsys, lock):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "jdir" / "metrics.jsonl").mkdir(parents=True)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "metrics.jsonl").write_text("")
    (tmp_path / "lockeddir").mkdir()
    cases = [(str(tmp_path / "file.txt"), "not a directory"), (str(tmp_path / "file.txt" / "run"), "not a directory"),
             (str(tmp_path / "jdir"), "is a directory")]
    lock(tmp_path / "ro" / "metrics.jsonl")
    lock(tmp_path / "lockeddir")
    cases += [(str(tmp_path / "ro"), "cannot write"), (str(tmp_path / "lockeddir"), "cannot write")]
    for run_dir, match in cases:
        # the data does not exist: an error about --run-dir (not the data) shows the destination was checked first
        rc = main(["eval", "--model", "reference:noise", "--data", str(tmp_path / "no-such-data"),
                   "--metrics", "fd_emojinet", "--num", "4", "--run-dir", run_dir])
        err = _one_line_error(capsys)
        assert rc == 2 and match in err and "--run-dir" in err and "no-such-data" not in err, (run_dir, err)


def test_eval_of_a_run_dir_model_checks_its_metrics_file(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "metrics.jsonl").mkdir()
    rc = main(["eval", "--model", str(run), "--data", str(tmp_path / "no-such-data"), "--metrics", "fd_emojinet",
               "--num", "4"])
    err = _one_line_error(capsys)
    assert rc == 2 and "metrics.jsonl" in err and "is a directory" in err
