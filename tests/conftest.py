"""Shared fixtures: where the real PhysioNet records are, and skip them visibly when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def physionet_root() -> Path:
    """``$BPRL_PHYSIONET_DIR`` or ``../shared/data/physionet`` next to the repository."""
    env = os.environ.get("BPRL_PHYSIONET_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data" / "physionet"


@pytest.fixture(scope="session")
def physionet_dir() -> Path:
    """The real-records folder; tests that use it are skipped, with the reason shown, when it is absent."""
    root = physionet_root()
    if not root.is_dir():
        pytest.skip(f"real PhysioNet records not found at {root} (set BPRL_PHYSIONET_DIR)")
    return root
