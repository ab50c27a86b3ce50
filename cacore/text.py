"""Text that came from outside (a CA's error message, a certificate's subject, a file name in a
repository, a server's greeting) made safe to show: control characters escaped so nothing can
move the cursor, recolour or rewrite a terminal or a log line, and length bounded so a hostile
endpoint cannot flood one."""

from __future__ import annotations

import unicodedata

# Longest piece of outside text kept in one message; longer text is cut with a note.
MAX_OUTSIDE_TEXT = 500


def _escape(char: str) -> str:
    # \uNNNN is also a valid escape inside a JSON string, so JSON output stays JSON.
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _unsafe(char: str) -> bool:
    # Cc: C0/C1 controls and DEL (escape sequences); Cf: format characters such as the
    # bidirectional overrides that make text read differently than it is ("Trojan Source");
    # Cs: lone surrogates, which cannot even be encoded for output; Zl/Zp: line separators.
    return unicodedata.category(char) in {"Cc", "Cf", "Cs", "Zl", "Zp"}


def printable(text: object, limit: int = MAX_OUTSIDE_TEXT, keep_newlines: bool = False) -> str:
    """``text`` as one safe line: every control, format or surrogate character written as a
    ``\\uNNNN`` escape (newlines too, unless ``keep_newlines``), and cut at ``limit``
    characters."""
    value = text if isinstance(text, str) else str(text)
    length = len(value)
    if length <= limit and value.isprintable():  # the usual case, at C speed
        return value
    kept = set("\n\t") if keep_newlines else set()
    result = "".join(
        char if char in kept or not _unsafe(char) else _escape(char) for char in value[:limit]
    )
    if length > limit:
        result += f"... ({length - limit} more characters)"
    return result


def for_terminal(text: str) -> str:
    """A whole block of output (several lines) safe for a terminal: lines kept, every other
    control character escaped, no length limit (the caller's own output)."""
    return printable(text, limit=len(text) + 1, keep_newlines=True)


def unsafe_character(text: str) -> str | None:
    """The first character of ``text`` that has no place in a name (a control or format
    character, a lone surrogate, a line separator), escaped for a message; None if there is none.
    Such characters cannot be encoded, or make a certificate's subject read differently than it
    is."""
    if text.isprintable():  # no control, format, surrogate or separator character: at C speed
        return None
    for char in text:
        if _unsafe(char):
            return _escape(char)
    return None
