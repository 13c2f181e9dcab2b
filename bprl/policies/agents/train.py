"""Agent training: :func:`train_agent` trains an SB3 agent on the training subjects and writes its folder.

Training runs on the training split of an env spec; the validation split is evaluated during
training (SB3 ``EvalCallback``: every validation subject ``validation.passes`` times, whole
records, in a fixed order; with ``validation.common_random_numbers`` the same episodes every
time) and the model with the best validation return is kept. The steps, in order: check the arguments,
seed everything, probe one env for its id and spaces, choose the agent entry for that id, plan
the validation, build the vector envs and the model, learn, keep the best model, write
``agent.json`` (see :mod:`bprl.policies.agents.folder` for the files). The same seed gives the
same parameters and logs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from bprl.errors import ConfigError
from bprl.io import atomic_output, write_text_atomic
from bprl.policies.agents.envs import (
    BPRL_ENV_IDS,
    CycleSubjects,
    env_builder,
    env_id_of,
    env_spec_record,
    make_vec_env,
    normalize_to_json,
    space_to_json,
)
from bprl.policies.agents.folder import (
    AGENT_FORMAT,
    AGENT_JSON,
    AGENT_PACKAGES,
    BEST_MODEL,
    EVALUATIONS,
    FINAL_MODEL,
    VECNORM_BEST,
    VECNORM_FINAL,
)
from bprl.policies.agents.hyperparameters import algorithm_class, jsonable
from bprl.policies.agents.progress import progress_callback
from bprl.policies.agents.spec import (
    EVAL_SEED_OFFSET,
    AgentSpec,
    ResidualSpec,
    check_seed,
    check_timesteps,
    load_agent_spec,
    read_agent_file,
)
from bprl.provenance import git_commit, package_versions

Say = Callable[[str], None]


@dataclass
class _Probe:
    """What one training env tells before training: its id, spaces, and whether it is a bprl env."""

    env_id: str
    observation_space: gym.Space
    action_space: gym.Space
    is_bprl: bool


@dataclass
class _Run:
    """Everything one training run needs after its arguments are resolved."""

    env_spec: Any
    spec: AgentSpec
    probe: _Probe
    out: Path
    seed: int
    n_timesteps: int
    eval_freq: int
    overrides: dict[str, Any]
    say: Say
    eval_split: str = "val"
    val_ids: list[str] = field(default_factory=list)
    n_eval_episodes: int = 5
    residual_fitted: dict[str, Any] | None = None  #: what a residual agent's base rule fitted
    cuff_price: Any = None  #: the shared CuffPrice of a cuff_price entry


@dataclass
class _Outcome:
    """Which model became ``best_model.zip`` and the validation returns it was chosen on."""

    best_is: str
    best_mean: float
    final_mean: float
    #: the kept model's return on each validation episode (empty when no evaluation recorded them)
    best_returns: list[float] = field(default_factory=list)
    #: the base rule's mean validation return and the one-sided paired p-value of the agent's
    #: gain over it (residual agents whose base decides the readings)
    base_mean: float | None = None
    p_value: float | None = None
    #: the best learned model's mean validation return, when the base rule replaced it
    agent_mean: float | None = None


def train_agent(
    env_spec: str | os.PathLike[str] | Mapping[str, Any],
    agent_spec: str | os.PathLike[str] | Mapping[str, Any] | AgentSpec,
    seed: int,
    out_dir: str | os.PathLike[str],
    *,
    timesteps: int | None = None,
    env_overrides: Mapping[str, Any] | None = None,
    eval_freq: int | None = None,
    n_eval_episodes: int | None = None,
    verbose: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Train an SB3 agent on the training split, evaluating on the validation split; return ``out_dir``.

    Args:
        env_spec: env YAML file / dict (``bprl.envs.make_env_from_spec``) or a registered env id.
        agent_spec: agent YAML file (``agents/ppo.yaml``), dict, or :class:`AgentSpec`; the entry is
            chosen by the env's id (``bprl/BPCalibration-v1`` / ``bprl/BPCalibrationContinuous-v1``).
        seed: seeds SB3/torch/numpy (``set_random_seed``), the training envs (``seed + i``) and the
            evaluation env (``seed + 10_000``); an integer from 0 to ``MAX_SEED``.
        out_dir: the agent folder to write (created; files written atomically).
        timesteps: overrides ``n_timesteps`` of the entry, in environment steps (1 to ``MAX_TIMESTEPS``).
        env_overrides: extra keyword overrides for the env builder (merged over ``env_kwargs``).
        eval_freq: evaluate every this many environment steps (default: a tenth of the budget).
        n_eval_episodes: validation episodes per evaluation (default: number of validation
            subjects for bprl envs; else 5).
        verbose: SB3 verbosity.
        progress: called with short progress messages (the CLI prints them).

    Returns:
        ``out_dir`` as a Path.

    SB3 logs through a logger without a folder (stdout only when ``verbose``), so training
    leaves no ``SB3-*`` folder in the system temporary directory.

    Raises:
        ConfigError: invalid agent/env spec, seed or timesteps (checked before any work), or an
            algorithm that cannot act in the env's action space.
    """
    seed = check_seed(seed)
    if timesteps is not None:
        timesteps = check_timesteps(timesteps)
    from stable_baselines3.common.utils import set_random_seed

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_random_seed(seed)
    probe = _probe_env(env_spec, env_overrides)
    spec = _resolve_spec(agent_spec, probe)
    n_timesteps = timesteps if timesteps is not None else spec.n_timesteps
    run = _Run(
        env_spec=env_spec,
        spec=spec,
        probe=probe,
        out=out,
        seed=seed,
        n_timesteps=n_timesteps,
        eval_freq=int(eval_freq) if eval_freq else max(n_timesteps // 10, 1),
        overrides={**spec.env_kwargs, **dict(env_overrides or {})},
        say=progress or (lambda _msg: None),
    )
    _plan_validation(run, n_eval_episodes)
    train_factory, eval_factory = env_builder(env_spec, "train", run.overrides), _eval_factory(run)
    if spec.domain_randomization is not None:
        train_factory = _randomized(spec, train_factory)
    if spec.residual is not None:
        train_factory, eval_factory = _residual_factories(run, train_factory, eval_factory)
    if spec.cuff_price is not None:
        train_factory, eval_factory = _priced_factories(run, train_factory, eval_factory)
    train_env = make_vec_env(train_factory, spec.n_envs, seed, spec, training=True)
    eval_env = make_vec_env(eval_factory, 1, seed + EVAL_SEED_OFFSET, spec, training=False)
    model = _build_model(spec, train_env, seed, verbose)
    outcome = _learn_and_keep_best(run, model, train_env, eval_env)
    record = _agent_record(run, outcome)
    write_text_atomic(json.dumps(jsonable(record), indent=2, sort_keys=True), out / AGENT_JSON)
    train_env.close()
    eval_env.close()
    run.say(
        f"saved {spec.algo} agent to {out} (best validation return {outcome.best_mean:.3f}, from {outcome.best_is})"
    )
    return out


# --------------------------------------------------------------------------- before training
def _probe_env(env_spec: Any, env_overrides: Mapping[str, Any] | None) -> _Probe:
    """Build one training env to learn its id and spaces (which agent entry applies), then close it."""
    env = env_builder(env_spec, "train", env_overrides)()
    probe = _Probe(
        env_id=env_id_of(env),
        observation_space=env.observation_space,
        action_space=env.action_space,
        is_bprl=hasattr(env.unwrapped, "subject_ids"),
    )
    env.close()
    return probe


def _resolve_spec(agent_spec: Any, probe: _Probe) -> AgentSpec:
    """The agent entry for the env's id; ConfigError when the algorithm cannot act in its action space."""
    if isinstance(agent_spec, AgentSpec):
        algo, source = agent_spec.algo, agent_spec.source
    else:
        _doc, source, algo = read_agent_file(agent_spec)
    if algo == "dqn" and not isinstance(probe.action_space, gym.spaces.Discrete):
        raise ConfigError(
            f"{source}: DQN needs a discrete action space but env {probe.env_id} has {probe.action_space}; "
            f"use a discrete env spec ({BPRL_ENV_IDS['discrete']})"
        )
    if isinstance(agent_spec, AgentSpec):
        return agent_spec
    return load_agent_spec(agent_spec, env_id=probe.env_id)


def _plan_validation(run: _Run, n_eval_episodes: int | None) -> None:
    """Validation: every validation subject ``validation.passes`` times per evaluation, whole
    records, in a fixed order.

    Without validation subjects (or for non-bprl envs) the training split is evaluated instead.
    """
    if run.probe.is_bprl:
        try:
            val_env = env_builder(run.env_spec, "val", run.overrides)()
            run.val_ids = list(val_env.unwrapped.subject_ids)
            val_env.close()
        except ConfigError as exc:
            run.say(f"no validation subjects ({exc}); evaluating on the training split instead")
            run.eval_split = "train"
    else:
        run.eval_split = "train"
    if n_eval_episodes is None:
        n_eval_episodes = len(run.val_ids) * run.spec.validation.passes if run.val_ids else 5
    run.n_eval_episodes = int(n_eval_episodes)


def _eval_factory(run: _Run) -> Callable[[], gym.Env]:
    """A factory of the evaluation env (cycling through the validation subjects when there are some)."""
    factory = env_builder(run.env_spec, run.eval_split, run.overrides)
    if not run.val_ids:
        return factory
    val_ids = run.val_ids
    return lambda: CycleSubjects(factory(), val_ids)


def _randomized(spec: AgentSpec, factory: Callable[[], gym.Env]) -> Callable[[], gym.Env]:
    """Training envs in :class:`~bprl.envs.randomization.DomainRandomization` (evaluation envs and a
    residual base's fit stay plain)."""
    from bprl.envs.randomization import DomainRandomization

    if spec.vec_env == "batched":
        raise ConfigError(
            f"{spec.source}: domain_randomization needs vec_env: dummy (the batched env steps "
            "its own arrays and cannot replay a perturbed episode)"
        )
    dr = spec.domain_randomization
    return lambda: DomainRandomization(factory(), dr)


def _residual_factories(
    run: _Run, train_factory: Callable[[], gym.Env], eval_factory: Callable[[], gym.Env]
) -> tuple[Callable[[], gym.Env], Callable[[], gym.Env]]:
    """Both factories wrapped in :class:`~bprl.policies.residual.ResidualCalibrationEnv` around the
    base rule, fit once on the train split (each env gets its own copy); the probe's spaces and
    the fitted parameters (for agent.json) are updated."""
    import copy

    from bprl.policies.residual import ResidualCalibrationEnv

    r = run.spec.residual
    assert r is not None
    base = residual_base(r, run.env_spec, run.overrides)
    run.residual_fitted = base.fitted

    def wrap(factory: Callable[[], gym.Env]) -> Callable[[], gym.Env]:
        return lambda: ResidualCalibrationEnv(
            factory(), copy.deepcopy(base), r.max_residual_mmhg, r.cuff, r.ablation
        )

    probe_env = wrap(train_factory)()
    run.probe.observation_space, run.probe.action_space = probe_env.observation_space, probe_env.action_space
    probe_env.close()
    return wrap(train_factory), wrap(eval_factory)


def _priced_factories(
    run: _Run, train_factory: Callable[[], gym.Env], eval_factory: Callable[[], gym.Env]
) -> tuple[Callable[[], gym.Env], Callable[[], gym.Env]]:
    """Both factories wrapped in :class:`~bprl.policies.agents.cuff_price.PricedCuffs` around one
    shared price (only the training envs count towards its updates)."""
    from bprl.policies.agents.cuff_price import CuffPrice, PricedCuffs

    c = run.spec.cuff_price
    assert c is not None
    run.cuff_price = price = CuffPrice(value=c.initial, target_per_h=c.target_per_h, lr=c.lr)
    return (lambda: PricedCuffs(train_factory(), price)), (
        lambda: PricedCuffs(eval_factory(), price, count=False)
    )


def residual_base(r: ResidualSpec, env_spec: Any, overrides: Mapping[str, Any] | None = None) -> Any:
    """The base calibrator of a residual agent, fit on the env's train split (deterministic)."""
    from bprl.policies import fit_calibrator, make_calibrator

    base = make_calibrator(r.base, action_type="continuous", **r.base_params)
    train = env_builder(env_spec, "train", overrides)()
    try:
        if getattr(base, "fits", False):
            fit_calibrator(base, train)
        else:
            base.configure_for(train)
    finally:
        train.close()
    return base


def _build_model(spec: AgentSpec, train_env: Any, seed: int, verbose: int) -> Any:
    """The SB3 model of ``spec`` on ``train_env`` (CPU), with a logger that writes no folder."""
    cls = algorithm_class(spec.algo, spec.source)
    try:
        model = cls(
            spec.policy, train_env, seed=seed, device="cpu", verbose=verbose, **spec.algorithm_kwargs()
        )
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"{spec.source}: [{spec.env_key}] cannot build {spec.algo}: {exc}") from exc
    model.set_logger(_quiet_logger(verbose))
    return model


