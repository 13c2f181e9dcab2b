"""RL agent vs the periodic calibrator at the same cuff rate, on held-out (test) subjects.

For each seed: train an agent (``bprl.policies.train_agent``: training subjects, best model on the
validation subjects), roll it out on the test subjects, measure its cuff readings per hour, and
roll out the periodic calibrator whose period gives the same number of readings per hour
(``period_min = 60 / agent_cuffs_per_hour``). Also shown for context: no calibration, the
periodic calibrator at 30 min, and the Kalman tracker. Prints one table (policy, seed,
cuffs/hour, SBP MAE, DBP MAE) and the per-seed verdict.

Usage::

    python -m benchmarks.agent_vs_periodic --replay-set DIR [--agent agents/ppo.yaml] [--seeds 0 1 2]
    python -m benchmarks.agent_vs_periodic --cohort DIR ...          # replay set built from a cohort
    python -m benchmarks.agent_vs_periodic --synthetic 40x4 ...      # 40 synthetic subjects x 4 h

Data: ``--replay-set`` (a replay-set folder), ``--cohort`` (a virtual-cohort folder; its replay set
is built once with the PAT-linear estimator and cached) or ``--synthetic NxH`` (synthetic replay
tables of ``bprl.envs.synthetic_replay_tables``, 60/20/20 % split, written under ``--work``).
Trained agents are kept under ``--work`` and reused by a later run with the same data, env
settings, agent file, ``--timesteps`` and seed (``agent_folder_name``; ``--retrain`` trains again).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _metrics(log: pd.DataFrame) -> dict[str, float]:
    hours = log.groupby("subject_id")["t_s"].agg(lambda t: (t.max() - t.min() + 30.0) / 3600.0).sum()
    ok_s = log["ref_sbp_mmhg"].notna()
    ok_d = log["ref_dbp_mmhg"].notna()
    return {
        "cuffs_per_h": float(log["cuff"].sum() / hours),
        "sbp_mae": float((log.loc[ok_s, "corr_sbp_mmhg"] - log.loc[ok_s, "ref_sbp_mmhg"]).abs().mean()),
        "dbp_mae": float((log.loc[ok_d, "corr_dbp_mmhg"] - log.loc[ok_d, "ref_dbp_mmhg"]).abs().mean()),
    }


def _replay_set(args: argparse.Namespace) -> Path:
    from bprl.features import write_replay_set

    if args.replay_set:
        return Path(args.replay_set)
    if args.cohort:
        from bprl.envs import replay_set_for_cohort

        return replay_set_for_cohort(args.cohort)
    n_txt, _, h_txt = args.synthetic.partition("x")
    n, hours = int(n_txt), float(h_txt or 4)
    root = Path(args.work) / f"synthetic_{n}x{hours:g}h_seed{args.data_seed}"
    if not (root / "subjects.csv").is_file():
        from bprl.envs import synthetic_replay_tables

        tables = synthetic_replay_tables(n_subjects=n, n_steps=round(hours * 120), seed=args.data_seed)
        ids = sorted(tables)
        order = np.random.default_rng(args.data_seed).permutation(len(ids))
        n_train, n_val = round(0.6 * n), round(0.2 * n)
        splits = {
            ids[j]: ("train" if k < n_train else "val" if k < n_train + n_val else "test")
            for k, j in enumerate(order)
        }
        write_replay_set(
            root, tables, splits, info={"source": "bprl.envs.synthetic_replay_tables", "seed": args.data_seed}
        )
    return root


def agent_folder_name(
    algo: str, data_name: str, spec: dict, agent_yaml: Path, timesteps: int | None, seed: int
) -> str:
    """Folder name of one trained agent: reused only for the same env settings, agent file and budget.

    The name carries a hash of the env spec (with its data), the agent YAML's text and the
    timestep override, so that a run with another env (say ``envs/budget.yaml`` with and without
    Kalman recalibration) in the same ``--work`` folder trains its own agent instead of reusing one
    trained on the other env.
    """
    key = json.dumps(
        {"spec": spec, "agent": agent_yaml.read_text(), "timesteps": timesteps}, sort_keys=True, default=str
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"{algo}_{data_name}_{digest}_seed{seed}"


def main(argv: list[str] | None = None) -> None:
    """Train, roll out and print the agent-vs-periodic table."""
    import torch

    from bprl.envs import make_env_from_spec
    from bprl.policies import load_agent, make_calibrator, rollout, train_agent

    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.agent_vs_periodic", description=__doc__.splitlines()[0]
    )
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--replay-set", help="replay-set folder")
    src.add_argument("--cohort", help="virtual-cohort folder")
    src.add_argument(
        "--synthetic", default="40x4", help="N subjects x H hours of synthetic replay tables [40x4]"
    )
    ap.add_argument("--env", default=None, help="env spec YAML whose settings to use (its data is replaced)")
    ap.add_argument("--agent", default="agents/ppo.yaml", help="agent YAML [agents/ppo.yaml]")
    ap.add_argument(
        "--action-type", default=None, choices=["discrete", "continuous"], help="default: by algorithm"
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--timesteps", type=int, default=None, help="override the agent's n_timesteps")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument(
        "--work", default="results/agent_vs_periodic", help="folder for agents and synthetic data"
    )
    ap.add_argument("--retrain", action="store_true", help="train even when the agent folder exists")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    root = _replay_set(args)
    algo = Path(args.agent).stem
    action_type = args.action_type or ("discrete" if algo == "dqn" else "continuous")
    spec: dict = {}
    if args.env:
        from bprl.envs import load_env_spec

        spec = {
            k: v
            for k, v in load_env_spec(args.env).items()
            if k not in ("_path", "cohort", "split", "subject_ids", "id")
        }
    spec.update({"replay_set": str(root), "action_type": action_type})
    test_ids = make_env_from_spec(spec, split="test").subject_ids
    print(
        f"data: {root} ({len(test_ids)} test subjects); agent {args.agent} ({action_type}); seeds {args.seeds}",
        flush=True,
    )

    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        out = Path(args.work) / agent_folder_name(
            algo, root.name, spec, Path(args.agent), args.timesteps, seed
        )
        if args.retrain or not (out / "agent.json").is_file():
            train_agent(spec, args.agent, seed, out, timesteps=args.timesteps)
            train_s = time.perf_counter() - t0
        else:
            print(f"seed {seed}: reusing the agent in {out} (--retrain to train again)", flush=True)
            train_s = float("nan")
        agent = load_agent(out)
        m_agent = _metrics(rollout(agent, spec, test_ids, seed, algo))
        rows.append({"policy": algo, "seed": seed, **m_agent, "train_s": train_s})
        rate = m_agent["cuffs_per_h"]
        matched = []
        if rate > 0:
            period = 60.0 / rate
            per = make_calibrator("periodic", action_type=action_type, period_min=min(period, 600.0))
            matched = [(f"periodic@{period:.0f}min (matched)", per)]
        others = [
            ("none", make_calibrator("none", action_type=action_type)),
            ("periodic@30min", make_calibrator("periodic", action_type=action_type, period_min=30.0)),
            ("kalman", make_calibrator("kalman", action_type=action_type)),
        ]
        for name, pol in matched + others:
            rows.append(
                {
                    "policy": name,
                    "seed": seed,
                    **_metrics(rollout(pol, spec, test_ids, seed, name)),
                    "train_s": np.nan,
                }
            )
        print(f"seed {seed}: trained in {train_s:.0f} s", flush=True)

    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 140, "display.max_columns", 10):
        print(df.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    print()
    for seed in args.seeds:
        d = df[df["seed"] == seed].set_index("policy")
        per = [p for p in d.index if p.endswith("(matched)")]
        if per:
            a, p = d.loc[algo], d.loc[per[0]]
            verdict = "BEATS" if a["sbp_mae"] < p["sbp_mae"] else "does NOT beat"
            print(
                f"seed {seed}: {algo} SBP MAE {a['sbp_mae']:.2f} vs {per[0]} {p['sbp_mae']:.2f} mmHg "
                f"at {a['cuffs_per_h']:.2f} vs {p['cuffs_per_h']:.2f} cuffs/h -> {verdict}"
            )
        else:
            print(f"seed {seed}: {algo} took no cuff reading on the test subjects; compare with 'none'")


if __name__ == "__main__":
    main()
