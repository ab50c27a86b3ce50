"""Policy templates: text with ``{variable}`` placeholders filled from the requester's identity
(``{namespace}``, ``{serviceAccount}``, ``{podName}``, ``{podUID}``, ``{nodeName}``). No
expressions, no attribute access: a placeholder is one of these names or the template is invalid.
Identity values are Kubernetes names and UIDs, so a rendered value never holds a ``,``, ``=`` or
``/`` that could change what a template means."""

from __future__ import annotations

import re
from collections.abc import Mapping

VARIABLES = ("namespace", "serviceAccount", "podName", "podUID", "nodeName")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class TemplateError(ValueError):
    """A template is malformed; the message says how."""


def check(template: str) -> tuple[str, ...]:
    """The variables ``template`` uses, in order; ``TemplateError`` if it is malformed."""
    used = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name not in VARIABLES:
            raise TemplateError(
                f"{{{name}}} is not a variable; use {', '.join('{' + v + '}' for v in VARIABLES)}"
            )
        used.append(name)
    if "{" in _PLACEHOLDER.sub("", template) or "}" in _PLACEHOLDER.sub("", template):
        raise TemplateError(f"{template!r} has an unmatched brace")
    return tuple(used)


def missing(template: str, values: Mapping[str, str]) -> tuple[str, ...]:
    """Variables the template needs that ``values`` lacks (e.g. {podName} without a Pod)."""
    return tuple(name for name in check(template) if name not in values)


def render(template: str, values: Mapping[str, str]) -> str:
    """The template with every placeholder replaced; ``KeyError`` for a missing value (call
    ``missing`` first to explain it)."""
    check(template)
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
