"""The pretrained default CNN-GRU shipped with bprl: where it lies, and the one command that rebuilds it.

:func:`pretrained_path` returns the folder of the shipped checkpoint (``bprl/estimator/weights/default``:
``model.pt``, ``config.json``, ``metrics.json``, ``evaluation.json``, ``MODEL_CARD.md``), which
:class:`~bprl.estimator.estimators.CnnGruEstimator` loads with ``weights_only=True``. An
experiment file names it as ``estimator: {checkpoint: pretrained}``.

:func:`train_pretrained` rebuilds it from the virtual cohort alone (no real data): it generates
the training cohort from :data:`PretrainRecipe.cohort_spec` (within-subject BP change and domain
randomisation), trains with the paired within-subject loss, generates a held-out cohort with
another seed (one with the training spec, one with the default ICU spec) and scores the model there with the within-subject tracking metrics
(:mod:`bprl.tracking`), side by side with the within-subject linear model
(:class:`~bprl.estimator.linear.DeltaLinearEstimator`) fitted on the same training subjects.
``make pretrained`` runs it (``bprl estimator pretrain``).

>>> pretrained_path().name
'default'
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from bprl.config import Spec
from bprl.errors import EstimatorError
from bprl.estimator.config import TrainConfig
from bprl.estimator.linear import DeltaLinearEstimator
from bprl.io import write_text_atomic
from bprl.splits import SPLITS

__all__ = ["LINEAR_FILE", "PRETRAINED_NAME", "PretrainRecipe", "pretrained_path", "train_pretrained"]

#: the within-subject linear model fitted on the same training subjects, shipped beside the weights
LINEAR_FILE = "delta_linear.json"

#: the name an experiment file gives the shipped checkpoint (``estimator.checkpoint: pretrained``)
PRETRAINED_NAME = "pretrained"

_WEIGHTS_DIR = Path(__file__).with_name("weights")


def pretrained_path(name: str = "default") -> Path:
    """The folder of a shipped checkpoint (``weights/<name>`` inside this package).

    Raises:
        EstimatorError: no such shipped checkpoint (a broken install, or ``make pretrained``
            has not been run in a checkout that deleted it).
    """
    path = _WEIGHTS_DIR / name
    if not (path / "model.pt").is_file():
        raise EstimatorError(
            f"{path}: the pretrained estimator {name!r} is missing; rebuild it with `make pretrained`"
        )
    return path


class PretrainRecipe(Spec):
    """How the shipped default estimator is trained and scored (all from the virtual cohort)."""

    train_subjects: int = Field(100, ge=4, le=10_000, description="subjects of the training cohort")
    train_hours: float = Field(2.0, gt=0, le=48, description="hours per training subject")
    train_seed: int = Field(101, ge=0, description="seed of the training cohort")
    test_subjects: int = Field(24, ge=2, le=10_000, description="subjects of each held-out cohort")
    test_hours: float = Field(2.0, gt=0, le=48, description="hours per held-out subject")
    test_seed: int = Field(202, ge=0, description="seed of the held-out cohorts (not used in training)")
    cohort_spec: str = Field(
        "training",
        description="cohort spec of the training cohort: a name of bprl/cohort/specs/*.yaml or a YAML path",
    )
    test_specs: tuple[str, ...] = Field(
        ("training", "default"),
        description="specs of the held-out cohorts ('default': CohortSpec defaults, an ICU population "
        "as it is, without domain randomisation)",
    )
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(
            epochs=40, patience=6, max_windows_per_step=1, within_subject_gain=True
        ),
        description="training settings (the paired within-subject loss and the within-subject gain "
        "fitted on the validation subjects by default)",
    )
    seed: int = Field(0, ge=0, description="seed of the weights, batch order and pair draws")
    workers: int = Field(2, ge=1, le=256, description="worker processes for cohort generation")


def _spec_path(name: str) -> Path | None:
    """A cohort spec given by name (``bprl/cohort/specs/<name>.yaml``; ``default``: None) or path."""
    if name == "default":
        return None
    shipped = Path(__file__).parents[1] / "cohort" / "specs" / f"{name}.yaml"
    return shipped if shipped.is_file() else Path(name)


def _cohort(out: Path, subjects: int, hours: float, seed: int, spec: str, workers: int) -> Path:
    """Generate (or complete) a virtual cohort of ``spec`` into ``out``."""
    from bprl.cohort import make_cohort

    make_cohort(out, subjects, hours, seed=seed, spec=_spec_path(spec), workers=workers)
    return out


def _tables(cohort_dir: Path, cache_dir: Path, splits: tuple[str, ...] = SPLITS) -> list[tuple[Any, Any]]:
    """(replay table, record) pairs of a cohort's records (of some splits); EstimatorError when one fails."""
    from bprl.estimator.dataset import cohort_tables

    items, skipped = cohort_tables(cohort_dir, splits, None, cache_dir)
    if skipped:
        raise EstimatorError(f"{cohort_dir}: {len(skipped)} records unusable, first: {skipped[0]}")
    return items


