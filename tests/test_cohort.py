"""Virtual cohort: layout, read-back, physiology (Moens-Korteweg/Hughes, PEP confounder), determinism, resume."""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.interpolate import CubicSpline
from typer.testing import CliRunner

from bprl import cohort
from bprl.cli import app
from bprl.cohort import ecg_model, layout, pulse_model, wfdb_writer
from bprl.errors import CohortError
from bprl.sources import read_record


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _simulate(
    i: int, hours: float, seed: int = 0, **spec_fields: float
) -> tuple[cohort.Waveforms, pd.DataFrame, cohort.SubjectParams]:
    spec = cohort.CohortSpec(**spec_fields)
    p = cohort.sample_subjects(spec, i + 1, seed)[i]
    w, tr = cohort.simulate_subject(p, hours, np.random.default_rng([seed, i, 1]), spec)
    return w, tr, p


# ------------------------------------------------------------------ spec and arguments
def test_spec_is_a_frozen_config_spec() -> None:
    from bprl.config import Spec, spec_reference_table

    s = cohort.CohortSpec()
    assert isinstance(s, Spec)
    with pytest.raises(ValidationError):
        s.hr_mean_bpm = 90.0  # type: ignore[misc]
    assert all(f.description for f in cohort.CohortSpec.model_fields.values())
    assert "`fs_ecg_hz`" in spec_reference_table(cohort.CohortSpec)


def test_spec_rejects_unknown_and_out_of_range_fields(tmp_path: Path) -> None:
    with pytest.raises(CohortError, match="'bogus_field': unknown field"):
        cohort.load_spec({"bogus_field": 1})
    with pytest.raises(CohortError, match="hr_mean_bpm"):
        cohort.load_spec({"hr_mean_bpm": 500})
    with pytest.raises(CohortError, match="split"):
        cohort.load_spec({"split_train": 0.9})
    bad = tmp_path / "spec.yaml"
    bad.write_text("gamma_min_per_mmhg: -1\n")
    with pytest.raises(CohortError, match=r"spec\.yaml.*gamma_min_per_mmhg"):
        cohort.load_spec(bad)
    good = tmp_path / "good.yaml"
    good.write_text("hypertensive_share: 0.5\nfs_abp_hz: 250\n")
    s = cohort.load_spec(good)
    assert s.hypertensive_share == 0.5 and s.fs_abp_hz == 250


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_subjects": 0}, "n_subjects"),
        ({"hours": -1.0}, "hours"),
        ({"hours": 0.0}, "hours"),
        ({"workers": 0}, "workers"),
        ({"seed": -3}, "seed"),
    ],
)
def test_make_cohort_rejects_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"n_subjects": 1, "hours": 0.01, "seed": 0, **kwargs}
    with pytest.raises(CohortError, match=match):
        cohort.make_cohort(tmp_path / "c", progress=False, **args)


def test_make_cohort_rejects_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(CohortError, match=r"not writable|not a folder"):
        cohort.make_cohort(blocker / "sub", 1, 0.01, 0, progress=False)
    with pytest.raises(CohortError, match="not a folder"):
        cohort.make_cohort(blocker, 1, 0.01, 0, progress=False)


# ------------------------------------------------------------------ population
def test_population_resembles_icu_and_subjects_do_not_depend_on_n() -> None:
    ps = cohort.sample_subjects(None, 300, 7)
    sbp = np.array([p.sbp_mmhg for p in ps])
    cats = {p.category for p in ps}
    assert cats == {"hypertensive", "normotensive", "hypotensive"}
    assert 85 <= sbp.min() and sbp.max() <= 185
    assert 0.25 < np.mean(sbp >= 140) < 0.45
    gam = np.array([p.gamma_per_mmhg for p in ps])
    assert 0.017 <= gam.min() and gam.max() <= 0.031
    assert all(p.dbp_mmhg < p.sbp_mmhg - 20 for p in ps)
    # Moens-Korteweg at the reference pressure gives back the drawn PWV
    p0 = ps[0]
    assert p0.pwv_m_s(cohort.PWV_REF_PRESSURE_MMHG) == pytest.approx(p0.pwv_ref_m_s, rel=1e-9)
    assert cohort.sample_subjects(None, 3, 7)[2] == ps[2]
    assert cohort.sample_subjects(None, 3, 8)[2] != ps[2]