def _quiet_logger(verbose: int) -> Any:
    """An SB3 logger with no folder: stdout when ``verbose``, else nothing.

    Without one, ``learn()`` calls ``configure()``, which makes an empty ``SB3-<date>`` folder
    in the system temporary directory on every training run.
    """
    from stable_baselines3.common.logger import HumanOutputFormat, Logger

    return Logger(folder=None, output_formats=[HumanOutputFormat(sys.stdout)] if verbose >= 1 else [])


# --------------------------------------------------------------------------- training
def _learn_and_keep_best(run: _Run, model: Any, train_env: Any, eval_env: Any) -> _Outcome:
    """Learn with periodic validation, save the final model, keep the better of best and final."""
    spec = run.spec
    with atomic_output(run.out / EVALUATIONS) as tmp_eval:
        log_dir = tmp_eval.parent / f".eval-{os.getpid()}"
        eval_cb = _eval_callback(run, eval_env, log_dir)
        run.say(
            f"training {spec.algo} ({spec.policy}, {spec.n_envs} env(s)) on {run.probe.env_id} for "
            f"{run.n_timesteps} steps, seed {run.seed}, evaluating every {run.eval_freq} steps on "
            f"{run.n_eval_episodes} '{run.eval_split}' episode(s)"
        )
        callbacks = [eval_cb, progress_callback(run.n_timesteps, run.say)]
        if run.cuff_price is not None:
            from bprl.policies.agents.cuff_price import CuffPriceCallback

            callbacks.append(CuffPriceCallback(run.cuff_price))
        model.learn(total_timesteps=run.n_timesteps, callback=callbacks)
        _replay_validation(run, eval_env)
        final_returns = _final_evaluation(run, model, train_env, eval_env)
        outcome = _keep_best(run, log_dir, eval_cb, final_returns)
        outcome = _unless_base_is_better(run, eval_env, outcome)
        if (log_dir / "evaluations.npz").is_file():
            shutil.copyfile(log_dir / "evaluations.npz", tmp_eval)
        else:
            np.savez(tmp_eval, timesteps=np.zeros(0), results=np.zeros((0, 0)), ep_lengths=np.zeros((0, 0)))
        shutil.rmtree(log_dir, ignore_errors=True)
    return outcome


