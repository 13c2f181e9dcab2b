"""Agents (bprl.policies.agents): agent YAML validation, SB3 training/saving/loading, determinism, rl_zoo3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bprl.config import load_spec
from bprl.envs import make_env_from_spec, synthetic_replay_tables
from bprl.errors import ConfigError
from bprl.features import write_replay_set
from bprl.policies import rollout
from bprl.policies.agents import (
    AGENT_JSON,
    AgentPolicy,
    AgentSpec,
    CycleSubjects,
    load_agent,
    load_agent_spec,
    parse_kwargs_string,
    train_agent,
)

REPO = Path(__file__).resolve().parents[1]
CONT = "bprl/BPCalibrationContinuous-v1"
DISC = "bprl/BPCalibration-v1"

# Tiny budgets: these tests check the machinery, not learning.
PPO_SPEC = {
    "algo": "ppo",
    CONT: {
        "n_timesteps": 256,
        "policy": "MlpPolicy",
        "n_envs": 2,
        "normalize": True,
        "frame_stack": 2,
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 2,
        "learning_rate": "lin_1e-3",
        "policy_kwargs": "dict(net_arch=[32, 32], activation_fn=nn.Tanh)",
    },
}
DQN_SPEC = {
    "algo": "dqn",
    DISC: {
        "n_timesteps": 300,
        "policy": "MlpPolicy",
        "normalize": "dict(norm_obs=True, norm_reward=False)",
        "learning_starts": 50,
        "buffer_size": 1000,
        "batch_size": 32,
        "train_freq": 4,
        "target_update_interval": 100,
        "policy_kwargs": "dict(net_arch=[32])",
    },
}
RPPO_SPEC = {
    "algo": "recurrent_ppo",
    CONT: {
        "n_timesteps": 128,
        "policy": "MlpLstmPolicy",
        "n_envs": 2,
        "normalize": "dict(norm_obs=True, norm_reward=True)",
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 1,
        "policy_kwargs": "dict(lstm_hidden_size=16, net_arch=[16])",
    },
}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six synthetic subjects (4 train, 1 val, 1 test), 60 steps of 30 s each."""
    tables = synthetic_replay_tables(n_subjects=6, n_steps=60, seed=3)
    ids = sorted(tables)
    splits = {sid: ("train" if i < 4 else "val" if i == 4 else "test") for i, sid in enumerate(ids)}
    root = tmp_path_factory.mktemp("replay")
    write_replay_set(root, tables, splits, info={"what": "synthetic test set"})
    return root


def env_spec(replay_dir: Path, action_type: str) -> dict:
    return {"replay_set": str(replay_dir), "action_type": action_type}


