"""The stages of an experiment run, one small class each, in the order :data:`PIPELINE` runs them.

A stage has a ``name`` (its key in ``state/``, ``provenance.json`` and the progress bar), builds
its :class:`~bprl.experiments.units.Unit` s from the run so far (:meth:`Stage.units`), and records
what later stages need in the :class:`~bprl.experiments.state.RunState` (:meth:`Stage.record`).
Fingerprints chain: each stage's fingerprint includes those of the stages it builds on and their
run ids, so a rerun upstream reruns everything downstream, and nothing else.

==============  =====================================================================
cohort          the virtual cohort (one unit, in-process; the cohort has its own workers)
records         the records of the cohort and of real folders; the split of subjects
features        one replay table per record (a unit each)
estimator       the population estimator (one unit, in-process)
replay_set      the replay set of every usable subject; the environment settings
agents          one agent per (agent policy, seed)
rollouts        one episode log per (policy, seed) on the test subjects
evaluate        metrics of the current policies and seeds
report          ``provenance.json``, ``failures.csv``, figures and the report
==============  =====================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from bprl.errors import BprlError, ConfigError
from bprl.experiments.backends import Backend
from bprl.experiments.loading import Experiment
from bprl.experiments.outputs import read_logs, write_metrics, write_run_info
from bprl.experiments.schema import PolicySpec
from bprl.experiments.state import RunContext, RunState, run_units, timed, unit_ok
from bprl.experiments.subject_splits import assign_splits
from bprl.experiments.units import Unit, UnitResult, fingerprint
from bprl.features import feature_code_version
from bprl.io import sha256_files

__all__ = [
    "PIPELINE",
    "AgentsStage",
    "CohortStage",
    "EstimatorStage",
    "EvaluateStage",
    "FeaturesStage",
    "RecordsStage",
    "ReplaySetStage",
    "ReportStage",
    "RolloutsStage",
    "Stage",
    "env_settings",
]


class Stage:
    """One step of the pipeline: builds its units, runs the missing ones, records what it found."""

    #: key of the stage in ``state/``, ``provenance.json`` and the progress bar
    name: ClassVar[str] = ""
    #: run the units in this process (a single unit that has its own workers or holds the GPU)
    in_process: ClassVar[bool] = False

    def units(self, ctx: RunContext, state: RunState) -> list[Unit]:
        """The stage's units, built from the run so far."""
        return []

    def record(
        self, ctx: RunContext, state: RunState, units: list[Unit], results: dict[str, UnitResult]
    ) -> None:
        """Record in ``state`` what later stages need (and raise when the run cannot go on)."""

    def run(self, ctx: RunContext, state: RunState) -> None:
        """Run the stage: units not complete yet on the backend, then :meth:`record`."""
        units = self.units(ctx, state)
        backend = Backend() if self.in_process else ctx.backend
        results = run_units(backend, units, self.name, state, ctx.progress)
        self.record(ctx, state, units, results)


def _single_result(ctx: RunContext, results: dict[str, UnitResult], key: str, what: str) -> str:
    """The run id of a stage's only unit; BprlError when it was skipped."""
    if not unit_ok(results, key):
        raise BprlError(f"{ctx.exp.source}: {what}: {results[key].error}")
    return results[key].run_id


class CohortStage(Stage):
    """The virtual cohort, built by :func:`bprl.cohort.make_cohort` (no unit without one)."""

    name = "cohort"
    in_process = True

    def units(self, ctx: RunContext, state: RunState) -> list[Unit]:
        """One unit ``cohort/virtual`` when the experiment has a virtual cohort."""
        v = ctx.exp.config.cohort.virtual
        if v is None:
            return []
        spec: Any = str(ctx.exp.cohort_spec) if ctx.exp.cohort_spec else v.params
        kwargs = {
            "n_subjects": v.subjects,
            "hours": v.hours,
            "seed": v.seed,
            "spec": spec,
            "workers": ctx.workers,
        }
        # the settings as before inline parameters existed (a cohort made then is reused); inline ones added
        settings = v.model_dump(mode="json", exclude={"params"} if v.params is None else set())
        fp = fingerprint("cohort", settings, spec if isinstance(spec, str | None) else None)
        return [
            Unit(
                "cohort/virtual",
                ctx.fns.cohort,
                kwargs,
                ctx.work / "cohort",
                ctx.marker("cohort", "virtual"),
                fp,
                output_is_dir=True,
            )
        ]

    def record(
        self, ctx: RunContext, state: RunState, units: list[Unit], results: dict[str, UnitResult]
    ) -> None:
        """The cohort's run id (the records' fingerprint includes it)."""
        for u in units:
            state.run_ids["cohort"] = _single_result(ctx, results, u.key, "cohort could not be built")


