"""The fault tables of the docs, as test data: each tool's doc has a "Fault table" whose rows are
`| id | fault | what the tool does | what the user sees | exit |`. A test module holds one
scenario per id; the table test runs each row's scenario and checks the exit code and every
`backticked` fragment of "what the user sees" against what the process printed, and a second
test checks that the doc's rows and the scenarios are the same set. So a row cannot be
documented without being tested, nor tested without being documented."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNS = "runs"  # the exit column of a row where a long-running process keeps running


@dataclass(frozen=True)
class Row:
    id: str
    fault: str
    does: str
    sees: str
    exit: int | str

    @property
    def fragments(self) -> list[str]:
        """The literal texts the user sees, as written between backticks."""
        return re.findall(r"`([^`]+)`", self.sees)


@dataclass(frozen=True)
class Seen:
    """What a scenario observed: the exit code (None: still running, as planned) and output."""

    code: int | None
    output: str


def rows(doc: str, heading: str = "## Fault table") -> list[Row]:
    text = (ROOT / doc).read_text()
    assert heading in text, f"{doc} lost its {heading!r} section"
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    found = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if len(cells) != 5 or not re.fullmatch(r"[A-Z]\d+", cells[0]):
            continue
        code = cells[4].strip("`")
        found.append(
            Row(cells[0], cells[1], cells[2], cells[3], int(code) if code.isdigit() else code)
        )
    assert found, f"no rows in {doc}'s fault table"
    return found


def check(row: Row, seen: Seen) -> None:
    expected = None if row.exit == RUNS else row.exit
    assert seen.code == expected, (
        f"{row.id} ({row.fault}): exit {seen.code}, documented {row.exit}\n{seen.output[-3000:]}"
    )
    assert "Traceback" not in seen.output, f"{row.id}: a traceback\n{seen.output[-3000:]}"
    for fragment in row.fragments:
        assert fragment in seen.output, f"{row.id}: {fragment!r} not in\n{seen.output[-3000:]}"


Scenario = Callable[..., Seen]


def scenarios(namespace: dict[str, object], letter: str) -> dict[str, Scenario]:
    """A test module's scenarios by row id: its functions ``s1``, ``s2``... for rows S1, S2..."""
    return {
        name.upper(): fn  # type: ignore[misc]
        for name, fn in namespace.items()
        if re.fullmatch(rf"{letter}\d+", name) and callable(fn)
    }


def same_ids(documented: list[Row], tested: dict[str, Scenario]) -> None:
    """Every documented fault has a scenario, and every scenario a row."""
    assert sorted(row.id for row in documented) == sorted(tested)


def row_ids(documented: list[Row]) -> list[str]:
    return [f"{row.id} {row.fault}" for row in documented]


# --- real faults on real file systems (root, as CI runs) ---------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "64k") -> Iterator[Path]:
    """A small tmpfs mounted at ``path`` for the block (needs root; skips otherwise)."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def fill(path: Path) -> Path:
    """Fill the file system under ``path`` until it refuses another byte."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 1024)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler
