"""`hmco --help`: help and an example on every command and argument, `--version`, and a parser that
imports nothing heavy (so `hmco --help` answers at once)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from hmco.cli import build_parser

HMCO = Path(sys.executable).with_name("hmco")  # the console script of this environment
HEAVY = ("pandas", "pyarrow", "polars", "pyiceberg", "great_expectations", "chdb", "duckdb")


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """Every (sub)command: its words after ``hmco``, its parser and the help its parent lists for it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            listed = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), sub, listed.get(name)
                yield from _commands(sub, (*path, name))


COMMANDS = sorted(path for path, _, _ in _commands(build_parser()))


def test_the_tree_holds_every_command() -> None:
    top = {path[0] for path in COMMANDS}
    assert {"run", "validate", "sql", "serve", "schedule", "security", "backup", "maintain"} <= top
    assert ("schedule", "export") in COMMANDS and ("backup", "status") in COMMANDS


def test_every_command_and_argument_has_help_and_every_command_an_example() -> None:
    missing: list[str] = []
    for path, parser, listed_help in _commands(build_parser()):
        where = "hmco " + " ".join(path)
        if not listed_help:
            missing.append(f"{where}: no help in its parent's command list")
        if "examples:\n  hmco " not in (parser.epilog or ""):
            missing.append(f"{where}: no example")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}: no help")
    top = build_parser()
    missing += [f"hmco {a.dest}: no help" for a in top._actions if not a.help and a.dest != "command"]
    assert missing == []


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_of_every_command_runs_and_shows_an_example(path: tuple[str, ...]) -> None:
    run = subprocess.run([str(HMCO), *path, "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert f"usage: hmco {' '.join(path)}" in run.stdout
    assert "examples:\n  hmco " in run.stdout and run.stderr == ""


def test_top_level_help_lists_commands_and_examples() -> None:
    run = subprocess.run([str(HMCO), "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "examples:" in run.stdout
    assert all(f"    {name} " in run.stdout for name in ("run", "validate", "serve", "security"))


def test_version_prints_the_installed_package_version() -> None:
    run = subprocess.run([str(HMCO), "--version"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == f"hmco {version('hmco')}"


def test_help_imports_no_heavy_library() -> None:
    """`hmco --help` (and every command's) in a fresh interpreter loads none of the heavy engines."""
    code = (
        "import json, sys\n"
        "from hmco.cli import main\n"
        f"for path in {[list(p) for p in [(), *COMMANDS]]!r}:\n"
        "    try:\n"
        "        main([*path, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    loaded = set(json.loads(run.stdout.strip().splitlines()[-1]))
    assert sorted(loaded & set(HEAVY)) == []


def test_literal_defaults_in_the_parser_match_their_owners() -> None:
    """Defaults spelled in the CLI (so the parser stays light) agree with the modules that own them."""
    from hmco import cli_schedule, cli_security
    from hmco.maintenance import ACTIONS
    from hmco.schedule.serve import DEFAULT_METRICS_PORT
    from hmco.security.buckets import DEFAULT_ACCOUNT

    assert cli_schedule.METRICS_PORT == DEFAULT_METRICS_PORT
    assert cli_security.DEFAULT_ACCOUNT == DEFAULT_ACCOUNT
    maintain = {p: parser for p, parser, _ in _commands(build_parser())}[("maintain",)]
    (action,) = [a for a in maintain._actions if a.dest == "action"]
    assert action.help is not None and action.help.endswith(", ".join(ACTIONS))
