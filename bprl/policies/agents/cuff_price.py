"""A Lagrangian cuff price: training that lands an agent on a chosen cuff rate.

A hard budget refuses readings; a fixed cost per reading leaves the achieved rate to chance. In
constrained RL (Altman, *Constrained Markov Decision Processes*, 1999; the primal-dual scheme of
Tessler et al., ICLR 2019) the cost of a reading is a Lagrange multiplier ``lambda`` that training
adapts: every charged reading costs ``lambda`` reward on top of the env's own ``cuff.cost``, and
after each rollout ``lambda <- max(0, lambda + lr * (rate - target) / target)``, with ``rate`` the
readings per hour of that rollout. Too many readings raise the price, too few lower it, until the
agent reads at ``target_per_h``.

:class:`PricedCuffs` wraps each training (and validation) env around one shared :class:`CuffPrice`;
:class:`CuffPriceCallback` updates it at the end of every rollout. Enabled by a ``cuff_price:``
block in an agent entry (:class:`bprl.policies.agents.spec.CuffPriceSpec`); the final price is
recorded in ``agent.json``. This module imports stable-baselines3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["CuffPrice", "CuffPriceCallback", "PricedCuffs"]


@dataclass
class CuffPrice:
    """The shared price of a reading (reward units) and the readings and hours counted since the last update."""

    value: float
    target_per_h: float
    lr: float
    readings: int = 0
    hours: float = 0.0

    def update(self) -> float:
        """One dual step from the counts since the last update (kept when no time passed); the new price."""
        if self.hours > 0:
            rate = self.readings / self.hours
            self.value = max(0.0, self.value + self.lr * (rate - self.target_per_h) / self.target_per_h)
        self.readings, self.hours = 0, 0.0
        return self.value


class PricedCuffs(gym.Wrapper):
    """Subtracts the shared price from the reward of every charged reading and counts readings and hours.

    Args:
        env: a bprl calibration env (or a wrapper of one; ``info`` must carry ``cuff`` and ``t_s``).
        price: the shared :class:`CuffPrice`.
        count: whether this env's readings and time count towards the price update (training envs).
    """

    def __init__(self, env: gym.Env, price: CuffPrice, count: bool = True) -> None:
        """Wrap ``env`` around the shared ``price``."""
        super().__init__(env)
        self.price = price
        self.count = count
        self._t_s: float | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset the env; the time count restarts at the episode's first window."""
        obs, info = self.env.reset(**kwargs)
        self._t_s = info.get("t_s")
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the env; a charged reading costs the current price."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        charged = bool(info.get("cuff", False))
        if charged:
            reward = float(reward) - self.price.value
        if self.count:
            t = info.get("t_s")
            if t is not None and self._t_s is not None:
                self.price.hours += max(float(t) - float(self._t_s), 0.0) / 3600.0
            self._t_s = t
            self.price.readings += int(charged)
        return obs, reward, terminated, truncated, info


class CuffPriceCallback(BaseCallback):
    """An SB3 callback that updates the shared :class:`CuffPrice` at the end of every rollout and logs it."""

    def __init__(self, price: CuffPrice) -> None:
        """Update ``price``."""
        super().__init__()
        self.price = price

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.logger.record("cuff_price/value", self.price.update())
