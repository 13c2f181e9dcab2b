"""Making a virtual cohort: simulate each subject, write its record and truth, then the manifest.

:func:`simulate_subject` runs one subject through dynamics -> beats -> waveforms;
:func:`make_cohort` writes every subject into the folder layout of :mod:`bprl.cohort.layout`,
in worker processes when asked. Subject ``i`` draws its parameters from
``default_rng([seed, i, 0])`` and its signals from ``default_rng([seed, i, 1])``, so the files
are identical whatever the number of workers, and a cohort can be resumed or grown.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bprl.cohort import wfdb_writer
from bprl.cohort.beats import simulate_beats
from bprl.cohort.domain import (
    DOMAIN_FIELDS,
    RecordDomain,
    apply_domain,
    domain_params,
    domain_spec,
    draw_domain,
)
from bprl.cohort.dynamics import simulate_dynamics
from bprl.cohort.events import CohortEvent, draw_events, event_rng, events_enabled
from bprl.cohort.layout import (
    COHORT_FILE,
    COHORT_FORMAT,
    TRUTH_COLUMNS,
    read_cohort_meta,
    record_folder,
    record_id_for,
    subject_folder,
    subject_id_for,
    truth_path,
    write_cohort_meta,
    write_manifest,
)
from bprl.cohort.spec import CohortSpec, load_spec
from bprl.cohort.subjects import SubjectParams, assign_splits, params_row, sample_subject
from bprl.cohort.video_subject import video_meta_path, write_subject_video
from bprl.cohort.waveforms import Waveforms, synthesize_waveforms
from bprl.errors import CohortError
from bprl.io import write_parquet_atomic

__all__ = ["make_cohort", "simulate_subject"]


def simulate_subject(
    params: SubjectParams,
    hours: float,
    rng: np.random.Generator,
    spec: CohortSpec | None = None,
    events: list[CohortEvent] | None = None,
) -> tuple[Waveforms, pd.DataFrame]:
    """Simulate one subject for ``hours``: dynamics -> beats -> waveforms.

    Args:
        params: the subject's parameters.
        hours: record length, h (more than 5 s).
        rng: the subject's signal generator (``default_rng([seed, i, 1])`` in a cohort).
        spec: the cohort spec (sampling rates, event rates); ``None``: defaults.
        events: the subject's physiological events (:mod:`bprl.cohort.events`); ``None``: drawn
            from the spec's event rates on :func:`~bprl.cohort.events.event_rng` of ``rng``
            (none when the rates are 0).

    Returns:
        the waveforms and the ground-truth beat table (:data:`~bprl.cohort.layout.TRUTH_COLUMNS`).

    Raises:
        CohortError: ``hours`` is 5 s or less, or the spec is invalid.
    """
    spec = load_spec(spec)
    duration_s = float(hours) * 3600.0
    if not duration_s > 5.0:
        raise CohortError(f"hours must be > 5 s worth of signal, got {hours!r}")
    if events is None and events_enabled(spec):
        events = draw_events(spec, duration_s, event_rng(rng))
    dyn = simulate_dynamics(params, duration_s, rng, events)
    beats = simulate_beats(params, dyn, duration_s, rng)
    waves, truth = synthesize_waveforms(params, beats, dyn, duration_s, spec, rng)
    return waves, truth[list(TRUTH_COLUMNS)].reset_index(drop=True)


# ---------------------------------------------------------------- one subject (worker)
def _subject_done(out: Path, i: int, video: bool = False) -> bool:
    """Whether subject ``i`` is complete: its truth table and record header (and video, when asked) exist."""
    sid, rid = subject_id_for(i), record_id_for(i)
    done = truth_path(out, sid).is_file() and (record_folder(out, sid, rid) / f"{rid}.hea").is_file()
    return done and (not video or video_meta_path(out, sid, rid).is_file())


def _write_record(out: Path, i: int, params: SubjectParams, waves: Waveforms, seed: int) -> None:
    """Write subject ``i``'s WFDB record into a temp folder, then rename it into place."""
    sid, rid = params.subject_id, record_id_for(i)
    subj_dir = subject_folder(out, sid)
    tmp = subj_dir / f".tmp-{rid}-{os.getpid()}"
    final = record_folder(out, sid, rid)
    try:
        clock = (params.start_clock_h * 3600.0) % 86400.0
        base_time = dt.time(int(clock // 3600), int(clock % 3600 // 60), int(clock % 60))
        comments = [
            f"subject_id: {sid}",
            f"record_id: {rid}",
            f"bprl virtual cohort, seed {seed}, subject index {i}",
        ]
        wfdb_writer.wfdb_write(tmp, rid, waves.waves, comments, base_time=base_time)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _subject(spec: CohortSpec, seed: int, i: int) -> tuple[SubjectParams, RecordDomain]:
    """Subject ``i``'s parameters (noise scaled by its domain) and its record's domain draws."""
    domain = draw_domain(spec, seed, i)
    return domain_params(sample_subject(spec, i, np.random.default_rng([seed, i, 0])), domain), domain


def _generate_subject(
    out_dir: str, i: int, hours: float, seed: int, spec_dict: dict, video: bool = False
) -> str:
    """Generate and write subject ``i`` (worker entry point): record via temp folder + rename, truth last.

    With ``video``, also the virtual-camera clips (:mod:`bprl.cohort.video_subject`); a subject
    whose record is complete is simulated again (deterministically) for its video only.
    """
    out = Path(out_dir)
    spec = CohortSpec(**spec_dict)
    params, domain = _subject(spec, seed, i)
    subj_dir = subject_folder(out, params.subject_id)
    subj_dir.mkdir(parents=True, exist_ok=True)
    for stale in subj_dir.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    rng = np.random.default_rng([seed, i, 1])
    record_done = _subject_done(out, i)
    waves, truth = simulate_subject(params, hours, rng, domain_spec(spec, domain))
    if not record_done:
        if not domain.is_identity:
            waves = Waveforms(apply_domain(waves.waves, domain), waves.clean)
        _write_record(out, i, params, waves, seed)
        write_parquet_atomic(truth, truth_path(out, params.subject_id))
    if video:
        write_subject_video(out, i, params, waves, truth, domain_spec(spec, domain), seed)
    return params.subject_id


# ---------------------------------------------------------------- the cohort
def _check_arguments(n_subjects: int, hours: float, seed: int, workers: int) -> float:
    """CohortError unless the arguments of :func:`make_cohort` are valid; returns ``hours`` as a float."""
    if isinstance(n_subjects, bool) or not isinstance(n_subjects, int | np.integer) or n_subjects < 1:
        raise CohortError(f"n_subjects must be a positive integer, got {n_subjects!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise CohortError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        hours = float(hours)
    except (TypeError, ValueError):
        raise CohortError(f"hours must be a number, got {hours!r}") from None
    if not math.isfinite(hours) or hours * 3600.0 <= 5.0 or hours > 72:
        raise CohortError(f"hours must be > 0 (at least 5 s) and <= 72, got {hours!r}")
    if not isinstance(workers, int) or workers < 1:
        raise CohortError(f"workers must be a positive integer, got {workers!r}")
    return hours


def _check_out_dir(out: Path) -> None:
    """CohortError unless ``out`` is (or can be made) a writable folder."""
    if out.exists() and not out.is_dir():
        raise CohortError(f"{out}: output path exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise CohortError(f"{out}: output folder is not writable: {exc}") from exc


def _same(key: str, old: Any, new: Any) -> bool:
    """Whether a ``cohort.yaml`` entry matches; specs compare as validated specs (new fields at defaults)."""
    if key != "spec":
        return bool(old == new)
    try:
        return CohortSpec(**old) == CohortSpec(**new)
    except (TypeError, ValueError):
        return False


def _claim_folder(out: Path, meta: dict[str, Any]) -> None:
    """Write ``cohort.yaml``; CohortError when the folder holds a cohort of another seed, spec or duration."""
    old = read_cohort_meta(out)
    if old is not None:
        for key in ("seed", "hours", "spec"):
            if not _same(key, old.get(key), meta[key]):
                raise CohortError(
                    f"{out / COHORT_FILE}: folder holds a cohort with a different {key} ({old.get(key)!r}); use a new folder"
                )
    write_cohort_meta(out, meta)


def _generate_all(
    out: Path,
    n_subjects: int,
    hours: float,
    seed: int,
    spec: CohortSpec,
    workers: int,
    progress: bool,
    video: bool = False,
) -> None:
    """Generate every subject not yet complete, in this process or in ``workers`` processes."""
    todo = [i for i in range(n_subjects) if not _subject_done(out, i, video)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_subjects, initial=n_subjects - len(todo), unit="subject", desc="cohort")
    spec_dict = spec.model_dump()
    try:
        if workers == 1 or len(todo) <= 1:
            for i in todo:
                _generate_subject(str(out), i, hours, seed, spec_dict, video)
                if bar:
                    bar.update(1)
        else:
            with cf.ProcessPoolExecutor(max_workers=workers) as ex:
                futs = [
                    ex.submit(_generate_subject, str(out), i, hours, seed, spec_dict, video) for i in todo
                ]
                for f in cf.as_completed(futs):
                    f.result()
                    if bar:
                        bar.update(1)
    finally:
        if bar:
            bar.close()


def _manifest(n_subjects: int, hours: float, seed: int, spec: CohortSpec) -> pd.DataFrame:
    """One row per subject: subject_id, record_id, split, hours and every parameter."""
    splits = assign_splits(n_subjects, seed, spec)
    randomised = _randomised(spec)
    rows = []
    for i in range(n_subjects):
        p, domain = _subject(spec, seed, i)
        row = {"subject_id": p.subject_id, "record_id": record_id_for(i), "split": splits[i], "hours": hours}
        rows.append(row | params_row(p) | (domain.row() if randomised else {}))
    return pd.DataFrame(rows)


def _randomised(spec: CohortSpec) -> bool:
    """Whether the spec randomises any record's domain (then the manifest lists the draws)."""
    return any(CohortSpec.model_fields[k].get_default() != getattr(spec, k) for k in DOMAIN_FIELDS)


def make_cohort(
    out_dir: str | os.PathLike[str],
    n_subjects: int,
    hours: float,
    seed: int,
    spec: CohortSpec | dict | str | os.PathLike[str] | None = None,
    workers: int = 1,
    progress: bool = True,
    video: bool = False,
) -> Path:
    """Generate a virtual cohort into ``out_dir`` (layout in :mod:`bprl.cohort.layout`) and return the folder.

    Deterministic by ``seed``: subject ``i`` draws parameters from ``default_rng([seed, i, 0])``
    and signals from ``default_rng([seed, i, 1])``, so results do not depend on ``workers``.
    Resumable: complete subjects (record + truth table present) are skipped, half-written
    temp folders are removed and their subjects regenerated.

    Args:
        out_dir: the cohort folder (created).
        n_subjects: number of subjects (>= 1).
        hours: record length per subject, h (more than 5 s, at most 72 h).
        seed: the cohort's seed (>= 0).
        spec: population and simulation settings (a spec, mapping, YAML path or ``None``).
        workers: worker processes (>= 1; results do not depend on it).
        progress: show a progress bar.
        video: also render virtual-camera skin-region clips and their ground truth per subject
            (:mod:`bprl.cohort.video_subject`; settings: the spec's ``video_*`` fields).

    Returns:
        the cohort folder.

    Raises:
        CohortError: bad arguments, unwritable folder, invalid spec, or a folder holding a
            cohort made with a different seed, spec or duration.
    """
    spec = load_spec(spec)
    hours = _check_arguments(n_subjects, hours, seed, workers)
    n, seed = int(n_subjects), int(seed)
    out = Path(out_dir)
    _check_out_dir(out)
    meta = {"format": COHORT_FORMAT, "seed": seed, "hours": hours, "n_subjects": n, "spec": spec.model_dump()}
    _claim_folder(out, meta)
    _generate_all(out, n, hours, seed, spec, workers, progress, video)
    write_manifest(out, _manifest(n, hours, seed, spec))
    return out
