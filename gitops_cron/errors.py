"""The few error types a run can end with, and the one table mapping them to exit codes.

Each error's message already names its subject (`repo@revision`, `file:line:col`,
or an object), so the entry point can print it as one line and exit.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_SETTINGS = 2
EXIT_SOURCE = 3
EXIT_PRUNE_REFUSED = 4


class GitopsError(Exception):
    """Base of every error the run reports without a traceback."""

    exit_code = EXIT_FAILED


class SettingsError(GitopsError):
    """A flag or environment variable is missing or malformed."""

    exit_code = EXIT_SETTINGS


class SourceError(GitopsError):
    """The repository could not be read: clone, fetch, credentials, timeout, bad --path."""

    exit_code = EXIT_SOURCE


class ManifestError(GitopsError):
    """A file or document in the repository cannot become a Kubernetes object."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"{location}: {reason}")
        self.location = location
        self.reason = reason


class ClusterError(GitopsError):
    """The API server could not be used for the run as a whole (unreachable, forbidden, lock)."""


class PruneRefused(GitopsError):
    """A safety guard stopped pruning; nothing was deleted."""

    exit_code = EXIT_PRUNE_REFUSED


class Interrupted(GitopsError):
    """SIGTERM or the run's --timeout stopped the run before it finished."""


def exit_code_for(error: BaseException) -> int:
    """The exit code a run that ended with `error` reports; unknown errors are failures."""
    if isinstance(error, GitopsError):
        return error.exit_code
    return EXIT_FAILED
