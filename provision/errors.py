"""Errors a user can act on, and the exit codes they map to."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    INTERRUPTED = 130


class ProvisionError(Exception):
    """An expected failure: its message is one line that says what to do next."""

    exit_status = ExitStatus.FAILURE


class UsageError(ProvisionError):
    """Bad input, found before any resource was created."""

    exit_status = ExitStatus.USAGE
