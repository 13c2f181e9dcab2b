"""Per-beat features and windowed replay tables, with a content-addressed Parquet cache.

``record_beats`` turns a :class:`bprl.records.Record` into one row per R peak (PAT, HR, PPG
morphology, quality, ABP reference); ``build_replay_table`` aggregates the beats into windows
with exactly the columns of :data:`bprl.tables.REPLAY_COLUMNS`; ``load_replay_table`` caches
the table under a key that changes with the record bytes, the :class:`FeatureConfig` and the
feature code; ``build_replay_tables`` does a whole folder in parallel, skipping bad records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from bprl import signals
from bprl.cache_versions import read_stamped_parquet, write_stamped_parquet
from bprl.errors import BprlError, FeatureError, RecordError, RecordWarning
from bprl.record_checks import require_regular_file
from bprl.records import Record, header_roles, read_record
from bprl.tables import REPLAY_COLUMNS

__all__ = [
    "BEAT_COLUMNS",
    "FeatureConfig",
    "build_replay_table",
    "build_replay_tables",
    "cache_path",
    "feature_code_version",
    "load_replay_table",
    "record_beats",
    "record_cache_key",
    "replay_table_from_beats",
]

#: columns of :func:`record_beats` (ABP columns are NaN / False without an ABP channel)
BEAT_COLUMNS: tuple[str, ...] = (
    "r_time_s",
    "rr_ms",
    "hr_bpm",
    "pat_foot_ms",
    "pat_maxslope_ms",
    "pat_peak_ms",
    "ppg_amp",
    "ppg_rise_time_ms",
    "ppg_width_ms",
    "ppg_stiffness_index",
    "sqi_ecg",
    "sqi_ppg",
    "ectopic",
    "valid",
    "sbp_mmhg",
    "dbp_mmhg",
    "map_mmhg",
    "abp_valid",
    "abp_reject_reason",
)


@dataclass(frozen=True)
class FeatureConfig:
    """Settings of the beat pipeline and the replay-table windows.

    Attributes:
        window_s: window length of one replay step (s).
        hop_s: step between window starts (s).
        pat_min_ms: earliest PPG upstroke after the R peak (ms).
        pat_max_ms: latest PPG upstroke after the R peak (ms).
        sqi_ecg_min: minimum ECG template correlation of a valid beat.
        sqi_ppg_min: minimum PPG template correlation of a valid beat.
        rr_tolerance: a beat whose RR differs from the local median RR by more than this
            fraction is ectopic (not valid for features).
        min_feature_beats: fewer valid beats in a window -> NaN features.
        min_ref_beats: fewer valid ABP beats in a window -> NaN reference.
        min_ref_share: smaller share of valid ABP beats in a window -> NaN reference.
        sbp_max_mmhg: ABP beats above are flush artefacts.
        dbp_min_mmhg: ABP beats with a lower DBP are rejected.
        pp_min_mmhg: ABP beats with a smaller pulse pressure are damped.
    """

    window_s: float = 30.0
    hop_s: float = 30.0
    pat_min_ms: float = 100.0
    pat_max_ms: float = 600.0
    sqi_ecg_min: float = 0.6
    sqi_ppg_min: float = 0.8
    rr_tolerance: float = 0.25
    min_feature_beats: int = 3
    min_ref_beats: int = 5
    min_ref_share: float = 0.5
    sbp_max_mmhg: float = 250.0
    dbp_min_mmhg: float = 20.0
    pp_min_mmhg: float = 10.0

    def __post_init__(self) -> None:
        if not (self.window_s > 0 and self.hop_s > 0):
            raise FeatureError(
                f"FeatureConfig: window_s and hop_s must be > 0, got {self.window_s}, {self.hop_s}"
            )
        if not 0 < self.pat_min_ms < self.pat_max_ms:
            raise FeatureError(
                f"FeatureConfig: need 0 < pat_min_ms < pat_max_ms, got {self.pat_min_ms}, {self.pat_max_ms}"
            )

    def key(self) -> str:
        """Stable hash (16 hex digits) of the field values."""
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------ beats
def record_beats(record: Record, config: FeatureConfig | None = None) -> pd.DataFrame:
    """One row per ECG R peak with the columns :data:`BEAT_COLUMNS`.

    Definitions: ``rr_ms`` = time from the previous R peak; ``hr_bpm`` = 60000 / ``rr_ms``;
    ``pat_*_ms`` = PPG foot (intersecting tangents) / max slope / systolic peak minus R time;
    ``ppg_amp`` = systolic peak minus foot level (record units); ``ppg_rise_time_ms`` = foot ->
    systolic peak; ``ppg_width_ms`` = width at half amplitude; ``ppg_stiffness_index`` =
    1 / (t_diastolic_peak - t_systolic_peak) in 1/s, i.e. the stiffness index SI = height / dT
    for a height of 1 m (multiply by the subject's height in m), NaN without a diastolic peak;
    ``ectopic`` = RR differs from the local median (9 beats) by more than ``rr_tolerance``;
    ``valid`` = PPG upstroke found in the PAT window with a foot at 0 < ``pat_foot_ms`` <=
    ``pat_max_ms``, both SQIs above threshold, not ectopic.

    Raises:
        FeatureError: the record has no ECG channel or no R peak could be found.
    """
    cfg = config or FeatureConfig()
    if not record.has("ecg"):
        raise FeatureError(f"{record.path}: no ECG channel (has {[c.name for c in record.channels]})")
    ecg = record.channel("ecg")
    # each channel is NaN-filled once and shared by detection and quality (private cores)
    ecg_x, ecg_nan = signals.signal_fill_nan(ecg.samples)
    if ecg_x.ndim != 1 or not ecg.fs_hz > 0:
        raise FeatureError(
            f"{record.path}: ECG must be 1-D with fs_hz > 0, got {ecg_x.shape} at {ecg.fs_hz} Hz"
        )
    r = signals._ecg_peaks_filled(ecg_x, ecg_nan, ecg.fs_hz, True)
    if len(r) < 3:
        raise FeatureError(f"{record.path}: fewer than 3 R peaks in {ecg.duration_s:.1f} s of ECG")
    nb = len(r)
    df: dict[str, np.ndarray | str] = {"r_time_s": r}
    rr = np.concatenate([[np.nan], np.diff(r) * 1000.0])
    df["rr_ms"] = rr
    df["hr_bpm"] = 60000.0 / rr
    df["sqi_ecg"] = signals._beat_sqi_filled(ecg_x, ecg_nan, ecg.fs_hz, r, 0.2, 0.4)
    rr_fill = np.where(np.isfinite(rr), rr, np.nanmedian(rr))
    med = ndimage.median_filter(rr_fill, size=9, mode="nearest")
    df["ectopic"] = np.abs(rr_fill - med) > cfg.rr_tolerance * med
    nan = np.full(nb, np.nan)
    if record.has("ppg"):
        ppg = record.channel("ppg")
        ppg_x, ppg_nan = signals.signal_fill_nan(ppg.samples)
        f = signals._ppg_fiducials_filled(ppg_x, ppg_nan, ppg.fs_hz, r, cfg.pat_min_ms, cfg.pat_max_ms)
        df["pat_foot_ms"] = (f["t_foot_s"] - r) * 1000.0
        df["pat_maxslope_ms"] = (f["t_maxslope_s"] - r) * 1000.0
        df["pat_peak_ms"] = (f["t_peak_s"] - r) * 1000.0
        df["ppg_amp"] = f["y_peak"] - f["y_foot"]
        df["ppg_rise_time_ms"] = (f["t_peak_s"] - f["t_foot_s"]) * 1000.0
        df["ppg_width_ms"] = f["width_ms"]
        with np.errstate(divide="ignore", invalid="ignore"):
            dt = f["t_dia_s"] - f["t_peak_s"]
            df["ppg_stiffness_index"] = np.where(dt > 0, 1.0 / dt, np.nan)
        df["sqi_ppg"] = signals._beat_sqi_filled(ppg_x, ppg_nan, ppg.fs_hz, f["t_maxslope_s"], 0.15, 0.45)
    else:
        for c in ("pat_foot_ms", "pat_maxslope_ms", "pat_peak_ms", "ppg_amp", "ppg_rise_time_ms"):
            df[c] = nan
        df["ppg_width_ms"] = nan
        df["ppg_stiffness_index"] = nan
        df["sqi_ppg"] = nan
    pat = df["pat_foot_ms"]
    df["valid"] = (
        np.isfinite(pat)
        & (pat > 0.0)
        & (pat <= cfg.pat_max_ms)
        & (df["sqi_ecg"] >= cfg.sqi_ecg_min)
        & (df["sqi_ppg"] >= cfg.sqi_ppg_min)
        & ~df["ectopic"]
    )
    if record.has("abp"):
        abp = record.channel("abp")
        b = signals.abp_beats(
            abp.samples,
            abp.fs_hz,
            r,
            sbp_max_mmhg=cfg.sbp_max_mmhg,
            dbp_min_mmhg=cfg.dbp_min_mmhg,
            pp_min_mmhg=cfg.pp_min_mmhg,
        )
        df["sbp_mmhg"] = b["sbp_mmhg"].to_numpy()
        df["dbp_mmhg"] = b["dbp_mmhg"].to_numpy()
        df["map_mmhg"] = b["map_mmhg"].to_numpy()
        df["abp_valid"] = b["valid"].to_numpy()
        df["abp_reject_reason"] = b["reject_reason"].to_numpy()
    else:
        df["sbp_mmhg"] = nan
        df["dbp_mmhg"] = nan
        df["map_mmhg"] = nan
        df["abp_valid"] = np.zeros(nb, dtype=bool)
        df["abp_reject_reason"] = "no_abp"
    return pd.DataFrame({c: df[c] for c in BEAT_COLUMNS})


# ----------------------------------------------------------------- replay table
_MEDIAN_COLS = (
    "pat_foot_ms",
    "pat_maxslope_ms",
    "pat_peak_ms",
    "ppg_amp",
    "ppg_rise_time_ms",
    "ppg_width_ms",
    "ppg_stiffness_index",
)


def replay_table_from_beats(
    beats: pd.DataFrame,
    duration_s: float,
    subject_id: str,
    record_id: str,
    config: FeatureConfig | None = None,
) -> pd.DataFrame:
    """Aggregate a beat table (:func:`record_beats`) into windows with :data:`REPLAY_COLUMNS`.

    Window ``k`` covers ``[k*hop_s, k*hop_s + window_s)``; only full windows are made.
    PPG/PAT features = median over valid beats; ``rr_ms``/``hr_bpm`` = median over beats with
    good ECG quality that are not ectopic; SQIs = mean over all beats; features are NaN when
    fewer than ``min_feature_beats`` beats qualify. Reference = median of valid ABP beats, NaN
    when fewer than ``min_ref_beats`` or a share below ``min_ref_share`` (never imputed).

    Raises:
        FeatureError: the record is shorter than one window.
    """
    cfg = config or FeatureConfig()
    if duration_s < cfg.window_s:
        raise FeatureError(
            f"record {record_id}: {duration_s:.1f} s is shorter than one window ({cfg.window_s} s)"
        )
    n_win = int(np.floor((duration_s - cfg.window_s) / cfg.hop_s + 1e-9)) + 1
    starts = np.arange(n_win) * cfg.hop_s
    ends = starts + cfg.window_s
    t = beats["r_time_s"].to_numpy()
    lo = np.searchsorted(t, starts, side="left")
    hi = np.searchsorted(t, ends, side="left")
    valid = beats["valid"].to_numpy(bool)
    ecg_ok = (beats["sqi_ecg"].to_numpy() >= cfg.sqi_ecg_min) & ~beats["ectopic"].to_numpy(bool)
    abp_ok = beats["abp_valid"].to_numpy(bool)
    # beats of every window as a padded index matrix: one vectorised median per column
    counts = hi - lo
    width = max(1, int(counts.max()) if n_win else 1)
    idx = lo[:, None] + np.arange(width)[None, :]
    inwin = np.arange(width)[None, :] < counts[:, None]
    idx = np.clip(idx, 0, max(len(t) - 1, 0))
    out: dict[str, np.ndarray | list] = {
        "subject_id": [subject_id] * n_win,
        "record_id": [record_id] * n_win,
        "step": np.arange(n_win),
        "t_start_s": starts.astype(np.float64),
        "t_end_s": ends.astype(np.float64),
    }

    def agg(col: str, mask: np.ndarray, min_n: int, how: str = "median") -> np.ndarray:
        if len(t) == 0:
            return np.full(n_win, np.nan)
        m = np.where(mask[idx] & inwin, beats[col].to_numpy(np.float64)[idx], np.nan)
        n_ok = np.isfinite(m).sum(axis=1)
        res = _row_nanmedian(m) if how == "median" else _row_nanmean(m)
        return np.where((n_ok >= 1) & ((mask[idx] & inwin).sum(axis=1) >= min_n), res, np.nan)

    for c in _MEDIAN_COLS:
        out[c] = agg(c, valid, cfg.min_feature_beats)
    for c in ("rr_ms", "hr_bpm"):
        out[c] = agg(c, ecg_ok, cfg.min_feature_beats)
    everything = np.ones(len(t), dtype=bool)
    for c in ("sqi_ecg", "sqi_ppg"):
        out[c] = agg(c, everything, 1, how="mean")
    n_valid = (valid[idx] & inwin).sum(axis=1) if len(t) else np.zeros(n_win, dtype=int)
    n_abp = (abp_ok[idx] & inwin).sum(axis=1) if len(t) else np.zeros(n_win, dtype=int)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["n_beats"] = counts.astype(np.int64)
        out["valid_beat_share"] = np.where(counts > 0, n_valid / np.maximum(counts, 1), 0.0)
        share = np.where(counts > 0, n_abp / np.maximum(counts, 1), 0.0)
    out["ref_valid_share"] = share
    has_ref = (n_abp >= cfg.min_ref_beats) & (share >= cfg.min_ref_share)
    for c, src in (("ref_sbp_mmhg", "sbp_mmhg"), ("ref_dbp_mmhg", "dbp_mmhg"), ("ref_map_mmhg", "map_mmhg")):
        out[c] = np.where(has_ref, agg(src, abp_ok, 1), np.nan)
    # columns built directly in their schema dtype (one DataFrame construction, no astype pass)
    cols = {
        c: pd.array(out[c], dtype=dtype) if dtype == "string" else np.asarray(out[c], dtype=dtype)
        for c, dtype in REPLAY_COLUMNS.items()
    }
    return pd.DataFrame(cols)


def _row_nanmedian(m: np.ndarray) -> np.ndarray:
    """Median of the finite values of each row (NaN for rows without any), fully vectorised."""
    srt = np.sort(m, axis=1)  # NaN sort last
    n = np.isfinite(m).sum(axis=1)
    rows = np.arange(len(m))
    lo = srt[rows, np.maximum((n - 1) // 2, 0)]
    hi = srt[rows, np.maximum(n // 2, 0) if m.shape[1] else 0]
    hi = np.where(n % 2 == 1, lo, srt[rows, np.minimum(n // 2, m.shape[1] - 1)])
    return np.where(n > 0, 0.5 * (lo + hi), np.nan)


def _row_nanmean(m: np.ndarray) -> np.ndarray:
    """Mean of the finite values of each row (NaN for rows without any)."""
    n = np.isfinite(m).sum(axis=1)
    s = np.where(np.isfinite(m), m, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


#: plausible median heart rate of a whole record (bpm); outside, the ECG is not an ECG or the
#: header's sampling frequency is wrong (e.g. 500-Hz data labelled 125 Hz reads 4x too fast)
HR_PLAUSIBLE_BPM: tuple[float, float] = (20.0, 250.0)


def build_replay_table(record: Record, config: FeatureConfig | None = None) -> pd.DataFrame:
    """Replay table of one record: :func:`record_beats` aggregated into windows.

    A record without PPG gives NaN PAT/PPG features; without ABP, NaN reference
    (:func:`build_replay_tables` skips records without PPG).

    Raises:
        FeatureError: no ECG, no beats, shorter than one window, the preferred ECG, PPG or
            ABP channel has plausibility problems (``Channel.problems``, see
            :func:`bprl.record_checks.channel_problems`), or the median heart rate is
            outside :data:`HR_PLAUSIBLE_BPM`.
    """
    cfg = config or FeatureConfig()
    if record.duration_s < cfg.window_s:
        raise FeatureError(
            f"{record.path}: {record.duration_s:.1f} s is shorter than one window ({cfg.window_s} s)"
        )
    used = [record.channel(r) for r in ("ecg", "ppg", "abp") if record.has(r)]
    problems = [p.removeprefix(f"{record.path}: ") for c in used for p in c.problems]
    if problems:
        raise FeatureError(f"{record.path}: implausible signals, no features built: " + "; ".join(problems))
    beats = record_beats(record, cfg)
    hr = beats["hr_bpm"].to_numpy(np.float64)
    hr_median = float(np.median(hr[np.isfinite(hr)])) if np.isfinite(hr).any() else float("nan")
    lo, hi = HR_PLAUSIBLE_BPM
    if not lo <= hr_median <= hi:
        ecg = record.channel("ecg")
        raise FeatureError(
            f"{record.path}: implausible heart rate: median {hr_median:.0f} bpm from ECG {ecg.name!r} at "
            f"{ecg.fs_hz:g} Hz (plausible {lo:g}-{hi:g} bpm): wrong sampling frequency or format in the "
            "header, or not an ECG"
        )
    return replay_table_from_beats(beats, record.duration_s, record.subject_id, record.record_id, cfg)


# ------------------------------------------------------------------------ cache
def feature_code_version() -> str:
    """Hash (16 hex digits) of the source of ``bprl/signals.py`` and ``bprl/features.py``."""
    h = hashlib.sha256()
    for mod in (signals.__file__, __file__):
        h.update(Path(mod).read_bytes())
    return h.hexdigest()[:16]


def _record_files(path: Path) -> list[Path]:
    """Header and data files of a record: files in its folder whose name starts with the record name."""
    hea = path if path.suffix in (".hea", ".mat") else path.with_suffix(".hea")
    if not os.path.lexists(hea):
        raise FeatureError(f"{path}: record header not found")
    require_regular_file(hea, "record header")  # never hash (open) a FIFO or device
    stem = hea.stem
    if hea.suffix == ".mat":  # a MATLAB excerpt and its sidecar files share its exact stem
        files = sorted(p for p in hea.parent.iterdir() if p.is_file() and p.stem == stem)
    else:  # WFDB: header, signal files (``<rec>.dat``, ``<rec>_e.dat``, ``<rec>e.dat``) and segments
        files = sorted(p for p in hea.parent.iterdir() if p.is_file() and p.name.startswith(stem))
    return files or [hea]


def record_cache_key(record_path: str | os.PathLike[str], config: FeatureConfig | None = None) -> str:
    """Cache key of a record's replay table: hash of its file bytes, the config key and the code version."""
    cfg = config or FeatureConfig()
    h = hashlib.sha256()
    for f in _record_files(Path(record_path)):
        h.update(f.name.encode())
        with open(f, "rb") as fh:  # in blocks: signal files can be large
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    h.update(cfg.key().encode())
    h.update(feature_code_version().encode())
    return h.hexdigest()[:24]


def cache_path(
    record_path: str | os.PathLike[str], config: FeatureConfig, cache_dir: str | os.PathLike[str]
) -> Path:
    """Where :func:`load_replay_table` stores the table of ``record_path``."""
    p = Path(record_path)
    return Path(cache_dir) / f"{p.stem}-{record_cache_key(p, config)}.parquet"


def load_replay_table(
    record_path: str | os.PathLike[str],
    config: FeatureConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Replay table of the record at ``record_path``, from the cache when present, else built and cached.

    The file is ``<cache_dir>/<record>-<key>.parquet`` (:func:`record_cache_key`), written atomically
    with the major versions of numpy, pandas and torch in its metadata; a cached table built under
    other major versions (or unreadable) is rebuilt, with a log line saying why
    (:mod:`bprl.cache_versions`). Without ``cache_dir`` nothing is cached.
    """
    cfg = config or FeatureConfig()
    if cache_dir is not None:
        target = cache_path(record_path, cfg, cache_dir)
        cached = read_stamped_parquet(target)
        if cached is not None:
            return cached
    table = build_replay_table(read_record(record_path), cfg)
    if cache_dir is not None:
        write_stamped_parquet(table, target)
    return table


def _build_one(args: tuple[str, FeatureConfig, str]) -> tuple[str, str, str, str, list[str]]:
    """Worker: (record path, cached table path or '', status, reason, record warnings).

    ``status`` is ``"ok"``; ``"skipped"`` for a readable record without usable features
    (no PPG, no window with a PAT, no ECG, too short, implausible signals); ``"error"``
    for an unreadable record. Record warnings are caught here and returned, so that the
    parent process reports each once.
    """
    path, cfg, cache_dir = args
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RecordWarning)
        try:
            roles = header_roles(path)
            if "ppg" not in roles:
                status, table_path = "skipped", ""
                reason = f"{path}: no PPG channel (roles: {', '.join(roles) or 'none'}): no PAT features"
            else:
                table = load_replay_table(path, cfg, cache_dir)
                table_path = str(cache_path(path, cfg, cache_dir))
                status, reason = "ok", ""
                if not table["pat_foot_ms"].notna().any():
                    status, table_path = "skipped", ""
                    reason = (
                        f"{path}: no window has a PAT (PPG unusable or no valid beat), {len(table)} windows"
                    )
        except RecordError as exc:
            status, reason, table_path = "error", str(exc), ""
        except BprlError as exc:
            status, reason, table_path = "skipped", str(exc), ""
        except Exception as exc:  # a batch never crashes on one bad record
            status, reason, table_path = "error", f"{path}: unexpected {type(exc).__name__}: {exc}", ""
    notes = [str(w.message) for w in caught if issubclass(w.category, RecordWarning)]
    return path, table_path, status, reason, list(dict.fromkeys(notes))


def _find_records(root: Path) -> list[Path]:
    """Record headers under ``root`` (``bprl.records.find_record_headers`` when available)."""
    try:
        from bprl.records import find_record_headers

        return list(find_record_headers(root))
    except ImportError:  # pragma: no cover - records room without the helper
        return sorted(root.rglob("*.hea"))


def build_replay_tables(
    root: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    config: FeatureConfig | None = None,
    workers: int = 2,
    progress: bool = True,
) -> tuple[dict[str, Path], pd.DataFrame]:
    """Build (or load from cache) the replay tables of every record under ``root``.

    Records without a PPG channel are skipped (reason ``no PPG channel``) before their
    signals are read, and so are records whose table has no window with a PAT; non-regular
    files named ``*.hea`` are listed as errors without being opened. Warnings about the
    records read (:class:`bprl.errors.RecordWarning`: duplicate channel names, ...) are
    re-emitted once each in this process.

    Returns:
        ``(tables, skipped)``: record header path -> cached Parquet path for each built record,
        and a DataFrame ``record_path, status, reason`` of the records without a table
        (``status``: ``"skipped"`` when readable but unusable, ``"error"`` when unreadable).

    Raises:
        FeatureError: ``root`` is not a folder.
    """
    cfg = config or FeatureConfig()
    root = Path(root)
    if not root.is_dir():
        raise FeatureError(f"{root}: folder does not exist")
    jobs = [(str(p), cfg, str(cache_dir)) for p in _find_records(root)]
    from tqdm import tqdm

    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            results = list(
                tqdm(
                    ex.map(_build_one, jobs),
                    total=len(jobs),
                    desc="features",
                    unit="rec",
                    disable=not progress,
                )
            )
    else:
        results = [_build_one(j) for j in tqdm(jobs, desc="features", unit="rec", disable=not progress)]
    for *_rest, notes in results:
        for msg in notes:
            warnings.warn(msg, RecordWarning, stacklevel=2)
    tables = {p: Path(t) for p, t, status, _r, _n in results if status == "ok"}
    skipped = pd.DataFrame(
        [(p, status, reason) for p, _t, status, reason, _n in results if status != "ok"],
        columns=["record_path", "status", "reason"],
    )
    return tables, skipped
