"""The root exception of midika; every package raises subclasses of it.

A failure says whether retrying can help, so callers (the ingest above all) can decide between
backing off and recording the failure for good.
"""


class MidikaError(Exception):
    """Root of every error midika raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ConfigError(MidikaError):
    """A configuration value or file is wrong; the message names the key or file."""


class TrialError(ConfigError):
    """A trial file does not validate; the message names the file and the path inside it."""


class StoreError(MidikaError):
    """A store could not do what was asked."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now; the same call may succeed later."""

    retryable = True


class NotFound(MidikaError):
    """A named trial, device or other object does not exist."""


class BadQuery(MidikaError):
    """A query parameter is invalid; the message says which."""