def _eval_callback(run: _Run, eval_env: Any, log_dir: Path) -> Any:
    """SB3's ``EvalCallback`` writing its best model and history to ``log_dir``.

    On each new best it saves the normalisation statistics of that moment as ``vecnormalize.json``.
    """
    from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

    spec, out, say = run.spec, run.out, run.say

    class SaveNormOnBest(BaseCallback):
        """Save the VecNormalize statistics that go with a new best model."""

        def _on_step(self) -> bool:
            if spec.normalize is not None:
                write_text_atomic(
                    json.dumps(normalize_to_json(self.model.get_vec_normalize_env())), out / VECNORM_BEST
                )
            say(f"new best validation return {self.parent.best_mean_reward:.3f} at step {self.num_timesteps}")
            return True

    class ValidationCallback(EvalCallback):
        """SB3's ``EvalCallback``, replaying the same validation episodes at every evaluation
        when ``validation.common_random_numbers`` is set."""

        def _on_step(self) -> bool:
            if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
                _replay_validation(run, self.eval_env)
            return super()._on_step()

    return ValidationCallback(
        eval_env,
        n_eval_episodes=run.n_eval_episodes,
        eval_freq=max(run.eval_freq // spec.n_envs, 1),
        log_path=str(log_dir),
        best_model_save_path=str(log_dir),
        deterministic=True,
        callback_on_new_best=SaveNormOnBest(),
        verbose=0,
    )


def _replay_validation(run: _Run, eval_env: Any) -> None:
    """With ``validation.common_random_numbers``: reseed ``eval_env`` so that the next evaluation
    replays the first one's episodes (the subject cycle restarts, the noise repeats)."""
    if run.spec.validation.common_random_numbers:
        eval_env.seed(run.seed + EVAL_SEED_OFFSET)


def _final_evaluation(run: _Run, model: Any, train_env: Any, eval_env: Any) -> list[float]:
    """The final model's return on each validation episode; it is saved as ``final_model.zip``
    (+ statistics)."""
    from stable_baselines3.common.evaluation import evaluate_policy

    if run.spec.normalize is not None:
        from stable_baselines3.common.vec_env import sync_envs_normalization

        sync_envs_normalization(train_env, eval_env)
    returns, _ = evaluate_policy(
        model, eval_env, n_eval_episodes=run.n_eval_episodes, deterministic=True, return_episode_rewards=True
    )
    with atomic_output(run.out / FINAL_MODEL) as tmp:
        model.save(tmp.with_suffix(".zip"))
        os.replace(tmp.with_suffix(".zip"), tmp)
    if run.spec.normalize is not None:
        write_text_atomic(
            json.dumps(normalize_to_json(model.get_vec_normalize_env())), run.out / VECNORM_FINAL
        )
    return [float(r) for r in returns]


def _keep_best(run: _Run, log_dir: Path, eval_cb: Any, final_returns: list[float]) -> _Outcome:
    """Write ``best_model.zip``: the EvalCallback's best if it beats the final model, else the final model.

    The final model is kept when it is at least as good, or when no evaluation ran.
    """
    out = run.out
    best_eval_mean, final_mean = float(eval_cb.best_mean_reward), float(np.mean(final_returns))
    best_from_eval = log_dir / "best_model.zip"
    if best_from_eval.is_file() and best_eval_mean > final_mean:
        with atomic_output(out / BEST_MODEL) as tmp:
            shutil.copyfile(best_from_eval, tmp)
        means = [float(np.mean(r)) for r in eval_cb.evaluations_results]
        returns = [float(r) for r in eval_cb.evaluations_results[int(np.argmax(means))]] if means else []
        return _Outcome("eval_callback", best_eval_mean, final_mean, returns)
    with atomic_output(out / BEST_MODEL) as tmp:
        shutil.copyfile(out / FINAL_MODEL, tmp)
    if run.spec.normalize is not None:
        shutil.copyfile(out / VECNORM_FINAL, out / VECNORM_BEST)
    return _Outcome("final", final_mean, final_mean, final_returns)


def _unless_base_is_better(run: _Run, eval_env: Any, outcome: _Outcome) -> _Outcome:
    """A residual agent whose base decides the readings (``cuff: base`` or ``either``) is kept only
    if it beats its base rule on the validation episodes; otherwise the outcome is ``base`` and
    :func:`~bprl.policies.agents.residual_policy` deploys a zero residual (the base rule alone).

    "Beats" is a higher mean validation return; with ``validation.significance`` (which needs
    common random numbers: both are scored on the same episodes) the gain must also pass a
    one-sided paired t-test over the validation episodes at that level.
    """
    r = run.spec.residual
    if r is None or r.cuff == "agent":
        return outcome
    from stable_baselines3.common.evaluation import evaluate_policy

    from bprl.policies.residual import ZeroResidual

    _replay_validation(run, eval_env)
    base_returns, _ = evaluate_policy(
        ZeroResidual(),
        eval_env,
        n_eval_episodes=run.n_eval_episodes,
        deterministic=True,
        return_episode_rewards=True,
    )
    outcome.base_mean = base_mean = float(np.mean(base_returns))
    level = run.spec.validation.significance
    if level is not None:
        outcome.p_value = paired_gain_p_value(outcome.best_returns, base_returns)
    if base_mean < outcome.best_mean and (level is None or outcome.p_value < level):
        return outcome
    why = (
        "is not below"
        if base_mean >= outcome.best_mean
        else f"is below (p = {outcome.p_value:.3g}, not below {level})"
    )
    run.say(
        f"the base rule's validation return {base_mean:.3f} {why} the agent's best "
        f"{outcome.best_mean:.3f}: the base rule is kept (zero residual)"
    )
    return replace(
        outcome,
        best_is="base",
        best_mean=base_mean,
        best_returns=[float(x) for x in base_returns],
        agent_mean=outcome.best_mean,
    )


def paired_gain_p_value(agent_returns: list[float], base_returns: list[float]) -> float:
    """One-sided p-value of a paired t-test that the agent's returns exceed the base's, episode by
    episode (the same episodes: common random numbers); 1.0 when the differences have no spread
    or the lists do not pair up.

    >>> round(paired_gain_p_value([2.0, 3.5, 2.5, 4.0], [1.0, 2.0, 2.0, 2.5]), 4)
    0.0122
    >>> paired_gain_p_value([1.0, 2.0], [1.0, 2.0])
    1.0
    """
    from scipy.stats import ttest_rel

    if len(agent_returns) != len(base_returns) or len(agent_returns) < 2:
        return 1.0
    p = float(ttest_rel(agent_returns, base_returns, alternative="greater").pvalue)
    return p if np.isfinite(p) else 1.0


def _agent_record(run: _Run, outcome: _Outcome) -> dict[str, Any]:
    """The content of ``agent.json``: what was trained, on what, how, and with which versions."""
    import torch

    spec = run.spec
    return {
        "format": AGENT_FORMAT,
        "algo": spec.algo,
        "policy": spec.policy,
        "env_id": run.probe.env_id,
        "agent_spec": {"source": spec.source, "entry": spec.env_key, "hyperparameters": spec.raw},
        "n_timesteps": run.n_timesteps,
        "n_envs": spec.n_envs,
        "normalize": spec.normalize,
        "frame_stack": spec.frame_stack,
        "cuff_price": None
        if spec.cuff_price is None
        else {**spec.cuff_price.model_dump(), "final": float(run.cuff_price.value)},
        "domain_randomization": None
        if spec.domain_randomization is None
        else spec.domain_randomization.model_dump(),
        "residual": None
        if spec.residual is None
        else {**spec.residual.model_dump(), "base_fitted": jsonable(run.residual_fitted)},
        "env_spec": env_spec_record(run.env_spec),
        "env_overrides": jsonable(run.overrides),
        "seed": run.seed,
        "observation_space": space_to_json(run.probe.observation_space),
        "action_space": space_to_json(run.probe.action_space),
        "model": BEST_MODEL,
        "best": {
            "chosen": outcome.best_is,
            "val_mean_return": outcome.best_mean,
            "final_val_mean_return": outcome.final_mean,
            "agent_val_mean_return": outcome.best_mean if outcome.agent_mean is None else outcome.agent_mean,
            "base_val_mean_return": outcome.base_mean,
            "p_value_over_base": outcome.p_value,
        },
        "eval": {
            "split": run.eval_split,
            "eval_freq": run.eval_freq,
            "n_eval_episodes": run.n_eval_episodes,
            **spec.validation.model_dump(),
        },
        "torch_num_threads": torch.get_num_threads(),
        "versions": package_versions(AGENT_PACKAGES),
        "git_commit": git_commit(),
    }
