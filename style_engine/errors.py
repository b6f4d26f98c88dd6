"""Error types that tell callers whether retrying can help.

Orchestration retries only :class:`TransientError`; an :class:`InvalidInputError` fails the job at
once because the same input will fail the same way every time.
"""


class InvalidInputError(ValueError):
    """Permanent: a bad image or bad parameters. The message names the input and the problem."""


class TransientError(RuntimeError):
    """Retryable: a condition that may clear on its own (resources, I/O hiccups)."""


class OptimizationError(RuntimeError):
    """Permanent: the optimization failed on valid input (it diverged); the same run would fail again."""