class RecordsStage(Stage):
    """The records of the virtual cohort and of the real-record folders, and the split of subjects."""

    name = "records"

    def run(self, ctx: RunContext, state: RunState) -> None:
        """List the records, leave out unusable real ones (recorded), assign every subject a split."""
        cfg, exp = ctx.exp.config, ctx.exp
        with timed(state, self.name):
            found = []
            if cfg.cohort.virtual is not None:
                found.append(ctx.fns.list_virtual(ctx.work / "cohort").assign(origin="virtual"))
            if exp.record_dirs:
                found.append(self._real_records(ctx, state))
            rec = pd.concat(found, ignore_index=True).sort_values(
                ["subject_id", "record_id"], ignore_index=True
            )
            state.splits = assign_splits(rec, cfg.splits, exp.source)
            state.records = rec.assign(split=rec["subject_id"].map(state.splits))
        folders = [str(p) for p in exp.record_dirs]
        state.fingerprints["cohort"] = fingerprint(
            "cohort", cfg.cohort.model_dump(mode="json"), folders, state.run_ids.get("cohort", "")
        )

    @staticmethod
    def _real_records(ctx: RunContext, state: RunState) -> pd.DataFrame:
        """The usable real records (the others go to ``state.failures``); ConfigError when there is none."""
        cfg, folders = ctx.exp.config, [str(p) for p in ctx.exp.record_dirs]
        real, skipped = ctx.fns.list_real(folders, list(cfg.cohort.require), cfg.cohort.min_duration_s)
        state.failures.extend((f"records/{p}", why) for p, why in skipped)
        if real.empty:
            raise ConfigError(
                f"{ctx.exp.source}: cohort.records: no record with channels {cfg.cohort.require} in {folders}"
            )
        return real.assign(origin="records")


class FeaturesStage(Stage):
    """One replay table per record, in the run's replay-table cache ``work/features``."""

    name = "features"

    def units(self, ctx: RunContext, state: RunState) -> list[Unit]:
        """One unit ``features/<subject>__<record>`` per record."""
        cfg = ctx.exp.config
        features_fp = fingerprint(
            "features",
            cfg.features.model_dump(mode="json"),
            state.fingerprints["cohort"],
            feature_code_version(),
        )
        state.fingerprints["features"] = features_fp
        kwargs = {"features": cfg.features, "cache_dir": str(ctx.work / "features")}
        return [
            Unit(
                f"features/{r.subject_id}__{r.record_id}",
                ctx.fns.features,
                {"record_path": r.record_path, **kwargs},
                None,
                ctx.marker("features", f"{r.subject_id}__{r.record_id}"),
                fingerprint(features_fp, r.record_path),
            )
            for r in state.records.itertuples()
        ]

    def record(
        self, ctx: RunContext, state: RunState, units: list[Unit], results: dict[str, UnitResult]
    ) -> None:
        """Keep the records with a replay table (and enough reference); every split still has subjects."""
        keep = [
            self._usable(ctx, state, u.key, origin, results[u.key])
            for u, origin in zip(units, state.records["origin"], strict=True)
        ]
        state.records = state.records[keep].reset_index(drop=True)
        state.run_ids["features"] = fingerprint(sorted(r.run_id for r in results.values()))
        kept = set(state.records["subject_id"])
        state.splits = {s: sp for s, sp in state.splits.items() if s in kept}
        for need in ("train", "test"):
            if need not in state.splits.values():
                raise BprlError(
                    f"{ctx.exp.source}: no {need} subject has a usable replay table (see failures.csv)"
                )

    @staticmethod
    def _usable(ctx: RunContext, state: RunState, key: str, origin: str, res: UnitResult) -> bool:
        """Whether a record's replay table was built and, for a real record, has enough arterial reference."""
        ok = res.status in ("done", "cached")
        info = res.result if isinstance(res.result, dict) else {}
        if ok and origin == "records" and info.get("rows_with_reference") is not None:
            share = info["rows_with_reference"] / max(int(info.get("rows", 0)), 1)
            min_share = ctx.exp.config.cohort.min_reference_share
            if share < min_share:
                state.failures.append(
                    (
                        key,
                        f"only {share:.0%} of steps have an arterial reference (< cohort.min_reference_share {min_share:g}); left out",
                    )
                )
                return False
        return ok


