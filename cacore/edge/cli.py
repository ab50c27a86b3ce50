"""How every one-shot command of the project ends: one line on stderr and a code from
``cacore.exitcodes``, whatever happened. Ctrl-C and SIGTERM stop it cleanly (``finally`` blocks
run, temporary files go) with 130 and 143; a closed pipe (``| head``) ends it quietly; anything
unexpected is one line naming the error, never a traceback (``LCC_TRACEBACK=1`` shows it, for a
bug report)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from types import FrameType

from cacore import exitcodes
from cacore.text import printable


class Terminated(BaseException):
    """SIGTERM arrived; raised in the main thread like ``KeyboardInterrupt`` is for SIGINT."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` in the main thread."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def say(prog: str, message: str) -> None:
    """One line on stderr, prefixed with the command's name, made safe for a terminal."""
    print(f"{prog}: {printable(message, 2000)}", file=sys.stderr, flush=True)


def run(prog: str, body: Callable[[], int]) -> int:
    """``body()``'s exit code, or the code of whatever stopped it, each with one line."""
    for stream in (sys.stdout, sys.stderr):
        # A terminal or pipe that cannot show a character gets an escape, not a crash.
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    try:
        with sigterm_raises():
            return body()
    except KeyboardInterrupt:
        say(prog, "interrupted (Ctrl-C); nothing more was done")
        return exitcodes.INTERRUPTED
    except Terminated as stop:
        say(prog, f"stopped by {signal.Signals(stop.signum).name}; nothing more was done")
        return exitcodes.for_signal(stop.signum)
    except BrokenPipeError:
        # The reader went away (``| head``): not an error worth a message. Point stdout at
        # /dev/null so the interpreter's own flush at exit does not complain again.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return exitcodes.FAILED
    except Exception as error:  # the last line of defence: a bug, reported in one line
        if os.environ.get("LCC_TRACEBACK"):
            traceback.print_exc()
        say(
            prog,
            f"internal error: {type(error).__name__}: {error} (a bug: please report it with "
            "the command you ran; LCC_TRACEBACK=1 shows where it happened)",
        )
        return exitcodes.FAILED
