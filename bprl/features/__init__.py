"""Per-beat features and windowed replay tables, with a content-addressed Parquet cache.

The feature stage of the data flow: a :class:`bprl.sources.Record` in, replay tables out.

- :mod:`~bprl.features.config`: :class:`FeatureConfig`, the settings (a :class:`bprl.config.Spec`);
- :mod:`~bprl.features.beats`: :func:`record_beats`, one row per R peak (PAT, HR, PPG
  morphology, quality, ABP reference), columns :data:`BEAT_COLUMNS`;
- :mod:`~bprl.features.replay_table`: :func:`replay_table_from_beats` aggregates the beats into
  windows with exactly the columns of :data:`bprl.schemas.REPLAY_COLUMNS`;
  :func:`build_replay_table` does one record;
- :mod:`~bprl.features.pat_offsets`: :func:`~bprl.features.pat_offsets.pat_offset_steps` flags
  PPG timing offsets (PAT steps that neither HR nor the R->ABP delay explain), ``pat_offset_ms``;
- :mod:`~bprl.features.cache`: :func:`load_replay_table` caches a table under a key that changes
  with the record bytes, the :class:`FeatureConfig` and the feature code
  (:func:`record_cache_key`, :func:`cache_path`, :func:`feature_code_version`);
- :mod:`~bprl.features.build`: :func:`build_replay_tables` does a whole folder in parallel,
  skipping bad records;
- :mod:`~bprl.features.replay_set`: the on-disk replay set the environments read
  (:class:`ReplaySet`, :func:`write_replay_set`, :func:`read_replay_set`, :func:`concat_records`).
"""

from __future__ import annotations

from bprl.features.beats import BEAT_COLUMNS, record_beats
from bprl.features.build import SKIPPED_COLUMNS, build_replay_tables
from bprl.features.cache import cache_path, feature_code_version, load_replay_table, record_cache_key
from bprl.features.config import FeatureConfig
from bprl.features.replay_set import (
    REPLAY_SET_INDEX,
    REPLAY_SET_INFO,
    ReplaySet,
    concat_records,
    read_replay_set,
    write_replay_set,
)
from bprl.features.replay_table import HR_PLAUSIBLE_BPM, build_replay_table, replay_table_from_beats

__all__ = [
    "BEAT_COLUMNS",
    "HR_PLAUSIBLE_BPM",
    "REPLAY_SET_INDEX",
    "REPLAY_SET_INFO",
    "SKIPPED_COLUMNS",
    "FeatureConfig",
    "ReplaySet",
    "build_replay_table",
    "build_replay_tables",
    "cache_path",
    "concat_records",
    "feature_code_version",
    "load_replay_table",
    "read_replay_set",
    "record_beats",
    "record_cache_key",
    "replay_table_from_beats",
    "write_replay_set",
]
