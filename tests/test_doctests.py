"""The worked examples in bprl's docstrings are run and checked (like ``pytest --doctest-modules``).

Add a module to :data:`DOCTEST_MODULES` when its docstrings carry ``>>>`` examples;
every listed module must hold at least one example, and all of them must pass.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

#: modules whose docstring examples are part of the test suite
DOCTEST_MODULES: list[str] = [
    "bprl.provenance",
    "bprl.splits",
    "bprl.plugins",
    "bprl.config",
    "bprl.tracking",
    "bprl.cohort.domain",
    "bprl.envs",
    "bprl.envs.actions",
    "bprl.envs.calibration_env",
    "bprl.envs.cuff",
    "bprl.envs.observation",
    "bprl.envs.params",
    "bprl.envs.registration",
    "bprl.envs.rewards",
    "bprl.envs.specs",
    "bprl.envs.synthetic",
    "bprl.estimator",
    "bprl.estimator.config",
    "bprl.estimator.dataset",
    "bprl.estimator.inference",
    "bprl.estimator.linear",
    "bprl.estimator.metrics",
    "bprl.estimator.model",
    "bprl.estimator.pretrained",
    "bprl.estimator.ranges",
    "bprl.estimator.windows",
    "bprl.evaluation.standards",
    "bprl.evaluation.hypertension",
    "bprl.evaluation.statistics",
    "bprl.policies",
    "bprl.policies.agents.hyperparameters",
    "bprl.policies.agents.spec",
    "bprl.policies.calibrators",
    "bprl.policies.registry",
]


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0, f"{name} is listed in DOCTEST_MODULES but has no docstring examples"
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} docstring examples of {name} failed (see output)"
    )
