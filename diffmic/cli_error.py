"""The error every command reports in one line on stderr, with exit status 2 (``cli.main``)."""

from __future__ import annotations


class CLIError(Exception):
    """An error to report in one line with exit status 2."""
