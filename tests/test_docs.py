"""The documentation builds: `mkdocs build --strict` of mkdocs.yml, the API reference generated from the
docstrings, the CLI reference from the parser. A broken link or cross-reference fails the build.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "hmco"
#: The command line's modules: documented as commands, in the CLI reference.
CLI_MODULES = {"hmco.cli", "hmco.cli_command", "hmco.cli_schedule", "hmco.cli_security", "hmco.demo"}


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """Run the strict build as `make docs` does (from the repository root, where the config's paths start)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(config),
            "--site-dir",
            str(site),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = mkdocs_build(ROOT / "mkdocs.yml", out)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return out


def page(site: Path, name: str) -> str:
    path = site / f"{name or 'index'}.html"
    assert path.is_file(), f"no page {path.relative_to(site)}"
    return unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def public_modules() -> list[str]:
    """Every public module of hmco: no path part starting with an underscore."""
    names = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if not any(p.startswith("_") for p in parts[1:]):
            names.append(".".join(parts))
    return names


def test_strict_build_succeeds_with_every_page(site: Path) -> None:
    for name in ("", "getting-started", "cli", "notebooks", "reference/index", "reference/frames"):
        page(site, name)
    for guide in ("lake", "quality", "realtime", "scheduling", "operations", "extending"):
        page(site, f"guides/{guide}")


def test_every_public_module_has_its_reference_section(site: Path) -> None:
    html = "".join(p.read_text() for p in (site / "reference").glob("*.html"))
    missing = [m for m in public_modules() if f'id="{m}"' not in html and m not in CLI_MODULES]
    assert not missing, f"modules missing from docs/reference/*.md: {missing}"


def test_lmp_page_shows_its_signature_and_arguments(site: Path) -> None:
    text = page(site, "reference/frames")
    signature = re.search(r"lmp\(\s*iso: str,\s*start: .*?\)\s*->\s*Any", text, re.S)
    assert signature is not None
    for argument in ("end", "market", "nodes", "tz", "pandas", "refresh", "base_url"):
        assert re.search(rf"\b{argument}\b", signature.group(0)), argument
    assert "Locational marginal prices of one ISO as a data frame, read through the lake." in text


def test_top_level_page_links_every_re_exported_name(site: Path) -> None:
    html = (site / "reference" / "index.html").read_text()  # the reference's first page: hmco itself
    tree = ast.parse((SRC / "__init__.py").read_text())
    exported = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets)
    )
    shown = set(re.findall(r"<code>(\w+)</code>", html))
    missing = sorted(set(exported) - shown - {"__version__"})
    assert not missing, missing
    assert 'href="frames.html#hmco.frames.prices.lmp"' in html  # hmco.lmp links to where it is documented
    assert 'href="compose.html#hmco.compose.pipeline.Pipeline"' in html


def test_rest_roles_literal_blocks_and_tables_render_as_markdown(site: Path) -> None:
    for path in (site / "reference").glob("*.html"):
        text = path.read_text()
        assert ":class:`" not in text and ":func:`" not in text and ":mod:`" not in text, path
        assert ".. code-block::" not in text, path
        assert not re.search(r"^\s*=+ +=+", text, re.M), f"{path}: a reST table was left as text"
    errors = (site / "reference" / "errors.html").read_text()
    assert 'href="#hmco.errors.TerminalError"' in errors  # a role became a link
    assert "HmcoError" in errors and "<pre>" in errors  # the error tree is a code block
    suites = (site / "reference" / "quality.html").read_text()
    assert re.search(r"<td><code>unique.primary_key</code></td>\s*<td>unique</td>", suites)  # a reST table


def test_cli_reference_is_the_help_of_every_command(site: Path) -> None:
    from hmco.cli import build_parser

    text = page(site, "cli")
    parser = build_parser()
    assert parser.format_usage().split()[1] == "hmco"
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name in commands:
        assert f"usage: hmco {name}" in text, name
    assert "--start" in text and "--version" in text


def test_a_broken_cross_reference_fails_the_build(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(
        "# Broken\n\n[Window][hmco.windows.Window], [gone][hmco.windows.NoSuchThing]\n\n::: hmco.windows\n"
    )
    python = config["plugins"][-1]["mkdocstrings"]["handlers"]["python"]
    python["paths"] = [str(ROOT / "src")]
    python["options"]["extensions"] = [f"{ROOT / 'docs' / '_ext' / 'rest_markup.py'}:RestMarkup"]
    config.update(docs_dir=str(docs), nav=["index.md"], hooks=[])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))

    proc = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")

    assert proc.returncode != 0
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "hmco.windows.NoSuchThing" in warnings[0], proc.stderr
