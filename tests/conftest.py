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


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small virtual cohort generated once per session: 6 subjects x 0.25 h, seed 0 (see bprl.cohort).

    Layout: ``cohort.yaml``, ``manifest.parquet``/``.csv``, ``waves/<sid>/<rid>/<rid>.hea``,
    ``truth/<sid>.parquet``. Treat it as read-only: it is shared by every test.
    """
    from bprl.cohort import make_cohort

    out = tmp_path_factory.mktemp("tiny_cohort")
    return make_cohort(out, n_subjects=6, hours=0.25, seed=0, progress=False)
