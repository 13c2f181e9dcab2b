"""bprl: reinforcement-learning calibration of cuffless blood-pressure estimators."""

from __future__ import annotations

__version__ = "0.1.0"
