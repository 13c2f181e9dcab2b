"""Exception types of bprl.

Every error bprl raises on bad input is a :class:`BprlError`, so a batch job can
catch one type, record the message, and go on. Messages name the file (or the
field) and the problem.
"""

from __future__ import annotations


class BprlError(Exception):
    """Base class of every error bprl raises on purpose."""


class RecordError(BprlError):
    """A record could not be read: missing or corrupt file, unsupported format, missing channel."""


class RecordWarning(UserWarning):
    """A record was read, but something in it deserves attention.

    Duplicate channel names, a header without a sampling frequency (250 Hz assumed),
    implausible decoded signals. The message names the file and the problem; the same
    text is kept in ``Record.warnings`` / ``Record.problems`` and in the scan table.
    """


class CohortError(BprlError):
    """Invalid virtual-cohort arguments or parameter files."""


class FeatureError(BprlError):
    """Beats or replay tables could not be built from a record."""


class EstimatorError(BprlError):
    """Estimator training, checkpoint loading or inference failed on bad input."""


class ConfigError(BprlError):
    """An environment, agent or experiment specification is invalid."""


class EvaluationError(BprlError):
    """An episode log is malformed (missing columns, wrong types, empty) or a metric got bad input."""


class InvalidActionError(BprlError, ValueError):
    """An action outside the environment's action space was passed to ``step``."""
