"""How every ``hmco`` subcommand is declared: help, an ``examples:`` epilog and ``-v`` (standard library only).

Shared by :mod:`hmco.cli`, :mod:`hmco.cli_schedule` and :mod:`hmco.cli_security`, so building the parser
imports nothing heavy and the three modules do not import each other.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

__all__ = ["command"]


def command(
    sub: Any, name: str, *, help: str, examples: Sequence[str], description: str | None = None
) -> Any:
    """Add the subcommand ``name`` with its help, an ``examples:`` epilog and ``-v`` (also after it).

    Each example is ``"hmco …  # what it does"``; the comment is printed indented below the command.
    """
    lines = ["examples:"]
    for example in examples:
        cmd, _, comment = example.partition("  # ")
        lines.append(f"  {cmd}")
        if comment:
            lines.append(f"      {comment}")
    p = sub.add_parser(
        name,
        help=help,
        description=description or help[0].upper() + help[1:] + ".",
        epilog="\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,  # so that `hmco -v run …` is not reset by the subcommand's default
        help="on failure, print the traceback too; log at INFO",
    )
    return p
