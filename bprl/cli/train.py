"""``bprl train``: train a PPO/DQN/RecurrentPPO agent on an environment spec."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from bprl.errors import BprlError


def train(
    env: Path = typer.Option(..., "--env", help="environment spec YAML (envs/*.yaml) or a registered env id"),
    agent: Path = typer.Option(
        ..., "--agent", help="agent YAML in rl-baselines3-zoo layout (agents/ppo.yaml, ...)"
    ),
    seed: int = typer.Option(0, "--seed", help="random seed (SB3, torch, numpy, environments)"),
    out: Path | None = typer.Option(
        None, "--out", help="agent folder to write [default: results/agents/<algo>_<env>_seed<S>]"
    ),
    timesteps: int | None = typer.Option(None, "--timesteps", help="override n_timesteps of the agent entry"),
    eval_freq: int | None = typer.Option(
        None, "--eval-freq", help="validation every N steps [default: budget/10]"
    ),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads"),
) -> None:
    """Train an agent on the training subjects, keep the best model on the validation subjects, save it."""
    import torch

    from bprl.policies.agents import train_agent

    torch.set_num_threads(max(int(threads), 1))
    env_arg: str = str(env)
    if out is None:
        env_name = Path(env_arg).stem if env_arg.endswith((".yaml", ".yml")) else env_arg.replace("/", "_")
        out = Path("results") / "agents" / f"{agent.stem}_{env_name}_seed{seed}"
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        typer.echo(f"[{time.perf_counter() - t0:7.1f} s] {msg}")

    try:
        path = train_agent(env_arg, agent, seed, out, timesteps=timesteps, eval_freq=eval_freq, progress=say)
    except BprlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(
        f"model saved to {path / 'best_model.zip'} (agent folder {path}; load with bprl.policies.load_agent)"
    )


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to the bprl CLI."""
    app.command("train")(train)
