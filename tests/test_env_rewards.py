"""The reward extension point of the calibration environments (bprl.envs.rewards): built-in names,
``module:function`` specs, the ``bprl.rewards`` entry-point group, and their errors."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bprl.envs import (
    REWARDS,
    BPCalibrationEnv,
    BPCalibrationVectorEnv,
    build_replay_arrays,
    known_rewards,
    make_env_from_spec,
    resolve_reward,
    synthetic_replay_tables,
)
from bprl.envs.rewards import ENTRY_POINT_GROUP, plugin_rewards
from bprl.errors import BprlError, ConfigError

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """Four synthetic subjects of 60 steps with reference gaps."""
    return synthetic_replay_tables(n_subjects=4, n_steps=60, seed=5)


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, **plugins: str) -> None:
    """Make ``importlib.metadata.entry_points`` report ``name = "module:function"`` reward plugins."""
    eps = [
        importlib.metadata.EntryPoint(name=k, value=v, group=ENTRY_POINT_GROUP) for k, v in plugins.items()
    ]
    real = importlib.metadata.entry_points

    def entry_points(**params):
        if params.get("group") == ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints(eps)
        return real(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def _episode(env: BPCalibrationEnv, seed: int = 1) -> tuple[list[float], list[dict]]:
    """Rewards and infos of one whole-record episode of subject s001 with seeded random actions."""
    env.reset(seed=seed, options={"subject_id": "s001", "whole_record": True})
    rng = np.random.default_rng(seed)
    rewards, infos, done = [], [], False
    while not done:
        _, r, _, done, info = env.step(int(rng.integers(0, 6)))
        rewards.append(r)
        infos.append(info)
    return rewards, infos


def _errors(info: dict) -> tuple[float, float]:
    """Corrected minus reference, NaN without a reference."""
    ref = [np.nan if info[k] is None else info[k] for k in ("ref_sbp_mmhg", "ref_dbp_mmhg")]
    return info["corr_sbp_mmhg"] - ref[0], info["corr_dbp_mmhg"] - ref[1]


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_builtin_reward_functions_match_the_fast_path(tables, name):
    """The registry's functions give the rewards the environments compute inline."""
    env = BPCalibrationEnv(tables=tables, reward=name, cuff={"cost": 0.25})
    rewards, infos = _episode(env)
    fn = REWARDS[name].function
    for r, info in zip(rewards, infos, strict=True):
        assert r == pytest.approx(-0.25 * info["cuff"] + float(fn(*_errors(info), env.params)), abs=1e-12)
    assert any(i["ref_sbp_mmhg"] is None for i in infos)  # steps without a reference were covered


def test_module_function_reward_in_single_and_vector_env(tables):
    """``reward="module:function"``: (0 - cost) + f(err_sbp, err_dbp, params); the vector env calls
    it with arrays and stays bit-identical to single environments."""
    spec = "custom_rewards:huber"
    assert resolve_reward(spec).builtin is False
    env = BPCalibrationEnv(tables=tables, reward=spec, cuff={"cost": 0.5})
    rewards, infos = _episode(env)
    import custom_rewards

    for r, info in zip(rewards, infos, strict=True):
        assert r == -0.5 * info["cuff"] + float(custom_rewards.huber(*_errors(info), env.params))
    data = build_replay_arrays(tables)
    n, kw = 3, {"reward": spec, "start": "random", "max_steps": 15, "cuff": {"budget": 3}}
    venv = BPCalibrationVectorEnv(n, data=data, **kw)
    singles = [BPCalibrationEnv(data=data, **kw) for _ in range(n)]
    venv.reset(seed=4)
    for i, e in enumerate(singles):
        e.reset(seed=4 + i)
    rng, auto = np.random.default_rng(2), [False] * n
    for _ in range(40):
        acts = rng.integers(0, 6, n)
        _, rew_v, _, trunc_v, _ = venv.step(acts)
        expected = []
        for i, e in enumerate(singles):
            if auto[i]:
                e.reset()
                expected.append(0.0)
                auto[i] = False
            else:
                _, r, _, auto[i], _ = e.step(acts[i])
                expected.append(r)
        np.testing.assert_array_equal(rew_v, expected)
        np.testing.assert_array_equal(trunc_v, auto)


