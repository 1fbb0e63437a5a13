"""`fastt2i serve`: its help, its flags -> ServerConfig, and bad settings refused in one line before any model loads."""

from __future__ import annotations

import pytest

from fastt2i.cli import build_parser, main
from fastt2i.cli.serve import config_from_args


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "fastt2i serve --model" in out and "--max-queue" in out and "127.0.0.1" in out


def test_flags_become_the_server_config():
    args = build_parser().parse_args(["serve", "--model", "gigagan-emoji64", "stylegan-t-emoji64", "--model", "x",
                                      "--max-batch", "1", "--max-queue", "5", "--batch-window-ms", "0",
                                      "--max-upload-mb", "1.5", "--max-prompt-chars", "80"])
    cfg = config_from_args(args)
    assert args.models == ["gigagan-emoji64", "stylegan-t-emoji64", "x"]
    assert (cfg.max_batch, cfg.max_queue, cfg.batch_window_ms, cfg.max_prompt_chars) == (1, 5, 0.0, 80)
    assert cfg.max_upload_bytes == int(1.5 * 2**20)
    assert args.host == "127.0.0.1"


@pytest.mark.parametrize("argv,words", [
    (["serve", "--max-batch", "0"], "max_batch must be >= 1"),
    (["serve", "--max-queue", "-3"], "max_queue must be >= 1"),
    (["serve", "--port", "70000"], "--port"),
    (["serve", "--threads", "0"], "--threads"),
])
def test_bad_settings_are_one_line_errors(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0]
