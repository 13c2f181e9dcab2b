"""Experiment files, the resumable runner and its backends (bprl.experiments, bprl.cli.run).

Runner mechanics (unit scheduling, markers, resume, backends) are tested with
small deterministic stub stages defined here, so they run in seconds; the
real pipeline (virtual cohort -> features -> estimator -> env -> calibrators
and PPO -> evaluation -> report) is tested end to end on a tiny cohort.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bprl import experiments as ex
from bprl.errors import BprlError, ConfigError
from bprl.experiments import loading, runner
from bprl.experiments.paths import clear_results
from bprl.io import write_parquet_atomic, write_text_atomic
from bprl.schemas import EPISODE_LOG_COLUMNS

REPO = Path(__file__).resolve().parents[1]
FAIL_ENV = "BPRL_TEST_FAIL_UNIT"  # "<policy>__seed<k>:<flag file>": that rollout raises once


# ------------------------------------------------------------------ stub stages
def stub_cohort(out: Path, n_subjects: int, hours: float, seed: int, spec: str | None, workers: int) -> None:
    """A fake cohort: one JSON 'record' per subject with a seeded bias."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_subjects):
        sid = f"s{i:02d}"
        rec = out / "waves" / sid / "r0" / "r0.hea"
        rec.parent.mkdir(parents=True)
        rec.write_text(json.dumps({"bias": float(rng.normal(0, 8)), "steps": int(hours * 10)}))
        rows.append({"subject_id": sid, "record_id": "r0", "record_path": str(rec.relative_to(out))})
    pd.DataFrame(rows).to_csv(out / "manifest.csv", index=False)


def stub_list_virtual(cohort_dir: Path) -> pd.DataFrame:
    """Records of the fake cohort."""
    man = pd.read_csv(Path(cohort_dir) / "manifest.csv", dtype=str)
    return man.assign(record_path=[str(Path(cohort_dir) / p) for p in man["record_path"]])


def _fake_record(path: str) -> dict:
    """A stub record: the JSON written by stub_cohort; real WFDB headers get a fixed one."""
    if path.endswith(".hea") and not Path(path).read_text().startswith("{"):
        return {"bias": 12.0, "steps": 6, "ref_share": 1.0 if "_0006" in path else 0.0}
    return json.loads(Path(path).read_text())


def stub_features(record_path: str, features: dict, cache_dir: str) -> dict:
    """'Replay table' of a fake record; a record named bad raises a BprlError (skip and record)."""
    rec = _fake_record(record_path)
    if rec.get("bad"):
        raise BprlError(f"{record_path}: unreadable")
    key = zlib.crc32(record_path.encode())
    write_text_atomic(json.dumps(rec), Path(cache_dir) / f"{key}.json")
    out = {"rows": rec["steps"]}
    if "ref_share" in rec:
        out["rows_with_reference"] = round(rec["ref_share"] * rec["steps"])
    return out


def stub_estimator(out: Path, kind, train, seed, records, features, cache_dir, checkpoint) -> None:
    """'Train' an estimator: mean bias of the train split."""
    out.mkdir(parents=True, exist_ok=True)
    biases = [_fake_record(r["record_path"])["bias"] for r in records if r["split"] == "train"]
    (out / "est.json").write_text(json.dumps({"bias": float(np.mean(biases)), "kind": kind}))


def stub_replay_set(out: Path, estimator_dir, records, splits, features, cache_dir) -> None:
    """Replay set: the estimator and the subjects' biases."""
    out.mkdir(parents=True, exist_ok=True)
    est = json.loads((Path(estimator_dir) / "est.json").read_text())
    subj = {r["subject_id"]: _fake_record(r["record_path"]) for r in records}
    (out / "set.json").write_text(json.dumps({"est": est, "subjects": subj, "splits": splits}))


def stub_agent(out: Path, env, agent_spec, seed, timesteps, params) -> None:
    """'Train' an agent: a gain drawn from the seed."""
    out.mkdir(parents=True, exist_ok=True)
    gain = float(np.random.default_rng([seed, timesteps]).uniform(0.2, 0.9))
    (out / "agent.json").write_text(json.dumps({"gain": gain}))


def stub_rollout(out: Path, policy, env, subject_ids, seed, agent_dir) -> None:
    """Episode log of a fake policy; fails once when FAIL_ENV names this unit."""
    hook = os.environ.get(FAIL_ENV, "")
    if hook:
        unit, flag = hook.split(":", 1)
        if unit == f"{policy['name']}__seed{seed}" and not Path(flag).exists():
            Path(flag).write_text("failed once")
            raise RuntimeError(f"test hook: killed inside {unit}")
    rs = json.loads((Path(env["overrides"]["replay_set"]) / "set.json").read_text())
    gain = json.loads((Path(agent_dir) / "agent.json").read_text())["gain"] if agent_dir else 0.5
    rng = np.random.default_rng([seed, zlib.crc32(policy["name"].encode())])
    rows = []
    for sid in subject_ids:
        n = rs["subjects"][sid]["steps"]
        ref = 120 + rng.normal(0, 10, n)
        est = ref + rs["subjects"][sid]["bias"] + rng.normal(0, 4, n)
        corr = ref + (est - ref) * gain
        cuff = rng.random(n) < 0.1
        for k in range(n):
            rows.append(
                {"policy": policy["name"], "seed": seed, "subject_id": sid, "episode": 0, "step": k}
                | {"t_s": 30.0 * (k + 1), "est_sbp_mmhg": est[k], "est_dbp_mmhg": est[k] - 40}
                | {"corr_sbp_mmhg": corr[k], "corr_dbp_mmhg": corr[k] - 40, "ref_sbp_mmhg": ref[k]}
                | {"ref_dbp_mmhg": ref[k] - 40, "cuff": bool(cuff[k]), "cuff_sbp_mmhg": np.nan}
                | {"cuff_dbp_mmhg": np.nan, "reward": -abs(corr[k] - ref[k])}
            )
    write_parquet_atomic(pd.DataFrame(rows, columns=list(EPISODE_LOG_COLUMNS)), out)


