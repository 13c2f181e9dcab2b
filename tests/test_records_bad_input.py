"""Bad-input sweep of the record readers (issue 11): every damaged record gives a clear error or flag.

Each test builds a good record with ``wfdb.wrsamp`` in ``tmp_path`` and damages it: a FIFO
named ``*.hea``, bad sampling frequencies, a format-212 header over format-16 data,
implausible signals, 0-sample and incomplete multi-segment records (header-only scan),
records without PPG in the feature batch, duplicate channel names, non-ASCII names.
Batch commands must list the bad record with its reason and go on.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import wfdb
from typer.testing import CliRunner

from bprl.cli import app
from bprl.errors import FeatureError, RecordError, RecordWarning
from bprl.features import build_replay_table, build_replay_tables
from bprl.sources import find_record_headers, header_roles, read_record, scan_records

FRAME_HZ = 125.0  # ECG at 2 samples per frame (250 Hz), PPG and ABP at 125 Hz
DEADLINE_S = 60.0  # a call that takes longer is taken as hung (a FIFO blocks forever)

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo (POSIX)")


# ------------------------------------------------------------------------ helpers
def _physio(duration_s: float = 60.0, hr_bpm: float = 75.0, pat_s: float = 0.25) -> dict[str, np.ndarray]:
    """ECG (250 Hz, mV), PPG (125 Hz, NU) and ABP (125 Hz, mmHg) of a steady synthetic subject."""
    rng = np.random.default_rng(0)
    t_ecg = np.arange(int(duration_s * 2 * FRAME_HZ)) / (2 * FRAME_HZ)
    t = np.arange(int(duration_s * FRAME_HZ)) / FRAME_HZ
    ecg = 0.01 * rng.standard_normal(len(t_ecg))
    ppg = np.zeros_like(t)
    abp = np.full_like(t, 75.0)
    for b in np.arange(0.4, duration_s - 1.0, 60.0 / hr_bpm):
        ecg += np.exp(-0.5 * ((t_ecg - b) / 0.012) ** 2)
        u = np.clip(t - (b + pat_s), 0.0, 3.0)
        ppg += (u / 0.12) * np.exp(1 - u / 0.12)
        v = np.clip(t - (b + 0.12), 0.0, 3.0)
        abp += 45.0 * (v / 0.1) * np.exp(1 - v / 0.1)
    return {"II": ecg, "Pleth": ppg, "ABP": abp}


def _write(
    folder: Path,
    name: str,
    sig: dict[str, np.ndarray] | None = None,
    *,
    fs: float = FRAME_HZ,
    fmt: str = "16",
) -> Path:
    """Write a WFDB record (default: :func:`_physio`) with wfdb.wrsamp; return its header path."""
    folder.mkdir(parents=True, exist_ok=True)
    sig = _physio() if sig is None else sig
    names = list(sig)
    spf = [2 if n in ("II", "V") else 1 for n in names]
    units = {"II": "mV", "V": "mV", "ABP": "mmHg"}
    gains = {"II": 1000.0, "V": 1000.0, "ABP": 10.0}
    wfdb.wrsamp(
        name,
        fs=fs,
        units=[units.get(n, "NU") for n in names],
        sig_name=names,
        e_p_signal=[np.asarray(sig[n], dtype=np.float64) for n in names],
        samps_per_frame=spf,
        fmt=[fmt] * len(names),
        adc_gain=[gains.get(n, 1000.0) for n in names],
        baseline=[0] * len(names),
        write_dir=str(folder),
    )
    return folder / f"{name}.hea"


def _edit_header(hea: Path, edit: Callable[[list[str]], list[str]]) -> Path:
    """Rewrite the header's lines through ``edit``."""
    lines = hea.read_text(encoding="utf-8").splitlines()
    hea.write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
    return hea


def _record_line(hea: Path, *fields: str) -> Path:
    """Replace the record line's fields after the name and signal count."""
    return _edit_header(hea, lambda ls: [" ".join(ls[0].split()[:2] + list(fields)), *ls[1:]])


