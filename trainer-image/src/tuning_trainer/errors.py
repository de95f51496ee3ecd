"""Errors that end a run with a known exit code (DESIGN.md section 3).

    tuning-trainer train --config run.yaml; echo $?   # 0, 2, 75 or 1

Raise :class:`InputError` for anything the user must fix (config, data, model path, hardware
mismatch): the command line prints its message without a traceback and exits 2, and the host
supervisor never retries it.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: a complete checkpoint was published, resume later


class InputError(Exception):
    """Bad config, data or environment: exit 2, one clear message, never retried."""


class ConfigError(InputError):
    pass


class DataError(InputError):
    pass


class DivergedError(InputError):
    """The loss became NaN or infinite: a retry would replay the same steps, so exit 2."""
