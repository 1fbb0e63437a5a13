"""The `fastt2i` command: one parser with a subcommand per job (data, train, generate, edit, eval, export, models, upscale,
serve)."""

from __future__ import annotations

import argparse
import sys

from fastt2i import __version__
from fastt2i.errors import Fastt2iError

# Each module exposes `register(subparsers)`, which adds its subcommand and sets `func(args) -> int`.
_SUBCOMMANDS = ["data", "train", "generate", "edit", "eval", "export", "models", "upscale", "serve"]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="fastt2i",
        description="Fast text-to-image synthesis: GigaGAN, StyleGAN-T and Paella.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `fastt2i COMMAND --help` for the options and examples of each command.",
    )
    parser.add_argument("--version", action="version", version=f"fastt2i {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMANDS:
        importlib.import_module(f"fastt2i.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except Fastt2iError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
