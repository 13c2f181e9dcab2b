"""Extension points of the calibrator registry: ``module:Class`` specs, files, the ``bprl.calibrators``
entry-point group, and the worked example ``examples/my_calibrator.py``."""

from __future__ import annotations

import importlib.metadata
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bprl.envs import BPCalibrationEnv, synthetic_replay_tables
from bprl.errors import ConfigError
from bprl.evaluation.logs import check_episode_log
from bprl.policies import (
    ENTRY_POINT_GROUP,
    Calibrator,
    PeriodicCalibrator,
    Policy,
    known_calibrators,
    make_calibrator,
    plugin_calibrators,
    resolve_calibrator,
    rollout,
)
from bprl.policies.registry import CALIBRATORS
from bprl.schemas import EPISODE_LOG_COLUMNS

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = "examples.my_calibrator:PatSigmaCalibrator"
EXAMPLE_FILE = REPO / "examples" / "my_calibrator.py"


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """Four synthetic subjects of 120 steps (1 h), as in test_calibrators.py."""
    return synthetic_replay_tables(n_subjects=4, n_steps=120, seed=3)


@pytest.fixture
def repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository root importable (``examples`` is a top-level folder, not part of bprl)."""
    monkeypatch.syspath_prepend(str(REPO))


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, **plugins: str | list[str]) -> None:
    """Make ``importlib.metadata.entry_points`` report ``name = "module:Class"`` plugins of bprl."""
    eps = []
    for name, values in plugins.items():
        for value in [values] if isinstance(values, str) else values:
            eps.append(importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP))
    real = importlib.metadata.entry_points

    def entry_points(**params):
        if params.get("group") == ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints(eps)
        return real(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


# ------------------------------------------------------------------ worked example
@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_example_calibrator_by_module_spec(tables, repo_on_path, action_type):
    env = BPCalibrationEnv(tables=tables, action_type=action_type)
    policy = make_calibrator(EXAMPLE, action_type=action_type, k_sd=3.0)
    assert isinstance(policy, Calibrator) and isinstance(policy, Policy) and policy.name == "pat_sigma"
    log = rollout(policy, env, seed=0)
    check_episode_log(log, "pat_sigma log")
    assert list(log.columns) == [*EPISODE_LOG_COLUMNS, "cuff_refused", "segment", "af_share"]
    assert (log["policy"] == "pat_sigma").all() and len(log) == 4 * 120
    cuffs = log.groupby("subject_id")["cuff"].sum()
    # a reading at the start of every episode, and more whenever PAT moved
    assert (log.groupby("subject_id")["cuff"].first()).all() and (cuffs >= 1).all() and cuffs.sum() > 4
    again = rollout(make_calibrator(EXAMPLE, action_type=action_type, k_sd=3.0), env, seed=0)
    pd.testing.assert_frame_equal(log, again)
    # a stricter threshold asks for fewer readings; the calibration beats no calibration
    strict = rollout(make_calibrator(EXAMPLE, action_type=action_type, k_sd=6.0), env, seed=0)
    assert strict["cuff"].sum() < log["cuff"].sum()
    none = rollout(make_calibrator("none", action_type=action_type), env, seed=0)

    def mae(df: pd.DataFrame) -> float:
        m = df.dropna(subset=["ref_sbp_mmhg"])
        return float((m.corr_sbp_mmhg - m.ref_sbp_mmhg).abs().mean())

    assert mae(log) < 0.6 * mae(none)


def test_example_calibrator_by_path_equals_module(tables, repo_on_path, monkeypatch):
    env = BPCalibrationEnv(tables=tables)
    by_module = rollout(make_calibrator(EXAMPLE, k_sd=2.0), env, ["s001"], seed=1)
    by_abs_path = rollout(
        make_calibrator(f"{EXAMPLE_FILE}:PatSigmaCalibrator", k_sd=2.0), env, ["s001"], seed=1
    )
    pd.testing.assert_frame_equal(by_module, by_abs_path)
    monkeypatch.chdir(REPO)  # a relative path is relative to the working directory
    cls = resolve_calibrator("examples/my_calibrator.py:PatSigmaCalibrator")
    assert cls is resolve_calibrator(f"{EXAMPLE_FILE}:PatSigmaCalibrator")  # the file is imported once


def test_example_parameters_are_validated(repo_on_path):
    with pytest.raises(ConfigError, match="k_sd must be > 0"):
        make_calibrator(EXAMPLE, k_sd=0)
    with pytest.raises(
        ConfigError, match=r"'examples.my_calibrator:PatSigmaCalibrator': bad parameters \['k'\]"
    ):
        make_calibrator(EXAMPLE, k=3)


def test_example_on_a_batch_keeps_independent_state(tables, repo_on_path):
    """The example's recurrent state works on vector-env batches like the built-in calibrators."""
    env = BPCalibrationEnv(tables=tables)
    obs = np.stack(
        [env.reset(seed=i, options={"subject_id": sid})[0] for i, sid in enumerate(["s000", "s001"])]
    )
    policy = make_calibrator(EXAMPLE)
    action, state = policy.predict(obs, None, np.array([True, True]))
    assert action.shape == (2,) and state.shape == (2, 5)
    assert (action == 1).all()  # no reading yet: both ask for the cuff