# ------------------------------------------------------------------ files
def test_layout_manifest_and_splits(tiny_cohort: Path) -> None:
    m = cohort.load_manifest(tiny_cohort)
    assert list(m["subject_id"]) == [f"v{i:04d}" for i in range(1, 7)]
    assert list(m["record_id"]) == [f"v{i:04d}_0001" for i in range(1, 7)]
    assert (m["hours"] == 0.25).all()
    for col in (
        "age_years",
        "sex",
        "height_cm",
        "sbp_mmhg",
        "gamma_per_mmhg",
        "pep_ms",
        "e0_kpa",
        "motion_rate_per_h",
    ):
        assert col in m.columns
    assert m["split"].value_counts().to_dict() == {"train": 4, "val": 1, "test": 1}
    csv = pd.read_csv(tiny_cohort / "manifest.csv")
    assert list(csv["subject_id"]) == list(m["subject_id"])
    assert (tiny_cohort / "cohort.yaml").is_file()
    for sid, rid in zip(m["subject_id"], m["record_id"], strict=True):
        hea = tiny_cohort / "waves" / sid / rid / f"{rid}.hea"
        assert f"# subject_id: {sid}" in hea.read_text()
        tr = cohort.read_truth(tiny_cohort, sid)
        assert list(tr.columns) == list(cohort.TRUTH_COLUMNS)
        assert np.all(np.diff(tr["r_time_s"]) > 0.2)
        np.testing.assert_allclose(tr["pat_ms"], tr["pep_ms"] + tr["ptt_ms"], atol=1e-9)
    assert not list(tiny_cohort.rglob(".tmp*"))


def test_layout_paths_and_manifest_readers(tiny_cohort: Path, tmp_path: Path) -> None:
    hea = tiny_cohort / "waves" / "v0002" / "v0002_0001" / "v0002_0001.hea"
    assert layout.record_path(tiny_cohort, "v0002") == hea
    assert layout.record_path(tiny_cohort, "v0002", "v0002_0001") == hea
    assert layout.truth_path(tiny_cohort, "v0002") == tiny_cohort / "truth" / "v0002.parquet"
    assert (layout.subject_id_for(0), layout.record_id_for(0)) == ("v0001", "v0001_0001")
    with pytest.raises(CohortError, match="no subject"):
        layout.record_path(tiny_cohort, "v9999")
    m = layout.read_manifest(tiny_cohort)
    pd.testing.assert_frame_equal(m, cohort.load_manifest(tiny_cohort), check_dtype=False)
    # a folder with only the CSV manifest reads the same
    csv_only = tmp_path / "csv_only"
    csv_only.mkdir()
    (csv_only / "manifest.csv").write_bytes((tiny_cohort / "manifest.csv").read_bytes())
    assert layout.find_manifest(csv_only) == csv_only / "manifest.csv"
    mc = layout.read_manifest(csv_only)
    assert list(mc["subject_id"]) == list(m["subject_id"]) and list(mc["split"]) == list(m["split"])
    # a manifest that puts one subject in two splits, or uses an unknown split, is refused
    bad = tmp_path / "bad"
    bad.mkdir()
    two = pd.concat([m.iloc[:1].assign(split="train"), m.iloc[:1].assign(split="test", record_id="x")])
    two.to_csv(bad / "manifest.csv", index=False)
    with pytest.raises(CohortError, match="more than one split"):
        layout.read_manifest(bad)
    m.assign(split="holdout").to_csv(bad / "manifest.csv", index=False)
    with pytest.raises(CohortError, match="unknown split"):
        layout.read_manifest(bad)
    with pytest.raises(CohortError, match="not a virtual cohort"):
        layout.read_manifest(tmp_path)


def test_manifest_splits_are_pinned() -> None:
    """The manifest's split rule (through bprl.splits) gives the labels it always gave (values from the pre-split code)."""
    spec = cohort.CohortSpec()
    assert cohort.assign_splits(6, 0, spec) == ["train", "test", "train", "train", "val", "train"]
    assert cohort.assign_splits(5, 3, spec) == ["train", "test", "train", "val", "train"]
    half = cohort.CohortSpec(split_train=0.5, split_val=0.5, split_test=0.0)
    assert cohort.assign_splits(3, 1, half) == ["train", "train", "val"]


