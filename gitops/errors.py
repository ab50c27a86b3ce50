"""The tool's own failures, apart from cacore's CA errors."""

from __future__ import annotations


class GitopsError(Exception):
    """The command could not do its job; the message says why and what to do (exit code
    ``exitcodes.FAILED``)."""


class UsageError(ValueError):
    """Bad command-line input; the message names the option and the fix (exit code
    ``exitcodes.USAGE``)."""