# --------------------------------------------------------------- module:Class specs
@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("no_such_pkg.rules:MyRule", r"'no_such_pkg.rules:MyRule': module 'no_such_pkg.rules' not found"),
        (
            "bprl.policies.calibrators:Nope",
            r"has no attribute 'Nope' \(classes defined there: .*PeriodicCalibrator",
        ),
        (
            "bprl.policies.registry:CALIBRATORS",
            r"'bprl.policies.registry:CALIBRATORS': expected a class, got dict",
        ),
        ("pathlib:Path", r"'pathlib:Path': class Path neither subclasses bprl.policies.Calibrator"),
        ("no_such_dir/rules.py:MyRule", r"'no_such_dir/rules.py:MyRule': file .*rules.py not found"),
        ("bprl.policies:", r"expected 'module:Class'"),
    ],
)
def test_bad_specs_are_named(spec, needle):
    with pytest.raises(ConfigError, match=needle):
        make_calibrator(spec)


def test_a_failing_import_inside_the_module_is_named(tmp_path):
    bad = tmp_path / "needs_dep.py"
    bad.write_text("import no_such_dependency_xyz\n")
    with pytest.raises(ConfigError, match=r"needs_dep.py failed: No module named 'no_such_dependency_xyz'"):
        make_calibrator(f"{bad}:Rule")
    syntax = tmp_path / "broken.py"
    syntax.write_text("def (:\n")
    with pytest.raises(ConfigError, match=r"broken.py:Rule'.*importing .*broken.py failed"):
        make_calibrator(f"{syntax}:Rule")


def test_nested_attribute_and_policy_protocol_classes(tmp_path, tables):
    """A class that is not a Calibrator but satisfies the Policy protocol is accepted as it is."""
    mod = tmp_path / "proto_rules.py"
    mod.write_text(
        textwrap.dedent(
            """
            import numpy as np

            class Holder:
                class AlwaysHold:
                    name = "always_hold"
                    needs_cuff = False

                    def __init__(self, action_type="discrete"):
                        self.action_type = action_type

                    def predict(self, observation, state=None, episode_start=None, deterministic=True):
                        return np.int64(0), state

            class NoActionType:
                name = "no_action_type"

                def __init__(self, level=1):
                    self.level = level

                def predict(self, observation, state=None, episode_start=None, deterministic=True):
                    return np.int64(0), state

            class Nameless:
                def predict(self, observation, state=None, episode_start=None, deterministic=True):
                    return np.int64(0), state
            """
        )
    )
    hold = make_calibrator(f"{mod}:Holder.AlwaysHold", action_type="continuous")
    assert hold.action_type == "continuous" and not isinstance(hold, Calibrator)
    log = rollout(
        make_calibrator(f"{mod}:Holder.AlwaysHold"), BPCalibrationEnv(tables=tables), ["s000"], seed=0
    )
    check_episode_log(log)
    assert not log["cuff"].any() and (log["policy"] == "always_hold").all()
    assert make_calibrator(f"{mod}:NoActionType", level=3).level == 3  # action_type not forced on it
    with pytest.raises(ConfigError, match="no 'name' attribute"):
        make_calibrator(f"{mod}:Nameless")


