"""Errors the engine raises. Every message says what failed, why, and what to do next."""


class LifeboatError(Exception):
    """Base class: `msg` is fit to show an operator as is; `details` is returned beside it."""

    def __init__(self, msg, **details):
        super(LifeboatError, self).__init__(msg)
        self.msg = msg
        self.details = details


class ConfigError(LifeboatError):
    """Options that cannot work together, or a value out of range."""


class SourceError(LifeboatError):
    """The thing to back up is missing, unreadable, or not what it claims to be."""


class SinkError(LifeboatError):
    """Writing to or reading from a repository (local directory, S3) failed."""


class IntegrityError(LifeboatError):
    """Stored data does not match its manifest (sha256 mismatch, truncation, bad manifest)."""


class NotFoundError(LifeboatError):
    """No backup set matches the selection."""


class RestoreError(LifeboatError):
    """A restore could not complete; live data was left as it was (or put back)."""


class ToolError(LifeboatError):
    """An external tool is missing or exited non-zero."""