def stub_evaluate(logs: pd.DataFrame, **boot) -> dict[str, pd.DataFrame]:
    """Mean error, SD and MAE per policy."""
    err = logs["corr_sbp_mmhg"] - logs["ref_sbp_mmhg"]
    g = err.groupby(logs["policy"], sort=False)
    metrics = pd.DataFrame({"me": g.mean(), "sd": g.std(), "mae": err.abs().groupby(logs["policy"]).mean()})
    return {"metrics": metrics.reset_index()}


def stub_report(results_dir: Path, logs, tables, config, problems) -> None:
    """A one-table report."""
    write_text_atomic(tables["metrics"].to_csv(index=False), results_dir / "report.md")
    write_text_atomic("<html></html>", results_dir / "report.html")
    (results_dir / "figures").mkdir(exist_ok=True)


STUBS = ex.Stages(
    cohort=stub_cohort,
    list_virtual=stub_list_virtual,
    list_real=ex.stage_list_real,
    features=stub_features,
    estimator=stub_estimator,
    replay_set=stub_replay_set,
    agent=stub_agent,
    rollout=stub_rollout,
    evaluate=stub_evaluate,
    report=stub_report,
)


# ------------------------------------------------------------------- fixtures
@pytest.fixture
def specs(tmp_path: Path) -> dict[str, Path]:
    """An env spec and an agent spec file (stub runs only check that they exist)."""
    env = tmp_path / "env.yaml"
    env.write_text("reward: mae\n")
    agent = tmp_path / "ppo.yaml"
    agent.write_text("default: {n_timesteps: 100, policy: MlpPolicy}\n")
    return {"env": env, "agent": agent}