def test_record_reads_back_within_quantisation(tiny_cohort: Path) -> None:
    i = 1
    w, truth, _ = _simulate(i, 0.25)
    sid, rid = f"v{i + 1:04d}", f"v{i + 1:04d}_0001"
    rec = read_record(tiny_cohort / "waves" / sid / rid / f"{rid}.hea")
    assert rec.subject_id == sid and rec.record_id == rid
    pd.testing.assert_frame_equal(truth, cohort.read_truth(tiny_cohort, sid))
    for (name, _units, gain), role, fs in zip(
        wfdb_writer.CHANNELS, ("ecg", "ppg", "abp"), (250.0, 125.0, 125.0), strict=True
    ):
        ch = rec.channel(role)
        assert ch.name == name and ch.fs_hz == fs
        x, fs_w = w.waves[name]
        assert fs_w == fs and len(ch.samples) == len(x)
        nan = np.isnan(x)
        np.testing.assert_array_equal(np.isnan(ch.samples), nan)
        err = np.abs(ch.samples[~nan].astype(np.float64) - x[~nan])
        clipped = np.abs(x[~nan]) * gain >= 32767
        assert err[~clipped].max() <= 0.5 / gain + 1e-6 * np.abs(x[~nan][~clipped]).max()


def test_sampling_rates_are_configurable(tmp_path: Path) -> None:
    out = cohort.make_cohort(
        tmp_path / "fs", 1, 0.01, 0, spec={"fs_ppg_hz": 100, "fs_abp_hz": 250}, progress=False
    )
    rec = read_record(out / "waves" / "v0001" / "v0001_0001" / "v0001_0001.hea")
    assert [(c.role, c.fs_hz) for c in rec.channels] == [("ecg", 250.0), ("ppg", 100.0), ("abp", 250.0)]
    assert len(rec.channel("ppg").samples) == 36 * 100


