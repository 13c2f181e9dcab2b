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


def protocol_env_spec(root: Path, budget_per_h: float, seed: int = 8) -> dict:
    """A continuous env spec over a 6-subject synthetic replay set written under ``root`` (4 train,
    1 val, 1 test; 1-h records), paced at ``budget_per_h``, with 40-mmHg offset steps (the
    protocol's env): what the agent-training tests of the residual and cuff-price code use."""
    from bprl.envs import synthetic_replay_tables
    from bprl.features.replay_set import write_replay_set

    tables = synthetic_replay_tables(n_subjects=6, n_steps=120, seed=seed)
    rs = root / "rs"
    write_replay_set(rs, tables, dict(zip(sorted(tables), ["train"] * 4 + ["val", "test"], strict=True)))
    return {
        "id": "bprl/BPCalibrationContinuous-v1",
        "replay_set": str(rs),
        "cuff": {"budget_per_h": budget_per_h},
        "actions": {"max_offset_step_mmhg": 40.0},
    }


# ------------------------------------------------------------------ headless browser
def _browser_paths() -> tuple[str | None, str | None]:
    """Chromium and chromedriver: ``$BPRL_CHROMIUM`` / ``$BPRL_CHROMEDRIVER``, else from PATH."""
    import shutil

    chromium = os.environ.get("BPRL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("BPRL_CHROMEDRIVER") or shutil.which("chromedriver")
    return chromium, driver


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium driven by Selenium through Debian's chromedriver, with the console log on.

    ``make test`` installs ``chromium`` and ``chromium-driver`` where missing (tools/install_browser.sh);
    where they cannot be installed the tests that use this fixture are skipped with the reason.
    Selenium Manager is never asked for a driver (it would download one).
    """
    chromium, driver_path = _browser_paths()
    if chromium is None or driver_path is None:
        pytest.skip(
            "headless-browser test skipped: chromium and chromedriver not found "
            "(Debian: apt-get install chromium chromium-driver; `make test` tries this)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1100",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield drv
    finally:
        drv.quit()


def browser_console_errors(driver) -> list[str]:
    """The console messages of level SEVERE since the last call (the log is drained by reading it)."""
    return [str(e.get("message")) for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