@pytest.fixture(scope="module")
def ppo_dir(replay_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return train_agent(
        env_spec(replay_dir, "continuous"), PPO_SPEC, seed=7, out_dir=tmp_path_factory.mktemp("ppo") / "a"
    )


@pytest.fixture(scope="module")
def dqn_dir(replay_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return train_agent(
        env_spec(replay_dir, "discrete"), DQN_SPEC, seed=7, out_dir=tmp_path_factory.mktemp("dqn") / "a"
    )


@pytest.fixture(scope="module")
def recurrent_ppo_dir(replay_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("rppo") / "a"
    return train_agent(env_spec(replay_dir, "continuous"), RPPO_SPEC, seed=7, out_dir=out, eval_freq=64)


# ------------------------------------------------------------------ agent YAML files
@pytest.mark.parametrize("path", sorted((REPO / "agents").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_agent_files_are_valid(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc, path
    algo = doc.pop("algo", path.stem)  # a file may name its algorithm (ppo_residual.yaml: ppo)
    for env_id in doc:
        spec = load_agent_spec(path, env_id=env_id)
        assert spec.algo == algo and spec.env_key == env_id
        if path.stem.endswith("_long"):  # the budgets of issue 15's "train for >= 1M steps" configs
            assert spec.n_timesteps >= 1_000_000
        else:
            assert 0 < spec.n_timesteps <= 200_000  # "bprl train" must stay a few minutes on 2 cores
        spec.algorithm_kwargs()


def _write(tmp_path: Path, name: str, doc: dict) -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc))
    return p


def test_unknown_algorithm_is_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "a2c_typo.yaml", {CONT: {"n_timesteps": 10, "policy": "MlpPolicy"}})
    with pytest.raises(ConfigError, match=r"unknown algorithm 'a2c_typo'"):
        load_agent_spec(p)


def test_unknown_hyperparameter_is_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "ppo.yaml", {CONT: {"n_timesteps": 10, "policy": "MlpPolicy", "n_stepz": 64}})
    with pytest.raises(ConfigError, match=r"ppo.yaml.*unknown hyperparameter\(s\) \['n_stepz'\]"):
        load_agent_spec(p, env_id=CONT)
    # a DQN-only argument is unknown to PPO
    p = _write(tmp_path, "ppo.yaml", {CONT: {"n_timesteps": 10, "policy": "MlpPolicy", "buffer_size": 64}})
    with pytest.raises(ConfigError, match="buffer_size"):
        load_agent_spec(p, env_id=CONT)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"n_timesteps": -5, "policy": "MlpPolicy"}, "n_timesteps"),
        ({"n_timesteps": 10, "policy": "CnnLstmPolicyX"}, "policy 'CnnLstmPolicyX'"),
        ({"n_timesteps": 10, "policy": "MlpPolicy", "n_envs": 0}, "n_envs"),
        ({"n_timesteps": 10, "policy": "MlpPolicy", "frame_stack": "two"}, "frame_stack"),
        ({"n_timesteps": 10, "policy": "MlpPolicy", "normalize": "dict(norm_obz=True)"}, "norm_obz"),
        ({"n_timesteps": 10, "policy": "MlpPolicy", "learning_rate": "exp_3e-4"}, "schedule"),
        (
            {"n_timesteps": 10, "policy": "MlpPolicy", "policy_kwargs": "__import__('os').system('true')"},
            "unsupported",
        ),
        (
            {"n_timesteps": 10, "policy": "MlpPolicy", "policy_kwargs": "dict(activation_fn=os.system)"},
            "not allowed",
        ),
    ],
)
def test_bad_values_raise_config_error(entry: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_agent_spec({"algo": "ppo", CONT: entry}, env_id=CONT)


def test_entry_lookup_and_dqn_constraints(replay_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"no entry for env id 'CartPole-v1'.*entries"):
        load_agent_spec(REPO / "agents" / "dqn.yaml", env_id="CartPole-v1")
    assert (
        load_agent_spec(
            {"algo": "ppo", "default": {"n_timesteps": 5, "policy": "MlpPolicy"}}, env_id=CONT
        ).env_key
        == "default"
    )
    bad = {
        "algo": "dqn",
        DISC: {"n_timesteps": 10, "policy": "MlpPolicy", "normalize": True, "frame_stack": 3},
    }
    with pytest.raises(ConfigError, match="frame_stack with normalize"):
        load_agent_spec(bad, env_id=DISC)
    with pytest.raises(ConfigError, match="DQN needs a discrete action space"):
        train_agent(env_spec(replay_dir, "continuous"), DQN_SPEC, seed=0, out_dir=replay_dir.parent / "never")


def test_parse_kwargs_string_is_safe_and_complete() -> None:
    kw = parse_kwargs_string(
        "dict(net_arch=dict(pi=[64], vf=[32, 32]), activation_fn=nn.ReLU, log_std_init=-1.5)", "x"
    )
    assert kw == {
        "net_arch": {"pi": [64], "vf": [32, 32]},
        "activation_fn": torch.nn.ReLU,
        "log_std_init": -1.5,
    }
    with pytest.raises(ConfigError, match="x: name 'open' is not allowed"):
        parse_kwargs_string("dict(f=open)", "x")


# ------------------------------------------------------------------ AgentSpec: one model for YAML and kwargs
PPO_KWARGS = {
    "algo": "ppo",
    "env_key": CONT,
    "n_timesteps": 256,
    "policy": "MlpPolicy",
    "n_envs": 2,
    "normalize": True,
    "frame_stack": 2,
    "policy_kwargs": "dict(net_arch=[32, 32], activation_fn=nn.Tanh)",
    "hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 2, "learning_rate": "lin_1e-3"},
}


def test_agent_spec_from_kwargs_equals_the_zoo_entry() -> None:
    from_entry = load_agent_spec(PPO_SPEC, env_id=CONT)
    from_kwargs = load_spec(AgentSpec, PPO_KWARGS)
    assert from_kwargs == from_entry  # raw (what agent.json records) included
    assert from_kwargs.raw == PPO_SPEC[CONT]
    assert from_kwargs.policy_kwargs["activation_fn"] is torch.nn.Tanh
    assert AgentSpec(**PPO_KWARGS) == from_entry
    for name, field in AgentSpec.model_fields.items():
        assert field.description, name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_envs": 0}, r"n_envs: .*n_envs must be an integer >= 1, got 0"),
        ({"n_stepz": 64}, r"n_stepz: unknown field"),
        ({"hyperparams": {"n_stepz": 64}}, r"unknown hyperparameter\(s\) \['n_stepz'\]"),
        ({"policy_kwargs": "dict(f=open)"}, r"policy_kwargs: .*name 'open' is not allowed"),
        ({"hyperparams": {"clip_range": "exp_1"}}, r"clip_range: schedule 'exp_1'"),
        ({"algo": "a2c"}, r"unknown algorithm 'a2c'"),
    ],
)
def test_agent_spec_kwargs_errors_name_the_field(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_spec(AgentSpec, {**PPO_KWARGS, **change}, source_name="kwargs")


def test_importing_policies_does_not_import_sb3_or_torch() -> None:
    code = (
        "import sys, bprl.policies, bprl.policies.agents; "
        "print(sorted(m for m in ('torch', 'stable_baselines3', 'sb3_contrib') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


# ------------------------------------------------------------------ training, saving, loading
def _episode_with_policy(policy: AgentPolicy, spec: dict, subject_id: str, seed: int) -> tuple[list, float]:
    env = make_env_from_spec(spec, split="test")
    obs, _ = env.reset(seed=seed, options={"subject_id": subject_id, "whole_record": True})
    state, start, actions, total = None, True, [], 0.0
    while True:
        action, state = policy.predict(obs, state, np.array([start]), deterministic=True)
        start = False
        actions.append(np.asarray(action).copy())
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        if terminated or truncated:
            return actions, total


def _episode_with_sb3_wrappers(agent_dir: Path, spec: dict, subject_id: str, seed: int) -> list:
    """Reference: plain SB3 load + SB3's own VecNormalize / VecFrameStack wrappers (as in training)."""
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecNormalize

    meta = json.loads((agent_dir / AGENT_JSON).read_text())
    model = {"ppo": PPO, "dqn": DQN, "recurrent_ppo": RecurrentPPO}[meta["algo"]].load(
        agent_dir / "best_model.zip", device="cpu"
    )  # our own file
    venv = DummyVecEnv([lambda: CycleSubjects(make_env_from_spec(spec, split="test"), [subject_id])])
    venv.seed(seed)
    if meta["normalize"] is not None:
        stats = json.loads((agent_dir / "vecnormalize.json").read_text())
        venv = VecNormalize(
            venv, training=False, norm_reward=False, clip_obs=stats["clip_obs"], epsilon=stats["epsilon"]
        )
        venv.obs_rms.mean = np.asarray(stats["obs_mean"])
        venv.obs_rms.var = np.asarray(stats["obs_var"])
    if meta["frame_stack"]:
        venv = VecFrameStack(venv, n_stack=meta["frame_stack"])
    obs = venv.reset()
    actions, state, starts = [], None, np.ones(1, dtype=bool)
    while True:
        action, state = model.predict(obs, state=state, episode_start=starts, deterministic=True)
        starts = np.zeros(1, dtype=bool)
        actions.append(np.asarray(action[0]).copy())
        obs, _, dones, _ = venv.step(action)
        if dones[0]:
            return actions


@pytest.mark.parametrize("which", ["ppo", "dqn", "recurrent_ppo"])
def test_saved_agent_reloads_and_acts_identically(
    which: str, request: pytest.FixtureRequest, replay_dir: Path
) -> None:
    agent_dir: Path = request.getfixturevalue(f"{which}_dir")
    names = {p.name for p in agent_dir.iterdir()}
    assert {
        "best_model.zip",
        "final_model.zip",
        "agent.json",
        "evaluations.npz",
        "vecnormalize.json",
    } <= names
    assert not [n for n in names if n.startswith(".")], names  # no temporary leftovers
    meta = json.loads((agent_dir / AGENT_JSON).read_text())
    assert meta["algo"] == which and meta["seed"] == 7
    assert set(meta["versions"]) >= {"bprl", "torch", "stable-baselines3", "gymnasium", "numpy"}
    assert "git_commit" in meta and meta["env_spec"]["kind"] == "dict"
    assert meta["eval"]["split"] == "val" and meta["eval"]["n_eval_episodes"] == 1
    spec = env_spec(replay_dir, "discrete" if which == "dqn" else "continuous")

    policy = load_agent(agent_dir)
    assert policy.name == agent_dir.name and policy.algo == which
    sid = make_env_from_spec(spec, split="test").subject_ids[0]
    actions, _ = _episode_with_policy(policy, spec, sid, seed=11)
    reference = _episode_with_sb3_wrappers(agent_dir, spec, sid, seed=11)
    assert len(actions) == len(reference) == 60
    np.testing.assert_array_equal(np.array(actions), np.array(reference))
    # a batch of observations (leading env axis) gives the actions of one-by-one calls (up to BLAS rounding)
    env = make_env_from_spec(spec, split="test")
    obs = [env.reset(seed=1)[0]]
    for a in reference[:2]:
        obs.append(env.step(a)[0])
    batch, _ = policy.predict(np.stack(obs), None, np.ones(3, bool))
    singles = [policy.predict(o, None, np.array([True]))[0] for o in obs]
    np.testing.assert_allclose(
        np.asarray(batch, dtype=float), np.array(singles, dtype=float), rtol=1e-5, atol=1e-6
    )


def test_load_agent_rejects_non_agent_folders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no agent\.json"):
        load_agent(tmp_path)
    (tmp_path / AGENT_JSON).write_text(json.dumps({"algo": "ppo"}))
    with pytest.raises(ConfigError, match="missing field 'policy'"):
        load_agent(tmp_path)


def _params(agent_dir: Path) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in load_agent(agent_dir).model.policy.state_dict().items()}


def test_same_seed_same_parameters_and_logs(ppo_dir: Path, replay_dir: Path, tmp_path: Path) -> None:
    spec = env_spec(replay_dir, "continuous")
    again = train_agent(spec, PPO_SPEC, seed=7, out_dir=tmp_path / "again")
    other = train_agent(spec, PPO_SPEC, seed=8, out_dir=tmp_path / "other")
    p1, p2, p3 = _params(ppo_dir), _params(again), _params(other)
    assert p1.keys() == p2.keys()
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k], err_msg=k)
    assert any(not np.array_equal(p1[k], p3[k]) for k in p1)  # the seed matters
    assert (ppo_dir / "vecnormalize.json").read_text() == (again / "vecnormalize.json").read_text()

    test_ids = make_env_from_spec(spec, split="test").subject_ids
    log1 = rollout(load_agent(ppo_dir), spec, test_ids, 5, "ppo")
    log2 = rollout(load_agent(again), spec, test_ids, 5, "ppo")
    assert len(log1) == 60
    from pandas.testing import assert_frame_equal

    assert_frame_equal(log1, log2)


