"""Environment throughput: one env, Gymnasium's SyncVectorEnv of N, and bprl's batched vector env of N.

Usage: ``python -m benchmarks env`` or ``python benchmarks/bench_env.py [--envs 64] [--steps 20000]``.
Random actions (a cuff request in 1 of 6 discrete actions) over synthetic replay tables of
16 subjects x 240 steps (every vector run includes the autoresets of whole episodes). Steps/s are
subject-steps per second of CPU time of this process (``time.process_time``, robust to other
processes sharing the CPU): the best and the median of ``--repeats`` runs; the best wall-clock
rate is printed beside them. On a shared machine the rates move by up to 2x with its load, so
compare rows of one run rather than numbers of different runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from bprl.envs import BPCalibrationEnv, BPCalibrationVectorEnv, build_replay_arrays, synthetic_replay_tables


def _rate(run: Callable[[], int], repeats: int) -> tuple[float, float, float]:
    """(best CPU-time rate, median CPU-time rate, best wall-clock rate) over ``repeats`` runs of
    ``run`` (which returns the number of subject-steps it made)."""
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        n = run()
        c1, w1 = time.process_time(), time.perf_counter()
        cpu.append(n / max(c1 - c0, 1e-9))
        wall.append(n / max(w1 - w0, 1e-9))
    return max(cpu), statistics.median(cpu), max(wall)


def main(argv: list[str] | None = None) -> None:
    """Measure and print the throughput table."""
    ap = argparse.ArgumentParser(prog="bench_env", description=__doc__)
    ap.add_argument("--envs", type=int, default=64, help="sub-environments in the vector envs")
    ap.add_argument("--steps", type=int, default=20000, help="steps of the single env per run")
    ap.add_argument("--vector-steps", type=int, default=2000, help="steps of each vector env per run")
    ap.add_argument("--action-type", default="discrete", choices=["discrete", "continuous"])
    ap.add_argument("--repeats", type=int, default=5, help="runs per environment (best and median shown)")
    args = ap.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    data = build_replay_arrays(synthetic_replay_tables(n_subjects=16, n_steps=240, seed=0))
    n, at = args.envs, args.action_type
    rng = np.random.default_rng(0)

    def actions(shape: tuple[int, ...]) -> np.ndarray:
        if at == "discrete":
            return rng.integers(0, 6, shape)
        return rng.uniform(-1, 1, (*shape, 5)).astype(np.float32)

    single = BPCalibrationEnv(data=data, action_type=at)
    single.reset(seed=0)
    single_actions = list(actions((args.steps,)))

    def run_single() -> int:
        step, reset = single.step, single.reset
        for a in single_actions:
            if step(a)[3]:
                reset()
        return len(single_actions)

    wrapped = gym.make(
        "bprl/BPCalibration-v1" if at == "discrete" else "bprl/BPCalibrationContinuous-v1", data=data
    )
    wrapped.reset(seed=0)

    def run_wrapped() -> int:
        step, reset = wrapped.step, wrapped.reset
        for a in single_actions:
            if step(a)[3]:
                reset()
        return len(single_actions)

    vec_actions = actions((args.vector_steps, n))
    sync = gym.vector.SyncVectorEnv([lambda: BPCalibrationEnv(data=data, action_type=at) for _ in range(n)])
    sync.reset(seed=0)
    sync_actions = vec_actions[: max(1, args.vector_steps // 10)]

    def run_sync() -> int:
        for a in sync_actions:
            sync.step(a)
        return len(sync_actions) * n

    batched = BPCalibrationVectorEnv(n, data=data, action_type=at)
    batched.reset(seed=0)

    def run_batched() -> int:
        for a in vec_actions:
            batched.step(a)
        return len(vec_actions) * n

    big = BPCalibrationVectorEnv(16 * n, data=data, action_type=at)
    big.reset(seed=0)
    big_actions = actions((max(1, args.vector_steps // 8), 16 * n))

    def run_big() -> int:
        for a in big_actions:
            big.step(a)
        return len(big_actions) * 16 * n

    rows = [
        ("BPCalibrationEnv (raw)", run_single),
        ("gym.make(...) (with checker wrappers)", run_wrapped),
        (f"SyncVectorEnv x {n}", run_sync),
        (f"BPCalibrationVectorEnv x {n}", run_batched),
        (f"BPCalibrationVectorEnv x {16 * n}", run_big),
    ]
    results = [(name, *_rate(fn, args.repeats)) for name, fn in rows]
    base = results[0][1]
    print(f"action type: {at}; subject-steps per second over {args.repeats} runs (CPU time: best, median)")
    print(
        f"{'environment':40s} {'steps/s (CPU)':>14s} {'x single':>9s} {'median (CPU)':>13s} {'best (wall)':>12s}"
    )
    for name, cpu, med, wall in results:
        print(f"{name:40s} {cpu:14,.0f} {cpu / base:9.2f} {med:13,.0f} {wall:12,.0f}")
    sync.close()
    batched.close()


if __name__ == "__main__":
    main()
