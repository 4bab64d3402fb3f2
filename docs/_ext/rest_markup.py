"""Griffe extension: render hmco's reST-flavoured Google-style docstrings as Markdown, at build time.

mkdocstrings renders Markdown; hmco's docstrings carry some reST. Before they are parsed, this

- turns each inline role (``:class:`~hmco.x.Y```) into a cross-reference when its target is rendered
  by the reference (public and documented; autorefs then checks the link and ``--strict`` fails on a
  broken one), and into inline code otherwise;
- turns literal blocks (``text::`` or ``.. code-block:: yaml`` + an indented block) into fenced blocks
  and simple tables (``====  ====`` borders) into Markdown tables;
- gives an attribute without a docstring its ``#:`` comment (Sphinx's convention) as one;
- lists a package's re-exports as a table of links to where they are documented, instead of
  rendering each a second time.

The source files are left as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):`(?P<target>[^`]+)`")
DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. code-block::[ \t]*(?P<lang>\S*)[ \t]*$")
BORDER = re.compile(r"^(?P<indent>[ \t]*)=+(?:[ \t]+=+)+[ \t]*$")
LITERAL = re.compile(r"^(?P<lead>.*?)::[ \t]*$")


class RestMarkup(griffe.Extension):
    """Rewrite every docstring of the package once it is loaded (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        objects = list(_walk(pkg))
        for obj in objects:
            if obj.is_attribute and obj.docstring is None:
                _doc_comment(obj)
        for obj in objects:
            if obj.docstring is not None:
                text = _pipe_tables(_fence_literal_blocks(obj.docstring.value))
                obj.docstring.value = _roles(obj, text)
        for obj in objects:
            if isinstance(obj, griffe.Module):
                _table_of_exports(obj)


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if isinstance(member, griffe.Object) and member.parent is obj:
            yield from _walk(member)


def _roles(obj: griffe.Object, text: str) -> str:
    return ROLE.sub(lambda match: _role(obj, match.group("target")), text)


def _table_of_exports(module: griffe.Module) -> None:
    """A package's re-exports become a table of links to where they are documented, not copies.

    Re-exports are the names in ``__all__`` that are imports, submodules, or lazy names listed in
    the module's ``_LAZY = {name: module}`` (hmco's imports on first access).
    """
    lazy = _lazy_names(module)
    rows = []
    for name in dict.fromkeys(n for n in module.exports or () if isinstance(n, str)):
        member = module.members.get(name)
        target: griffe.Object | None
        if member is None:
            if name not in lazy:
                continue
            target = _lookup(module, f"{lazy[name]}.{name}")
        elif member.is_alias:
            member.public = False  # documented once, where it is defined
            target = _lookup(module, member.path)
        elif member.is_module and member.parent is module:
            target = member  # type: ignore[assignment]
        else:
            continue  # defined in this module: documented in place
        if target is not None and _rendered(target):
            rows.append(f"| [`{name}`][{target.path}] | {_summary(target)} |")
        else:
            rows.append(f"| `{name}` | {_summary(target) if target is not None else ''} |")
    if rows:
        table = "\n".join(["| name | what it is |", "|---|---|", *rows])
        text = module.docstring.value if module.docstring else ""
        module.docstring = griffe.Docstring(f"{text}\n\n{table}\n", parent=module)


def _lazy_names(module: griffe.Module) -> dict[str, str]:
    """``{name: module path}`` of a literal ``_LAZY`` dict in ``module`` (empty when there is none)."""
    attribute = module.members.get("_LAZY")
    value = getattr(attribute, "value", None) if attribute is not None and not attribute.is_alias else None
    if not isinstance(value, griffe.ExprDict):
        return {}
    pairs = zip(value.keys, value.values, strict=True)
    return {k.strip("'\""): v.strip("'\"") for k, v in pairs if isinstance(k, str) and isinstance(v, str)}


def _summary(obj: griffe.Object) -> str:
    if obj.docstring is None:
        return ""
    first = obj.docstring.value.strip().split("\n\n", 1)[0]
    return " ".join(first.split()).replace("|", "\\|")


def _rendered(obj: griffe.Object) -> bool:
    """Whether the reference renders ``obj`` (public, and a module or documented), so a link resolves."""
    return _public(obj) and (obj.is_module or obj.docstring is not None)


def _doc_comment(obj: griffe.Object) -> None:
    """An attribute's ``#:`` comment lines above it (Sphinx's convention) become its docstring."""
    filepath = obj.filepath
    lines = obj.lines_collection[filepath] if isinstance(filepath, Path) else None
    if not lines or obj.lineno is None:
        return
    comment: list[str] = []
    index = obj.lineno - 2
    while index >= 0 and lines[index].lstrip().startswith("#:"):
        comment.insert(0, lines[index].lstrip()[2:].strip())
        index -= 1
    if comment:
        obj.docstring = griffe.Docstring("\n".join(comment), lineno=index + 2, parent=obj)


def _role(obj: griffe.Object, target: str) -> str:
    """``:class:`~a.b.C``` → ``[`C`][a.b.C]`` when ``a.b.C`` is rendered (public, documented), else `` `C` ``."""
    short = target.startswith("~")
    target = target.lstrip("~").rstrip("()")
    shown = target.rsplit(".", 1)[-1] if short else target
    resolved = _resolve(obj, target)
    if resolved is None:
        return f"`{shown}`"
    return f"[`{shown}`][{resolved}]"


def _resolve(obj: griffe.Object, target: str) -> str | None:
    """The canonical path of ``target`` seen from ``obj`` (absolute, relative module, or in scope)."""
    scopes: list[griffe.Object] = []
    scope: griffe.Object | None = obj
    while scope is not None:
        scopes.append(scope)
        scope = scope.parent
    candidates = []
    if target.startswith("."):
        module = obj.module
        base = module if module.is_package else module.parent
        if base is not None:
            candidates.append(f"{base.path}{target}")
    else:
        candidates.append(target)
        candidates.extend(f"{s.path}.{target}" for s in scopes)
    for path in candidates:
        found = _lookup(obj, path)
        if found is not None and _rendered(found):
            return found.path
    return None


def _lookup(obj: griffe.Object, path: str) -> griffe.Object | None:
    """The object ``path`` names in ``obj``'s package, aliases followed (None: not there, or outside)."""
    root, _, rest = path.partition(".")
    package = obj.package
    if root != package.name:
        return None
    try:
        found: griffe.Object | griffe.Alias = package[rest] if rest else package
        if isinstance(found, griffe.Alias):
            found = found.final_target
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    return found


def _public(obj: griffe.Object) -> bool:
    return not any(part.startswith("_") for part in obj.path.split(".")[1:])


def _fence_literal_blocks(text: str) -> str:
    """``text::`` / ``.. code-block:: lang`` + an indented block → ``text:`` + a fenced block."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = DIRECTIVE.match(line)
        literal = None if directive else LITERAL.match(line)
        if directive or literal:
            base = len(line) - len(line.lstrip())
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            block: list[str] = []
            while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > base):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            if block:
                lead = literal.group("lead").rstrip() if literal else ""
                if lead:  # "text::" keeps its text and a colon; a bare "::" line goes
                    out.extend([f"{lead}:", ""])
                lang = directive.group("lang") if directive else ""
                out.append(" " * base + f"```{lang}")
                strip = min(len(b) - len(b.lstrip()) for b in block if b.strip())
                out.extend(" " * base + b[strip:] if b.strip() else "" for b in block)
                out.append(" " * base + "```")
                out.append("")
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _pipe_tables(text: str) -> str:
    """reST simple tables (borders of ``=`` runs; a header between the first two if there are three) →
    Markdown tables (a headerless one gets an empty header row)."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not BORDER.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        border = lines[i]
        spans = [(m.start(), m.end()) for m in re.finditer(r"=+", border)]
        j, borders = i + 1, 1
        rows: list[list[str] | None] = []  # None marks the end of the header
        while j < len(lines) and borders < 3:
            if lines[j] == border:
                borders += 1
                if borders == 2 and (j + 1 == len(lines) or not lines[j + 1].strip()):
                    rows.insert(0, None)  # two borders only: a table without a header
                    j += 1
                    break
                if borders == 2:
                    rows.append(None)  # the header's end
            elif lines[j].strip():
                cells = [
                    _cell(lines[j], start, spans[k + 1][0] if k + 1 < len(spans) else None)
                    for k, (start, _) in enumerate(spans)
                ]
                if rows and rows[-1] is not None and not cells[0]:  # a continuation line
                    rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
                else:
                    rows.append(cells)
            j += 1
        if None not in rows:
            out.append(lines[i])  # not a table this converter knows: leave it
            i += 1
            continue
        head = rows.index(None)
        header, body = rows[:head], rows[head + 1 :]
        header = header or [[""] * len(spans)]
        table = [_row(r) for r in header] + ["|" + "---|" * len(spans)] + [_row(r) for r in body]
        out.extend(["", *table, ""])
        i = j
    return "\n".join(out)


def _cell(line: str, start: int, end: int | None) -> str:
    return line[start:end].strip() if end is not None else line[start:].strip()


def _row(cells: list[str] | None) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells or []) + " |"
