"""Findings as people and CI systems read them: compiler-style lines, JSON, or GitHub Actions
workflow commands (which GitHub shows as annotations on the pull request's diff)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from gitops.problems import Problem

FORMATS = ("human", "json", "github")


def human(problem: Problem) -> str:
    where = problem.file
    if problem.line is not None:
        where += f":{problem.line}:{problem.col or 1}"
    field = f" {problem.field}:" if problem.field else ""
    return f"{where}: {problem.severity}:{field} {problem.message} [{problem.code}]"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github(problem: Problem) -> str:
    """``::error file=...,line=...,col=...,title=...::message``."""
    props = [f"file={_escape_property(problem.file)}"]
    if problem.line is not None:
        props.append(f"line={problem.line}")
        props.append(f"col={problem.col or 1}")
    props.append(f"title={_escape_property(problem.code)}")
    field = f"{problem.field}: " if problem.field else ""
    return f"::{problem.severity} {','.join(props)}::{_escape_data(field + problem.message)}"


def summary(problems: Sequence[Problem]) -> tuple[int, int]:
    errors = sum(1 for p in problems if p.is_error)
    return errors, len(problems) - errors


def render(problems: Sequence[Problem], fmt: str, checked: Iterable[str]) -> str:
    """The whole report; ``checked`` names the environments looked at."""
    errors, warnings = summary(problems)
    envs = list(checked)
    if fmt == "json":
        return json.dumps(
            {
                "ok": errors == 0,
                "environments": envs,
                "errors": errors,
                "warnings": warnings,
                "problems": [p.as_dict() for p in problems],
            },
            indent=2,
        )
    lines = [github(p) if fmt == "github" else human(p) for p in problems]
    verdict = "ok" if errors == 0 else "failed"
    where = ", ".join(envs) or "no environment"
    lines.append(f"{verdict}: {errors} error(s), {warnings} warning(s) in {where}")
    return "\n".join(lines)


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A plain-text table with aligned columns."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(line.rstrip() for line in lines)
