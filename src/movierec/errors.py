"""The project's own exception types.

Every error a user can cause (a bad file, an unknown dataset or ID, a broken run directory, a bad
option) is one of these, with a message that says what went wrong, where, and how to fix it. The
command line turns them into one line on stderr and exit code 2; anything else is a bug.
"""

from __future__ import annotations


class MovieRecError(Exception):
    """Base class of every error a user can cause and fix."""


class MovieRecWarning(UserWarning):
    """Data a model can use but should not be trusted with as it is (the command line prints it
    as one ``warning:`` line)."""


class ConfigError(MovieRecError):
    """An option or configuration value is invalid."""


class DataError(MovieRecError, ValueError):
    """A dataset, ratings file or DataFrame cannot be read, or its content makes no sense.

    A ``ValueError`` too, so code that hands movierec a bad frame can catch what it would catch
    from pandas.
    """


class DownloadError(DataError):
    """A dataset could not be fetched from any of its sources."""


class ChecksumError(DataError):
    """A downloaded or rebuilt file does not match its published checksum."""


class UnknownIdError(MovieRecError, KeyError):
    """A raw user or item ID that the model never saw in training."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownIdsError(UnknownIdError, ValueError):
    """Raw IDs in a batch (users to recommend for, an allow- or deny-list, pairs to predict)
    that the model never saw; the message names them all (the first ten) and how to fix it."""


class ArtifactError(MovieRecError):
    """A run directory is missing, incomplete, tampered with or inconsistent."""


class TrainingError(MovieRecError):
    """Training diverged: its loss or weights stopped being finite numbers (the message names the
    epoch and what to try, usually a smaller learning rate). Nothing is saved as a run."""


class TrainingInterrupted(MovieRecError):
    """Training stopped on Ctrl-C or SIGTERM after writing a checkpoint it can resume from."""
