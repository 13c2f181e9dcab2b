"""Agent training throughput: SB3 on a DummyVecEnv of single envs against the batched env.

PPO and DQN (stable-baselines3, MlpPolicy with 64x64 nets, CPU, one torch thread) learn for a
fixed number of environment steps on synthetic replay tables (16 subjects x 240 steps, continuous
actions for PPO, discrete for DQN, random starts, 120-step episodes), once with SB3's
``DummyVecEnv`` of ``n_envs`` single :class:`bprl.envs.BPCalibrationEnv` (what SB3 and
rl-baselines3-zoo use) and once with :class:`bprl.policies.agents.batched_vec_env.BatchedVecEnv`
over one :class:`bprl.envs.BPCalibrationVectorEnv` (``vec_env: batched`` in an agent entry), at
1, 16, 64 and 256 envs. Prints environment steps per second of training (wall clock; the
gradient updates are included, so the ratio is what a training run gains, not the env alone).

Usage: ``python -m benchmarks training`` (options: ``--steps N``, ``--envs 1,16,64,256``).
"""

from __future__ import annotations

import argparse
import time


def _venv(kind: str, n: int, action_type: str, data: object):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from bprl.envs import BPCalibrationEnv
    from bprl.policies.agents.batched_vec_env import batched_vec_env

    kw = {"data": data, "action_type": action_type, "start": "random", "max_steps": 120}
    if kind == "batched":
        venv = batched_vec_env(BPCalibrationEnv(**kw), n)
    else:
        venv = DummyVecEnv([lambda: BPCalibrationEnv(**kw) for _ in range(n)])
    venv.seed(0)
    return venv


def _rate(algo: str, kind: str, n: int, steps: int, data: object) -> float:
    """Environment steps per second of ``algo`` learning ``steps`` steps on ``n`` envs of ``kind``."""
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.logger import Logger

    if algo == "ppo":
        venv = _venv(kind, n, "continuous", data)
        n_steps = max(2048 // n, 8)
        model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=256, n_epochs=4, seed=0, device="cpu")
    else:
        venv = _venv(kind, n, "discrete", data)
        model = DQN(
            "MlpPolicy", venv, learning_starts=1000, train_freq=4, buffer_size=50_000, seed=0, device="cpu"
        )
    model.set_logger(Logger(folder=None, output_formats=[]))  # no SB3-<date> folder in the temp dir
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    dt = time.perf_counter() - t0
    venv.close()
    return model.num_timesteps / dt


def main(argv: list[str] | None = None) -> None:
    """Print the training-throughput table."""
    import torch

    from bprl.envs import build_replay_arrays, synthetic_replay_tables

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(prog="python -m benchmarks training")
    ap.add_argument("--steps", type=int, default=20_000, help="environment steps per run")
    ap.add_argument("--envs", default="1,16,64,256", help="comma-separated numbers of envs")
    args = ap.parse_args(argv or [])
    envs = [int(x) for x in args.envs.split(",")]
    data = build_replay_arrays(synthetic_replay_tables(n_subjects=16, n_steps=240, seed=0))
    print(f"env steps per second of training, {args.steps} steps per run (wall clock, 1 torch thread)")
    print(f"{'algo':5s} {'n_envs':>6s} {'DummyVecEnv':>12s} {'batched':>10s} {'x Dummy':>8s}")
    for algo in ("ppo", "dqn"):
        for n in envs:
            dummy = _rate(algo, "dummy", n, args.steps, data)
            batched = _rate(algo, "batched", n, args.steps, data)
            print(f"{algo:5s} {n:6d} {dummy:12,.0f} {batched:10,.0f} {batched / dummy:8.2f}")
    print(
        "PPO: n_steps = 2048 / n_envs (at least 8), batch 256, 4 epochs; DQN: train_freq 4, 1 gradient step."
    )
    print("Both sides run the same model code; only the vector env differs (np.random seeds equal).")


if __name__ == "__main__":
    main()
