"""PPG timing offsets (issue 16, item 5): PAT steps that neither HR nor the R->ABP delay explains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bprl.features import build_replay_table, concat_records
from bprl.features.pat_offsets import PAT_PER_BPM_MS, PAT_STEP_MIN_MS, pat_offset_steps
from bprl.schemas import REPLAY_TIMING
from bprl.sources import read_record


def _table(n: int = 40, record_id: str = "r1", seed: int = 0) -> pd.DataFrame:
    """A replay table's timing columns: steady PAT, HR and R->ABP delay with window-median noise."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "record_id": [record_id] * n,
            "step": np.arange(n),
            "t_start_s": np.arange(n) * 30.0,
            "t_end_s": np.arange(n) * 30.0 + 30.0,
            "pat_foot_ms": 400.0 + rng.normal(0, 5, n),
            "hr_bpm": 80.0 + rng.normal(0, 2, n),
            "r_abp_delay_ms": 250.0 + rng.normal(0, 2, n),
        }
    )


def test_a_step_of_pat_alone_is_flagged_with_its_size() -> None:
    t = _table()
    t.loc[20:, "pat_foot_ms"] += 80.0
    off = pat_offset_steps(t)
    assert np.flatnonzero(np.isfinite(off)).tolist() == [20]
    assert off[20] == pytest.approx(80.0, abs=8.0)


def test_a_blood_pressure_change_moving_the_abp_delay_or_hr_is_not_flagged() -> None:
    bp = _table()
    bp.loc[20:, "pat_foot_ms"] -= 40.0  # BP rise: PAT shorter ...
    bp.loc[20:, "r_abp_delay_ms"] -= 35.0  # ... and so is the R->ABP upstroke delay
    assert not np.isfinite(pat_offset_steps(bp)).any()
    hr = _table()
    hr.loc[20:, "pat_foot_ms"] -= 40.0
    hr.loc[20:, "hr_bpm"] += 25.0
    hr["r_abp_delay_ms"] = np.nan  # no ABP: HR alone explains the step
    assert not np.isfinite(pat_offset_steps(hr)).any()
    steady = _table(seed=3)
    assert not np.isfinite(pat_offset_steps(steady)).any()


def test_a_step_at_a_record_boundary_is_flagged_on_the_first_step_of_the_later_record() -> None:
    a, b = _table(12, "seg_0006", seed=1), _table(4, "seg_0012", seed=2)
    b["pat_foot_ms"] += 80.0
    old = b.drop(columns=["r_abp_delay_ms"])  # a table cached before the timing columns existed
    joined = concat_records([a, old])
    off = joined["pat_offset_ms"].to_numpy()
    assert np.flatnonzero(np.isfinite(off)).tolist() == [12]
    assert off[12] == pytest.approx(80.0, abs=8.0)
    assert set(REPLAY_TIMING) <= set(joined.columns)
    # windows never reach across a boundary inside a record: the same step 4 steps into a record is found there
    inside = _table(20, "one")
    inside.loc[4:, "pat_foot_ms"] += 80.0
    assert np.flatnonzero(np.isfinite(pat_offset_steps(inside))).tolist() == [4]


def test_a_step_larger_than_any_hr_change_explains_is_flagged() -> None:
    """HR +17 bpm explains at most ~50 ms of PAT (PAT_PER_BPM_MS): a 120-ms step is still a break,
    a 40-ms one is not."""
    for size, flagged in ((120.0, True), (-40.0, False)):
        t = _table()
        t.loc[20:, "pat_foot_ms"] += size
        t.loc[20:, "hr_bpm"] += 17.0
        t["r_abp_delay_ms"] = np.nan
        off = pat_offset_steps(t)
        assert (np.flatnonzero(np.isfinite(off)).tolist() == [20]) is flagged, size
    assert PAT_PER_BPM_MS * 17.0 + PAT_STEP_MIN_MS < 120.0


def test_a_peak_pat_step_counts_at_record_boundaries_only() -> None:
    """PAT to the systolic peak steps by -120 ms with the foot unchanged (the pulse's shape changed):
    a break at a record boundary; inside a record (where the peak detector may switch between two
    peaks of one pulse) only the foot is tested."""
    a, b = _table(12, "seg_a", seed=1), _table(6, "seg_b", seed=2)
    for t in (a, b):
        t["pat_peak_ms"] = 600.0 + np.random.default_rng(5).normal(0, 5, len(t))
    b["pat_peak_ms"] -= 120.0
    joined = concat_records([a, b])
    off = joined["pat_offset_ms"].to_numpy()
    assert np.flatnonzero(np.isfinite(off)).tolist() == [12]
    assert off[12] == pytest.approx(-120.0, abs=10.0)
    inside = _table(30, "one")
    inside["pat_peak_ms"] = 600.0
    inside.loc[15:, "pat_peak_ms"] -= 120.0
    assert not np.isfinite(pat_offset_steps(inside)).any()


def test_real_boundary_p10020306_0006_0012(physionet_dir: Path) -> None:
    """The boundary of issue 16: PAT to the PPG foot moves +12 ms, PAT to the systolic peak -107 ms
    (the pulse's rise time shortens), HR +15 bpm (explains <= ~46 ms), no valid ABP windows after
    it: flagged with the peak step (before: not flagged, the HR change vetoed it)."""
    folder = physionet_dir / "mimic4wdb-demo" / "p10020306" / "83404654"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found: the mimic4wdb-demo records are absent")
    parts = [build_replay_table(read_record(folder / f"83404654_{s}.hea")) for s in ("0006", "0012")]
    assert set(REPLAY_TIMING) <= set(parts[0].columns)
    delay = parts[0]["r_abp_delay_ms"].to_numpy()
    assert np.isfinite(delay).mean() > 0.5 and 100 < np.nanmedian(delay) < 400
    joined = concat_records(parts)
    i = len(parts[0])
    before, after = joined.iloc[i - 5 : i], joined.iloc[i : i + 5]
    cols = ("pat_foot_ms", "pat_peak_ms", "hr_bpm", "r_abp_delay_ms")
    d = {c: after[c].median() - before[c].median() for c in cols}
    flag = joined["pat_offset_ms"].iloc[i]
    print(
        f"p10020306 0006->0012: dPAT foot {d['pat_foot_ms']:+.1f} ms, peak {d['pat_peak_ms']:+.1f} ms, "
        f"dHR {d['hr_bpm']:+.1f} bpm, d delay {d['r_abp_delay_ms']:+.1f} ms, pat_offset_ms {flag}"
    )
    assert flag == pytest.approx(d["pat_peak_ms"])
    assert flag < -100 and abs(d["pat_foot_ms"]) < PAT_STEP_MIN_MS
    assert np.isfinite(joined["pat_offset_ms"]).sum() == 1