@pytest.fixture
def calibrators(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Calibrator names the stub experiments may use."""
    names = ["none", "offset", "one_point"]
    monkeypatch.setattr(loading, "known_calibrators", lambda: names)
    return names


def stub_config(specs: dict[str, Path], **changes) -> dict:
    """A small valid experiment dict for the stub stages."""
    cfg = {
        "name": "stubexp",
        "cohort": {"virtual": {"subjects": 10, "hours": 1.0, "seed": 3}},
        "splits": {"train": 0.5, "val": 0.2, "test": 0.3, "seed": 1},
        "env": {"spec": str(specs["env"])},
        "policies": [
            "none",
            {"calibrator": "offset", "params": {"k": 1}},
            {"agent": str(specs["agent"]), "timesteps": 50},
        ],
        "seeds": [0, 1],
    }
    cfg.update(changes)
    return cfg


# ----------------------------------------------------------------- schema
def _assert_config_error(cfg, tmp_path: Path, *needles: str) -> None:
    out = tmp_path / "results"
    with pytest.raises(ConfigError) as info:
        ex.run_experiment(cfg, results_dir=out, stages=STUBS, progress=False)
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    assert not out.exists(), "a ConfigError must come before any work"


def test_unknown_policy_lists_valid_ones(specs, calibrators, tmp_path):
    cfg = stub_config(specs, policies=["offset", "magic"])
    _assert_config_error(cfg, tmp_path, "policies.1.calibrator", "'magic'", "one_point")


def test_missing_cohort_folder(specs, calibrators, tmp_path):
    cfg = stub_config(specs, cohort={"records": [str(tmp_path / "nowhere")]})
    _assert_config_error(cfg, tmp_path, "cohort.records.0", "nowhere", "not found")


@pytest.mark.parametrize("seeds", [[0, 1.5], ["a"], [0, 0], []])
def test_seeds_must_be_distinct_integers(specs, calibrators, tmp_path, seeds):
    _assert_config_error(stub_config(specs, seeds=seeds), tmp_path, "seeds")


@pytest.mark.parametrize(
    ("splits", "needle"),
    [
        ({"train": 0.8, "val": 0.2, "test": 0.0}, "['test']"),
        ({"train": 0.7, "val": 0.2, "test": 0.2}, "sum to 1.1"),
        ({"train": ["s00"], "val": ["s01"], "test": []}, "splits.test"),
    ],
)
def test_split_with_no_subjects(specs, calibrators, tmp_path, splits, needle):
    _assert_config_error(stub_config(specs, splits=splits), tmp_path, "splits", needle)


def test_unknown_field_named(specs, calibrators, tmp_path):
    cfg = stub_config(specs)
    cfg["estimator"] = {"kind": "cnn_gru", "epochs_typo": 3}
    _assert_config_error(cfg, tmp_path, "estimator.epochs_typo", "unknown field")
    _assert_config_error(stub_config(specs, colour="red"), tmp_path, "colour: unknown field")


def test_other_schema_errors(specs, calibrators, tmp_path):
    _assert_config_error(
        stub_config(specs, policies=[{"calibrator": "offset", "agent": "x.yaml"}]), tmp_path, "exactly one"
    )
    _assert_config_error(
        stub_config(specs, policies=[{"agent": "agents/none.yaml"}]), tmp_path, "policies.0.agent"
    )
    _assert_config_error(stub_config(specs, policies=["offset", "offset"]), tmp_path, "used twice")
    _assert_config_error(stub_config(specs, env={"spec": "envs/missing.yaml"}), tmp_path, "env.spec")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    _assert_config_error(bad, tmp_path, "bad.yaml", "not valid YAML")


def test_yaml_file_and_env_var_paths(specs, calibrators, tmp_path, monkeypatch):
    monkeypatch.setenv("BPRL_TEST_ENVS", str(specs["env"].parent))
    cfg = stub_config(specs, env={"spec": "${BPRL_TEST_ENVS}/env.yaml"})
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    exp = ex.load_experiment(path)
    assert exp.env_spec == specs["env"].resolve()
    assert [p.label for p in exp.config.policies] == ["none", "offset", "ppo"]
    assert ex.expand_path("${BPRL_UNSET_VAR_X:-/tmp}/a") == Path("/tmp/a")


def test_assign_splits_is_seeded_and_complete():
    subjects = pd.DataFrame({"subject_id": [f"s{i:02d}" for i in range(10)], "origin": "virtual"})
    spec = ex.SplitSpec(train=0.5, val=0.2, test=0.3, seed=4)
    a = ex.assign_splits(subjects, spec)
    assert a == ex.assign_splits(subjects, spec)
    assert sorted(a.values()).count("test") == 3 and sorted(a.values()).count("val") == 2
    assert a != ex.assign_splits(subjects, ex.SplitSpec(train=0.5, val=0.2, test=0.3, seed=5))
    mixed = pd.concat([subjects, pd.DataFrame({"subject_id": ["p1"], "origin": "records"})])
    b = ex.assign_splits(mixed, ex.SplitSpec(train=0.8, val=0.2, test=0.0, records_to="test"))
    assert b["p1"] == "test" and list(b.values()).count("test") == 1


# ----------------------------------------------------------------- runner mechanics
def _run(specs, tmp_path, name, **kw):
    cfg = kw.pop("cfg", None) or stub_config(specs)
    return ex.run_experiment(cfg, results_dir=tmp_path / name, stages=STUBS, progress=False, **kw)


def _units_run(results: Path) -> dict[str, int]:
    prov = json.loads((results / "provenance.json").read_text())
    return {k: v["run"] for k, v in prov["units"].items()}


def test_results_folder_layout(specs, calibrators, tmp_path):
    out = _run(specs, tmp_path, "a", workers=1)
    for name in (
        "config.resolved.yaml",
        "provenance.json",
        "metrics.csv",
        "metrics.json",
        "report.html",
        "report.md",
    ):
        assert (out / name).is_file(), name
    logs = sorted(p.name for p in (out / "logs").glob("*.parquet"))
    assert logs == [f"{p}__seed{s}.parquet" for p in ("none", "offset", "ppo") for s in (0, 1)]
    prov = json.loads((out / "provenance.json").read_text())
    assert {"packages", "git", "python", "platform"} <= set(prov)
    assert prov["packages"]["numpy"] == np.__version__
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    assert resolved["policies"][2]["agent"] == str(specs["agent"].resolve())
    again = ex.load_experiment(out / "config.resolved.yaml")  # the resolved file is itself runnable
    assert again.config.seeds == [0, 1] and again.env_spec == specs["env"].resolve()
    assert [p.label for p in again.config.policies] == ["none", "offset", "ppo"]
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["policy"]) == ["none", "offset", "ppo"]
    # every subject of the test split, and only those, is in the logs
    log = pd.read_parquet(out / "logs" / "none__seed0.parquet")
    splits = json.loads((out / "work" / "replay_set" / "set.json").read_text())["splits"]
    assert sorted(log["subject_id"].unique()) == sorted(s for s, sp in splits.items() if sp == "test")
    # a second run does nothing and gives the same metrics
    before = (out / "metrics.csv").read_bytes()
    _run(specs, tmp_path, "a", workers=1)
    assert set(_units_run(out).values()) == {0}
    assert (out / "metrics.csv").read_bytes() == before


def test_new_weights_at_the_same_checkpoint_path_rerun_the_estimator(specs, calibrators, tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.pt").write_bytes(b"weights v1")
    (ckpt / "config.json").write_text("{}")
    cfg = stub_config(specs, estimator={"checkpoint": str(ckpt)})
    out = _run(specs, tmp_path, "a", workers=1, cfg=cfg)
    _run(specs, tmp_path, "a", workers=1, cfg=cfg)
    assert _units_run(out)["estimator"] == 0  # same bytes: nothing reruns
    (ckpt / "model.pt").write_bytes(b"weights v2")
    _run(specs, tmp_path, "a", workers=1, cfg=cfg)
    ran = _units_run(out)
    assert ran["estimator"] == 1 and ran["rollouts"] == 6  # and everything after it


def test_resume_after_kill_equals_uninterrupted(specs, calibrators, tmp_path, monkeypatch):
    ref = _run(specs, tmp_path, "ref", workers=1)
    monkeypatch.setenv(FAIL_ENV, f"offset__seed1:{tmp_path / 'failed.flag'}")
    with pytest.raises(RuntimeError, match="killed inside offset__seed1"):
        _run(specs, tmp_path, "killed", workers=1)
    killed = tmp_path / "killed"
    assert not (killed / "metrics.csv").exists()
    assert not (killed / "logs" / "offset__seed1.parquet").exists()
    done_before = sorted(p.name for p in (killed / "state" / "rollouts").glob("*.json"))
    assert "offset__seed1.json" not in done_before and len(done_before) >= 1
    out = _run(specs, tmp_path, "killed", workers=1)
    ran = _units_run(out)
    assert ran["cohort"] == 0 and ran["features"] == 0 and ran["agents"] == 0
    assert ran["rollouts"] == 6 - len(done_before)
    assert (out / "metrics.csv").read_bytes() == (ref / "metrics.csv").read_bytes()
    assert (out / "metrics.json").read_bytes() == (ref / "metrics.json").read_bytes()


def test_deleted_outputs_are_rebuilt_and_config_change_invalidates(specs, calibrators, tmp_path):
    out = _run(specs, tmp_path, "a", workers=1)
    before = (out / "metrics.csv").read_bytes()
    (out / "logs" / "ppo__seed1.parquet").unlink()
    shutil_rm = out / "work" / "agents" / "ppo__seed0"
    for p in shutil_rm.iterdir():
        p.unlink()
    shutil_rm.rmdir()
    _run(specs, tmp_path, "a", workers=1)
    ran = _units_run(out)
    assert ran["agents"] == 1 and ran["rollouts"] == 2 and ran["features"] == 0
    assert (out / "metrics.csv").read_bytes() == before
    # more agent timesteps: only the agent and its rollouts are redone
    cfg = stub_config(specs)
    cfg["policies"][2]["timesteps"] = 60
    _run(specs, tmp_path, "a", workers=1, cfg=cfg)
    ran = _units_run(out)
    assert ran == {**ran, "cohort": 0, "features": 0, "estimator": 0, "agents": 2, "rollouts": 2}
    # --no-resume redoes everything
    _run(specs, tmp_path, "a", workers=1, resume=False)
    ran = _units_run(out)
    assert ran["cohort"] == 1 and ran["features"] == 10 and ran["rollouts"] == 6


@pytest.mark.physionet
def test_real_records_selection(specs, calibrators, tmp_path, physionet_dir):
    """MIMIC-IV demo: only p10020306 has ABP; segments without arterial reference are left out."""
    cfg = stub_config(
        specs,
        cohort={
            "virtual": {"subjects": 6, "hours": 1.0, "seed": 3},
            "records": [str(physionet_dir / "mimic4wdb-demo")],
        },
        splits={"train": 0.7, "val": 0.3, "test": 0.0, "records_to": "test"},
        seeds=[0],
    )
    out = _run(specs, tmp_path, "real", cfg=cfg, workers=1)
    log = pd.read_parquet(out / "logs" / "none__seed0.parquet")
    assert list(log["subject_id"].unique()) == ["p10020306"]
    fails = pd.read_csv(out / "failures.csv")
    reasons = dict(zip(fails["unit"], fails["error"], strict=True))
    assert any("p10014354" in u and "no abp" in e for u, e in reasons.items())
    assert any("83404654_0017" in u and "min_duration_s" in e for u, e in reasons.items())
    assert "arterial reference" in reasons["features/p10020306__83404654_0005"]
    kept = json.loads((out / "work" / "replay_set" / "set.json").read_text())["splits"]
    assert kept["p10020306"] == "test" and sorted(set(kept.values())) == ["test", "train", "val"]


def test_bad_record_is_skipped_and_recorded(specs, calibrators, tmp_path):
    out = _run(specs, tmp_path, "a", workers=1)
    bad = out / "work" / "cohort" / "waves" / "s03" / "r0" / "r0.hea"
    bad.write_text(json.dumps({"bad": True}))
    for marker in (out / "state" / "features").glob("*.json"):
        marker.unlink()
    _run(specs, tmp_path, "a", workers=1)
    fails = pd.read_csv(out / "failures.csv")
    assert list(fails["unit"]) == ["features/s03__r0"]
    assert "unreadable" in fails["error"].iloc[0]
    set_ = json.loads((out / "work" / "replay_set" / "set.json").read_text())
    assert "s03" not in set_["splits"]


def test_process_pool_equals_in_process(specs, calibrators, tmp_path):
    a = _run(specs, tmp_path, "one", workers=1)
    b = _run(specs, tmp_path, "two", workers=2)
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    for log in (a / "logs").glob("*.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(log), pd.read_parquet(b / "logs" / log.name))


def test_ray_backend_equals_local(specs, calibrators, tmp_path):
    pytest.importorskip("ray")
    a = _run(specs, tmp_path, "local", workers=1)
    b = _run(specs, tmp_path, "ray", backend="ray", workers=2)
    prov = json.loads((b / "provenance.json").read_text())
    assert prov["backend"] == "ray" and prov["units"]["rollouts"]["run"] == 6
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()


def test_rebuild_report_from_logs(specs, calibrators, tmp_path):
    out = _run(specs, tmp_path, "a", workers=1)
    before = (out / "metrics.csv").read_bytes()
    (out / "metrics.csv").unlink()
    (out / "report.html").unlink()
    ex.rebuild_report(out, stages=STUBS)
    assert (out / "metrics.csv").read_bytes() == before and (out / "report.html").is_file()
    with pytest.raises(BprlError, match="no episode logs"):
        ex.rebuild_report(tmp_path / "empty")


def test_execute_unit_is_atomic(tmp_path):
    def boom(out: Path) -> None:
        out.write_text("half")
        raise RuntimeError("crash")

    unit = ex.Unit("x/y", boom, {}, tmp_path / "o.txt", tmp_path / "m.json", "fp")
    with pytest.raises(RuntimeError):
        ex.execute_unit(unit)
    assert not (tmp_path / "o.txt").exists() and not (tmp_path / "m.json").exists()
    assert list(tmp_path.iterdir()) == []
    unit = dataclasses.replace(unit, fn=lambda out: out.write_text("ok"))
    assert ex.execute_unit(unit).status == "done" and ex.unit_is_complete(unit)
    assert not ex.unit_is_complete(dataclasses.replace(unit, fingerprint="other"))


def test_cli_run_and_report(specs, calibrators, tmp_path):
    from typer.testing import CliRunner

    from bprl.cli import app

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(stub_config(specs, seeds=[0.5])))
    res = CliRunner().invoke(app, ["run", str(cfg), "--results", str(tmp_path / "r")])
    assert res.exit_code == 2 and "seeds" in res.output
    res = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no episode logs" in res.output


# ----------------------------------------------------------------- real pipeline
@pytest.mark.slow
def test_end_to_end_tiny_virtual_cohort(tmp_path):
    """Virtual cohort -> replay tables -> PAT-linear estimator -> calibrators and PPO -> report."""
    cfg = {
        "name": "tiny",
        "cohort": {"virtual": {"subjects": 6, "hours": 0.1, "seed": 5}},
        "splits": {"train": 0.5, "val": 0.17, "test": 0.33, "seed": 0},
        "features": {"window_s": 30, "hop_s": 30},
        "estimator": {"kind": "pat_linear"},
        "env": {"spec": "envs/default.yaml"},
        "policies": [
            "none",
            "one_shot",
            {
                "agent": "agents/ppo.yaml",
                "timesteps": 64,
                "params": {"n_envs": 1, "n_steps": 32, "batch_size": 32, "n_epochs": 1},
            },
        ],
        "seeds": [0],
        "budgets": {"cuff_budget": 4},
        "evaluation": {"n_resamples": 50},
    }
    out = ex.run_experiment(cfg, results_dir=tmp_path / "tiny", workers=1, progress=False)
    for name in (
        "config.resolved.yaml",
        "provenance.json",
        "metrics.csv",
        "metrics.json",
        "report.html",
        "report.md",
    ):
        assert (out / name).is_file(), name
    assert any((out / "figures").iterdir())
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["policy"]) == ["none", "one_shot", "ppo"]
    subjects = pd.read_csv(out / "work" / "replay_set" / "subjects.csv", dtype=str)
    test_ids = sorted(subjects.loc[subjects["split"] == "test", "subject_id"])
    assert len(test_ids) == 2
    log = pd.read_parquet(out / "logs" / "one_shot__seed0.parquet")
    assert sorted(log["subject_id"].unique()) == test_ids
    assert log["cuff"].sum() >= 1 and log["cuff"].groupby(log["subject_id"]).sum().max() <= 4
    # a calibration policy beats no calibration on the same test subjects
    mae = metrics.set_index("policy")["sbp_mae_mmhg"]
    assert mae["one_shot"] < mae["none"]
    # lose a log and its marker (as after a kill): the rerun rebuilds only that unit, same metrics
    before = {name: (out / name).read_bytes() for name in ("metrics.csv", "metrics.json")}
    (out / "logs" / "ppo__seed0.parquet").unlink()
    (out / "state" / "rollouts" / "ppo__seed0.json").unlink()
    ex.run_experiment(cfg, results_dir=out, workers=1, progress=False)
    ran = _units_run(out)
    assert ran == {**ran, "cohort": 0, "features": 0, "estimator": 0, "agents": 0, "rollouts": 1}
    assert {name: (out / name).read_bytes() for name in before} == before
    # the resolved configuration is itself a valid experiment file, equal to the one run
    again = ex.load_experiment(out / "config.resolved.yaml")
    assert again.config.estimator.kind == "pat_linear" and again.config.features.window_s == 30.0


# ----------------------------------------------------------------- issue 11: reliability
def test_resume_does_not_depend_on_how_the_results_folder_is_spelled(
    specs, calibrators, tmp_path, monkeypatch
):
    """Relative, absolute, ``..``-laden and symlinked spellings of one folder resume the same units."""
    monkeypatch.chdir(tmp_path)
    first = ex.run_experiment(
        stub_config(specs), results_dir="results/x", stages=STUBS, progress=False, workers=1
    )
    assert first == (tmp_path / "results" / "x").resolve()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "results")
    for spelling in (
        tmp_path / "results" / "x",
        Path("elsewhere") / ".." / "results" / "x",
        tmp_path / "link" / "x",
    ):
        out = ex.run_experiment(
            stub_config(specs), results_dir=spelling, stages=STUBS, progress=False, workers=1
        )
        assert out == first
        assert set(_units_run(out).values()) == {0}, (spelling, _units_run(out))


def test_resume_removes_temporary_leftovers_of_killed_units(specs, calibrators, tmp_path):
    out = _run(specs, tmp_path, "a", workers=1)
    leftovers = [
        out / "work" / ".estimator.k2j3h4.tmp",
        out / "work" / ".cohort-view-a8b7c6",
        out / "work" / "agents" / ".ppo__seed0.x1y2.tmp",
        out / "logs" / ".none__seed0.q9w8.tmp.parquet",
        out / ".metrics.csv.z7x6.tmp",
        out / "state" / "rollouts" / ".none__seed0.json.r5t6.tmp",
        out / "work" / "features" / ".123.json.u7i8.tmp",
    ]
    for path in leftovers:
        if (path.suffix == ".tmp" and "agents" in path.parts) or path.name.startswith(
            (".estimator", ".cohort")
        ):
            path.mkdir(parents=True)
            (path / "half-written.bin").write_bytes(b"x")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"half")
    (out / "work" / ".cohort-view-a8b7c6" / "waves").symlink_to(out / "work" / "cohort")
    keep = [out / "notes.tmp.txt", out / "work" / "cohort" / "waves" / "s00" / "r0" / "r0.hea"]
    keep[0].write_text("mine")
    _run(specs, tmp_path, "a", workers=1)
    assert set(_units_run(out).values()) == {0}
    for path in leftovers:
        assert not path.exists() and not path.is_symlink(), path
    for path in keep:
        assert path.is_file(), path  # neither user files nor symlink targets are touched


def test_report_uses_only_the_current_policies_and_seeds(specs, calibrators, tmp_path):
    seen: list[set[tuple[str, int]]] = []

    def evaluate(logs: pd.DataFrame, **boot) -> dict[str, pd.DataFrame]:
        seen.append(set(zip(logs["policy"], logs["seed"].astype(int), strict=True)))
        return stub_evaluate(logs, **boot)

    stages = dataclasses.replace(STUBS, evaluate=evaluate)
    out = ex.run_experiment(
        stub_config(specs), results_dir=tmp_path / "a", stages=stages, progress=False, workers=1
    )
    assert seen[-1] == {(p, s) for p in ("none", "offset", "ppo") for s in (0, 1)}
    cfg = stub_config(specs, seeds=[1])
    cfg["policies"] = [p for p in cfg["policies"] if p != "none"]  # remove a policy and a seed
    ex.run_experiment(cfg, results_dir=out, stages=stages, progress=False, workers=1)
    assert seen[-1] == {("offset", 1), ("ppo", 1)}
    assert (out / "logs" / "none__seed0.parquet").is_file()  # old logs stay, but are not reported
    ex.rebuild_report(out, stages=stages)
    assert seen[-1] == {("offset", 1), ("ppo", 1)}
    assert list(pd.read_csv(out / "metrics.csv")["policy"]) == ["offset", "ppo"]
    assert "none" not in (out / "report.md").read_text()
    # a rollout whose latest attempt was skipped does not bring back its older log
    marker = out / "state" / "rollouts" / "ppo__seed1.json"
    info = json.loads(marker.read_text())
    marker.write_text(json.dumps({**info, "status": "skipped", "error": "BprlError: gone"}))
    ex.rebuild_report(out, stages=stages)
    assert seen[-1] == {("offset", 1)}


def test_cli_report_ignores_logs_of_removed_policies(specs, calibrators, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bprl.cli import app

    out = _run(specs, tmp_path, "a", workers=1)
    cfg = stub_config(specs)
    cfg["policies"] = cfg["policies"][1:]
    ex.run_experiment(cfg, results_dir=out, stages=STUBS, progress=False, workers=1)
    monkeypatch.setattr(runner, "default_stages", lambda: STUBS)
    res = CliRunner().invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(out / "metrics.csv")["policy"]) == ["offset", "ppo"]


@pytest.mark.parametrize("name", ["..", ".", "...", ".hidden", "-rf", "a/b", ""])
def test_experiment_name_cannot_leave_the_results_folder(specs, calibrators, tmp_path, name):
    _assert_config_error(stub_config(specs, name=name), tmp_path, "name")


def test_no_resume_never_deletes_a_folder_the_runner_did_not_make(specs, calibrators, tmp_path, monkeypatch):
    """The old hole: name '..' made results/.. (the current folder) the results folder."""
    monkeypatch.chdir(tmp_path)
    precious = [tmp_path / "work" / "thesis.tex", tmp_path / "logs" / "lab.txt", tmp_path / "metrics.csv"]
    for p in precious:
        p.parent.mkdir(exist_ok=True)
        p.write_text("mine")
    with pytest.raises(ConfigError, match="name"):
        ex.run_experiment(stub_config(specs, name=".."), stages=STUBS, progress=False, resume=False)
    # an explicit folder that is not a bprl results folder is refused too, resume or not
    for resume in (False, True):
        with pytest.raises(ConfigError, match="not a bprl results folder") as info:
            ex.run_experiment(
                stub_config(specs), results_dir=".", stages=STUBS, progress=False, resume=resume
            )
        assert "--results" in str(info.value)
    assert all(p.read_text() == "mine" for p in precious)
    assert not (tmp_path / "state").exists() and not (tmp_path / "config.resolved.yaml").exists()
    # and the guard itself refuses anything but a marked folder strictly inside its root
    with pytest.raises(BprlError, match="refusing"):
        clear_results(tmp_path, tmp_path.parent)
    with pytest.raises(BprlError, match="refusing"):
        clear_results(tmp_path / "results" / "x", tmp_path / "results" / "x")
    assert all(p.read_text() == "mine" for p in precious)


def test_no_resume_clears_its_own_folder(specs, calibrators, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = ex.run_experiment(stub_config(specs), stages=STUBS, progress=False, workers=1)
    assert out == tmp_path / "results" / "stubexp" and (out / ex.RESULTS_MARKER).is_file()
    ex.run_experiment(stub_config(specs), stages=STUBS, progress=False, workers=1, resume=False)
    assert _units_run(out)["features"] == 10
    # a results folder written before the marker existed is recognised by its state and resolved config
    (out / ex.RESULTS_MARKER).unlink()
    ex.run_experiment(stub_config(specs), stages=STUBS, progress=False, workers=1, resume=False)
    assert _units_run(out)["features"] == 10 and (out / ex.RESULTS_MARKER).is_file()


def _set(cfg: dict, dotted: str, value) -> dict:
    node = cfg
    *parents, last = dotted.split(".")
    for key in parents:
        node = (
            node.setdefault(int(key) if key.isdigit() else key, {})
            if isinstance(node, dict)
            else node[int(key)]
        )
    node[int(last) if isinstance(node, list) else last] = value
    return cfg


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cohort.virtual.subjects", 1_000_000_000),
        ("cohort.virtual.subjects", 2.0),
        ("cohort.virtual.hours", 1e6),
        ("cohort.virtual.hours", True),
        ("cohort.virtual.hours", "1"),
        ("cohort.virtual.hours", float("inf")),
        ("cohort.virtual.seed", -1),
        ("cohort.min_duration_s", True),
        ("splits.seed", 2**32),
        ("splits.train", True),
        ("estimator.seed", -1),
        ("estimator.train.epochs", 1e9),
        ("estimator.train.epochs", "1e9"),
        ("estimator.train.epochs", 1_000_000_000),
        ("estimator.train.oversample", "yes"),
        ("estimator.train.lr", True),
        ("estimator.train.batch_size", 64.0),
        ("policies.2.timesteps", 10**10),
        ("policies.2.timesteps", 1e6),
        ("budgets.timesteps", 2_000_000_000),
        ("budgets.cuff_budget", True),
        ("evaluation.n_resamples", 10**9),
        ("evaluation.confidence", True),
        ("evaluation.seed", 2**32),
        ("backend.workers", 1000),
        ("backend.workers", True),
        ("seeds", [-1]),
        ("seeds", [2**32]),
        ("seeds", [0, True]),
    ],
)
def test_out_of_range_and_loosely_typed_values_are_named(specs, calibrators, tmp_path, field, value):
    cfg = _set(stub_config(specs), field, value)
    _assert_config_error(cfg, tmp_path, field.rsplit(".", 1)[0] if field == "seeds" else field)


def test_documented_bounds_are_accepted(specs, calibrators, tmp_path):
    bounds = ex.LIMITS
    cfg = stub_config(specs, seeds=[0, bounds["seed"]])
    _set(cfg, "cohort.virtual.hours", float(bounds["hours_per_subject"]))
    _set(cfg, "backend.workers", bounds["workers"])
    _set(cfg, "budgets.timesteps", bounds["timesteps"])
    _set(cfg, "estimator.train.epochs", bounds["epochs"])
    exp = ex.load_experiment(cfg)
    assert exp.config.seeds == [0, 2**31 - 1]
    _set(cfg, "cohort.virtual.subjects", bounds["subjects"])
    assert ex.ExperimentConfig.model_validate(cfg).cohort.virtual.subjects == 10_000


def test_workers_argument_is_bounded(specs, calibrators, tmp_path):
    from typer.testing import CliRunner

    from bprl.cli import app

    with pytest.raises(ConfigError, match="workers"):
        _run(specs, tmp_path, "a", workers=100_000)
    assert not (tmp_path / "a").exists()
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(stub_config(specs)))
    res = CliRunner().invoke(app, ["run", str(cfg), "--results", str(tmp_path / "r"), "--workers", "100000"])
    assert res.exit_code == 2 and "workers" in res.output


# ----------------------------------------------------------------- issue 12: one configuration layer
def test_stage_sections_are_the_stages_own_specs(specs, calibrators):
    from bprl.cohort import CohortSpec
    from bprl.estimator import ModelConfig, TrainConfig
    from bprl.features import FeatureConfig

    cfg = stub_config(specs, features={"window_s": 60, "hop_s": 30})
    cfg["cohort"]["virtual"]["params"] = {"age_mean_years": 50}
    cfg["estimator"] = {
        "train": {"epochs": 3, "model": {"conv_channels": [8, 8], "conv_kernels": [5, 3], "pools": [4, 4]}}
    }
    exp = ex.load_experiment(cfg)
    c = exp.config
    assert c.features == FeatureConfig(window_s=60, hop_s=30)
    assert isinstance(c.estimator.train, TrainConfig) and c.estimator.train.epochs == 3
    assert c.estimator.train.model == ModelConfig(conv_channels=(8, 8), conv_kernels=(5, 3), pools=(4, 4))
    assert c.cohort.virtual.params == CohortSpec(age_mean_years=50)
    # a validated configuration and its dump (the resolved file) are the same experiment
    assert ex.ExperimentConfig.model_validate(c.model_dump(mode="json")) == c
    assert ex.load_experiment(exp.resolved_dict()).resolved_dict() == exp.resolved_dict()
    pat = ex.ExperimentConfig.model_validate({**cfg, "estimator": {"kind": "pat_linear"}})
    assert ex.ExperimentConfig.model_validate(pat.model_dump(mode="json")) == pat


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("features.window_s", -1, "greater than 0"),
        ("features.colour", 1, "unknown field"),
        ("features.pat_max_ms", 50.0, "greater than pat_min_ms"),
        ("estimator.train.model.dropuot", 0.2, "unknown field"),
        ("estimator.train.model.dropout", 2.0, "less than or equal to 1"),
        ("cohort.virtual.params.age_mean_years", 5, "greater than or equal to 18"),
        ("cohort.virtual.params.colour", 1, "unknown field"),
    ],
)
def test_errors_in_nested_stage_specs_name_the_field(specs, calibrators, tmp_path, field, value, needle):
    _assert_config_error(_set(stub_config(specs), field, value), tmp_path, field, needle)


def test_pat_linear_takes_no_training_settings(specs, calibrators, tmp_path):
    cfg = stub_config(specs, estimator={"kind": "pat_linear", "train": {"epochs": 3}})
    _assert_config_error(cfg, tmp_path, "estimator", "pat_linear estimator takes no training settings")


def test_cohort_parameter_file_checked_before_any_work(specs, calibrators, tmp_path):
    bad = tmp_path / "cohort.yaml"
    bad.write_text("age_mean_yeras: 50\n")
    cfg = stub_config(specs)
    cfg["cohort"]["virtual"]["spec"] = str(bad)
    _assert_config_error(cfg, tmp_path, "cohort.virtual.spec", "age_mean_yeras")
    cfg["cohort"]["virtual"]["params"] = {"age_mean_years": 50}
    _assert_config_error(cfg, tmp_path, "cohort.virtual", "not both")


def test_every_field_of_the_experiment_file_is_described():
    from bprl.config import Spec

    models = [ex.ExperimentConfig]
    seen = set()
    while models:
        model = models.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, f in model.model_fields.items():
            assert f.description, f"{model.__name__}.{name}"
            for arg in (f.annotation, *getattr(f.annotation, "__args__", ())):
                if isinstance(arg, type) and issubclass(arg, Spec):
                    models.append(arg)
    assert {"FeatureConfig", "TrainConfig", "ModelConfig", "CohortSpec", "PolicySpec"} <= {
        m.__name__ for m in seen
    }


def test_seed_and_timestep_bounds_match_the_agents():
    from bprl.policies import agents

    assert ex.MAX_SEED == agents.MAX_SEED and ex.MAX_TIMESTEPS == agents.MAX_TIMESTEPS
    assert ex.LIMITS["seed"] == agents.MAX_SEED and ex.LIMITS["timesteps"] == agents.MAX_TIMESTEPS


def test_calibrator_specs_are_checked_before_any_work(specs, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    cfg = stub_config(specs, policies=["none", "examples.my_calibrator:PatSigmaCalibrator"])
    assert [p.label for p in ex.load_experiment(cfg).config.policies] == ["none", "PatSigmaCalibrator"]
    for spec, needle in [
        ("examples.my_calibrator:NoSuchClass", "no attribute 'NoSuchClass'"),
        ("bprl_no_such_module:Rule", "not found"),
        ("examples/no_such_file.py:Rule", "no_such_file.py"),
        ("no_such_rule", "valid calibrators"),
    ]:
        _assert_config_error(stub_config(specs, policies=[spec]), tmp_path, "policies.0.calibrator", needle)


@pytest.mark.slow
def test_user_calibrators_and_plugins_in_an_experiment(tmp_path, monkeypatch):
    """``module:Class`` specs, ``file.py:Class`` specs and plugin names run like built-in calibrators."""
    import importlib.metadata

    from bprl.policies import ENTRY_POINT_GROUP

    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.chdir(tmp_path)  # the file spec is found relative to the repository
    plugin = importlib.metadata.EntryPoint(
        name="pat_sigma_plugin", value="examples.my_calibrator:PatSigmaCalibrator", group=ENTRY_POINT_GROUP
    )
    real = importlib.metadata.entry_points

    def entry_points(**params):
        if params.get("group") == ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints([plugin])
        return real(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    params = {"k_sd": 3.0}
    cfg = {
        "name": "plugins",
        "cohort": {"virtual": {"subjects": 4, "hours": 0.1, "seed": 2}},
        "splits": {"train": 0.5, "val": 0.25, "test": 0.25, "seed": 0},
        "estimator": {"kind": "pat_linear"},
        "env": {"spec": "envs/default.yaml"},
        "policies": [
            "none",
            {"calibrator": "examples.my_calibrator:PatSigmaCalibrator", "params": params},
            {
                "calibrator": "examples/my_calibrator.py:PatSigmaCalibrator",
                "params": params,
                "name": "by_file",
            },
            {"calibrator": "pat_sigma_plugin", "params": params},
        ],
        "seeds": [0],
        "evaluation": {"n_resamples": 20},
    }
    out = ex.run_experiment(cfg, results_dir=tmp_path / "plugins", workers=1, progress=False)
    names = ["none", "PatSigmaCalibrator", "by_file", "pat_sigma_plugin"]
    assert list(pd.read_csv(out / "metrics.csv")["policy"]) == names
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    assert (
        resolved["policies"][2]["calibrator"]
        == f"{REPO / 'examples' / 'my_calibrator.py'}:PatSigmaCalibrator"
    )
    logs = {
        n: pd.read_parquet(out / "logs" / f"{n}__seed0.parquet").drop(columns=["policy", "family"])
        for n in names
    }
    assert logs["none"]["cuff"].sum() == 0 and logs["PatSigmaCalibrator"]["cuff"].sum() >= 1
    for name in names[2:]:
        pd.testing.assert_frame_equal(logs[name], logs["PatSigmaCalibrator"])


def test_schema_docstring_examples():
    import doctest

    from bprl.experiments import schema

    result = doctest.testmod(schema, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "experiments").glob("*.yaml")), ids=str)
def test_every_shipped_experiment_and_its_agent_overrides_validate(path: Path) -> None:
    """Each experiment file loads, and each agent entry with its ``params`` is a valid agent spec
    (so a typo in an override, e.g. an ablation name, fails here and not an hour into a run)."""
    from bprl.envs import ENV_ID, ENV_ID_CONTINUOUS
    from bprl.experiments.tasks import _agent_spec_with
    from bprl.policies.agents.spec import load_agent_spec

    try:
        exp = ex.load_experiment(path)
    except ConfigError as err:  # an experiment on real records needs them (mimic_real)
        if "cohort.records" in str(err) and "not found" in str(err):
            pytest.skip(f"real records not here: {err}")
        raise
    for pol in exp.config.policies:
        if pol.agent is not None:
            doc = _agent_spec_with(str(exp.agent_specs[pol.label]), dict(pol.params))
            for env_id in (ENV_ID_CONTINUOUS, ENV_ID):  # the entry the experiment's env would pick
                try:
                    spec = load_agent_spec(doc, env_id=env_id)
                    break
                except ConfigError as err:
                    if "no entry for env id" not in str(err):
                        raise
            for key, value in pol.params.items():
                got = getattr(spec, key) if key in type(spec).model_fields else spec.hyperparams.get(key)
                assert got is not None, (path.name, pol.label, key)
                if hasattr(got, "model_dump"):  # a nested block: every value given is the one in force
                    assert got.model_dump() == {**got.model_dump(), **value}