def test_reward_from_a_python_file_and_from_a_spec(tables, tmp_path):
    """``path/to/file.py:function`` works too, and an env spec's reward may be a mapping with a name."""
    env = BPCalibrationEnv(tables=tables, reward=f"{HERE / 'custom_rewards.py'}:sbp_only")
    rewards, infos = _episode(env)
    for r, info in zip(rewards, infos, strict=True):
        e_sbp = _errors(info)[0]
        assert r == -0.5 * info["cuff"] - (0.0 if np.isnan(e_sbp) else abs(e_sbp))
    spec = tmp_path / "huber.yaml"
    spec.write_text("id: bprl/BPCalibration-v1\nreward: {name: 'custom_rewards:huber', scale_mmhg: 4}\n")
    env = make_env_from_spec(spec, tables=tables)
    assert env.params.reward == "custom_rewards:huber" and env.params.reward_scale_mmhg == 4.0


def test_reward_plugin_from_an_entry_point(tables, monkeypatch):
    """A name registered under the ``bprl.rewards`` entry-point group is a reward name."""
    _fake_entry_points(monkeypatch, huber="custom_rewards:huber")
    assert list(plugin_rewards()) == ["huber"] and "huber" in known_rewards()
    env = make_env_from_spec({"id": "bprl/BPCalibration-v1", "reward": "huber"}, tables=tables)
    assert env.params.reward == "huber" and not env._reward_entry.builtin
    import custom_rewards

    rewards, infos = _episode(env)
    for r, info in zip(rewards, infos, strict=True):
        assert r == -0.5 * info["cuff"] + float(custom_rewards.huber(*_errors(info), env.params))
    with pytest.raises(ConfigError, match=r"unknown reward 'hubr'; valid names: \[.*'squared', 'huber'\]"):
        make_env_from_spec({"reward": "hubr"}, tables=tables)


def test_plugin_named_like_a_builtin_is_ignored(monkeypatch):
    """The built-in wins over a plugin of the same name, with a warning naming the plugin."""
    _fake_entry_points(monkeypatch, mae="custom_rewards:sbp_only")
    with pytest.warns(UserWarning, match="reward plugin mae = 'custom_rewards:sbp_only' is ignored"):
        assert plugin_rewards() == {}
    assert resolve_reward("mae") is REWARDS["mae"]


@pytest.mark.parametrize(
    ("reward", "message"),
    [
        ("custom_rewards:nope", r"'custom_rewards:nope'.*has no attribute 'nope'"),
        ("custom_rewards:NOT_A_FUNCTION", r"'custom_rewards:NOT_A_FUNCTION'.*not a function"),
        ("no_such_module_xyz:f", r"'no_such_module_xyz:f'.*module 'no_such_module_xyz' not found"),
        ("missing/file.py:f", r"'missing/file.py:f'.*not found"),
        ("l1", r"unknown reward 'l1'.*valid names: \['aami_band', 'mae', 'squared'\]"),
    ],
)
def test_reward_errors_name_the_spec(tables, tmp_path, reward, message):
    spec = tmp_path / "variant.yaml"
    spec.write_text(f"id: bprl/BPCalibration-v1\nreward: {reward!r}\n")
    with pytest.raises(ConfigError, match=rf"variant\.yaml: reward.*{message}"):
        make_env_from_spec(spec, tables=tables)
    with pytest.raises(ConfigError, match=message):
        BPCalibrationEnv(tables=tables, reward=reward)


def test_non_finite_custom_reward_is_an_error(tables):
    env = BPCalibrationEnv(tables=tables, reward="custom_rewards:not_finite")
    venv = BPCalibrationVectorEnv(4, tables=tables, reward="custom_rewards:not_finite")
    with pytest.raises(BprlError, match=r"reward 'custom_rewards:not_finite'.*finite"):
        _episode(env)
    venv.reset(seed=0)
    with pytest.raises(BprlError, match=r"reward 'custom_rewards:not_finite'.*finite"):
        for _ in range(60):
            venv.step(np.zeros(4, np.int64))
