"""The `fastt2i` command: help, version, and one-line messages for subcommands without a backend."""

import argparse
import subprocess
import sys

import pytest

from fastt2i.cli import main
from fastt2i.cli._pending import pending


def test_help_lists_all_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ["data", "train", "generate", "edit", "eval", "export"]:
        assert name in out


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "fastt2i", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "fastt2i" in r.stdout


def test_pending_subcommand_prints_one_line_and_fails(capsys):
    parser = argparse.ArgumentParser()
    pending("serve", "serve models", "no server yet")(parser.add_subparsers())
    args, _ = parser.parse_known_args(["serve", "--anything", "x"])
    assert args.func(args) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fastt2i serve: no backend yet (no server yet)."]


def test_user_errors_print_one_line_not_a_traceback(capsys, monkeypatch):
    from fastt2i.errors import DataError
    import fastt2i.cli as cli

    def boom(args):
        raise DataError("no images under /nowhere")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser.set_defaults(func=boom)
    assert cli.main([]) == 2
    assert capsys.readouterr().err.strip() == "error: no images under /nowhere"
