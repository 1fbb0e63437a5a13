"""Subcommands whose backend (a model family) is not in the library yet: they say so and exit non-zero."""

from __future__ import annotations

import argparse
import sys
from typing import Callable


def pending(name: str, help_text: str, needs: str) -> Callable[[argparse._SubParsersAction], None]:
    """A `register` function for a subcommand that prints one line naming what it waits for, exit 3."""

    def register(sub: argparse._SubParsersAction) -> None:
        p = sub.add_parser(name, help=f"{help_text} (not available yet)", add_help=True)

        def run(args: argparse.Namespace) -> int:
            print(f"fastt2i {name}: no backend yet ({needs}).", file=sys.stderr)
            return 3

        p.set_defaults(func=run, accepts_extra=True)  # options of the future backend are ignored

    return register
