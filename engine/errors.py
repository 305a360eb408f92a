"""User-facing error types.

Anything a user can cause by what they wrote or where their files are (a bad config key, a missing
dataset, a truncated event file) raises a subclass of :class:`SpikesweepError` with a message that says
what was wrong, where, and what was expected. The command line prints such errors without a traceback;
everything else is a bug and keeps its traceback.
"""


class SpikesweepError(Exception):
    """Base class of errors whose message is meant for the user."""


class ConfigError(SpikesweepError, ValueError):
    """A configuration problem, reported before anything is built or read."""


class DatasetError(SpikesweepError, FileNotFoundError):
    """A dataset is missing, laid out wrongly, or holds a corrupt file."""


class TrainingError(SpikesweepError, RuntimeError):
    """Training cannot continue (non-finite loss, unusable checkpoint); the last good checkpoint is kept."""
