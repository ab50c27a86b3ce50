"""JSON files as people edit them: syntax errors with line and column and a hint at the usual
cause, where each key and item sits (so every finding can point at a line), duplicate keys
(which ``json`` silently collapses), and appending an item without reformatting the file."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

Path = tuple[int | str, ...]

_WS = " \t\n\r"
_DECODER = json.JSONDecoder()
# The stdlib's string scanner (a public name of json.decoder, missing from typeshed).
scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SyntaxProblem:
    line: int
    col: int
    message: str


@dataclass
class Document:
    value: object
    # JSON path -> (line, col) of the key (in objects) or of the item (in arrays); () is the root.
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    duplicate_keys: list[tuple[Path, int, int]] = field(default_factory=list)

    def position(self, path: Path) -> tuple[int, int]:
        """Where ``path`` or its nearest located ancestor is."""
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))


def line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def parse(text: str) -> Document | SyntaxProblem:
    """The document, or the first syntax error with a message that says how to fix it."""
    if text.startswith("\ufeff"):
        return SyntaxProblem(
            1, 1, "file starts with a byte-order mark; save it as UTF-8 without BOM"
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return SyntaxProblem(error.lineno, error.colno, _explain(text, error))
    doc = Document(value)
    _walk(text, _skip_ws(text, 0), (), doc)
    return doc


def _explain(text: str, error: json.JSONDecodeError) -> str:
    """The decoder's message plus what usually causes it in hand-edited files."""
    base = f"JSON syntax error: {error.msg}"
    before = text[: error.pos].rstrip(_WS)
    prev_line, prev_col = line_col(text, len(before)) if before else (1, 1)
    if error.msg.startswith("Expecting ',' delimiter"):
        return (
            f"{base}: a comma is missing after the value that ends at line {prev_line}, "
            f"column {prev_col - 1}; add ',' there"
        )
    if error.msg.startswith("Expecting property name") or error.msg.startswith("Expecting value"):
        if before.endswith(","):
            return f"{base}: remove the trailing comma at line {prev_line}, column {prev_col - 1}"
        if text[error.pos : error.pos + 1] == "'":
            return f"{base}: JSON strings and keys need double quotes, not single quotes"
        if text[error.pos : error.pos + 2] in ("//", "/*"):
            return f"{base}: JSON has no comments; remove it"
    if error.msg.startswith("Extra data"):
        return f"{base}: the file must hold exactly one JSON array; remove what follows it"
    return base


def _skip_ws(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WS:
        index += 1
    return index


def _walk(text: str, index: int, path: Path, doc: Document) -> int:
    """Record positions below ``path`` for the (already known valid) value at ``index``;
    return the index just after it."""
    doc.positions.setdefault(path, line_col(text, index))
    char = text[index]
    if char == "{":
        seen: set[str] = set()
        index = _skip_ws(text, index + 1)
        if text[index] == "}":
            return index + 1
        while True:
            key_at = index
            key, index = scanstring(text, index + 1)
            line, col = line_col(text, key_at)
            duplicate = key in seen
            seen.add(key)
            if duplicate:
                doc.duplicate_keys.append(((*path, key), line, col))
            else:
                doc.positions[(*path, key)] = (line, col)
            index = _skip_ws(text, index)  # at ':'
            index = _skip_ws(text, index + 1)
            # json keeps the last duplicate's value, but findings point at the first key: walk a
            # duplicate's value under a path nothing asks for
            index = _walk(
                text, index, (*path, "\0duplicate", key) if duplicate else (*path, key), doc
            )
            index = _skip_ws(text, index)
            if text[index] == "}":
                return index + 1
            index = _skip_ws(text, index + 1)  # past ','
    if char == "[":
        index = _skip_ws(text, index + 1)
        if text[index] == "]":
            return index + 1
        item = 0
        while True:
            index = _walk(text, index, (*path, item), doc)
            index = _skip_ws(text, index)
            if text[index] == "]":
                return index + 1
            index = _skip_ws(text, index + 1)
            item += 1
    _, end = _DECODER.raw_decode(text, index)
    return end


def format_path(path: Path) -> str:
    """``[0].sans[1]`` for (0, "sans", 1)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def append_to_array(text: str, item: object) -> str:
    """``text`` (a JSON array) with ``item`` appended as the last element, the rest untouched so
    a pull request shows only the new lines. The item is indented like the existing ones."""
    stripped = text.rstrip()
    if not stripped.endswith("]"):
        raise ValueError("the file does not end with a JSON array")
    close = len(stripped) - 1
    head = stripped[:close].rstrip()
    indent = _item_indent(head)
    rendered = json.dumps(item, indent=2, ensure_ascii=False)
    block = "\n".join(indent + line for line in rendered.splitlines())
    if head.endswith("["):
        return f"{head}\n{block}\n]\n"
    return f"{head},\n{block}\n]\n"


def _item_indent(head: str) -> str:
    first = re.match(r"\s*\[[ \t]*\r?\n([ \t]*)\S", head)
    return first.group(1) if first else "  "
