"""Multi-lead delineation (:func:`bprl.beats.ecg_delineate_leads`): the median over leads."""

from __future__ import annotations

import numpy as np
import pytest

from bprl.beats import ecg_delineate, ecg_delineate_leads, ecg_intervals
from bprl.beats.delineation import DELINEATION_COLUMNS
from bprl.errors import FeatureError
from tests.test_delineation import SYNTH_TOL_MS, _rhythm_dir, beat_train

FS = 500.0


def _leads(*columns: np.ndarray) -> np.ndarray:
    n = min(len(c) for c in columns)
    return np.stack([c[:n] for c in columns], axis=1)


def test_identical_leads_give_the_single_lead_boundaries() -> None:
    x, _ = beat_train(FS)
    d = ecg_delineate_leads(_leads(x, -0.5 * x, 2.0 * x), FS)
    assert list(d.columns) == [*DELINEATION_COLUMNS, "n_leads_qrs", "n_leads_p"]
    one = ecg_delineate(x, FS)
    cols = list(DELINEATION_COLUMNS)
    np.testing.assert_allclose(d[cols].to_numpy(), one[cols].to_numpy(), atol=5e-4)
    assert (d["n_leads_qrs"] == 3).all() and (d["n_leads_p"] == 3).all()
    iv = ecg_intervals(d)  # takes it as one lead's delineation
    assert iv["qrs_ms"].notna().all()


def test_one_bad_lead_does_not_move_the_median() -> None:
    """A lead of pure noise at the same R times: the median of three stays on the clean beats."""
    x, truth = beat_train(FS, n=16)
    noise = np.random.default_rng(0).normal(0.0, 0.3, len(x))
    d = ecg_delineate_leads(_leads(x, 0.8 * x, noise), FS, r_times_s=truth[:, 0])
    for j, col in enumerate(DELINEATION_COLUMNS[1:], start=1):
        err_ms = 1000 * (d[col].to_numpy() - truth[:, j])
        assert np.isfinite(err_ms).all(), col
        assert np.abs(err_ms).max() <= SYNTH_TOL_MS[col] + 1.0, f"{col}: {np.round(err_ms, 1)}"


def test_a_wave_needs_min_leads() -> None:
    """P waves in one lead of three: absent at the default (2 of 3), present with min_leads=1."""
    x, truth = beat_train(FS, p_wave=True)
    y, _ = beat_train(FS, p_wave=False)
    sig = _leads(x, y, 0.9 * y)
    d = ecg_delineate_leads(sig, FS, r_times_s=truth[:, 0])
    assert d["p_peak_s"].isna().all() and (d["n_leads_p"] == 1).all()
    assert d["qrs_onset_s"].notna().all()
    d1 = ecg_delineate_leads(sig, FS, r_times_s=truth[:, 0], min_leads=1)
    assert d1["p_peak_s"].notna().all()
    np.testing.assert_allclose(d1["p_peak_s"], truth[:, 2], atol=SYNTH_TOL_MS["p_peak_s"] / 1000)


def test_the_earliest_rule_takes_the_first_onset_and_the_last_offset() -> None:
    """Lead 2 is lead 1 delayed by 10 ms: "earliest" gives lead 1's onsets and lead 2's offsets."""
    x, truth = beat_train(FS, n=16)
    lag = int(0.010 * FS)
    late = np.concatenate([np.zeros(lag), x[:-lag]])
    sig = _leads(x, late)
    a = ecg_delineate(x, FS, r_times_s=truth[:, 0])
    b = ecg_delineate(late, FS, r_times_s=truth[:, 0])
    d = ecg_delineate_leads(sig, FS, r_times_s=truth[:, 0], rule="earliest")
    for col in ("p_onset_s", "qrs_onset_s"):
        np.testing.assert_allclose(d[col], np.minimum(a[col], b[col]))
        assert (d[col] < b[col] - 0.008).all(), col
    for col in ("p_offset_s", "qrs_offset_s", "t_end_s"):
        np.testing.assert_allclose(d[col], np.maximum(a[col], b[col]))
    np.testing.assert_allclose(d["t_peak_s"], (a["t_peak_s"] + b["t_peak_s"]) / 2)  # peaks: median
    m = ecg_delineate_leads(sig, FS, r_times_s=truth[:, 0])
    np.testing.assert_allclose(m["qrs_onset_s"], (a["qrs_onset_s"] + b["qrs_onset_s"]) / 2)


def test_r_peaks_come_from_the_named_lead() -> None:
    x, truth = beat_train(FS)
    sig = _leads(np.zeros_like(x), x)
    d = ecg_delineate_leads(sig, FS, peaks_lead=1, min_leads=1)
    np.testing.assert_allclose(d["r_s"], truth[:, 0], atol=1e-3)
    assert ecg_delineate_leads(sig, FS, peaks_lead=0).empty  # a flat lead has no R peaks


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"peaks_lead": 2}, "peaks_lead 2"),
        ({"min_leads": 0}, "min_leads must be 1..2"),
        ({"min_leads": 3}, "min_leads must be 1..2"),
        ({"rule": "mean"}, "rule must be one of"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    x, _ = beat_train(FS)
    with pytest.raises(FeatureError, match=match):
        ecg_delineate_leads(_leads(x, x), FS, **kwargs)


def test_bad_input() -> None:
    x, _ = beat_train(FS)
    with pytest.raises(FeatureError, match="2-D"):
        ecg_delineate_leads(x, FS)
    with pytest.raises(FeatureError, match="below 100 Hz"):
        ecg_delineate_leads(_leads(x, x), 50.0, r_times_s=np.array([1.0, 2.0]))


def test_ludb_twelve_lead_median_is_closer_to_the_lead_ii_marks() -> None:
    """On LUDB records the 12-lead median's QRS onset and P onset errors against the lead II marks
    have a smaller SD than lead II delineated alone (the benchmark's claim, on 20 records)."""
    top = _rhythm_dir() / "ludb" / "data"
    if not (top / "1.hea").is_file():
        pytest.skip(f"LUDB not found under {top.parent} (set BPRL_RHYTHM_DIR)")
    wfdb = pytest.importorskip("wfdb")
    from benchmarks.bench_delineation import LUDB_LEADS, _in_s, aligned, as_bounds, counts, parse_wave_marks
    from bprl.beats import ecg_peaks

    alone, median = [], []
    names = sorted((p.stem for p in top.glob("*.hea")), key=lambda n: (len(n), n))[:20]
    for name in names:
        rec = wfdb.rdrecord(str(top / name))
        sig = rec.p_signal[:, [rec.sig_name.index(lead) for lead in LUDB_LEADS]]
        ann = wfdb.rdann(str(top / name), "ii")
        ref = _in_s(parse_wave_marks(ann.sample, ann.symbol), rec.fs)
        ii = sig[:, LUDB_LEADS.index("ii")]
        r_s = ecg_peaks(ii, rec.fs)
        alone.append(counts(ref, [aligned(ref, as_bounds(ecg_delineate(ii, rec.fs, r_times_s=r_s)))]))
        median.append(counts(ref, [aligned(ref, as_bounds(ecg_delineate_leads(sig, rec.fs, r_times_s=r_s)))]))
    for b in ("qrs_onset", "p_onset"):
        sd_alone = np.concatenate([c[b][3] for c in alone]).std()
        sd_median = np.concatenate([c[b][3] for c in median]).std()
        assert sd_median < sd_alone, f"{b}: median {sd_median:.1f} ms, lead II alone {sd_alone:.1f} ms"
