"""MkDocs hook: the CLI reference is the `hmco` parser's own help, generated at build time.

`docs/cli.md` holds the marker ``<!-- hmco-cli-help -->``; it is replaced by one section per
command and subcommand, each with the text ``hmco COMMAND --help`` prints, so the page never
drifts from the code.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

MARKER = "<!-- hmco-cli-help -->"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    from hmco.cli import build_parser

    os.environ.setdefault("COLUMNS", "100")  # argparse wraps help to the terminal's width
    sections = []
    for path, parser in _walk(build_parser(), ["hmco"]):
        level = "#" * min(len(path) + 1, 6)
        sections.append(f"{level} `{' '.join(path)}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return markdown.replace(MARKER, "\n".join(sections))


def _walk(
    parser: argparse.ArgumentParser, path: list[str]
) -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, [*path, name])
