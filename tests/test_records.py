"""Tests of bprl.sources and ``bprl records``: every real PhysioNet record, synthetic bad inputs, the CLI."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import wfdb
from typer.testing import CliRunner

from bprl.cli import app
from bprl.errors import BprlError, RecordError
from bprl.sources import (
    ROLES,
    Channel,
    Record,
    channel_role,
    find_record_headers,
    nan_fill_runs,
    order_channels,
    read_record,
    scan_records,
)

MIMIC4_ECG_HZ = 62.4725 * 4
MIMIC4_WAVE_HZ = 62.4725 * 2
MIMIC4_RESP_HZ = 62.4725
MIMIC4_MAIN = {"II": MIMIC4_ECG_HZ, "V": MIMIC4_ECG_HZ, "aVR": MIMIC4_ECG_HZ, "Pleth": MIMIC4_WAVE_HZ}
MIMIC4_MAIN["Resp"] = MIMIC4_RESP_HZ
MIMIC4_ABP = {**MIMIC4_MAIN, "ABP": MIMIC4_WAVE_HZ}
MIMIC4_III = {"III": MIMIC4_ECG_HZ, "V": MIMIC4_ECG_HZ, "II": MIMIC4_ECG_HZ, "ABP": MIMIC4_WAVE_HZ}
MIMIC4_III |= {"Pleth": MIMIC4_WAVE_HZ, "Resp": MIMIC4_RESP_HZ}
MIMIC_MAT = dict.fromkeys(["II", "V", "ABP", "PAP", "PLETH", "RESP"], 125.0)
MIMIC2 = dict.fromkeys(["II", "V", "ABP"], 125.0)
S041 = dict.fromkeys(["III", "I", "V"], 500.0) | dict.fromkeys(["ABP", "PAP", "PLETH", "RESP"], 125.0)

# record (relative to the physionet folder) -> (channel name -> fs_hz, duration_s, subject_id, preferred ECG)
# all taken from the READMEs in the physionet folder
EXPECTED: dict[str, tuple[dict[str, float], float, str, str]] = {
    "mitdb/100.hea": ({"MLII": 360.0, "V5": 360.0}, 1805.6, "100", "MLII"),
    "mitdb/102.hea": ({"V5": 360.0, "V2": 360.0}, 1805.6, "102", "V2"),
    "mitdb/103.hea": ({"MLII": 360.0, "V2": 360.0}, 1805.6, "103", "MLII"),
    "mitdb/105.hea": ({"MLII": 360.0, "V1": 360.0}, 1805.6, "105", "MLII"),
    "mitdb/106.hea": ({"MLII": 360.0, "V1": 360.0}, 1805.6, "106", "MLII"),
    "mimic4wdb-demo/p10020306/83404654/83404654_0005.hea": (MIMIC4_ABP, 3145.1, "p10020306", "II"),
    "mimic4wdb-demo/p10020306/83404654/83404654_0006.hea": (MIMIC4_ABP, 1229.3, "p10020306", "II"),
    # II is flat in 0008 and 0015: demoted, III becomes the preferred lead
    "mimic4wdb-demo/p10020306/83404654/83404654_0008.hea": (MIMIC4_III, 10.2, "p10020306", "III"),
    "mimic4wdb-demo/p10020306/83404654/83404654_0012.hea": (MIMIC4_ABP, 87.1, "p10020306", "II"),
    "mimic4wdb-demo/p10020306/83404654/83404654_0015.hea": (MIMIC4_III, 5.1, "p10020306", "III"),
    "mimic4wdb-demo/p10020306/83404654/83404654_0017.hea": (MIMIC4_ABP, 51.2, "p10020306", "II"),
    "mimic4wdb-demo/p10020306/83404654/83404654_0020.hea": (MIMIC4_ABP, 138.3, "p10020306", "II"),
    "mimic4wdb-demo/p10020306/83404654/83404654_0022.hea": (MIMIC4_ABP, 517.3, "p10020306", "II"),
    "mimic4wdb-demo/p10014354/81739927/81739927_0016.hea": (MIMIC4_MAIN, 11873.4, "p10014354", "II"),
    "mimic4wdb-demo/p10019003/87033314/87033314_0008.hea": (MIMIC4_MAIN, 7160.9, "p10019003", "II"),
    "mimic4wdb-demo/p10039708/85583557/85583557_0001.hea": (MIMIC4_MAIN, 10382.8, "p10039708", "II"),
    "mimic4wdb-demo/p10079700/85594648/85594648_0007.hea": (MIMIC4_MAIN, 7278.7, "p10079700", "II"),
    "mimic4wdb-demo/p10082591/84050536/84050536_0001.hea": (
        {"II": MIMIC4_ECG_HZ, "Pleth": MIMIC4_WAVE_HZ, "Resp": MIMIC4_RESP_HZ},
        76.8,
        "p10082591",
        "II",
    ),
    "mimicdb-230/TestICUdata.mat": (MIMIC_MAT, 300.0, "TestICUdata", "II"),
    "mimicdb-230/TestICUdataOLD.mat": (MIMIC_MAT, 300.0, "TestICUdataOLD", "II"),
    "wfdb-python-samples/mixedsignals.hea": (
        {"II": MIMIC4_ECG_HZ, "III": MIMIC4_ECG_HZ, "V": MIMIC4_ECG_HZ}
        | {"ABP": MIMIC4_WAVE_HZ, "Pleth": MIMIC4_WAVE_HZ, "Resp": MIMIC4_RESP_HZ},
        230.5,
        "mixedsignals",
        "II",
    ),
    "wfdb-python-samples/041s/041s.hea": (S041, 16.0, "041s", "I"),
    "wfdb-python-samples/03700181.hea": (
        {"MCL1": 500.0, "ABP": 125.0, "RESP": 125.0},
        600.0,
        "03700181",
        "MCL1",
    ),
    "wfdb-python-samples/a103l.hea": (dict.fromkeys(["II", "V", "PLETH"], 250.0), 330.0, "a103l", "II"),
    "wfdb-python-samples/v102s.hea": (
        dict.fromkeys(["II", "V", "PLETH", "RESP"], 250.0),
        300.0,
        "v102s",
        "II",
    ),
    "wfdb-python-samples/s00001/3975656_0012.hea": (MIMIC2, 35.4, "s00001", "II"),
    "wfdb-python-samples/s00001/3975656_0013.hea": (MIMIC2, 144.6, "s00001", "II"),
    "wfdb-python-samples/s00001/3975656_0015.hea": (MIMIC2, 300.0, "s00001", "II"),
    "wfdb-python-samples/s25047/3234460_0017.hea": (MIMIC2, 28.2, "s25047", "II"),
    "wfdb-python-samples/s25047/3234460_0018.hea": (MIMIC2, 751.8, "s25047", "II"),
    "wfdb-python-samples/p000878/3269321_0002.hea": ({"II": 125.0, "PLETH": 125.0}, 14.0, "p000878", "II"),
}
EXPECTED_ROLES = {
    "II": "ecg", "III": "ecg", "I": "ecg", "V": "ecg", "aVR": "ecg", "MLII": "ecg", "V1": "ecg",
    "V2": "ecg", "V5": "ecg", "MCL1": "ecg", "ABP": "abp", "Pleth": "ppg", "PLETH": "ppg",
    "Resp": "resp", "RESP": "resp", "PAP": None,
}  # fmt: skip

#: MIMIC DB record 230 gains (NewICU.info): the .mat fill value is -32768 / gain
MAT_GAINS = {"II": 1880.0, "V": 1157.0, "PLETH": 2000.0, "RESP": 2000.0}
MAT_ORDER = ["II", "V", "ABP", "PAP", "PLETH", "RESP"]


@pytest.fixture(scope="module")
def real_records(physionet_dir: Path) -> dict[str, object]:
    """Every expected real record, read once (exceptions stored, so one bad record fails one test)."""
    out: dict[str, object] = {}
    for rel in EXPECTED:
        try:
            if rel.endswith(".mat"):  # the MATLAB excerpts carry no (TestICUdata) or own (OLD) names
                out[rel] = read_record(physionet_dir / rel, channel_names=MAT_ORDER, fs_hz=125.0)
            else:
                out[rel] = read_record(physionet_dir / rel)
        except Exception as exc:  # pragma: no cover - reported by the test below
            out[rel] = exc
    return out


def test_every_physionet_record_is_expected(physionet_dir: Path) -> None:
    """The expected table covers every record in the folder (new files cannot go untested)."""
    found = {str(p.relative_to(physionet_dir)) for p in find_record_headers(physionet_dir)}
    found |= {str(p.relative_to(physionet_dir)) for p in physionet_dir.rglob("*.mat") if not p.with_suffix(".hea").exists()}  # fmt: skip
    assert found == set(EXPECTED)
    # segment headers of 041s are not listed as records of their own
    assert "wfdb-python-samples/041s/041s01.hea" not in found


@pytest.mark.parametrize("rel", list(EXPECTED))
def test_real_record_channels_rates_roles(real_records: dict[str, object], rel: str) -> None:
    """Channel names, per-channel rates, roles, duration, subject id and preferred ECG match the READMEs."""
    rec = real_records[rel]
    assert not isinstance(rec, Exception), f"{rel}: {rec}"
    rates, duration_s, subject_id, ecg = EXPECTED[rel]
    assert sorted(rec.channel_names) == sorted(rates)
    for c in rec.channels:
        assert c.fs_hz == pytest.approx(rates[c.name], rel=1e-4), c.name
        assert c.role == EXPECTED_ROLES[c.name], c.name
        assert c.samples.dtype == np.float32
        assert c.duration_s == pytest.approx(duration_s, abs=0.06), c.name
    assert rec.duration_s == pytest.approx(duration_s, abs=0.06)
    assert rec.subject_id == subject_id
    assert rec.channel("ecg").name == ecg
    expected_roles = [r for r in ROLES if r in {EXPECTED_ROLES[n] for n in rates}]
    assert rec.roles == expected_roles
    for r in ROLES:
        assert rec.has(r) == (r in expected_roles)
    # channels are grouped by role in ROLES order
    role_idx = [ROLES.index(c.role) if c.role else len(ROLES) for c in rec.channels]
    assert role_idx == sorted(role_idx)


@pytest.mark.parametrize("rel", [r for r in EXPECTED if r.endswith(".hea")])
def test_real_record_samples_match_wfdb(
    physionet_dir: Path, real_records: dict[str, object], rel: str
) -> None:
    """Samples equal a direct ``wfdb.rdrecord(smooth_frames=False)`` read, channel by channel, NaN-aware."""
    rec = real_records[rel]
    assert not isinstance(rec, Exception), f"{rel}: {rec}"
    direct = wfdb.rdrecord(str((physionet_dir / rel).with_suffix("")), smooth_frames=False)
    for i, name in enumerate(direct.sig_name):
        ref = np.asarray(direct.e_p_signal[i], dtype=np.float32)
        got = rec.channel_by_name(name).samples
        assert got.shape == ref.shape, name
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=f"{rel} {name}")


def test_real_records_are_plausible(real_records: dict[str, object]) -> None:
    """No real record is flagged: no plausibility problem and no warning (no false positives)."""
    for rel, rec in real_records.items():
        assert isinstance(rec, Record), f"{rel}: {rec}"
        assert rec.problems == [] and rec.warnings == [], rel


def test_mimic4_is_multifrequency_not_averaged(real_records: dict[str, object]) -> None:
    """MIMIC-IV ECG keeps 4 samples per frame: ECG has twice ABP's and four times Resp's samples."""
    rec = real_records["mimic4wdb-demo/p10020306/83404654/83404654_0006.hea"]
    n_ecg = len(rec.channel("ecg").samples)
    assert n_ecg == 2 * len(rec.channel("abp").samples) == 4 * len(rec.channel("resp").samples)
    # ABP of the good segment is arterial-looking (README: p1-p99 51.9-127.9 mmHg)
    p1, p99 = np.nanpercentile(rec.channel("abp").samples, [1, 99])
    assert 45 < p1 < 60 and 120 < p99 < 135
    # invalid samples are NaN (README: 0022 ABP 3 % NaN; 84050536_0001 II 3 % NaN)
    assert (
        0.02
        < real_records["mimic4wdb-demo/p10020306/83404654/83404654_0022.hea"].channel("abp").nan_share
        < 0.05
    )
    assert (
        0.02
        < real_records["mimic4wdb-demo/p10082591/84050536/84050536_0001.hea"].channel("ecg").nan_share
        < 0.05
    )


def test_start_time_from_header(real_records: dict[str, object]) -> None:
    """The header base date and time become ``start_time``; records without a date have none."""
    assert real_records["wfdb-python-samples/041s/041s.hea"].start_time == datetime(1994, 10, 26, 8, 26, 4)
    assert real_records["wfdb-python-samples/03700181.hea"].start_time == datetime(1994, 8, 15, 17, 27, 45)
    assert real_records["mitdb/100.hea"].start_time is None


@pytest.mark.parametrize("name", ["TestICUdata.mat", "TestICUdataOLD.mat"])
def test_mat_excerpt_values_and_fill_runs(
    physionet_dir: Path, real_records: dict[str, object], name: str
) -> None:
    """.mat excerpts: values equal the 'signal' matrix except the -16.38-style fill values, which are NaN."""
    rec = real_records[f"mimicdb-230/{name}"]
    raw = scipy.io.loadmat(str(physionet_dir / "mimicdb-230" / name))["signal"]
    n_fill = 0
    for j, ch in enumerate(MAT_ORDER):
        col = raw[:, j].astype(np.float32)
        fill = (
            np.isclose(raw[:, j], -32768.0 / MAT_GAINS[ch], rtol=0, atol=1e-4)
            if ch in MAT_GAINS
            else 0 * col > 0
        )
        got = rec.channel_by_name(ch).samples
        np.testing.assert_array_equal(np.isnan(got), fill, err_msg=ch)
        np.testing.assert_array_equal(got[~fill], col[~fill], err_msg=ch)
        n_fill += int(fill.sum())
        assert not np.any(np.isclose(got, -16.384, atol=1e-3)), ch
    assert n_fill > 100  # both files have fill runs (README: RESP near sample 19228; II/PLETH in OLD)
    assert rec.channel("abp").units == "mmHg" and rec.channel("ecg").units == "mV"


def test_mat_names_from_arguments_sidecar_and_selection(physionet_dir: Path, tmp_path: Path) -> None:
    """Names/rate come from arguments or a sidecar YAML; without either the error says what to pass."""
    src = physionet_dir / "mimicdb-230" / "TestICUdata.mat"
    with pytest.raises(RecordError, match=r"TestICUdata\.mat: 6 channels without names.*--names"):
        read_record(src)
    with pytest.raises(RecordError, match="no sampling rate"):
        read_record(src, channel_names=MAT_ORDER)
    rec = read_record(src, channel_names=MAT_ORDER, fs_hz=125)
    assert rec.channel("ppg").name == "PLETH" and rec.channel("ppg").fs_hz == 125.0
    mat = tmp_path / "p042" / "excerpt.mat"
    mat.parent.mkdir()
    shutil.copyfile(src, mat)
    (tmp_path / "p042" / "excerpt.mat.yaml").write_text(
        "channel_names: [II, V, ABP, PAP, PLETH, RESP]\nfs_hz: 125\n", encoding="utf-8"
    )
    side = read_record(mat)
    assert side.subject_id == "p042" and side.record_id == "excerpt"
    np.testing.assert_array_equal(side.channel("abp").samples, rec.channel("abp").samples)
    sel = read_record(mat, channel_names=["ABP", "II"])
    assert sorted(sel.channel_names) == ["ABP", "II"]
    with pytest.raises(RecordError, match=r"excerpt\.mat: requested channel 'CVP' is absent"):
        read_record(mat, channel_names=["CVP"])
    (tmp_path / "p042" / "excerpt.mat.yaml").write_text(
        "channel_names: [a, b]\nfs_hz: 125\n", encoding="utf-8"
    )
    with pytest.raises(RecordError, match="2 channel names given for 6 columns"):
        read_record(mat)


def test_mat_names_inside_file(physionet_dir: Path) -> None:
    """TestICUdataOLD.mat carries ``header`` and ``Fs``: no arguments needed; names select channels."""
    rec = read_record(physionet_dir / "mimicdb-230" / "TestICUdataOLD.mat", channel_names=["PLETH", "II"])
    assert sorted(rec.channel_names) == ["II", "PLETH"]
    assert rec.channel("ecg").fs_hz == 125.0


# ------------------------------------------------------------------ roles and ordering
def test_channel_role_aliases() -> None:
    """Names map to roles case-insensitively; pressures other than arterial have no role."""
    cases = {
        "II": "ecg", "ECG II": "ecg", "ecg_ii": "ecg", "MLII": "ecg", "I": "ecg", "III": "ecg", "V": "ecg",
        "V5": "ecg", "aVR": "ecg", "AVF": "ecg", "MCL1": "ecg", "ECG": "ecg", "ABP": "abp", "ART": "abp",
        "Art": "abp", "art1": "abp", "Pleth": "ppg", "PLETH": "ppg", "PPG": "ppg", "Resp": "resp",
        "RESP": "resp", "PAP": None, "CVP": None, "ICP": None, "SpO2": None, "Temp": None, "": None,
    }  # fmt: skip
    for name, role in cases.items():
        assert channel_role(name) == role, name


def test_ecg_preference_order_and_demotion() -> None:
    """II before MLII before I before III before aVF before V; an all-NaN or flat lead is demoted."""
    rng = np.random.default_rng(0)

    def ch(name: str, x: np.ndarray | None = None) -> Channel:
        return Channel(
            name, channel_role(name), 250.0, "mV", rng.normal(size=100).astype(np.float32) if x is None else x
        )

    names = ["V", "aVF", "III", "I", "MLII", "II", "PAP", "ABP", "Pleth"]
    ordered = [c.name for c in order_channels(ch(n) for n in names)]
    assert ordered == ["II", "MLII", "I", "III", "aVF", "V", "Pleth", "ABP", "PAP"]
    flat = ch("II", np.full(100, 0.5, dtype=np.float32))
    empty = ch("MLII", np.full(100, np.nan, dtype=np.float32))
    assert [c.name for c in order_channels([flat, empty, ch("V"), ch("III")])] == ["III", "V", "II", "MLII"]


def test_nan_fill_runs_keeps_in_range_flats() -> None:
    """A far-below fill value in a run becomes NaN; a flat stretch inside the range (ABP zeroing) stays."""
    x = np.sin(np.linspace(0, 20, 1000)).astype(np.float32)
    x[100:110] = -16.384
    x[500] = -16.384  # isolated sample of the same fill value
    y = nan_fill_runs(x)
    assert np.isnan(y[100:110]).all() and np.isnan(y[500])
    assert np.isnan(y).sum() == 11
    z = np.concatenate([np.full(50, 0.0), 80 + 20 * np.sin(np.linspace(0, 30, 950))]).astype(np.float32)
    assert not np.isnan(nan_fill_runs(z)).any()


# ---------------------------------------------------------------- synthetic WFDB records
def _write(tmp: Path, name: str, sig: dict[str, np.ndarray], *, fs: float = 100.0, spf: list[int] | None = None,
           units: list[str] | None = None, comments: list[str] | None = None, fmt: str = "16") -> Path:  # fmt: skip
    """Write a WFDB record with wfdb.wrsamp (expanded, one array per channel) and return its header."""
    tmp.mkdir(parents=True, exist_ok=True)
    names = list(sig)
    arrays = [np.asarray(sig[n], dtype=np.float64) for n in names]
    wfdb.wrsamp(
        name,
        fs=fs,
        units=units or ["mV"] * len(names),
        sig_name=names,
        e_p_signal=arrays,
        samps_per_frame=spf or [1] * len(names),
        fmt=[fmt] * len(names),
        adc_gain=[200.0] * len(names),
        baseline=[0] * len(names),
        comments=comments,
        write_dir=str(tmp),
    )
    return tmp / f"{name}.hea"


def _wave(n: int, seed: int) -> np.ndarray:
    """Smooth test waveform with values on the 1/200 grid (exact after 16-bit storage)."""
    rng = np.random.default_rng(seed)
    return np.round(200 * (np.sin(np.arange(n) / 7.0) + 0.1 * rng.normal(size=n))) / 200


def test_variable_layout_multisegment_with_gap(tmp_path: Path) -> None:
    """Segments at their frame offsets, '~' gap NaN, channels mapped by name, per-channel rates kept."""
    d = tmp_path / "p0007" / "rec"
    ii1, abp1 = _wave(200, 1), _wave(100, 2)
    ii2, pleth2 = _wave(160, 3), _wave(80, 4)
    d.mkdir(parents=True)
    (d / "rec_layout.hea").write_text(  # layout header as in MIMIC-III: no signal file, length 0
        "rec_layout 3 100 0\n~ 16x2 200/mV 16 0 0 0 0 II\n~ 16 200/mmHg 16 0 0 0 0 ABP\n"
        "~ 16 200/NU 16 0 0 0 0 Pleth\n",
        encoding="utf-8",
    )
    _write(d, "rec_0001", {"II": ii1, "ABP": abp1}, spf=[2, 1])
    _write(d, "rec_0002", {"Pleth": pleth2, "II": ii2}, spf=[1, 2])  # other order, no ABP
    (d / "rec.hea").write_text(
        "rec/4 3 100 230\nrec_layout 0\nrec_0001 100\n~ 50\nrec_0002 80\n", encoding="utf-8"
    )
    rec = read_record(d / "rec")
    assert rec.record_id == "rec" and rec.subject_id == "p0007"
    ii, abp, pleth = rec.channel("ecg"), rec.channel("abp"), rec.channel("ppg")
    assert ii.fs_hz == 200.0 and abp.fs_hz == 100.0 and pleth.fs_hz == 100.0
    assert len(ii.samples) == 460 and len(abp.samples) == 230 and len(pleth.samples) == 230
    assert rec.duration_s == pytest.approx(2.3)
    np.testing.assert_allclose(ii.samples[:200], ii1, atol=1e-6)
    assert np.isnan(ii.samples[200:300]).all()  # the gap
    np.testing.assert_allclose(ii.samples[300:], ii2, atol=1e-6)
    np.testing.assert_allclose(abp.samples[:100], abp1, atol=1e-6)
    assert np.isnan(abp.samples[100:]).all()  # gap and a segment without ABP
    assert np.isnan(pleth.samples[:150]).all()
    np.testing.assert_allclose(pleth.samples[150:], pleth2, atol=1e-6)
    # the segment and layout headers are not separate records in a scan
    assert [p.name for p in find_record_headers(d)] == ["rec.hea"]
    row = scan_records(d).iloc[0]
    assert row["error"] == "" and row["n_segments"] == 2 and row["duration_s"] == pytest.approx(2.3)
    assert row["fs_ecg_hz"] == 200.0 and row["has_abp"] and row["has_ppg"] and not row["has_resp"]
    # a segment header named by the master but absent
    (d / "rec_0002.hea").unlink()
    with pytest.raises(RecordError, match=r"rec\.hea: segment header rec_0002\.hea .* missing"):
        read_record(d / "rec.hea")


def test_subject_id_from_comment_and_channel_selection(tmp_path: Path) -> None:
    """``subject_id:`` in the header wins over folders; requested channels are kept, others dropped."""
    hea = _write(tmp_path / "s123", "r1", {"ECG II": _wave(300, 5), "ART": _wave(300, 6)},
                 comments=["subject_id: v0042"])  # fmt: skip
    rec = read_record(hea)
    assert rec.subject_id == "v0042" and rec.channel("abp").name == "ART"
    assert read_record(tmp_path / "s123" / "r1", channel_names=["ART"]).channel_names == ["ART"]
    hea2 = _write(tmp_path / "s123", "r2", {"II": _wave(300, 7)})
    assert read_record(hea2).subject_id == "s123"
    with pytest.raises(RecordError, match=r"r1\.hea: requested channel 'Pleth' is absent"):
        read_record(hea, channel_names=["Pleth"])
    with pytest.raises(RecordError, match="fs_hz=250"):
        read_record(hea, fs_hz=250)
    with pytest.raises(RecordError, match="no 'ppg' channel"):
        rec.channel("ppg")


# ------------------------------------------------------------------------ bad input
@pytest.fixture()
def bad_dir(tmp_path: Path) -> Path:
    """A folder with one good record and one record of each kind of damage."""
    d = tmp_path / "bad"
    _write(d, "good", {"II": _wave(500, 8), "Pleth": _wave(500, 9)})
    trunc = _write(d, "trunc", {"II": _wave(500, 10)})
    dat = d / "trunc.dat"
    dat.write_bytes(dat.read_bytes()[:300])
    nodat = _write(d, "nodat", {"II": _wave(50, 11)})
    (d / "nodat.dat").unlink()
    (d / "garbage.hea").write_text("hello this is not\na header at all\n", encoding="utf-8")
    (d / "empty.hea").write_text("", encoding="utf-8")
    (d / "fmt.hea").write_text("fmt 1 100 10\nfmt.dat 999 200/mV 16 0 0 0 0 II\n", encoding="utf-8")
    (d / "fmt.dat").write_bytes(b"\0" * 40)
    assert trunc.is_file() and nodat.is_file()
    return d


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("missing", r"missing: record does not exist"),
        ("missing.hea", r"missing\.hea: record header does not exist"),
        ("missing.mat", r"missing\.mat: file does not exist"),
        ("nodat", r"nodat\.hea: signal file nodat\.dat named in the header is missing"),
        ("trunc", r"trunc\.dat: signal file truncated \(300 bytes; the header needs 1000"),
        ("garbage.hea", r"garbage\.hea: not a WFDB header"),
        ("empty.hea", r"empty\.hea: empty header"),
        ("fmt.hea", r"fmt\.hea: signal 0 \(II\) has unsupported WFDB format '999'"),
    ],
)
def test_bad_input_raises_record_error(bad_dir: Path, name: str, pattern: str) -> None:
    """Each damaged input raises RecordError naming the file and the problem."""
    with pytest.raises(RecordError, match=pattern) as info:
        read_record(bad_dir / name)
    assert isinstance(info.value, BprlError)


def test_bad_mat_file(tmp_path: Path) -> None:
    """A .mat that is not MATLAB, or one without a 'signal' matrix, raises RecordError naming the file."""
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(RecordError, match=r"junk\.mat: cannot read MATLAB file"):
        read_record(junk)
    other = tmp_path / "other.mat"
    scipy.io.savemat(str(other), {"x": np.zeros((3, 3))})
    with pytest.raises(RecordError, match=r"other\.mat: no 'signal' matrix"):
        read_record(other)


def test_scan_records_skips_and_records_errors(bad_dir: Path) -> None:
    """One row per header; bad records carry their error; signal checks catch truncation."""
    df = scan_records(bad_dir)
    assert list(df["record_id"]) == ["empty", "fmt", "garbage", "good", "nodat", "trunc"]
    err = dict(zip(df["record_id"], df["error"], strict=True))
    assert err["good"] == ""
    assert "truncated" in err["trunc"]  # from the file size, without decoding
    assert "unsupported WFDB format" in err["fmt"]
    assert "empty header" in err["empty"] and "not a WFDB header" in err["garbage"]
    assert "nodat.dat named in the header is missing" in err["nodat"]
    good = df.set_index("record_id").loc["good"]
    assert good["has_ecg"] and good["has_ppg"] and not good["has_abp"]
    assert good["duration_s"] == pytest.approx(5.0) and good["channels"] == "II,Pleth"
    deep = scan_records(bad_dir, check_signals=True, workers=2)
    err2 = dict(zip(deep["record_id"], deep["error"], strict=True))
    assert "truncated" in err2["trunc"] and "unsupported WFDB format" in err2["fmt"] and err2["good"] == ""
    with pytest.raises(RecordError, match="folder does not exist"):
        scan_records(bad_dir / "nope")


# ------------------------------------------------------------------------------- CLI
def test_cli_inspect_and_scan(bad_dir: Path, physionet_dir: Path, tmp_path: Path) -> None:
    """``bprl records inspect`` prints channels; ``scan`` writes a table and lists unreadable records."""
    runner = CliRunner()
    res = runner.invoke(
        app, ["records", "inspect", str(physionet_dir / "wfdb-python-samples" / "041s" / "041s")]
    )
    assert res.exit_code == 0, res.output
    for name in ("III", "PLETH", "ABP", "PAP", "500", "125", "1994-10-26"):
        assert name in res.output
    mat = physionet_dir / "mimicdb-230" / "TestICUdata.mat"
    res = runner.invoke(app, ["records", "inspect", str(mat), "--names", ",".join(MAT_ORDER), "--fs", "125"])
    assert res.exit_code == 0 and "RESP" in res.output and "ecg=II" in res.output, res.output
    res = runner.invoke(app, ["records", "inspect", str(mat)])
    assert res.exit_code == 1 and "--names" in res.output
    out = tmp_path / "scan.csv"
    res = runner.invoke(app, ["records", "scan", str(bad_dir), "--out", str(out), "--check-signals"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == 6 and (table["error"] != "").sum() == 5
    assert "1 readable, 5 unreadable" in res.output
    assert "trunc.dat: signal file truncated" in res.output
    pq = tmp_path / "scan.parquet"
    assert runner.invoke(app, ["records", "scan", str(bad_dir), "--out", str(pq)]).exit_code == 0
    assert len(pd.read_parquet(pq)) == 6
    res = runner.invoke(app, ["records", "scan", str(tmp_path / "nope"), "--out", str(out)])
    assert res.exit_code != 0 and "folder does not exist" in res.output


def test_scan_real_tree(physionet_dir: Path) -> None:
    """Header-only scan of the real folder: every record readable, with roles and rates."""
    df = scan_records(physionet_dir).set_index("record_id")
    assert (df["error"] == "").all()
    assert df.loc["83404654_0006", "fs_ecg_hz"] == pytest.approx(249.89, abs=0.01)
    assert df.loc["83404654_0006", "fs_abp_hz"] == pytest.approx(124.945, abs=0.01)
    assert df.loc["041s", "n_segments"] == 2 and df.loc["041s", "duration_s"] == pytest.approx(16.0)
    with_abp = [rel for rel, exp in EXPECTED.items() if rel.endswith(".hea") and "ABP" in exp[0]]
    assert int(df["has_abp"].sum()) == len(with_abp)


def test_fixed_layout_multisegment_gap_and_rate_change(tmp_path: Path) -> None:
    """Fixed layout (no layout header): a '~' gap is NaN; a segment at another rate is interpolated."""
    d = tmp_path / "fx"
    a, b = _wave(100, 12), _wave(100, 13)
    _write(d, "fx_1", {"II": a, "ABP": a[:50]}, fs=50.0, spf=[2, 1])
    _write(d, "fx_2", {"II": b[::2], "ABP": b[:50]}, fs=50.0, spf=[1, 1])  # II at half the rate here
    (d / "fx.hea").write_text("fx/3 2 50 150\nfx_1 50\n~ 50\nfx_2 50\n", encoding="utf-8")
    rec = read_record(d / "fx.hea")
    ii, abp = rec.channel("ecg"), rec.channel("abp")
    assert ii.fs_hz == 100.0 and abp.fs_hz == 50.0 and len(ii.samples) == 300 and len(abp.samples) == 150
    np.testing.assert_allclose(ii.samples[:100], a, atol=1e-6)
    assert np.isnan(ii.samples[100:200]).all() and np.isnan(abp.samples[50:100]).all()
    np.testing.assert_allclose(abp.samples[100:], b[:50], atol=1e-6)
    # II of segment 2 (50 Hz) on the 100 Hz grid: original points kept, midpoints interpolated
    seg2 = ii.samples[200:]
    np.testing.assert_allclose(seg2[::2], b[::2], atol=1e-6)
    np.testing.assert_allclose(seg2[1:-1:2], (b[::2][:-1] + b[::2][1:]) / 2, atol=1e-5)
    assert np.isnan(seg2[-1])  # beyond the last sample of the slower segment: no extrapolation


def test_truncated_flac_signal_file(tmp_path: Path) -> None:
    """A truncated FLAC (format 516) signal file raises RecordError naming the header."""
    t = np.arange(4000)
    wfdb.wrsamp(
        "fl", fs=62.5, units=["mV", "NU"], sig_name=["II", "Pleth"],
        e_p_signal=[np.sin(t / 10), np.sin(t[:2000] / 5)], samps_per_frame=[4, 2], fmt=["516", "516"],
        adc_gain=[200.0, 200.0], baseline=[0, 0], write_dir=str(tmp_path),
    )  # fmt: skip
    rec = read_record(tmp_path / "fl")
    assert rec.channel("ecg").fs_hz == 250.0 and rec.channel("ppg").fs_hz == 125.0
    np.testing.assert_allclose(rec.channel("ecg").samples, np.sin(t / 10), atol=0.003)
    for f in tmp_path.glob("fl*.dat"):
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(RecordError, match=r"fl\.hea: .*(cannot read signals|truncated)"):
        read_record(tmp_path / "fl")
    # a FLAC file's size says nothing: only a scan that decodes the signals sees the damage
    assert scan_records(tmp_path)["error"].tolist() == [""]
    assert "fl.hea" in scan_records(tmp_path, check_signals=True)["error"].iloc[0]


@pytest.mark.parametrize(
    ("old", "names"),
    [
        ("bprl.records", ("read_record", "scan_records", "find_record_headers", "header_roles", "Record")),
        ("bprl.record_checks", ("MAX_HEADER_BYTES", "channel_problems", "require_regular_file", "file_kind")),
    ],
)
def test_records_shims_warn_and_reexport(
    monkeypatch: pytest.MonkeyPatch, old: str, names: tuple[str, ...]
) -> None:
    """The deprecated bprl.records / bprl.record_checks warn on import and re-export bprl.sources."""
    import importlib
    import re
    import sys

    import bprl
    import bprl.sources
    from bprl.sources import header, roles, wfdb_reader

    monkeypatch.delitem(sys.modules, old, raising=False)  # restored after the test
    monkeypatch.delattr(bprl, old.split(".")[1], raising=False)
    with pytest.warns(DeprecationWarning, match=re.escape(f"{old} is deprecated; import from bprl.sources")):
        shim = importlib.import_module(old)
    for name in names:
        assert getattr(shim, name) is getattr(bprl.sources, name)
    if old == "bprl.records":  # every public name, and the private helpers under their old names
        for name in set(shim.__all__):
            assert getattr(shim, name) is getattr(bprl.sources, name)
        assert shim._read_header is header.read_header
        assert shim._norm_name is roles.norm_name
        assert shim._read_wfdb_multi is wfdb_reader.read_wfdb_multi