def _with_deadline(fn: Callable[[], Any], fifos: list[Path]) -> Any:
    """Run ``fn`` in a thread; fail (and unblock the FIFOs it may hang on) when it does not finish."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the test thread
            box["error"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(DEADLINE_S)
    if th.is_alive():
        for f in fifos:  # a writer that opens and closes lets a blocked reader see end-of-file
            try:
                os.close(os.open(f, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        th.join(5.0)
        pytest.fail(f"hung for more than {DEADLINE_S:g} s on a FIFO")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _errors(df: pd.DataFrame) -> dict[str, str]:
    """record_id -> error of a scan table."""
    return dict(zip(df["record_id"], df["error"], strict=True))


# ----------------------------------------------------------- 1. FIFOs and huge headers
@pytest.fixture()
def fifo_dir(tmp_path: Path) -> Path:
    """A good record and a FIFO named ``fifo.hea``."""
    d = tmp_path / "fifo"
    _write(d, "good")
    os.mkfifo(d / "fifo.hea")
    return d


def test_fifo_header_is_listed_with_its_reason_not_opened(fifo_dir: Path) -> None:
    """scan (header-only and decoding) and read_record report the FIFO instead of blocking on it."""
    fifo = fifo_dir / "fifo.hea"
    assert fifo in _with_deadline(lambda: find_record_headers(fifo_dir), [fifo])
    for deep in (False, True):
        df = _with_deadline(lambda deep=deep: scan_records(fifo_dir, check_signals=deep), [fifo])
        err = _errors(df)
        assert err["good"] == ""
        assert str(fifo) in err["fifo"] and "is a FIFO, not a regular file" in err["fifo"]
    for path in (fifo, fifo_dir / "fifo"):
        with pytest.raises(RecordError, match=r"fifo\.hea: record header is a FIFO"):
            _with_deadline(lambda path=path: read_record(path), [fifo])


def test_fifo_header_in_feature_batch_and_cli(fifo_dir: Path, tmp_path: Path) -> None:
    """``features build`` and ``records scan`` list the FIFO as an error and build the good record."""
    fifo = fifo_dir / "fifo.hea"
    tables, skipped = _with_deadline(
        lambda: build_replay_tables(fifo_dir, tmp_path / "cache", workers=1, progress=False), [fifo]
    )
    assert list(tables) == [str(fifo_dir / "good.hea")]
    row = skipped.set_index("record_path").loc[str(fifo)]
    assert row["status"] == "error" and "is a FIFO" in row["reason"]
    runner = CliRunner()
    out = tmp_path / "scan.csv"
    res = _with_deadline(
        lambda: runner.invoke(app, ["records", "scan", str(fifo_dir), "--out", str(out)]), [fifo]
    )
    assert res.exit_code == 0, res.output
    assert f"unreadable: {fifo}: record header is a FIFO" in res.output
    args = [
        "features",
        "build",
        str(fifo_dir),
        "--cache",
        str(tmp_path / "c2"),
        "--workers",
        "1",
        "--no-progress",
    ]
    res = _with_deadline(lambda: runner.invoke(app, args), [fifo])
    assert res.exit_code == 0, res.output
    assert "ok" in res.output and f"error    {fifo}: record header is a FIFO" in res.output


def test_fifo_signal_file_is_refused(tmp_path: Path) -> None:
    """A FIFO in place of the signal file is named as such (not 'missing'), without opening it."""
    hea = _write(tmp_path, "r")
    (tmp_path / "r.dat").unlink()
    os.mkfifo(tmp_path / "r.dat")
    with pytest.raises(RecordError, match=r"r\.dat: signal file named in r\.hea is a FIFO"):
        _with_deadline(lambda: read_record(hea), [tmp_path / "r.dat"])
    assert "is a FIFO" in _errors(scan_records(tmp_path))["r"]


def test_oversized_header_is_refused_unread(tmp_path: Path) -> None:
    """A 'header' larger than 8 MiB is refused from its size (never parsed)."""
    big = tmp_path / "big.hea"
    with open(big, "w", encoding="ascii") as fh:
        fh.write("big 1 250 1000\nbig.dat 16 200/mV 16 0 0 0 0 II\n")
        fh.write(("# padding " + "x" * 90 + "\n") * 90_000)
    with pytest.raises(RecordError, match=r"big\.hea: record header is \d+ bytes, more than the 8388608"):
        read_record(big)
    assert "more than the 8388608" in _errors(scan_records(tmp_path))["big"]


# ------------------------------------------------------------- 2. sampling frequency
@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        (("0", "7500"), r"sampling frequency 0 Hz in the record line must be > 0"),
        (("-125", "7500"), r"sampling frequency -125 Hz in the record line must be > 0"),
        (("abc", "7500"), r"sampling frequency 'abc' in the record line is not a number"),
        (("nan", "7500"), r"sampling frequency 'nan' in the record line is not a number"),
        (("125/x", "7500"), r"counter frequency in '125/x' must be a number > 0"),
        (("125", "12x"), r"number of samples '12x' in the record line is not a non-negative integer"),
    ],
)
def test_bad_sampling_frequency_is_a_record_error(
    tmp_path: Path, fields: tuple[str, ...], pattern: str
) -> None:
    """0 Hz (was ZeroDivisionError), negative or garbage (was silently 250 Hz): RecordError naming the file."""
    hea = _record_line(_write(tmp_path, "r"), *fields)
    with pytest.raises(RecordError, match=r"r\.hea: " + pattern):
        read_record(hea)
    for deep in (False, True):
        err = _errors(scan_records(tmp_path, check_signals=deep))["r"]
        assert err.startswith(f"{hea}: ") and "ZeroDivisionError" not in err
    _, skipped = build_replay_tables(tmp_path, tmp_path / "cache", workers=1, progress=False)
    assert skipped["status"].tolist() == ["error"] and "r.hea" in skipped["reason"].iloc[0]


def test_absent_sampling_frequency_means_250_hz_with_a_warning(tmp_path: Path) -> None:
    """No fs in the record line: 250 Hz (the WFDB default), with a RecordWarning and a scan note."""
    hea = _record_line(_write(tmp_path, "r"))
    with pytest.warns(RecordWarning, match=r"r\.hea: the record line gives no sampling frequency: 250 Hz"):
        rec = read_record(hea)
    assert rec.channel("ppg").fs_hz == 250.0 and rec.channel("ecg").fs_hz == 500.0
    assert len(rec.warnings) == 1 and "250 Hz assumed" in rec.warnings[0]
    row = scan_records(tmp_path).iloc[0]
    assert row["error"] == "" and "250 Hz assumed" in row["warnings"]
    assert row["duration_s"] == pytest.approx(60.0 * FRAME_HZ / 250.0)  # length from the file size


# ---------------------------------------------------------------- 3. plausibility
def _as_format_212(hea: Path, *, keep_length: bool) -> Path:
    """Claim format 212 for format-16 data; optionally fit the sample count to the file size."""
    dat = hea.with_suffix(".dat")

    def edit(lines: list[str]) -> list[str]:
        first = lines[0].split()
        if not keep_length:  # 3 bytes per 2 samples, 4 samples per frame (II x2, Pleth, ABP)
            first[3] = str(dat.stat().st_size * 8 // 12 // 4)
        return [" ".join(first)] + [ln.replace(f"{dat.name} 16", f"{dat.name} 212", 1) for ln in lines[1:]]

    return _edit_header(hea, edit)


def test_format_212_header_over_format_16_data(tmp_path: Path) -> None:
    """File size vs header: refused. With a matching sample count: every channel flagged as noise."""
    hea = _as_format_212(_write(tmp_path / "a", "r"), keep_length=True)
    with pytest.raises(
        RecordError, match=r"r\.dat: signal file is 60000 bytes but the header describes 45000"
    ):
        read_record(hea)
    assert "format-212 header over format-16 data" in _errors(scan_records(tmp_path / "a"))["r"]

    hea = _as_format_212(_write(tmp_path / "b", "r"), keep_length=False)
    with pytest.warns(
        RecordWarning, match=r"r\.hea: channel '\w+' \((ecg|ppg|abp)\) looks like noise"
    ) as caught:
        rec = read_record(hea)
    assert len(caught) == 3 and [str(w.message) for w in caught] == rec.problems
    assert {p.split("'")[1] for p in rec.problems} == {"II", "Pleth", "ABP"}
    assert all(p.startswith(f"{hea}: channel ") and "lag-1 autocorrelation" in p for p in rec.problems)
    row = scan_records(tmp_path / "b", check_signals=True).iloc[0]
    assert row["error"] == "" and "looks like noise" in row["problems"]
    with pytest.raises(FeatureError, match=r"r\.hea: implausible signals, no features built: channel 'II'"):
        build_replay_table(rec)
    with pytest.warns(RecordWarning, match="looks like noise"):  # re-emitted by the batch
        _, skipped = build_replay_tables(tmp_path / "b", tmp_path / "cache", workers=1, progress=False)
    assert skipped["status"].tolist() == ["skipped"] and "implausible signals" in skipped["reason"].iloc[0]


def test_implausible_abp_and_saturated_ecg_are_flagged(tmp_path: Path) -> None:
    """ABP mostly outside -50..350 mmHg and an ECG clipped at its maximum are problems naming the channel."""
    sig = _physio()
    sig["ABP"] = sig["ABP"] * 10.0  # 750-1950 'mmHg': a gain off by 10
    ecg = sig["II"].copy()
    ecg[int(0.4 * len(ecg)) :] = 2.0  # amplifier pinned at its maximum for the last 60 %
    sig["II"] = ecg
    hea = _write(tmp_path, "r", sig)
    with pytest.warns(RecordWarning):
        rec = read_record(hea)
    abp, ii = rec.channel_by_name("ABP"), rec.channel_by_name("II")
    assert len(abp.problems) == 1 and "100 % of its samples lie outside -50..350 mmHg" in abp.problems[0]
    assert len(ii.problems) == 1 and "'II' (ecg) is saturated: 60 % of its samples" in ii.problems[0]
    assert rec.channel("ppg").problems == ()
    with pytest.raises(FeatureError, match="implausible signals"):
        build_replay_table(rec)


def test_implausible_heart_rate_is_a_feature_error(tmp_path: Path) -> None:
    """ECG beats at 300 bpm (e.g. data at 4x the header's rate): FeatureError naming the median HR."""
    sig = _physio(hr_bpm=300.0, pat_s=0.1)
    rec = read_record(_write(tmp_path, "r", sig))
    assert rec.problems == []  # a clean waveform: only the beat rate gives it away
    with pytest.raises(FeatureError, match=r"r\.hea: implausible heart rate: median 300 bpm from ECG 'II'"):
        build_replay_table(rec)
    assert 60 < build_replay_table(read_record(_write(tmp_path, "ok"))).hr_bpm.median() < 90


# ------------------------------------------------------------ 4. header-only scan
def test_header_only_scan_flags_record_without_samples(tmp_path: Path) -> None:
    """A header with 0 samples, or an empty signal file and no count, is not 'readable'."""
    _record_line(_write(tmp_path, "zero"), "125", "0")
    (tmp_path / "zero.dat").write_bytes(b"")
    _record_line(_write(tmp_path, "nocount"), "125")
    (tmp_path / "nocount.dat").write_bytes(b"")
    err = _errors(scan_records(tmp_path))
    assert (
        err["zero"]
        == f"{tmp_path / 'zero.hea'}: the header gives 0 samples per signal: the record has no samples"
    )
    assert "nocount.dat: signal file holds no samples (0 bytes)" in err["nocount"]
    with pytest.raises(RecordError, match=r"zero\.hea: .*no samples"):
        read_record(tmp_path / "zero")


def _multi(folder: Path) -> Path:
    """A variable-layout multi-segment record: layout, two segments, a gap."""
    a, b = _physio(20.0), _physio(20.0)
    _write(folder, "m_0001", a)
    _write(folder, "m_0002", b)
    (folder / "m_layout.hea").write_text(
        "m_layout 3 125 0\n~ 16x2 1000/mV 16 0 0 0 0 II\n~ 16 1000/NU 16 0 0 0 0 Pleth\n"
        "~ 16 10/mmHg 16 0 0 0 0 ABP\n",
        encoding="utf-8",
    )
    (folder / "m.hea").write_text(
        "m/4 3 125 7500\nm_layout 0\nm_0001 2500\n~ 2500\nm_0002 2500\n", encoding="utf-8"
    )
    return folder / "m.hea"


def test_header_only_scan_flags_multisegment_record_with_missing_segment(tmp_path: Path) -> None:
    """A segment header, a segment's signal file or the layout header missing: flagged without decoding."""
    hea = _multi(tmp_path)
    assert _errors(scan_records(tmp_path)) == {"m": ""}
    (tmp_path / "m_0002.dat").unlink()
    assert _errors(scan_records(tmp_path))["m"] == (
        f"{hea}: signal file m_0002.dat of segment m_0002 is missing (m_0002.hea names it)"
    )
    (tmp_path / "m_0002.hea").unlink()
    assert _errors(scan_records(tmp_path))["m"] == (
        f"{hea}: segment header m_0002.hea named in the master header is missing"
    )
    (tmp_path / "m_layout.hea").unlink()
    assert "m_layout.hea named in the master header is missing" in _errors(scan_records(tmp_path))["m"]


# ----------------------------------------------------------- 5. records without PPG
def test_feature_batch_skips_record_without_ppg(tmp_path: Path) -> None:
    """No PPG: 'skipped: no PPG channel', not an ok table with 0 % PAT; a flat PPG: no window with a PAT."""
    sig = _physio()
    _write(tmp_path, "good", sig)
    _write(tmp_path, "noppg", {"II": sig["II"], "ABP": sig["ABP"]})
    _write(tmp_path, "flatppg", {**sig, "Pleth": np.full_like(sig["Pleth"], 0.5)})
    assert header_roles(tmp_path / "noppg.hea") == ["ecg", "abp"]
    tables, skipped = build_replay_tables(tmp_path, tmp_path / "cache", workers=1, progress=False)
    assert list(tables) == [str(tmp_path / "good.hea")]
    rows = skipped.set_index("record_path")
    noppg = rows.loc[str(tmp_path / "noppg.hea")]
    assert noppg["status"] == "skipped"
    assert noppg["reason"] == f"{tmp_path / 'noppg.hea'}: no PPG channel (roles: ecg, abp): no PAT features"
    flat = rows.loc[str(tmp_path / "flatppg.hea")]
    assert flat["status"] == "skipped" and "no window has a PAT" in flat["reason"]
    res = CliRunner().invoke(
        app, ["features", "build", str(tmp_path), "--cache", str(tmp_path / "cache"), "--workers", "1", "--no-progress"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "built 1 replay table(s)" in res.output and "skipped 2, unreadable 0" in res.output
    assert f"skipped  {tmp_path / 'noppg.hea'}: no PPG channel" in res.output
    assert f"ok       {tmp_path / 'noppg.hea'}" not in res.output


# -------------------------------------------------------- 6. duplicate channel names
def test_duplicate_channel_names_warn_and_keep_the_first(tmp_path: Path) -> None:
    """Two signals called II: a RecordWarning naming file and channel; the first signal is used."""
    sig = _physio()
    sig["V"] = -sig["II"]
    hea = _write(tmp_path, "r", sig)  # II, Pleth, ABP, V
    _edit_header(hea, lambda ls: [ls[0], *ls[1:4], ls[4].rsplit(" ", 1)[0] + " II"])
    with pytest.warns(
        RecordWarning, match=r"r\.hea: duplicate channel name 'II' \(signals 0, 3\): the first"
    ):
        rec = read_record(hea)
    assert rec.channel_names == ["II", "Pleth", "ABP"]
    np.testing.assert_allclose(rec.channel("ecg").samples, sig["II"], atol=1e-3)
    assert "duplicate channel name 'II'" in rec.warnings[0]
    row = scan_records(tmp_path).iloc[0]
    assert row["error"] == "" and row["channels"] == "II,Pleth,ABP"
    assert f"{hea}: duplicate channel name 'II'" in row["warnings"]
    assert "duplicate channel name 'II'" in scan_records(tmp_path, check_signals=True).iloc[0]["warnings"]
    runner = CliRunner()
    res = runner.invoke(app, ["records", "inspect", str(hea)])
    assert res.exit_code == 0 and f"warning: {hea}: duplicate channel name 'II'" in res.output, res.output
    res = runner.invoke(app, ["records", "scan", str(tmp_path), "--out", str(tmp_path / "s.csv")])
    assert res.exit_code == 0 and f"warning: {hea}: duplicate channel name" in res.output, res.output


# ----------------------------------------------------------------- 7. non-ASCII names
def test_non_ascii_record_and_channel_names(tmp_path: Path) -> None:
    """wfdb drops non-ASCII characters (récord -> rcord.dat): bprl reads the real files and names them."""
    sig = _physio(30.0)
    good = _write(tmp_path, "plain", sig)
    for name in ("récord", "nodat_é"):
        text = good.read_text(encoding="utf-8").replace("plain", name).replace(" Pleth", " Pléth")
        (tmp_path / f"{name}.hea").write_text(text, encoding="utf-8")
    (tmp_path / "récord.dat").write_bytes((tmp_path / "plain.dat").read_bytes())
    rec = read_record(tmp_path / "récord")
    assert rec.record_id == "récord" and rec.path == str(tmp_path / "récord.hea")
    assert rec.channel_names == ["II", "ABP", "Pléth"]  # 'Pléth' has no known role
    np.testing.assert_allclose(rec.channel_by_name("Pléth").samples, sig["Pleth"], atol=1e-3)
    with pytest.raises(
        RecordError, match=r"nodat_é\.hea: signal file nodat_é\.dat named in the header is missing"
    ):
        read_record(tmp_path / "nodat_é.hea")
    (tmp_path / "plain.dat").unlink()
    (tmp_path / "récord.dat").write_bytes(b"\0" * 10)
    err = _errors(scan_records(tmp_path, check_signals=True))
    assert "nodat_é.dat named in the header is missing" in err["nodat_é"]
    assert err["récord"].startswith(str(tmp_path / "récord.dat")) and "truncated" in err["récord"]