def _heldout_evaluation(
    ckpt: Path, train_dir: Path, tests: dict[str, Path], cache_dir: Path
) -> dict[str, Any]:
    """Tracking and calibration-free metrics of ``ckpt`` on every subject of each held-out cohort,
    next to the within-subject linear model fitted on the training cohort's train subjects."""
    from bprl.estimator.estimators import CnnGruEstimator
    from bprl.estimator.metrics import evaluate_steps
    from bprl.tracking import estimator_tracking, predict_steps

    linear = DeltaLinearEstimator().fit([t for t, _ in _tables(train_dir, cache_dir, ("train",))])
    model = CnnGruEstimator.load(ckpt)
    out: dict[str, Any] = {"linear": linear.to_dict(), "heldout": {}}
    for spec, test_dir in tests.items():
        items = _tables(test_dir, cache_dir)
        steps = predict_steps(model, items)  # the model runs once for both results
        out["heldout"][spec] = {
            "cohort": str(test_dir),
            "spec": spec,
            "n_records": len(items),
            "tracking": estimator_tracking(model, items, linear=linear, steps=steps),
            "calibration_free": evaluate_steps(steps, model.train_mean_mmhg, split=f"held-out ({spec})"),
        }
    return out


def train_pretrained(
    out_dir: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    recipe: PretrainRecipe | None = None,
    progress: bool = True,
) -> Path:
    """Generate the cohorts, train, score on the held-out cohort; write the checkpoint to ``out_dir``.

    Args:
        out_dir: the checkpoint folder (``bprl/estimator/weights/default`` for the shipped one).
        work_dir: folder for the cohorts and replay tables (reused by a rerun).
        recipe: the recipe (None: :class:`PretrainRecipe` defaults).
        progress: show progress bars.

    Returns:
        ``out_dir`` with the checkpoint files, ``recipe.json``, ``evaluation.json`` (held-out
        tracking metrics, its model card extended with them) and ``delta_linear.json`` (the
        within-subject linear model it was compared with).
    """
    from bprl.estimator.card import model_card
    from bprl.estimator.train import train_estimator

    recipe = recipe or PretrainRecipe()
    work, out = Path(work_dir), Path(out_dir)
    cache = work / "features"
    r = recipe
    names = ["train-cohort", *(f"heldout-{spec}" for spec in r.test_specs)]
    reused = all((work / name / "manifest.parquet").is_file() for name in names)
    t0 = time.perf_counter()
    train_dir = _cohort(
        work / "train-cohort", r.train_subjects, r.train_hours, r.train_seed, r.cohort_spec, r.workers
    )
    tests = {
        spec: _cohort(work / f"heldout-{spec}", r.test_subjects, r.test_hours, r.test_seed, spec, r.workers)
        for spec in r.test_specs
    }
    t1 = time.perf_counter()
    # everything goes to a partial folder first; the old checkpoint is replaced only when all is written
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    train_estimator(train_dir, partial, recipe.train, seed=recipe.seed, cache_dir=cache, progress=progress)
    t2 = time.perf_counter()
    evaluation = _heldout_evaluation(partial, train_dir, tests, cache)
    evaluation["timing_s"] = {
        "cohorts": round(t1 - t0, 1),
        "cohorts_reused": reused,
        "training": round(t2 - t1, 1),
    }
    write_text_atomic(json.dumps(recipe.model_dump(mode="json"), indent=2), partial / "recipe.json")
    write_text_atomic(json.dumps(evaluation, indent=2, default=float), partial / "evaluation.json")
    DeltaLinearEstimator.from_dict(evaluation["linear"]).save(partial / LINEAR_FILE)
    info = json.loads((partial / "config.json").read_text(encoding="utf-8"))
    metrics = json.loads((partial / "metrics.json").read_text(encoding="utf-8"))
    write_text_atomic(model_card(info, metrics, evaluation), partial / "MODEL_CARD.md")
    shutil.rmtree(partial / "tensorboard", ignore_errors=True)  # event files carry wall-clock times
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(partial, out)
    shutil.rmtree(old, ignore_errors=True)
    return out