class EstimatorStage(Stage):
    """The population estimator, trained on the train split (or a given checkpoint), in ``work/estimator``."""

    name = "estimator"
    in_process = True

    def units(self, ctx: RunContext, state: RunState) -> list[Unit]:
        """One unit ``estimator/estimator``."""
        cfg, exp = ctx.exp.config, ctx.exp
        records = state.record_list()
        ckpt = str(exp.estimator_checkpoint) if exp.estimator_checkpoint else None
        fp = fingerprint(
            "estimator",
            cfg.estimator.model_dump(mode="json"),
            ckpt,
            checkpoint_digest(ckpt),
            state.fingerprints["features"],
            records,
            state.run_ids["features"],
        )
        state.fingerprints["estimator"] = fp
        kwargs = {
            "kind": cfg.estimator.kind,
            "train": cfg.estimator.train,
            "seed": cfg.estimator.seed,
            "records": records,
            "features": cfg.features,
            "cache_dir": str(ctx.work / "features"),
            "checkpoint": ckpt,
        }
        return [
            Unit(
                "estimator/estimator",
                ctx.fns.estimator,
                kwargs,
                ctx.work / "estimator",
                ctx.marker("estimator", "estimator"),
                fp,
                output_is_dir=True,
            )
        ]

    def record(
        self, ctx: RunContext, state: RunState, units: list[Unit], results: dict[str, UnitResult]
    ) -> None:
        """The estimator's run id; BprlError when it failed."""
        state.run_ids["estimator"] = _single_result(ctx, results, units[0].key, "estimator failed")


def env_settings(exp: Experiment, replay_set: Path | None) -> dict[str, Any]:
    """The environment spec handed to agents and rollouts: spec file, overrides, budget, replay set."""
    cfg = exp.config
    overrides = dict(cfg.env.overrides)
    if cfg.budgets.cuff_budget is not None:
        overrides["cuff"] = {**dict(overrides.get("cuff") or {}), "budget": cfg.budgets.cuff_budget}
    if cfg.budgets.cuffs_per_h is not None:
        overrides["cuff"] = {**dict(overrides.get("cuff") or {}), "budget_per_h": cfg.budgets.cuffs_per_h}
    if replay_set is not None:
        overrides["replay_set"] = str(replay_set)
    return {"spec": str(exp.env_spec), "overrides": overrides}


class ReplaySetStage(Stage):
    """The replay set (estimates filled in) of every usable subject, in ``work/replay_set``; the env settings."""

    name = "replay_set"
    in_process = True

    def units(self, ctx: RunContext, state: RunState) -> list[Unit]:
        """One unit ``replay_set/replay_set``."""
        records = state.record_list()
        fp = fingerprint("replay_set", state.fingerprints["estimator"], records, state.run_ids["estimator"])
        state.fingerprints["replay_set"] = fp
        kwargs = {
            "estimator_dir": str(ctx.work / "estimator"),
            "records": records,
            "splits": state.splits,
            "features": ctx.exp.config.features,
            "cache_dir": str(ctx.work / "features"),
        }
        return [
            Unit(
                "replay_set/replay_set",
                ctx.fns.replay_set,
                kwargs,
                ctx.work / "replay_set",
                ctx.marker("replay_set", "replay_set"),
                fp,
                output_is_dir=True,
            )
        ]

    def record(
        self, ctx: RunContext, state: RunState, units: list[Unit], results: dict[str, UnitResult]
    ) -> None:
        """The environment settings over the replay set, and their fingerprint."""
        run_id = _single_result(ctx, results, units[0].key, "replay set failed")
        state.env = env_settings(ctx.exp, (ctx.work / "replay_set").resolve())
        spec_text = Path(state.env["spec"]).read_text()
        overrides = {**state.env["overrides"], "replay_set": None}
        state.fingerprints["env"] = fingerprint(
            "env", state.fingerprints["replay_set"], run_id, spec_text, overrides
        )


def checkpoint_digest(checkpoint: str | None) -> str | None:
    """sha256 of a given estimator's content (a checkpoint folder's ``model.pt`` and ``config.json``,
    or the file), so that new weights at the same path rerun the estimator and everything after it."""
    if checkpoint is None:
        return None
    from bprl.estimator.estimators import estimator_files  # torch only when a checkpoint is given

    return sha256_files(f for f in estimator_files(checkpoint) if f.is_file())