# --------------------------------------------------------------- entry-point plugins
def test_plugin_found_by_name(monkeypatch, tables, repo_on_path):
    _fake_entry_points(
        monkeypatch, pat_sigma=EXAMPLE, every_so_often="bprl.policies.calibrators:PeriodicCalibrator"
    )
    assert set(plugin_calibrators()) == {"pat_sigma", "every_so_often"}
    names = known_calibrators()
    assert names == sorted(names) and {"pat_sigma", "every_so_often"} | set(CALIBRATORS) == set(names)
    policy = make_calibrator("pat_sigma", k_sd=2.5)
    assert type(policy).__name__ == "PatSigmaCalibrator" and policy.k_sd == 2.5
    periodic = make_calibrator("every_so_often", period_min=20.0)
    assert isinstance(periodic, PeriodicCalibrator) and periodic.period_min == 20.0
    log = rollout(policy, BPCalibrationEnv(tables=tables), ["s002"], seed=0)
    check_episode_log(log)
    with pytest.raises(
        ConfigError, match=r"unknown name 'pid'; valid: \[.*'kalman'.*'every_so_often', 'pat_sigma'\]"
    ):
        make_calibrator("pid")


def test_builtin_names_win_over_plugins_with_a_warning(monkeypatch, repo_on_path):
    _fake_entry_points(monkeypatch, periodic=EXAMPLE)
    with pytest.warns(UserWarning, match=r"plugin periodic = .* is ignored: 'periodic' is a built-in"):
        policy = make_calibrator("periodic", period_min=15.0)
    assert type(policy) is PeriodicCalibrator
    with pytest.warns(UserWarning, match="is a built-in"):
        names = known_calibrators()
    assert names.count("periodic") == 1


def test_duplicate_and_ambiguous_plugin_names_warn(monkeypatch, repo_on_path):
    _fake_entry_points(
        monkeypatch,
        pat_sigma=[EXAMPLE, "bprl.policies.calibrators:DriftCalibrator"],
        **{"odd:name": EXAMPLE},
    )
    with pytest.warns(UserWarning) as record:
        plugins = plugin_calibrators()
    assert list(plugins) == ["pat_sigma"] and plugins["pat_sigma"].value == EXAMPLE
    messages = " | ".join(str(w.message) for w in record)
    assert "has the same name" in messages and "cannot contain ':'" in messages


def test_broken_plugin_is_named(monkeypatch):
    _fake_entry_points(
        monkeypatch, broken="no_such_plugin_pkg.rules:Rule", dict_plugin="bprl.policies:CALIBRATORS"
    )
    with pytest.raises(
        ConfigError, match=r"'broken' \(plugin broken = 'no_such_plugin_pkg.rules:Rule'\).*not found"
    ):
        make_calibrator("broken")
    with pytest.raises(ConfigError, match=r"'dict_plugin' \(plugin .*\): expected a class, got dict"):
        make_calibrator("dict_plugin")
    assert "broken" in known_calibrators()  # listing does not import plugins


def test_registry_reads_the_real_entry_points():
    """Without fakes, the group is read from the installed distributions (bprl declares none itself)."""
    installed = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    assert set(plugin_calibrators()) <= {ep.name for ep in installed}
    assert set(CALIBRATORS) <= set(known_calibrators())
