"""MATLAB excerpts (``signal`` matrix, e.g. the MIMIC DB ``TestICUdata.mat``) -> channels.

A MATLAB excerpt holds a ``signal`` (or PhysioNet ``val``) matrix, samples x channels or
channels x samples. Its channel names and sampling rate come from, in this order, the
reader's arguments, a sidecar YAML (``<file>.mat.yaml`` or ``<file>.yaml`` with
``channel_names``, ``fs_hz``, optional ``units``, ``record_id``, ``subject_id``), or
``header`` / ``Fs`` variables in the file. Fill values that stand for WFDB's invalid
sample are turned into NaN (:func:`nan_fill_runs`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bprl.errors import RecordError
from bprl.sources.header import duplicate_name_notes, read_text_bounded
from bprl.sources.record import Channel
from bprl.sources.roles import channel_role, is_pressure_name, select_channels

#: default physical units of MATLAB excerpt channels, by role (``None``: no role)
DEFAULT_UNITS: dict[str | None, str] = {"ecg": "mV", "ppg": "NU", "abp": "mmHg", "resp": "NU", None: "NU"}

#: MIMIC DB .mat fill value: the WFDB invalid sample -32768 divided by the channel gain
#: (-16.384 for gain 2000, -17.43 for gain 1880); detected as explained in :func:`nan_fill_runs`.
FILL_VALUE_MIN_RUN = 2


def mat_strings(value: object) -> list[str]:
    """Strings of a MATLAB cell array / char matrix as loaded by scipy.io.loadmat."""
    arr = np.asarray(value)
    if arr.dtype.kind in ("U", "S"):
        return [str(s).strip() for s in arr.ravel()]
    out = []
    for item in arr.ravel():
        out.extend(mat_strings(item))
    return out


def read_sidecar(mat: Path) -> dict:
    """Contents of ``<file>.mat.yaml`` or ``<file>.yaml`` next to a .mat excerpt (empty dict if none).

    Raises:
        RecordError: the sidecar is not valid YAML or not a mapping.
    """
    import yaml

    for cand in (Path(str(mat) + ".yaml"), mat.with_suffix(".yaml")):
        if cand.is_file():
            try:
                data = yaml.safe_load(read_text_bounded(cand, "sidecar YAML")) or {}
            except yaml.YAMLError as exc:
                raise RecordError(f"{cand}: invalid YAML: {exc}") from exc
            if not isinstance(data, dict):
                raise RecordError(f"{cand}: expected a mapping with channel_names / fs_hz")
            return data
    return {}


def nan_fill_runs(x: np.ndarray, min_run: int = FILL_VALUE_MIN_RUN) -> np.ndarray:
    """Copy of ``x`` with flat fill runs (e.g. MIMIC's ``-16.38``) set to NaN.

    A fill value is the signal's minimum when it lies far below the signal (more
    than 3 × the 1st-99th percentile range under the 1st percentile, or exactly
    -16.38/-16.384) and forms a flat run of ``min_run`` or more samples somewhere;
    every sample holding it becomes NaN. This is how the MIMIC DB excerpts store
    WFDB's invalid value -32768 after division by the gain (-16.384 at gain 2000).
    Genuine flat stretches inside the signal range (e.g. ABP zeroing at 0 mmHg)
    are kept.

    Args:
        x: physical samples of one channel.
        min_run: shortest flat run (samples) that marks the minimum as a fill value.

    Returns:
        A float32 copy of ``x``.
    """
    y = np.array(x, dtype=np.float32, copy=True)
    finite = y[np.isfinite(y)]
    if finite.size < min_run:
        return y
    vmin = float(finite.min())
    p1, p99 = np.percentile(finite, [1.0, 99.0])
    if not (vmin < p1 - 3.0 * max(p99 - p1, 1e-6)):
        # the minimum may itself be a large share of samples (p1 == vmin): accept exact -16.38x too
        if not math.isclose(vmin, -16.384, abs_tol=1e-3) and not math.isclose(vmin, -16.38, abs_tol=1e-6):
            return y
    eq = y == np.float32(vmin)
    # the value is a fill value when it forms a flat run of >= min_run samples somewhere;
    # then every sample holding it is invalid (isolated ones included)
    d = np.diff(np.concatenate([[0], eq.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    if len(starts) and int((ends - starts).max()) >= min_run:
        y[eq] = np.nan
    return y


def _load_signal(mat: Path) -> tuple[dict[str, Any], np.ndarray]:
    """The loaded MATLAB variables and the ``signal``/``val`` matrix as samples x channels."""
    import scipy.io

    try:
        m = scipy.io.loadmat(str(mat))
    except Exception as exc:
        raise RecordError(f"{mat}: cannot read MATLAB file: {type(exc).__name__}: {exc}") from exc
    sig = m.get("signal", m.get("val"))
    if sig is None:
        arrays = [k for k, v in m.items() if not k.startswith("__") and getattr(v, "ndim", 0) == 2]
        raise RecordError(f"{mat}: no 'signal' matrix (variables: {arrays})")
    sig = np.asarray(sig, dtype=np.float64)
    if sig.ndim != 2 or sig.size == 0:
        raise RecordError(f"{mat}: 'signal' must be a non-empty 2-D matrix, got shape {sig.shape}")
    if sig.shape[0] < sig.shape[1]:  # channels x samples (PhysioNet 'val' layout)
        sig = sig.T
    return m, sig


def _column_names(
    mat: Path, n_ch: int, channel_names: Sequence[str] | None, known: list[str] | None
) -> tuple[list[str], Sequence[str] | None]:
    """(names of all columns, selection) from the arguments and the names the file or sidecar gives.

    ``channel_names`` names all columns when the file does not, or when it has one name per
    column and is not a subset of the known names; otherwise it selects among them.
    """
    select: Sequence[str] | None = None
    if channel_names is not None and (
        known is None or (len(channel_names) == n_ch and not set(channel_names) <= set(known))
    ):
        names: list[str] | None = list(channel_names)  # names of all columns, in order
    else:
        names, select = known, channel_names  # the file names its columns: a selection
    if names is None:
        raise RecordError(
            f"{mat}: {n_ch} channels without names: pass channel_names (e.g. --names II,V,ABP,PAP,PLETH,RESP) "
            f"and fs_hz (--fs 125), or write {mat.name}.yaml with channel_names and fs_hz"
        )
    if len(names) != n_ch:
        raise RecordError(f"{mat}: {len(names)} channel names given for {n_ch} columns of 'signal'")
    return names, select


def _column_rates(
    mat: Path, n_ch: int, fs_hz: float | None, side: dict, file_fs: np.ndarray | None
) -> list[float]:
    """Sampling rate (Hz) of each column: argument, else sidecar ``fs_hz``, else the file's ``Fs``."""
    if fs_hz is not None:
        rates = [float(fs_hz)] * n_ch
    elif "fs_hz" in side:
        rates = [float(side["fs_hz"])] * n_ch
    elif file_fs is not None and file_fs.size in (1, n_ch):
        rates = [float(v) for v in np.broadcast_to(file_fs, (n_ch,))]
    else:
        raise RecordError(
            f"{mat}: no sampling rate: pass fs_hz (--fs 125) or write {mat.name}.yaml with fs_hz"
        )
    if any(not (r > 0 and math.isfinite(r)) for r in rates):
        raise RecordError(f"{mat}: invalid sampling rate {rates}")
    return rates


