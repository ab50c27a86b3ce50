"""JSON files as people edit them: syntax errors with line and column and a hint at the usual
cause, where each key and item sits (so every finding can point at a line), duplicate keys
(which ``json`` silently collapses), and appending an item without reformatting the file."""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

Path = tuple[int | str, ...]

_WS = " \t\n\r"
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
    """Line and column (from 1) of ``index``; for one lookup (``Lines`` for many)."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


class Lines:
    """Line and column of any index in O(log lines), after one pass over the text: a finding
    per entry must not rescan the file each time (validate stays linear in the file's size)."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_col(self, index: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, index)
        return line, index - self.starts[line - 1] + 1


_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
_SAVE_AS_UTF8 = "save it as UTF-8 (without a byte-order mark)"


def decode(data: bytes) -> str | SyntaxProblem:
    """The text of a file that should be UTF-8, or what it is instead (UTF-16 or UTF-32, another
    encoding such as Latin-1, a binary file), with the fix."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return SyntaxProblem(1, 1, f"is {name} text; {_SAVE_AS_UTF8}")
    if b"\0" in data:
        # every other byte zero, the others not: ASCII text in UTF-16 without a byte-order mark
        half = len(data) // 2 or 1
        zeros = sorted((data[0::2].count(0), data[1::2].count(0)))
        if zeros[1] > 0.6 * half and zeros[0] < 0.05 * half:
            return SyntaxProblem(
                1, 1, f"looks like UTF-16 text (no byte-order mark); {_SAVE_AS_UTF8}"
            )
        return SyntaxProblem(1, 1, "holds NUL bytes: a binary file, not JSON text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        text = data[: error.start].decode("utf-8", "replace")
        line, col = line_col(text, len(text))
        return SyntaxProblem(
            line,
            col,
            f"is not UTF-8: byte 0x{data[error.start]:02x} cannot start a character here (Latin-1 "
            f"or Windows-1252 text?); {_SAVE_AS_UTF8}",
        )


def parse(text: str) -> Document | SyntaxProblem:
    """The document, or the first syntax error with a message that says how to fix it."""
    if text.startswith("\ufeff"):
        return SyntaxProblem(
            1, 1, "file starts with a byte-order mark; save it as UTF-8 without BOM"
        )
    if "\0" in text:
        line, col = line_col(text, text.index("\0"))
        return SyntaxProblem(line, col, "holds a NUL byte: a binary file, not JSON text")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return SyntaxProblem(error.lineno, error.colno, _explain(text, error))
    except RecursionError:
        return SyntaxProblem(1, 1, f"JSON nested too deeply; {_SHAPE}")
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        return SyntaxProblem(1, 1, f"JSON value cannot be read: {error}")
    doc = Document(value)
    _walk(text, doc)
    return doc


_SHAPE = "the file is a flat array of entries [{...}, ...]"


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


# One token of JSON text already known to be valid: a string, a structural character, or a
# scalar (number, true, false, null). Strings use the unrolled-loop form, linear in their length.
_TOKEN = re.compile(r'\s*(?:("[^"\\]*(?:\\.[^"\\]*)*")|([{}\[\]:,])|([^\s{}\[\]:,"]+))', re.S)


def _walk(text: str, doc: Document) -> None:
    """Record where every key and item of ``text`` (valid JSON) starts, and every duplicate key.

    One left-to-right pass over tokens with an explicit stack: no recursion (depth is the
    decoder's concern) and no rescanning, so a file of 100,000 entries costs 100,000 entries."""
    starts = Lines(text).starts
    last = len(starts) - 1
    line = 0  # index into starts of the line holding the current token; tokens only move forward

    def line_col(index: int) -> tuple[int, int]:
        nonlocal line
        while line < last and starts[line + 1] <= index:
            line += 1
        return line + 1, index - starts[line] + 1

    positions = doc.positions
    stack: list[tuple[Path, set[str] | list[int]]] = []  # (path, seen keys | [item index])
    value_path: Path = ()
    expect_key = False
    for match in _TOKEN.finditer(text):
        string, punct = match.group(1), match.group(2)
        if string is not None:
            start = match.start(1)
            if expect_key:
                base, seen = stack[-1]
                assert isinstance(seen, set)
                key, _ = scanstring(text, start + 1)
                if key in seen:
                    doc.duplicate_keys.append(((*base, key), *line_col(start)))
                    # json keeps the last duplicate's value, but findings point at the first
                    # key: the duplicate's value goes under a path nothing asks for
                    value_path = (*base, "\0duplicate", key)
                else:
                    seen.add(key)
                    value_path = (*base, key)
                    positions[value_path] = line_col(start)
                expect_key = False
            elif value_path not in positions:
                positions[value_path] = line_col(start)
        elif punct is not None:
            if punct == "{" or punct == "[":
                if value_path not in positions:
                    positions[value_path] = line_col(match.start(2))
                if punct == "{":
                    stack.append((value_path, set()))
                    expect_key = True
                else:
                    stack.append((value_path, [0]))
                    value_path = (*value_path, 0)
            elif punct == "}" or punct == "]":
                stack.pop()
                expect_key = False
            elif punct == ",":
                base, seen = stack[-1]
                if isinstance(seen, set):
                    expect_key = True
                else:
                    seen[0] += 1
                    value_path = (*base, seen[0])
        elif value_path not in positions:
            positions[value_path] = line_col(match.start(3))


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