def sweep_runs(exp: Experiment) -> list[tuple[PolicySpec, str, float | None]]:
    """``(policy, label, budget per hour or None)`` of every rollout policy, in report order.

    With ``budgets.sweep_cuffs_per_h`` each calibrator whose class is ``paced`` (its reading rate
    follows the budget: periodic, drift, the Kalman rules, ...) and every agent (trained once per
    rate, in an env paced at that rate) runs once per rate, labelled ``<label>@<rate>``; other
    policies (none, one-shot, the oracle) run once.
    """
    rates = exp.config.budgets.sweep_cuffs_per_h
    out: list[tuple[PolicySpec, str, float | None]] = []
    for pol in exp.config.policies:
        if rates and is_swept(pol.agent, exp.calibrators.get(pol.label, pol.calibrator)):
            out += [(pol, f"{pol.label}@{r:g}", float(r)) for r in rates]  # type: ignore[union-attr]
        else:
            out.append((pol, pol.label, None))
    return out


def is_swept(agent: object, calibrator: object) -> bool:
    """Whether a policy runs once per rate of a cuff-rate sweep: every agent, and a calibrator
    (registry name, ``module:Class`` or class) whose class is ``paced``.

    Raises:
        ConfigError: an unknown calibrator.
    """
    if agent:
        return True
    if calibrator is None:
        return False
    from bprl.policies.registry import resolve_calibrator

    return bool(getattr(resolve_calibrator(calibrator), "paced", False))


def _label_name(label: str, seed: int) -> str:
    """``<label>__seed<seed>``: the name of an agent folder, rollout marker and episode log
    (``label``: the policy's, with ``@<rate>`` in a cuff-rate sweep)."""
    return f"{label}__seed{seed}"


class AgentsStage(Stage):
    """One trained agent per (agent policy, swept budget, seed), in ``work/agents/<label>__seed<k>``."""

    name = "agents"

    def units(self, ctx: RunContext, state: RunState) -> list[Unit]:
        """One unit ``agents/<label>__seed<k>`` per agent policy and seed; with a cuff-rate sweep one
        per rate (``<label>@<rate>``), trained in the env paced at that rate, a cuff price (if the
        agent has one) steered to it."""
        cfg = ctx.exp.config
        units = []
        for pol, label, rate in sweep_runs(ctx.exp):
            if pol.agent is None:
                continue
            steps = pol.timesteps or cfg.budgets.timesteps
            spec = str(ctx.exp.agent_specs[pol.label])
            spec_text = Path(spec).read_text()
            env, params = _at_rate(state.env, rate), dict(pol.params)
            if rate is not None:
                params = _price_at_rate(spec, params, rate)
            for seed in cfg.seeds:
                kwargs = {"env": env, "agent_spec": spec, "seed": seed, "timesteps": steps, "params": params}
                fp = fingerprint(state.fingerprints["env"], spec_text, steps, params, seed)
                if rate is not None:  # (unswept fingerprints unchanged: cached agents stay valid)
                    fp = fingerprint(fp, rate)
                name = _label_name(label, seed)
                out = ctx.work / "agents" / name
                units.append(
                    Unit(
                        f"agents/{name}",
                        ctx.fns.agent,
                        kwargs,
                        out,
                        ctx.marker("agents", name),
                        fp,
                        output_is_dir=True,
                    )
                )
        return units

    def record(
        self, ctx: RunContext, state: RunState, units: list[Unit], results: dict[str, UnitResult]
    ) -> None:
        """Each agent's unit and result, by (policy label with its swept rate, seed)."""
        by_key = {u.key: u for u in units}
        for _pol, label, _rate in sweep_runs(ctx.exp):
            for seed in ctx.exp.config.seeds:
                key = f"agents/{_label_name(label, seed)}"
                if key in by_key:
                    state.agents[(label, seed)] = (by_key[key], results[key])


def _at_rate(env: dict[str, Any], rate: float | None) -> dict[str, Any]:
    """The env settings with the paced cuff budget set to ``rate`` readings per hour (None: as is)."""
    if rate is None:
        return env
    over = dict(env["overrides"])
    over["cuff"] = {**dict(over.get("cuff") or {}), "budget_per_h": rate}
    return {**env, "overrides": over}


def _residual_base_label(exp: Experiment, pol: PolicySpec) -> str | None:
    """The label of the classical policy of ``exp`` that is the residual agent ``pol``'s base rule
    (same calibrator and parameters), when that label is not the calibrator's name itself (e.g.
    ``feature_kalman_ou`` for ``feature_correction`` over ``kalman_ou``); else None."""
    if pol.agent is None:
        return None
    res = _agent_setting(str(exp.agent_specs[pol.label]), pol.params, "residual")
    if not isinstance(res, dict):
        return None
    base, base_params = res.get("base"), dict(res.get("base_params") or {})
    rules = [p for p in exp.config.policies if p.agent is None]
    if any(p.label == base for p in rules):  # a policy named after the base runs it
        return None
    for other in rules:
        if exp.calibrators.get(other.label, other.calibrator) == base and dict(other.params) == base_params:
            return other.label
    return None


