"""The one error tree of Dockyard.

Every error raised on purpose by Dockyard code derives from ``DockyardError``. The API maps classes to HTTP
status codes and Heroku error ids in ``dockyard.api.errors``; the CLI maps API errors back onto these classes.

    DockyardError
    ├── NotFoundError
    ├── ConflictError
    ├── InvalidError
    │   ├── ProcfileError
    │   └── ConfigVarError
    ├── AccessDeniedError
    │   └── UnauthorizedError
    ├── RateLimitedError
    ├── UnavailableError
    ├── BuildError
    │   ├── DetectError
    │   ├── CompileError
    │   └── PushRejectedError
    ├── SlugError
    ├── DynoError
    │   └── BootTimeoutError
    ├── CommandError        (a system command failed or is missing)
    └── ApiError            (raised by the client when the API answers with an error it cannot map)

Messages say what happened, why, and what to do next. This module imports nothing from Dockyard.
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base class of every error Dockyard raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(DockyardError):
    """The thing asked for does not exist (or the caller may not know that it does)."""


class ConflictError(DockyardError):
    """The request clashes with the current state, e.g. a name that is already taken."""


class InvalidError(DockyardError):
    """Input that breaks a rule: a bad name, an oversized config, a malformed file."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ProcfileError(InvalidError):
    """A Procfile that cannot be parsed; the message names the line."""


class ConfigVarError(InvalidError):
    """A config var key or value that breaks the rules."""


class AccessDeniedError(DockyardError):
    """The caller is known but may not do this."""


class UnauthorizedError(AccessDeniedError):
    """The caller is not authenticated: no credentials, or credentials that do not match an account."""


class RateLimitedError(DockyardError):
    """Too many requests; ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnavailableError(DockyardError):
    """A component Dockyard depends on cannot be reached right now; retrying later may help."""


class BuildError(DockyardError):
    """A build failed; nothing was released."""


class DetectError(BuildError):
    """No buildpack recognised the source."""


class CompileError(BuildError):
    """A buildpack failed while compiling."""


class PushRejectedError(BuildError):
    """A git push was refused before any build started (wrong branch, deletion, no access)."""


class SlugError(DockyardError):
    """A slug could not be created, stored, verified or unpacked."""


class DynoError(DockyardError):
    """A dyno could not be started, stopped or inspected."""


class BootTimeoutError(DynoError):
    """A web dyno did not bind its $PORT in time (Heroku's R10)."""


class CommandError(DockyardError):
    """A system command (git, mksquashfs, ...) exited non-zero, timed out, or is not installed."""

    def __init__(self, message: str, *, returncode: int | None = None, output: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output = output


class ApiError(DockyardError):
    """The API answered with an error the client could not map onto a more specific class."""

    def __init__(self, message: str, *, error_id: str, status: int) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.status = status
