"""Errors that end a command with a known exit code and a one-line message.

Every failure a user can cause (arguments, config, data, checkpoints) is a ``UserError``: exit
code 2, printed as ``error: <where>: <what>`` with an optional second line saying what to do.
A job that ran and failed (gradcheck mismatch, divergence) is a ``JobFailed``: exit code 1.
"""

from __future__ import annotations


class NettrainError(Exception):
    """Base of the errors the CLI turns into a message and an exit code."""

    exit_code = 2

    def __init__(self, where: str, what: str, hint: str | None = None):
        super().__init__(f"{where}: {what}" if where else what)
        self.where = where
        self.what = what
        self.hint = hint


class UserError(NettrainError):
    """Bad input: arguments, config, data or checkpoint. Exit code 2."""

    exit_code = 2


class JobFailed(NettrainError):
    """The job ran and failed: a gradient mismatch, a diverged training. Exit code 1."""

    exit_code = 1


def did_you_mean(name: str, choices) -> str:
    """' (did you mean 'x'?)' for the closest of ``choices``, else the list of valid names."""
    import difflib

    choices = sorted(str(c) for c in choices)
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "expected one of: " + ", ".join(choices)
