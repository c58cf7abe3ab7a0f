"""The C API's status codes (``omega_status`` in omega.h) and which error gets which.

The numbers are the ``omega`` command's exit codes (``omega.cli.main.ExitCode``; a test
holds the two together), plus ``BUFFER`` for a caller's buffer that is too small.
"""

from __future__ import annotations

from enum import IntEnum

from omega.errors import OmegaError, error_code

__all__ = ["BufferTooSmall", "Status", "status_for"]


class Status(IntEnum):
    OK = 0
    ERROR = 1
    CONFIG = 2
    INPUT = 3
    STORAGE = 4
    MODEL = 5
    NETWORK = 6
    AUTH = 7
    PROTOCOL = 8
    BUFFER = 9


class BufferTooSmall(OmegaError):
    """A caller's buffer cannot hold the answer; ``needed`` is the size it must have."""

    def __init__(self, what: str, needed: int, given: int) -> None:
        super().__init__(f"{what} needs {needed}, got {given}")
        self.needed = needed


def status_for(error: BaseException) -> Status:
    """The code a C caller gets for ``error`` (ERROR for anything not Omega's own): the
    exit code the command gives for it (``omega.errors.error_code``), or BUFFER."""
    if isinstance(error, BufferTooSmall):
        return Status.BUFFER
    return Status(error_code(error))
