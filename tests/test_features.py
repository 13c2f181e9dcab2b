"""Tests of bprl.features: settings, beat table accuracy on the virtual cohort, replay tables on real records,
cache, batch, CLI, replay sets; and the bprl.tables re-exports."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bprl.features.cache
from bprl.cli import app
from bprl.config import Spec, load_spec
from bprl.errors import ConfigError, FeatureError
from bprl.features import (
    FeatureConfig,
    build_replay_table,
    build_replay_tables,
    cache_path,
    concat_records,
    feature_code_version,
    load_replay_table,
    record_beats,
    record_cache_key,
)
from bprl.schemas import REPLAY_COLUMNS
from bprl.sources import Channel, Record, read_record

M4 = Path("mimic4wdb-demo/p10020306/83404654")


@pytest.fixture(scope="module")
def cohort(tiny_cohort) -> Path:
    """The session's virtual cohort (read-only; tests copy what they modify)."""
    return Path(tiny_cohort)


def _matched(beats: pd.DataFrame, truth: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pair detected beats with truth beats within 50 ms."""
    tt = truth["r_time_s"].to_numpy()
    tb = beats["r_time_s"].to_numpy()
    j = np.clip(np.searchsorted(tt, tb), 1, len(tt) - 1)
    j = np.where(np.abs(tt[j - 1] - tb) < np.abs(tt[j] - tb), j - 1, j)
    ok = np.abs(tt[j] - tb) < 0.05
    return beats[ok].reset_index(drop=True), truth.iloc[j[ok]].reset_index(drop=True)


def test_cohort_beats_against_truth(cohort):
    pat_err, sbp_err, dbp_err, r_err = [], [], [], []
    sids = sorted(p.name for p in (cohort / "waves").iterdir())
    assert len(sids) >= 2
    for sid in sids:
        hea = next((cohort / "waves" / sid).rglob("*.hea"))
        truth = pd.read_parquet(cohort / "truth" / f"{sid}.parquet")
        beats = record_beats(read_record(hea))
        b, t = _matched(beats, truth)
        # every beat outside ECG artefact stretches is found
        found = np.zeros(len(truth), dtype=bool)
        found[np.searchsorted(truth["r_time_s"].to_numpy(), t["r_time_s"].to_numpy())] = True
        assert found[~truth["ecg_artefact"].to_numpy()].mean() >= 0.995
        flags = ["ectopic", "af", "ecg_artefact", "ppg_artefact", "abp_artefact"]
        clean = ~t[flags].any(axis=1).to_numpy()
        r_err.append((b["r_time_s"] - t["r_time_s"]).to_numpy()[clean] * 1000)
        pat_err.append((b["pat_foot_ms"] - t["pat_ms"]).to_numpy()[clean])
        sbp_err.append((b["sbp_mmhg"] - t["sbp_mmhg"]).to_numpy()[clean])
        dbp_err.append((b["dbp_mmhg"] - t["dbp_mmhg"]).to_numpy()[clean])
    r_e = np.abs(np.concatenate(r_err))
    pat = np.abs(np.concatenate(pat_err))
    assert np.isfinite(pat).mean() > 0.95
    pat = pat[np.isfinite(pat)]
    print(
        f"R |err| median {np.median(r_e):.2f} ms; PAT |err| median {np.median(pat):.2f} p95 {np.percentile(pat, 95):.2f} ms"
    )
    assert np.median(r_e) < 1.0
    assert np.median(pat) <= 4.0
    assert np.percentile(pat, 95) <= 12.0
    assert np.nanmedian(np.abs(np.concatenate(sbp_err))) <= 1.0
    assert np.nanmedian(np.abs(np.concatenate(dbp_err))) <= 1.0


def test_replay_table_schema_and_determinism(cohort):
    hea = next((cohort / "waves" / "v0001").rglob("*.hea"))
    rec = read_record(hea)
    t1 = build_replay_table(rec)
    t2 = build_replay_table(read_record(hea))
    assert list(t1.columns) == list(REPLAY_COLUMNS)
    assert {c: str(t1[c].dtype) for c in t1.columns} == REPLAY_COLUMNS
    pd.testing.assert_frame_equal(t1, t2)
    assert len(t1) == int(rec.duration_s // 30)
    assert (t1["step"].to_numpy() == np.arange(len(t1))).all()
    assert t1["ref_sbp_mmhg"].notna().mean() > 0.8
    assert (
        ((t1["ref_sbp_mmhg"] > t1["ref_map_mmhg"]) & (t1["ref_map_mmhg"] > t1["ref_dbp_mmhg"])).dropna().all()
    )
    t3 = build_replay_table(rec, FeatureConfig(window_s=60, hop_s=15))
    assert len(t3) == int((rec.duration_s - 60) // 15) + 1


def test_real_mimic4_good_segment(physionet_dir):
    t = build_replay_table(read_record(physionet_dir / M4 / "83404654_0006.hea"))
    assert 150 <= t["pat_foot_ms"].median() <= 450
    assert t["ref_sbp_mmhg"].notna().mean() >= 0.8
    assert t["hr_bpm"].between(40, 180).all()


def test_real_bad_abp_gives_no_reference(physionet_dir):
    t20 = build_replay_table(read_record(physionet_dir / M4 / "83404654_0020.hea"))
    assert len(t20) > 0 and t20["ref_sbp_mmhg"].isna().all()
    for seg in ("3234460_0017", "3234460_0018"):
        path = physionet_dir / "wfdb-python-samples" / "s25047" / f"{seg}.hea"
        rec = read_record(path)
        if rec.duration_s < 30:
            beats = record_beats(rec)
            assert not beats["abp_valid"].any()
        else:
            assert build_replay_table(rec)["ref_sbp_mmhg"].isna().all()
    # _0005: no reference in windows whose pressure is flat / near 0
    rec = read_record(physionet_dir / M4 / "83404654_0005.hea")
    t5 = build_replay_table(rec)
    abp = rec.channel("abp")
    fs = abp.fs_hz
    med = np.array(
        [
            np.nanmedian(abp.samples[int(a * fs) : int(b * fs)])
            for a, b in zip(t5["t_start_s"], t5["t_end_s"], strict=True)
        ]
    )
    near0 = med < 20
    assert near0.sum() > 0
    assert t5["ref_sbp_mmhg"][near0].isna().all()
    t22 = build_replay_table(read_record(physionet_dir / M4 / "83404654_0022.hea"))
    ok = t22["ref_sbp_mmhg"].dropna()
    assert ok.between(50, 250).all()


def test_records_without_roles(physionet_dir):
    t = build_replay_table(
        read_record(physionet_dir / "mitdb" / "100.hea"), FeatureConfig(window_s=60, hop_s=60)
    )
    assert len(t) == 30
    assert t["pat_foot_ms"].isna().all() and t["ref_sbp_mmhg"].isna().all()
    assert t["hr_bpm"].between(60, 90).all()
    t = build_replay_table(
        read_record(physionet_dir / "mimic4wdb-demo" / "p10082591" / "84050536" / "84050536_0001.hea")
    )
    assert t["ref_sbp_mmhg"].isna().all() and (t["ref_valid_share"] == 0).all()
    assert t["pat_foot_ms"].notna().any()
    with pytest.raises(FeatureError, match="shorter than one window"):
        build_replay_table(read_record(physionet_dir / "wfdb-python-samples" / "041s" / "041s.hea"))


def test_nan_stretch_and_missing_ecg(cohort):
    rec = read_record(next((cohort / "waves" / "v0002").rglob("*.hea")))
    chans = []
    for c in rec.channels:
        s = c.samples.copy()
        s[int(60 * c.fs_hz) : int(150 * c.fs_hz)] = np.nan
        chans.append(Channel(c.name, c.role, c.fs_hz, c.units, s))
    gap = Record(rec.subject_id, rec.record_id, rec.path, chans)
    t = build_replay_table(gap)
    inside = (t["t_start_s"] >= 60) & (t["t_end_s"] <= 150)
    assert inside.sum() == 3
    assert (t["n_beats"][inside] == 0).all()
    assert t.loc[inside, ["pat_foot_ms", "ref_sbp_mmhg"]].isna().all().all()
    assert t.loc[~inside & (t["t_start_s"] >= 180), "ref_sbp_mmhg"].notna().all()
    no_ecg = Record(rec.subject_id, rec.record_id, rec.path, [c for c in rec.channels if c.role != "ecg"])
    with pytest.raises(FeatureError, match="no ECG"):
        build_replay_table(no_ecg)
    with pytest.raises(FeatureError):
        FeatureConfig(window_s=0)


def test_cache_key_and_atomic_write(cohort, tmp_path):
    src = next((cohort / "waves" / "v0001").rglob("*.hea")).parent
    dst = tmp_path / "rec"
    shutil.copytree(src, dst)
    hea = next(dst.glob("*.hea"))
    cfg = FeatureConfig()
    k1 = record_cache_key(hea, cfg)
    assert k1 == record_cache_key(hea, FeatureConfig())
    assert record_cache_key(hea, FeatureConfig(window_s=20)) != k1
    assert FeatureConfig().key() == cfg.key() != FeatureConfig(hop_s=10).key()
    assert FeatureConfig(window_s=30).key() == cfg.key()  # an int in a float field is the same setting
    cache = tmp_path / "cache"
    t1 = load_replay_table(hea, cfg, cache)
    target = cache_path(hea, cfg, cache)
    assert target.is_file()
    assert [p.name for p in cache.iterdir()] == [target.name]  # no temporary files left
    pd.testing.assert_frame_equal(t1, load_replay_table(hea, cfg, cache))
    dat = next(p for p in dst.iterdir() if p.suffix == ".dat")
    raw = bytearray(dat.read_bytes())
    raw[-2] ^= 0x01  # change one sample
    dat.write_bytes(bytes(raw))
    assert record_cache_key(hea, cfg) != k1


def test_batch_skips_bad_records_and_cli(cohort, tmp_path):
    root = tmp_path / "tree"
    shutil.copytree(cohort / "waves", root)
    bad = root / "vbad" / "vbad_0001"
    bad.mkdir(parents=True)
    (bad / "vbad_0001.hea").write_text("vbad_0001 1 250 1000\nvbad_0001.dat 16 200/mV 16 0 0 0 0 II\n")
    tables, skipped = build_replay_tables(root, tmp_path / "cache", workers=2, progress=False)
    n_subjects = len(list((cohort / "waves").iterdir()))
    assert len(tables) == n_subjects and all(p.is_file() for p in tables.values())
    assert len(skipped) == 1 and "vbad_0001" in skipped["record_path"].iloc[0]
    assert skipped["reason"].iloc[0]
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "features",
            "build",
            str(root),
            "--cache",
            str(tmp_path / "cache"),
            "--workers",
            "1",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"built {n_subjects}" in res.output and "skip" in res.output
    rec = next(iter(tables))
    res = runner.invoke(app, ["features", "show", rec])
    assert res.exit_code == 0, res.output
    assert "windows with reference" in res.output
    res = runner.invoke(app, ["features", "show", str(tmp_path / "nothing.hea")])
    assert res.exit_code == 1


def test_concat_records_shifts_times_and_renumbers_steps() -> None:
    a = pd.DataFrame({"step": [0, 1], "t_start_s": [0.0, 30.0], "t_end_s": [30.0, 60.0], "x": [1, 2]})
    empty = a.iloc[:0]
    b = pd.DataFrame(
        {"step": [0, 1, 2], "t_start_s": [5.0, 35.0, 65.0], "t_end_s": [35.0, 65.0, 95.0], "x": [3, 4, 5]}
    )
    out = concat_records([a, empty, b])
    assert out["step"].tolist() == [0, 1, 2, 3, 4]
    assert out["t_start_s"].tolist() == [0.0, 30.0, 65.0, 95.0, 125.0]
    assert out["t_end_s"].tolist() == [30.0, 60.0, 95.0, 125.0, 155.0]
    assert out["x"].tolist() == [1, 2, 3, 4, 5]
    assert b["t_start_s"].tolist() == [5.0, 35.0, 65.0]  # inputs untouched


# ------------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ({"window": 30}, "window", "unknown field"),
        ({"window_s": 0}, "window_s", "greater than 0"),
        ({"hop_s": "fast"}, "hop_s", "valid number"),
        ({"sqi_ppg_min": 1.5}, "sqi_ppg_min", "less than or equal to 1"),
        ({"min_ref_beats": 2.5}, "min_ref_beats", "valid integer"),
        ({"pat_min_ms": 300, "pat_max_ms": 200}, "pat_max_ms", "greater than pat_min_ms"),
    ],
)
def test_feature_config_rejects_unknown_keys_and_bad_values_naming_the_field(settings, field, message):
    with pytest.raises(
        FeatureError, match=rf"^FeatureConfig: invalid feature settings\n  {field}: .*{message}"
    ):
        FeatureConfig(**settings)
    with pytest.raises(ConfigError, match=rf"^features.yaml: invalid FeatureConfig\n  {field}: .*{message}"):
        load_spec(FeatureConfig, settings, source_name="features.yaml")


def test_feature_config_from_kwargs_yaml_and_an_enclosing_spec(tmp_path):
    from pydantic import Field

    cfg = FeatureConfig(**{"window_s": 60, "hop_s": 15})
    assert cfg == FeatureConfig(window_s=60.0, hop_s=15.0) and cfg.window_s == 60.0
    assert hash(cfg) == hash(FeatureConfig(window_s=60.0, hop_s=15.0))  # frozen: usable as a key
    with pytest.raises(ValueError, match="frozen"):
        cfg.window_s = 10
    path = tmp_path / "features.yaml"
    path.write_text("window_s: 60\nhop_s: 15\n")
    assert load_spec(FeatureConfig, path) == cfg
    path.write_text("window_s: 60\nhop: 15\n")
    with pytest.raises(ConfigError, match=r"features\.yaml: invalid FeatureConfig\n  hop: unknown field"):
        load_spec(FeatureConfig, path)

    class Experiment(Spec):
        features: FeatureConfig = Field(default_factory=FeatureConfig, description="feature settings")

    assert load_spec(Experiment, {"features": {"window_s": 60, "hop_s": 15}}).features == cfg
    with pytest.raises(
        ConfigError, match=r"exp.yaml: invalid Experiment\n  features\.window_s: .*greater than 0"
    ):
        load_spec(Experiment, {"features": {"window_s": -1}}, source_name="exp.yaml")


def test_feature_code_version_hashes_the_beat_and_feature_code(tmp_path, monkeypatch):
    packages = bprl.features.cache._CODE_PACKAGES
    assert [(p.parent.name, p.name) for p in packages] == [("bprl", "beats"), ("bprl", "features")]
    version = feature_code_version()
    assert len(version) == 16 and version == feature_code_version()
    copies = tuple(tmp_path / p.name for p in packages)
    for src, dst in zip(packages, copies, strict=True):
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(bprl.features.cache, "_CODE_PACKAGES", copies)
    assert feature_code_version() == version
    ecg = copies[0] / "ecg.py"
    ecg.write_text(ecg.read_text() + "\n# changed\n")
    assert feature_code_version() != version


# ---------------------------------------------------------------------- replay sets
def test_replay_set_round_trip(tmp_path):
    import json

    from bprl.features import read_replay_set, write_replay_set
    from bprl.schemas import REPLAY_ESTIMATE

    def table(sid: str, n: int) -> pd.DataFrame:
        cols = {c: ([sid] * n if d == "string" else np.arange(n, dtype=d)) for c, d in REPLAY_COLUMNS.items()}
        cols.update({c: np.full(n, 120.0) for c in REPLAY_ESTIMATE})
        return pd.DataFrame(cols)

    tables = {"s2": table("s2", 3), "s1": table("s1", 2)}
    info = {"cohort": "tiny", "when": Path("x")}
    written = write_replay_set(tmp_path / "set", tables, {"s1": "train", "s2": "test"}, info)
    assert (tmp_path / "set" / "replay_set.json").read_text() == json.dumps(
        info, indent=2, sort_keys=True, default=str
    )
    rs = read_replay_set(tmp_path / "set")
    assert rs.subject_ids() == ["s1", "s2"] == written.subject_ids() and rs.subject_ids("test") == ["s2"]
    assert rs.info == {"cohort": "tiny", "when": "x"}
    pd.testing.assert_frame_equal(rs.table("s2"), tables["s2"])
    with pytest.raises(KeyError, match="no subject 's3'"):
        rs.table("s3")
    with pytest.raises(ValueError, match="split 'dev'"):
        write_replay_set(tmp_path / "bad", tables, {"s1": "dev", "s2": "test"})
    with pytest.raises(ValueError, match="not a replay set"):
        read_replay_set(tmp_path)


def test_tables_reexports_its_old_names_from_the_new_modules():
    import bprl.features.replay_set
    import bprl.io
    import bprl.schemas

    sys.modules.pop("bprl.tables", None)
    with pytest.warns(DeprecationWarning, match="bprl.tables is deprecated"):
        tables = importlib.import_module("bprl.tables")
    ReplaySet, write_replay_set = tables.ReplaySet, tables.write_replay_set  # imported on first access

    assert ReplaySet is bprl.features.ReplaySet and write_replay_set is bprl.features.write_replay_set
    homes = (bprl.io, bprl.schemas, bprl.features.replay_set)
    for name in tables.__all__:
        home = next(m for m in homes if name in m.__all__)
        assert getattr(tables, name) is getattr(home, name), name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = tables.nothing