def read_mat(
    mat: Path, channel_names: Sequence[str] | None, fs_hz: float | None, notes: list[str]
) -> tuple[list[Channel], dict]:
    """Channels of a MATLAB excerpt with a ``signal`` matrix (samples x channels); first of duplicate names.

    Args:
        mat: the ``.mat`` file.
        channel_names: names of all columns in order when the file has none; else a selection.
        fs_hz: sampling rate in Hz (else from the sidecar or the file's ``Fs``).
        notes: duplicate channel names are noted here.

    Returns:
        The channels (fill values NaN; units from the sidecar, else by role) and the sidecar mapping.

    Raises:
        RecordError: unreadable file, no ``signal`` matrix, no names or rate, names that do
            not fit the columns, an absent requested channel.
    """
    m, sig = _load_signal(mat)
    n_ch = sig.shape[1]
    side = read_sidecar(mat)
    file_names = mat_strings(m["header"]) if "header" in m else None
    file_fs = np.asarray(m["Fs"], dtype=np.float64).ravel() if "Fs" in m else None
    known = list(side["channel_names"]) if "channel_names" in side else file_names
    names, select = _column_names(mat, n_ch, channel_names, known)
    rates = _column_rates(mat, n_ch, fs_hz, side, file_fs)
    units = list(side.get("units") or [])
    notes += duplicate_name_notes(mat, names)
    idx = select_channels(mat, names, select)
    chans = []
    for i in idx:
        role = channel_role(names[i])
        unit = units[i] if i < len(units) else DEFAULT_UNITS[role]
        if role is None and is_pressure_name(names[i]):
            unit = "mmHg"
        chans.append(Channel(names[i], role, rates[i], str(unit), nan_fill_runs(sig[:, i])))
    return chans, side