def test_fast_writer_is_byte_identical_to_wfdb_wrsamp(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 1250
    waves = {
        "II": (rng.normal(0, 0.5, 2 * n), 250.0),
        "Pleth": (rng.normal(0, 1, n), 125.0),
        "ABP": (rng.normal(90, 20, n), 125.0),
    }
    waves["ABP"][0][5:50] = np.nan
    waves["Pleth"][0][0] = np.nan
    waves["II"][0][7] = 99.0  # beyond the format-16 range: clipped
    wfdb_writer.wfdb_write(tmp_path / "a", "r", waves, ["subject_id: v9"])
    wfdb_writer.wfdb_write(tmp_path / "b", "r", waves, ["subject_id: v9"], use_wrsamp=True)
    for name in ("r.hea", "r.dat"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_truth_matches_noiseless_waveforms() -> None:
    """R peak = ECG maximum, PAT ends at the PPG intersecting-tangents foot, SBP/DBP = ABP max/min."""
    w, tr, _ = _simulate(2, 0.05, ectopic_subject_share=1.0)
    fe, fp = 250.0, 125.0
    ecg, ppg, abp = w.clean["II"], w.clean["Pleth"], w.clean["ABP"]
    beats = tr.iloc[2:-2]
    for _, b in beats.iterrows():
        k = round(b.r_time_s * fe)
        seg = ecg[k - 5 : k + 6]
        j = int(np.argmax(seg))
        assert j == 5 or abs((k - 5 + j) / fe - b.r_time_s) <= 0.5 / fe + 1e-9
        y0, y1, y2 = seg[j - 1 : j + 2]
        r_est = (k - 5 + j + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)) / fe
        assert abs(r_est - b.r_time_s) < 1.5e-3
        i0, i1 = int((b.ppg_foot_s - 0.12) * fp), int((b.ppg_foot_s + 0.25) * fp) + 1
        t = np.arange(i0, i1) / fp
        tt = np.arange(t[0], t[-1], 1e-4)
        foot = pulse_model.tangent_foot_s(tt, CubicSpline(t, ppg[i0:i1])(tt))
        assert abs(foot - b.ppg_foot_s) < 0.5e-3
    starts = tr["abp_foot_s"].to_numpy() - 0.02  # just before each upstroke's foot
    for k in range(2, len(tr) - 2):
        seg = abp[int(starts[k] * fp) - 6 : int(starts[k + 1] * fp) - 6]
        assert seg.max() == pytest.approx(tr["sbp_mmhg"].iloc[k], abs=0.3)
        lo = abp[int(starts[k] * fp) - 6 : int(starts[k] * fp) + 6].min()
        assert lo == pytest.approx(tr["dbp_mmhg"].iloc[k], abs=0.3)


def test_artefact_flags_cover_the_corrupted_beats() -> None:
    w, tr, _ = _simulate(4, 0.25, seed=3, artefact_scale=10.0)
    fs = 125.0
    for name, col in (("Pleth", "ppg_artefact"), ("ABP", "abp_artefact")):
        x = w.waves[name][0]
        bad = np.isnan(x) | (
            np.abs(x - w.clean[name]) > (1.0 if name == "ABP" else 0.2 * np.nanmax(w.clean[name]))
        )
        foot = tr["ppg_foot_s" if name == "Pleth" else "abp_foot_s"].to_numpy()
        i0 = np.floor(foot[:-1] * fs).astype(int)
        i1 = np.ceil(foot[1:] * fs).astype(int)
        touched = np.array([bad[a:b].any() for a, b in zip(i0, i1, strict=True)])
        flags = tr[col].to_numpy()[:-1]
        assert touched.sum() > 10
        assert np.all(flags[touched])  # every visibly corrupted beat is flagged
        assert flags.mean() < 0.6
    ecg = w.waves["II"][0]
    k = np.rint(tr["r_time_s"].to_numpy() * 250.0).astype(int)
    assert np.all(tr["ecg_artefact"].to_numpy()[np.isnan(ecg[k])])


# ------------------------------------------------------------------ physiology
@pytest.mark.parametrize("i", [0, 3])
def test_ptt_follows_moens_korteweg_hughes(i: int) -> None:
    """ln PTT = ln(L / PWV0) - gamma/2 * MAP: the fitted slope equals -gamma/2; PTT falls as SBP rises."""
    _, tr, p = _simulate(
        i, 0.3, seed=11, stiffness_drift_sd_per_h=0.0, pressor_rate_per_h=10.0, hypotension_rate_per_h=10.0
    )
    slope, _ = np.polyfit(tr["map_mmhg"], np.log(tr["ptt_ms"]), 1)
    assert tr["map_mmhg"].std() > 3.0
    assert slope == pytest.approx(-p.gamma_per_mmhg / 2, rel=0.08)
    # in mmHg per ms around the operating point: dSBP/dPTT = (dMAP/dPTT) * (dSBP/dMAP)
    s_slope, _ = np.polyfit(tr["sbp_mmhg"], tr["ptt_ms"], 1)
    dmap_dsbp = np.polyfit(tr["sbp_mmhg"], tr["map_mmhg"], 1)[0]
    analytic = -p.gamma_per_mmhg / 2 * tr["ptt_ms"].mean() * dmap_dsbp
    assert s_slope < 0
    assert s_slope == pytest.approx(analytic, rel=0.25)


def test_stiffness_drift_ages_a_calibration() -> None:
    """With stiffness drift, the PTT predicted from MAP by a fixed Moens-Korteweg model departs over time."""
    _, tr, p = _simulate(0, 1.0, seed=5, stiffness_drift_sd_per_h=0.3)
    pred = p.path_length_m / p.pwv_m_s(tr["map_mmhg"].to_numpy()) * 1e3
    resid = np.log(tr["ptt_ms"].to_numpy() / pred)
    assert abs(resid[:20].mean()) < 0.015  # freshly calibrated: the model fits the first beats
    assert np.abs(resid).max() > 0.05  # later PTT departs by > 5 % at the same MAP


def test_pep_confounder_moves_pat_without_bp() -> None:
    """Sympathetic-only episodes shorten PEP (and raise HR) with BP unchanged, so PAT misleads."""
    kw = dict(
        pressor_rate_per_h=0,
        hypotension_rate_per_h=0,
        stress_rate_per_h=0,
        tone_rate_per_h=6.0,
        ou_sd_mmhg=0.5,
    )
    _, tr, p = _simulate(1, 0.5, seed=2, **kw)
    assert np.corrcoef(tr["sympathetic_tone"], tr["pep_ms"])[0, 1] < -0.9
    # per-minute medians: PAT swings by tens of ms while MAP stays within a few mmHg
    g = tr.groupby((tr["r_time_s"] // 60).astype(int))[["pat_ms", "map_mmhg", "pep_ms", "hr_bpm"]].median()
    assert g["pat_ms"].max() - g["pat_ms"].min() > 10.0
    assert g["pep_ms"].max() - g["pep_ms"].min() > 10.0
    # a PAT calibration would turn this PAT range into a BP swing much larger than the true one
    implied = (g["pat_ms"].max() - g["pat_ms"].min()) * 2 / (p.gamma_per_mmhg * tr["ptt_ms"].mean())
    assert implied > 2 * (g["map_mmhg"].max() - g["map_mmhg"].min())


def test_ectopy_and_af() -> None:
    w, tr, _ = _simulate(0, 0.5, seed=4, ectopic_subject_share=1.0, af_subject_share=1.0, af_rate_per_h=2.0)
    rr = tr["rr_ms"].to_numpy()
    ect = tr["ectopic"].to_numpy()
    assert ect.sum() > 5
    idx = np.flatnonzero(ect)
    idx = idx[(idx > 0) & (idx < len(rr) - 1)]
    assert np.all(rr[idx] < rr[idx + 1])  # premature, then a compensatory pause
    assert np.all(tr["sbp_mmhg"].to_numpy()[idx] < tr["sbp_mmhg"].to_numpy()[idx + 1])
    af = tr["af"].to_numpy()
    assert af.sum() > 50
    d = np.abs(np.diff(rr))  # AF: irregularly irregular RR, no ectopics inside
    assert np.median(d[af[1:] & af[:-1]]) > 3 * np.median(d[~af[1:] & ~af[:-1] & ~ect[1:] & ~ect[:-1]])
    assert not (ect & af).any()
    assert tr["r_time_s"].iloc[-1] > 1800.0 - 3.0  # beats cover the whole record, no gaps
    assert np.diff(tr["r_time_s"]).max() < 2.0
    assert w.clean["II"].shape == (round(0.5 * 3600 * 250),)


def test_ecg_beat_morphology() -> None:
    """AF beats lose their P wave, nothing else; ectopic beats have a wider QRS; the R maximum is exact."""
    morph = ecg_model.EcgMorphology.sample(np.random.default_rng(1), 1.0)
    r, rr = np.array([1.0, 2.0, 3.0]), np.ones(3)
    no = np.zeros(3, bool)
    base = ecg_model.ecg_synthesize(r, rr, no, 1000, 250.0, morph)
    af = ecg_model.ecg_synthesize(r, rr, no, 1000, 250.0, morph, af=np.array([False, True, False]))
    diff = np.flatnonzero(np.abs(base - af) > 1e-3) / 250.0
    p_time = 2.0 + morph.centre_s[0] - morph.r_offsets_s()[0]
    assert len(diff) and np.all(np.abs(diff - p_time) < 4 * morph.width_s[0])
    assert base[250 * 2 + round(250 * morph.centre_s[0])] > 0.5 * morph.amp_mv[0]
    pvc = ecg_model.ecg_synthesize(r, rr, np.array([False, True, False]), 1000, 250.0, morph)
    width = [np.sum(np.abs(x[440:560]) > 0.5 * np.abs(x[440:560]).max()) for x in (base, pvc)]
    assert width[1] > 1.5 * width[0]
    for ect in (False, True):  # at 100 kHz the QRS maximum lies on the requested R time
        fine = ecg_model.ecg_synthesize(np.array([0.05]), np.ones(1), np.array([ect]), 10000, 1e5, morph)
        assert abs(np.argmax(fine) / 1e5 - 0.05) <= 2e-5


# ------------------------------------------------------------------ determinism, resume, CLI
def test_same_seed_same_bytes_and_workers_do_not_matter(tmp_path: Path) -> None:
    a = cohort.make_cohort(tmp_path / "a", 3, 0.02, 5, progress=False)
    b = cohort.make_cohort(tmp_path / "b", 3, 0.02, 5, workers=2, progress=False)
    c = cohort.make_cohort(tmp_path / "c", 3, 0.02, 6, progress=False)
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert ha == hb
    assert set(ha) == set(hc)
    assert all(ha[k] != hc[k] for k in ha if k.endswith((".dat", ".parquet")))


def test_interrupted_run_leaves_no_half_record_and_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _hashes(cohort.make_cohort(tmp_path / "ref", 3, 0.02, 1, progress=False))
    out = tmp_path / "run"
    real = wfdb_writer.wfdb_write
    calls = {"n": 0}

    def dying_write(*args: object, **kwargs: object) -> Path:
        calls["n"] += 1
        hea = real(*args, **kwargs)
        if calls["n"] == 2:  # the second subject dies after its files are written, before the rename
            raise KeyboardInterrupt
        return hea

    monkeypatch.setattr(wfdb_writer, "wfdb_write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        cohort.make_cohort(out, 3, 0.02, 1, progress=False)
    monkeypatch.undo()
    assert (out / "truth" / "v0001.parquet").is_file()
    assert not (out / "waves" / "v0002" / "v0002_0001").exists()
    assert not (out / "truth" / "v0002.parquet").exists()
    assert not list(out.rglob(".tmp*"))
    # a hard kill would leave a temp folder behind: the rerun removes it
    stale = out / "waves" / "v0002" / ".tmp-v0002_0001-12345"
    stale.mkdir(parents=True)
    (stale / "v0002_0001.dat").write_bytes(b"half")
    cohort.make_cohort(out, 3, 0.02, 1, progress=False)
    assert _hashes(out) == ref
    with pytest.raises(CohortError, match="different seed"):
        cohort.make_cohort(out, 3, 0.02, 2, progress=False)


def test_growing_a_cohort_keeps_existing_subjects(tmp_path: Path) -> None:
    out = tmp_path / "grow"
    before = _hashes(cohort.make_cohort(out, 2, 0.01, 4, progress=False))
    after = _hashes(cohort.make_cohort(out, 3, 0.01, 4, progress=False))
    kept = [k for k in before if k.startswith(("waves", "truth"))]
    assert kept and all(after[k] == before[k] for k in kept)
    assert "truth/v0003.parquet" in after
    assert list(cohort.load_manifest(out)["subject_id"]) == ["v0001", "v0002", "v0003"]


def test_cli_make_and_describe(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(
        app, ["cohort", "make", "--subjects", "2", "--hours", "0.02", "--seed", "3", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert (out / "manifest.parquet").is_file()
    res = runner.invoke(app, ["cohort", "describe", str(out)])
    assert res.exit_code == 0, res.output
    assert "SBP >= 140" in res.output and "ectopic" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("not_a_field: 3\n")
    res = runner.invoke(
        app,
        [
            "cohort",
            "make",
            "--subjects",
            "2",
            "--hours",
            "0.02",
            "--out",
            str(tmp_path / "x"),
            "--spec",
            str(bad),
        ],
    )
    assert res.exit_code != 0
    assert "not_a_field" in res.output and "Traceback" not in res.output
    res = runner.invoke(
        app, ["cohort", "make", "--subjects", "2", "--hours", "-1", "--out", str(tmp_path / "y")]
    )
    assert res.exit_code != 0 and "hours" in res.output


def test_describe_cohort(tiny_cohort: Path) -> None:
    d = cohort.describe_cohort(tiny_cohort)
    assert d["n_subjects"] == 6
    truth = pd.concat([cohort.read_truth(tiny_cohort, f"v{i:04d}") for i in range(1, 7)])
    assert d["n_beats"] == len(truth)
    assert d["ectopic_beat_share"] == pytest.approx(truth["ectopic"].mean())
    assert 0 <= d["aami_targets"]["sbp_ge_160"] <= d["aami_targets"]["sbp_ge_140"] <= 1
    assert d["sbp_mmhg"]["p5"] < d["sbp_mmhg"]["p50"] < d["sbp_mmhg"]["p95"]
    with pytest.raises(CohortError, match="not a virtual cohort"):
        cohort.describe_cohort(tiny_cohort / "waves")


def test_synth_shim_warns_and_reexports() -> None:
    sys.modules.pop("bprl.synth", None)
    with pytest.warns(DeprecationWarning, match=r"bprl\.synth is deprecated"):
        synth = importlib.import_module("bprl.synth")
    assert synth.wfdb_write is wfdb_writer.wfdb_write
    assert synth.EcgMorphology is ecg_model.EcgMorphology
    assert synth.pulse_synthesize is pulse_model.pulse_synthesize
    assert synth.segments_mask is cohort.segments_mask and synth.CHANNELS is cohort.CHANNELS
