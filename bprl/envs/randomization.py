"""Domain randomisation of training episodes: what differs between devices, patients and records.

An agent trained on virtual subjects meets real ones whose sensor timing, estimator bias and
artefacts differ (a real MIMIC-IV patient's PAT jumps by ~80 ms between two segments at unchanged
blood pressure: a PPG timing offset). :class:`DomainRandomization` wraps a training
:class:`~bprl.envs.BPCalibrationEnv` and, in every episode, perturbs what the *sensors and the
estimator* report, never the reference or the cuff:

* **timing-offset steps**: at a Poisson rate (``pat_steps_per_h``), a step ``d`` ~ N(0,
  ``pat_step_sd_ms``) in every PAT feature from then on, which moves the estimate by
  ``d * est_per_pat_mmhg_per_ms`` (SBP, DBP) from then on (a device timing offset that the
  estimator reads as a BP change);
* **estimator gain and offset** per episode: the estimate's deviations from its episode mean
  scaled by ``g`` ~ U(1 - ``gain_range``, 1 + ``gain_range``), plus an offset ~ N(0,
  ``offset_sd_mmhg``) (DBP: ``dbp_ratio`` of the SBP value);
* **estimate noise**: N(0, ``noise_sd_mmhg``) per step (DBP: ``dbp_ratio`` of it);
* **dropouts** (artefact stretches): at a Poisson rate (``dropouts_per_h``), stretches of
  ``dropout_min`` minutes in which the estimator gives no value (the last one is carried, as the
  env does for real gaps).

The reference BP, the cuff readings and the rewards' targets are untouched, so a policy learns to
correct a perturbed estimate against the true BP. Draws come from the wrapper's own generator,
seeded by ``reset(seed=)`` (so the env's cuff noise is the same with and without it); the
perturbed episode replaces the env's per-step series, which the env then steps through as usual.
Training only: evaluation and a residual agent's base-rule fit use the plain env.

>>> DomainRandomizationSpec().pat_step_sd_ms
20.0
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import Field

from bprl.envs._validation import SettingsSpec
from bprl.envs.calibration_env import BPCalibrationEnv
from bprl.envs.observation import FEATURE_NORMALIZATION, OBS_CLIP
from bprl.envs.replay_arrays import _ffill
from bprl.errors import ConfigError

__all__ = ["PAT_FEATURES", "DomainRandomization", "DomainRandomizationSpec"]

#: observed features that a PPG timing offset moves (all in ms)
PAT_FEATURES: tuple[str, ...] = ("pat_foot_ms", "pat_maxslope_ms", "pat_peak_ms", "pat_qrs_onset_ms")


class DomainRandomizationSpec(SettingsSpec):
    """Settings of :class:`DomainRandomization` (an agent entry's ``domain_randomization:`` block)."""

    pat_steps_per_h: float = Field(0.5, ge=0, le=60, description="PPG timing-offset steps per hour (Poisson)")
    pat_step_sd_ms: float = Field(20.0, ge=0, le=200, description="SD of a timing-offset step, ms")
    est_per_pat_mmhg_per_ms: tuple[float, float] = Field(
        (-0.5, -0.3),
        description="estimate change per ms of PAT (SBP, DBP), mmHg/ms: how the estimator reads a step",
    )
    gain_range: float = Field(
        0.2, ge=0, lt=1, description="estimator gain drawn in [1 - r, 1 + r] per episode"
    )
    offset_sd_mmhg: float = Field(
        5.0, ge=0, le=50, description="SD of an episode's estimator offset, SBP mmHg"
    )
    noise_sd_mmhg: float = Field(1.0, ge=0, le=20, description="SD of per-step estimate noise, SBP mmHg")
    dbp_ratio: float = Field(0.6, ge=0, le=2, description="DBP offset and noise SD as a share of SBP's")
    dropouts_per_h: float = Field(
        0.5, ge=0, le=60, description="estimator dropout stretches per hour (Poisson)"
    )
    dropout_min: float = Field(5.0, gt=0, le=120, description="length of a dropout stretch, min")


class DomainRandomization(gym.Wrapper):
    """Perturb each training episode's estimate and PAT features (see :mod:`bprl.envs.randomization`).

    Spaces, reward, episode end and ``info`` are the wrapped env's; ``info["randomization"]`` at
    reset records the episode's draws (gain, offsets, step times and sizes, dropout starts).

    Args:
        env: a :class:`~bprl.envs.BPCalibrationEnv` (possibly wrapped).
        spec: the settings (a :class:`DomainRandomizationSpec` or a dict of its fields).

    Raises:
        ConfigError: ``env`` is not a bprl calibration env, or a bad setting.
    """

    def __init__(self, env: gym.Env, spec: DomainRandomizationSpec | dict[str, Any] | None = None) -> None:
        """Wrap ``env``; see the class docstring."""
        super().__init__(env)
        if not isinstance(env.unwrapped, BPCalibrationEnv):
            raise ConfigError("domain_randomization: needs a bprl calibration env (BPCalibrationEnv)")
        self.settings = (
            spec
            if isinstance(spec, DomainRandomizationSpec)
            else DomainRandomizationSpec.checked(**dict(spec or {}))
        )
        feats = list(env.unwrapped.data.features)
        self._pat_cols = np.array([feats.index(f) for f in PAT_FEATURES if f in feats], dtype=int)
        self._pat_scale = np.array([FEATURE_NORMALIZATION[feats[j]][1] for j in self._pat_cols])
        self._rng = np.random.default_rng(0)
        self._pat_shift: np.ndarray = np.zeros(0)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the env, then draw and apply this episode's perturbation."""
        if kwargs.get("seed") is not None:
            self._rng = np.random.default_rng(int(kwargs["seed"]))
        _, info = self.env.reset(**kwargs)
        u: BPCalibrationEnv = self.env.unwrapped  # type: ignore[assignment]
        u._series, self._pat_shift, drawn = self._perturbed(u)
        return self._with_pat(u._obs(), u), {**info, "randomization": drawn}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step the env (which reads the perturbed series) and shift the observed PAT features."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._with_pat(obs, self.env.unwrapped), reward, terminated, truncated, info

    # ------------------------------------------------------------------ helpers
    def _with_pat(self, obs: np.ndarray, u: Any) -> np.ndarray:
        """``obs`` with the PAT features moved by the timing offset in force at the observed row."""
        if self._pat_cols.size == 0:
            return obs
        t = min(u._t, u._end - 1) - u._start
        d = self._pat_shift[t]
        if d == 0.0:
            return obs
        obs = obs.copy()
        valid = obs[self._pat_cols + len(u.data.features)] > 0  # no shift where a feature is absent
        moved = np.clip(obs[self._pat_cols] + d / self._pat_scale, -OBS_CLIP, OBS_CLIP)
        obs[self._pat_cols] = np.where(valid, moved, obs[self._pat_cols])
        return obs

    def _perturbed(self, u: Any) -> tuple[Any, np.ndarray, dict[str, Any]]:
        """The episode's perturbed series, its PAT shift per step (ms) and a record of the draws."""
        sp, rng, s = self.settings, self._rng, u._series
        t0, end = u._start, u._end
        n = end - t0
        t_h = (np.asarray(s.t_end_s[t0:end]) - s.t_start_s[t0]) / 3600.0
        hours = float(t_h[-1]) if n else 0.0
        # timing-offset steps: cumulative PAT shift (ms) from each step time on
        k = int(rng.poisson(sp.pat_steps_per_h * hours))
        step_h = np.sort(rng.uniform(0.0, hours, k))
        step_ms = rng.normal(0.0, sp.pat_step_sd_ms, k)
        shift = np.zeros(n)
        for h, d in zip(step_h, step_ms, strict=True):
            shift[t_h >= h] += d
        gain = rng.uniform(1.0 - sp.gain_range, 1.0 + sp.gain_range)
        off = rng.normal(0.0, sp.offset_sd_mmhg)
        noise = rng.standard_normal((n, 2)) * sp.noise_sd_mmhg
        m = int(rng.poisson(sp.dropouts_per_h * hours))
        drop_h = np.sort(rng.uniform(0.0, hours, m))
        dropped = np.zeros(n, bool)
        for h in drop_h:
            dropped |= (t_h >= h) & (t_h < h + sp.dropout_min / 60.0)
        est = {}
        for col, (key, slope, scale) in enumerate(
            (
                ("sbp", sp.est_per_pat_mmhg_per_ms[0], 1.0),
                ("dbp", sp.est_per_pat_mmhg_per_ms[1], sp.dbp_ratio),
            )
        ):
            e = np.asarray(getattr(s, f"est_{key}")[t0:end], float)
            mean = np.nanmean(e) if np.isfinite(e).any() else 0.0
            # written as e + changes, so that zero settings leave the estimate exactly as it was
            e = e + (gain - 1.0) * (e - mean) + off * scale + slope * shift + noise[:, col] * scale
            e[dropped] = np.nan
            # carried forward; before the first value the env's prior stays
            carried = _ffill(e[:, None])[:, 0]
            prior = np.asarray(getattr(s, f"est_carry_{key}")[t0:end], float)
            est[key] = (e, np.where(np.isnan(carried), prior, carried))
        valid = np.isfinite(est["sbp"][0]).astype(float)
        pat = np.asarray(s.pat_ms[t0:end], float) + shift

        def spliced(orig: list[float], new: np.ndarray) -> list[float]:
            return [*orig[:t0], *new.tolist(), *orig[end:]]

        series = dataclasses.replace(
            s,
            est_sbp=spliced(s.est_sbp, est["sbp"][0]),
            est_dbp=spliced(s.est_dbp, est["dbp"][0]),
            est_carry_sbp=spliced(s.est_carry_sbp, est["sbp"][1]),
            est_carry_dbp=spliced(s.est_carry_dbp, est["dbp"][1]),
            est_valid=spliced(s.est_valid, valid),
            pat_ms=spliced(s.pat_ms, pat),
        )
        drawn = {
            "gain": float(gain),
            "offset_sbp_mmhg": float(off),
            "offset_dbp_mmhg": float(off * sp.dbp_ratio),
            "pat_step_h": step_h.tolist(),
            "pat_step_ms": step_ms.tolist(),
            "dropout_start_h": drop_h.tolist(),
        }
        return series, shift, drawn