def _agent_setting(agent_spec: str, params: dict[str, Any], key: str) -> Any:
    """An agent's bprl-only setting ``key`` (``cuff_price``, ``residual``): from the experiment's
    ``params`` when given there, else from the first entry of the agent file that has it; None if neither."""
    import yaml

    if params.get(key):
        return params[key]
    doc = yaml.safe_load(Path(agent_spec).read_text(encoding="utf-8")) or {}
    return next((e[key] for e in doc.values() if isinstance(e, dict) and e.get(key)), None)


def _price_at_rate(agent_spec: str, params: dict[str, Any], rate: float) -> dict[str, Any]:
    """``params`` with the agent's cuff price (when its file or ``params`` has one) steered to ``rate``."""
    price = _agent_setting(agent_spec, params, "cuff_price")
    if not price:
        return params
    return {**params, "cuff_price": {**dict(price), "target_per_h": rate}}


class RolloutsStage(Stage):
    """One episode log per (policy, seed) on the test subjects, in ``logs/<label>__seed<k>.parquet``."""

    name = "rollouts"

    def units(self, ctx: RunContext, state: RunState) -> list[Unit]:
        """One unit ``rollouts/<label>__seed<k>`` per policy (and swept budget) and seed (none for an
        agent that failed)."""
        test_ids = sorted(s for s, sp in state.splits.items() if sp == "test")
        units = []
        for pol, label, rate in sweep_runs(ctx.exp):
            calibrator = ctx.exp.calibrators.get(pol.label, pol.calibrator)
            pdict = {
                "name": label,
                "calibrator": calibrator,
                "agent": pol.agent,
                "params": pol.params,
                "family": pol.label,
                "target_cuffs_per_h": rate,
            }
            base_label = _residual_base_label(ctx.exp, pol)
            if base_label is not None:  # (only then: the other rollouts keep their fingerprints)
                pdict["base_label"] = base_label
            env = _at_rate(state.env, rate)
            for seed in ctx.exp.config.seeds:
                upstream, agent_dir = state.fingerprints["env"], None
                if pol.agent is not None:
                    agent, res = state.agents[(label, seed)]
                    if res.status not in ("done", "cached"):
                        continue
                    upstream, agent_dir = fingerprint(agent.fingerprint, res.run_id), str(agent.output)
                kwargs = {
                    "policy": pdict,
                    "env": env,
                    "subject_ids": test_ids,
                    "seed": seed,
                    "agent_dir": agent_dir,
                }
                name = _label_name(label, seed)
                fp = fingerprint(upstream, pdict, env, test_ids, seed)
                units.append(
                    Unit(
                        f"rollouts/{name}",
                        ctx.fns.rollout,
                        kwargs,
                        ctx.results / "logs" / f"{name}.parquet",
                        ctx.marker("rollouts", name),
                        fp,
                    )
                )
        return units

    def record(
        self, ctx: RunContext, state: RunState, units: list[Unit], results: dict[str, UnitResult]
    ) -> None:
        """The episode logs that exist, in policy and seed order."""
        state.log_paths = [u.output for u in units if unit_ok(results, u.key) and u.output is not None]


class EvaluateStage(Stage):
    """Standards metrics of the episode logs: ``metrics.csv``, ``metrics_<table>.csv``, ``metrics.json``."""

    name = "evaluate"

    def run(self, ctx: RunContext, state: RunState) -> None:
        """Evaluate the logs of this run (nothing when no rollout produced one)."""
        if not state.log_paths:
            return
        with timed(state, self.name):
            state.logs = read_logs(state.log_paths)
            state.tables = write_metrics(ctx.results, state.logs, ctx.resolved, ctx.fns)


class ReportStage(Stage):
    """``provenance.json`` and ``failures.csv`` (the report shows them), then figures and the report."""

    name = "report"

    def run(self, ctx: RunContext, state: RunState) -> None:
        """Write the run information, then the report when there are metrics."""
        write_run_info(
            ctx.results, state.timings, state.counts, state.failures, ctx.backend_name, ctx.workers
        )
        if state.logs is None or not state.tables:
            return
        with timed(state, self.name):
            problems = [f"{unit}: {err}" for unit, err in state.failures]
            ctx.fns.report(ctx.results, state.logs, state.tables, ctx.resolved, problems)


#: the stages of a run, in order
PIPELINE: tuple[Stage, ...] = (
    CohortStage(),
    RecordsStage(),
    FeaturesStage(),
    EstimatorStage(),
    ReplaySetStage(),
    AgentsStage(),
    RolloutsStage(),
    EvaluateStage(),
    ReportStage(),
)
