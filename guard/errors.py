"""The error hierarchy and the exit codes. Every error says what is wrong, where, and how
to fix it; `qeguard.cli.main` is the one place that turns an outcome into an exit code."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What every command exits with."""

    OK = 0  # clean
    FINDINGS = 1  # findings at or above the policy's `fail_on` (or "needs action")
    USAGE = 2  # usage or configuration error: the message names what and how to fix it
    INTERNAL = 3  # a bug: details in the user log folder
    INTERRUPTED = 130  # Ctrl-C


class GuardError(Exception):
    """Base of every error qeguard raises on purpose.

    `where` names the file, field path or line; `hint` says what to run or change.
    The CLI prints `diagnostics()` and exits with `exit_code`.
    """

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def diagnostics(self) -> str:
        head = f"{self.where}: {self.message}" if self.where else self.message
        return f"{head}\n  hint: {self.hint}" if self.hint else head


class UsageError(GuardError):
    """The command line asks for something impossible."""


class ConfigError(GuardError):
    """A policy, trust or pyproject setting is malformed or inconsistent."""


class KeyFileError(GuardError):
    """A key cannot be read, parsed or decrypted."""


class EnvelopeError(GuardError):
    """A DSSE envelope or manifest list is malformed."""


class GitError(GuardError):
    """Git cannot answer: not a repository, unknown ref, missing object."""


class InputError(GuardError):
    """A dependency input (requirements, lock file, database) is malformed."""


class DatabaseError(GuardError):
    """The vulnerability database is missing, unreadable or cannot be fetched."""
