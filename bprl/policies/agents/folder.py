"""The agent folder written by ``train_agent`` and read by ``load_agent``: its file names and format tag.

::

    best_model.zip          SB3 model with the best validation return (the one load_agent uses)
    final_model.zip         SB3 model at the end of training
    vecnormalize.json       observation-normalisation statistics of best_model (when used)
    vecnormalize_final.json the same for final_model
    agent.json              algorithm, hyperparameters, env spec, seed, spaces, versions, git commit
    evaluations.npz         SB3 EvalCallback history (timesteps, returns, episode lengths)
"""

from __future__ import annotations

#: format tag recorded in ``agent.json``
AGENT_FORMAT = "bprl-agent/1"

AGENT_JSON = "agent.json"
BEST_MODEL = "best_model.zip"
FINAL_MODEL = "final_model.zip"
VECNORM_BEST = "vecnormalize.json"
VECNORM_FINAL = "vecnormalize_final.json"
EVALUATIONS = "evaluations.npz"

#: packages whose versions ``agent.json`` records
AGENT_PACKAGES: tuple[str, ...] = ("bprl", "torch", "stable-baselines3", "sb3-contrib", "gymnasium", "numpy")