def test_spec_from_kwargs_trains_the_same_agent(ppo_dir: Path, replay_dir: Path, tmp_path: Path) -> None:
    spec = AgentSpec(**PPO_KWARGS)
    out = train_agent(env_spec(replay_dir, "continuous"), spec, seed=7, out_dir=tmp_path / "kw")
    p1, p2 = _params(ppo_dir), _params(out)
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k], err_msg=k)
    meta1, meta2 = (json.loads((d / AGENT_JSON).read_text()) for d in (ppo_dir, out))
    assert meta2["agent_spec"]["hyperparameters"] == meta1["agent_spec"]["hyperparameters"]


# ------------------------------------------------------------------ CLI and rl_zoo3
def test_cli_train(replay_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bprl.cli import app

    env_file = tmp_path / "env.yaml"
    env_file.write_text(yaml.safe_dump({"replay_set": str(replay_dir), "action_type": "discrete"}))
    out = tmp_path / "cli_agent"
    args = ["train", "--env", str(env_file), "--agent", str(REPO / "agents" / "dqn.yaml"), "--seed", "1"]
    res = CliRunner().invoke(app, [*args, "--out", str(out), "--timesteps", "120", "--eval-freq", "60"])
    assert res.exit_code == 0, res.output
    assert "training dqn" in res.output and f"model saved to {out / 'best_model.zip'}" in res.output
    assert (out / "best_model.zip").is_file()
    assert json.loads((out / AGENT_JSON).read_text())["env_spec"]["path"] == str(env_file)
    bad = CliRunner().invoke(app, ["train", "--env", str(env_file), "--agent", str(tmp_path / "nope.yaml")])
    assert bad.exit_code == 2 and "agent file not found" in bad.output


def test_rl_zoo3_trains_the_registered_env(replay_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs"
    cmd = [
        sys.executable, "-m", "rl_zoo3.train",
        "--algo", "ppo", "--env", CONT, "--gym-packages", "bprl",
        "-conf", str(REPO / "agents" / "ppo.yaml"),
        "-n", "256", "--seed", "0", "-f", str(log), "--eval-freq", "-1",
        "--hyperparams", "n_envs:1", "n_steps:64", "batch_size:64", "n_epochs:1",
        "--env-kwargs", f"replay_set:'{replay_dir}'",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    models = list(log.rglob("*.zip"))
    assert any(m.name == "bprl-BPCalibrationContinuous-v1.zip" for m in models), models
    assert "Loading hyperparameters from" in res.stdout and "agents/ppo.yaml" in res.stdout


# ------------------------------------------------------------------ issue 11: seeds, temp folders
@pytest.mark.parametrize("seed", [-1, 2**32, 2**31, 1.0, True])
def test_bad_seed_is_a_config_error_before_any_work(seed, replay_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "never"
    with pytest.raises(ConfigError, match=r"seed: must be an integer from 0 to 2147483647"):
        train_agent(env_spec(replay_dir, "continuous"), PPO_SPEC, seed=seed, out_dir=out)
    assert not out.exists()


def test_bad_timesteps_are_a_config_error(replay_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="timesteps"):
        train_agent(
            env_spec(replay_dir, "continuous"), PPO_SPEC, seed=0, out_dir=tmp_path / "a", timesteps=10**10
        )
    big = {"algo": "ppo", CONT: {**PPO_SPEC[CONT], "n_timesteps": 2e9}}
    with pytest.raises(ConfigError, match="n_timesteps"):
        load_agent_spec(big, env_id=CONT)


def test_cli_train_rejects_bad_seed(replay_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bprl.cli import app

    env_file = tmp_path / "env.yaml"
    env_file.write_text(yaml.safe_dump({"replay_set": str(replay_dir), "action_type": "discrete"}))
    for seed in ("-1", str(2**32)):
        args = ["train", "--env", str(env_file), "--agent", str(REPO / "agents" / "dqn.yaml"), "--seed", seed]
        res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
        assert res.exit_code == 2 and "seed: must be an integer from 0" in res.output, res.output
        assert not (tmp_path / "a").exists()


def test_training_leaves_no_sb3_folder_in_the_temp_dir(
    replay_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    sys_tmp = tmp_path / "system-tmp"
    sys_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(sys_tmp))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(sys_tmp))
    spec = {
        "algo": "ppo",
        CONT: {**PPO_SPEC[CONT], "n_timesteps": 64, "n_envs": 1, "n_steps": 32, "batch_size": 32},
    }
    for verbose in (0, 1):
        train_agent(
            env_spec(replay_dir, "continuous"),
            spec,
            seed=1,
            out_dir=tmp_path / f"a{verbose}",
            verbose=verbose,
        )
    assert sorted(p.name for p in sys_tmp.iterdir() if p.name.startswith("SB3-")) == []
