"""Domain randomisation of virtual records (bprl.cohort.domain) and the shipped training spec."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bprl import cohort
from bprl.cohort.domain import draw_domain
from bprl.errors import CohortError
from bprl.sources import read_record
from tests.test_cohort import _hashes

TRAINING_SPEC = Path(cohort.__file__).parent / "specs" / "training.yaml"
HOURS = 0.02  # 72 s


def _make(root: Path, name: str, **spec: object) -> Path:
    return cohort.make_cohort(root / name, 2, HOURS, 7, spec=spec or None, progress=False)


def _channel(folder: Path, i: int, role: str) -> tuple[np.ndarray, float]:
    man = pd.read_parquet(folder / "manifest.parquet")
    rec = read_record(cohort.layout.record_path(folder, man.subject_id[i], man.record_id[i]))
    ch = rec.channel(role)
    return np.asarray(ch.samples, dtype=np.float64), float(ch.fs_hz)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make(tmp_path_factory.mktemp("dom"), "plain")


def test_default_spec_draws_nothing_and_lists_nothing(plain: Path) -> None:
    assert draw_domain(cohort.CohortSpec(), 7, 0).is_identity
    assert "ppg_delay_ms" not in pd.read_parquet(plain / "manifest.parquet").columns


def test_default_spec_records_are_pinned(tmp_path: Path) -> None:
    """Default-spec signals are byte-identical to those made before domain randomisation existed.

    The digest is of the .dat/.hea files written by the commit before the domain fields (af70f8f^);
    a change here means existing cohorts and seeds no longer reproduce.
    """
    out = cohort.make_cohort(tmp_path / "pin", 2, 0.01, 5, progress=False)
    digest = hashlib.sha256()
    for p in sorted(out.rglob("*")):
        if p.suffix in (".dat", ".hea"):
            digest.update(p.read_bytes())
    assert digest.hexdigest() == "a0ce7648044a497f2d764377b59b41df1e69032ccaa759ad5c235ab2f6716be1"


def _median_pat_ms(folder: Path, i: int) -> float:
    from bprl.features import build_replay_table

    man = pd.read_parquet(folder / "manifest.parquet")
    rec = read_record(cohort.layout.record_path(folder, man.subject_id[i], man.record_id[i]))
    return float(np.nanmedian(build_replay_table(rec)["pat_foot_ms"]))


def test_measured_pat_moves_by_the_delay_and_not_with_polarity_or_rate(tmp_path: Path) -> None:
    """Features of the written records: PAT = physiological PAT + ppg_delay_ms; inverted 500-Hz ECG changes nothing."""
    plain = cohort.make_cohort(tmp_path / "p", 2, 0.05, 7, progress=False)
    late = cohort.make_cohort(tmp_path / "l", 2, 0.05, 7, spec={"ppg_delay_sd_ms": 40.0}, progress=False)
    flip = cohort.make_cohort(
        tmp_path / "f", 2, 0.05, 7, spec={"ecg_invert_share": 1.0, "fs_choices_hz": [500]}, progress=False
    )
    delays = pd.read_parquet(late / "manifest.parquet")["ppg_delay_ms"]
    for i in range(2):
        base = _median_pat_ms(plain, i)
        assert _median_pat_ms(late, i) - base == pytest.approx(delays[i], abs=3.0)
        assert _median_pat_ms(flip, i) == pytest.approx(base, abs=3.0)


def test_inverted_ecg_and_gains(plain: Path, tmp_path: Path) -> None:
    inv = _make(tmp_path, "inv", ecg_invert_share=1.0, amplitude_log_sd=0.5)
    man = pd.read_parquet(inv / "manifest.parquet")
    assert man["ecg_inverted"].all() and (man["ecg_gain"] != 1).all()
    for i in range(2):
        a, _ = _channel(plain, i, "ecg")
        b, _ = _channel(inv, i, "ecg")
        ok = np.isfinite(a) & np.isfinite(b)
        gain = float(np.dot(a[ok], b[ok]) / np.dot(a[ok], a[ok]))
        assert gain == pytest.approx(-man["ecg_gain"][i], rel=0.01)
        ppg_a, _ = _channel(plain, i, "ppg")
        ppg_b, _ = _channel(inv, i, "ppg")
        np.testing.assert_allclose(ppg_b, ppg_a * man["ppg_gain"][i], rtol=0.01, atol=0.01 * np.nanstd(ppg_b))


def test_ppg_is_delayed_by_the_listed_delay(plain: Path, tmp_path: Path) -> None:
    late = _make(tmp_path, "late", ppg_delay_sd_ms=40.0)
    man = pd.read_parquet(late / "manifest.parquet")
    assert (man["ppg_delay_ms"].abs() > 0).all()
    for i in range(2):
        a, fs = _channel(plain, i, "ppg")
        b, _ = _channel(late, i, "ppg")
        a, b = np.nan_to_num(a - np.nanmean(a)), np.nan_to_num(b - np.nanmean(b))
        lags = np.arange(-25, 26)
        xc = [np.dot(a[30:-30], np.roll(b, -k)[30:-30]) for k in lags]
        lag_ms = 1000.0 * lags[int(np.argmax(xc))] / fs
        assert lag_ms == pytest.approx(man["ppg_delay_ms"][i], abs=1000.0 / fs)
        ecg_a, _ = _channel(plain, i, "ecg")
        ecg_b, _ = _channel(late, i, "ecg")
        np.testing.assert_array_equal(ecg_a, ecg_b)  # only the PPG moves


def test_sampling_rate_drawn_per_record(tmp_path: Path) -> None:
    fast = _make(tmp_path, "fast", fs_choices_hz=[500])
    for i in range(2):
        for role in ("ecg", "ppg", "abp"):
            assert _channel(fast, i, role)[1] == 500.0
    assert (pd.read_parquet(fast / "manifest.parquet")["fs_hz"] == 500).all()
    with pytest.raises(CohortError, match="noise_scale_range"):
        cohort.load_spec({"noise_scale_range": [2.0, 1.0]})


def test_training_spec_makes_a_deterministic_usable_cohort(tmp_path: Path) -> None:
    from bprl.features import build_replay_table

    a = cohort.make_cohort(tmp_path / "a", 3, 0.1, 3, spec=TRAINING_SPEC, progress=False)
    b = cohort.make_cohort(tmp_path / "b", 3, 0.1, 3, spec=TRAINING_SPEC, workers=2, progress=False)
    assert _hashes(a) == _hashes(b)
    man = pd.read_parquet(a / "manifest.parquet")
    assert {"ppg_delay_ms", "fs_hz", "ecg_inverted", "ecg_gain", "ppg_gain", "noise_scale"} <= set(
        man.columns
    )
    for i in range(3):
        rec = read_record(cohort.layout.record_path(a, man.subject_id[i], man.record_id[i]))
        assert rec.channel("ecg").fs_hz == man["fs_hz"][i]
        table = build_replay_table(rec)
        assert (
            np.isfinite(table["pat_foot_ms"]).mean() > 0.8 and np.isfinite(table["ref_sbp_mmhg"]).mean() > 0.8
        )


def test_cohort_made_before_the_domain_fields_resumes(plain: Path, tmp_path: Path) -> None:
    meta = yaml.safe_load((plain / "cohort.yaml").read_text())
    for key in (
        "ppg_delay_sd_ms",
        "fs_choices_hz",
        "ecg_invert_share",
        "amplitude_log_sd",
        "noise_scale_range",
    ):
        meta["spec"].pop(key)
    (plain / "cohort.yaml").write_text(yaml.safe_dump(meta))
    before = _hashes(plain)
    cohort.make_cohort(plain, 2, HOURS, 7, progress=False)  # same spec: no "different spec" error
    after = _hashes(plain)
    assert {k: v for k, v in before.items() if k != "cohort.yaml"} == {
        k: v for k, v in after.items() if k != "cohort.yaml"
    }
    with pytest.raises(CohortError, match="different spec"):
        cohort.make_cohort(plain, 2, HOURS, 7, spec={"ppg_delay_sd_ms": 5.0}, progress=False)
