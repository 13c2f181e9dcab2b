"""``bprl estimator``: train the CNN-GRU baseline, fit the PAT linear model, evaluate, export to ONNX."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from bprl.errors import BprlError

estimator_app = typer.Typer(
    no_args_is_help=True, help="Population BP estimators: train, evaluate (calibration-free), export."
)


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code=1)


@estimator_app.command("train")
def train_cmd(
    cohort: Path = typer.Option(..., "--cohort", help="virtual cohort folder (manifest.parquet + waves/)"),
    out: Path = typer.Option(..., "--out", help="checkpoint folder to write"),
    config: Path | None = typer.Option(
        None, "--config", help="YAML of TrainConfig fields (model, epochs, lr, loss weights, ...)"
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", help="maximum epochs (early stopping on val subjects)"
    ),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed, same weights)"),
    hybrid: bool | None = typer.Option(
        None,
        "--hybrid/--no-hybrid",
        help="feed the step features (PAT, HR, PPG shape) to the model (default: yes)",
    ),
    pair_weight: float | None = typer.Option(
        None, "--pair-weight", help="weight of the paired within-subject loss (0: absolute loss only)"
    ),
    oversample: bool | None = typer.Option(
        None, "--oversample/--no-oversample", help="oversample rare SBP ranges"
    ),
    range_weight: float | None = typer.Option(
        None, "--range-weight", help="add the BP-range classifier head with this loss weight (seed 002)"
    ),
    within_subject_gain: bool | None = typer.Option(
        None,
        "--within-subject-gain/--no-within-subject-gain",
        help="scale the output's within-subject changes by the validation subjects' least-squares "
        "gain after training (the shipped model's recipe does)",
    ),
    lr: float | None = typer.Option(None, "--lr", help="Adam learning rate"),
    patience: int | None = typer.Option(
        None, "--patience", help="validations without improvement before stopping"
    ),
    max_windows_per_step: int | None = typer.Option(
        None, "--max-windows-per-step", help="keep at most this many 8-s windows per replay step"
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", help="windows per optimiser step"),
    eval_every: int | None = typer.Option(
        None, "--eval-every", help="validate every N optimiser steps (default: after each epoch)"
    ),
    cache_dir: Path = typer.Option(Path("results/features"), "--cache-dir", help="replay-table cache folder"),
    threads: int = typer.Option(2, "--threads", help="torch CPU threads"),
) -> None:
    """Train the CNN-GRU estimator on a cohort's train subjects; writes model.pt, config.json, metrics.json.

    Settings come from TrainConfig's defaults, then --config, then the options given.
    """
    import torch

    from bprl.config import load_spec
    from bprl.estimator.config import TrainConfig
    from bprl.estimator.metrics import format_metrics
    from bprl.estimator.train import train_estimator
    from bprl.tracking import format_tracking

    torch.set_num_threads(threads)
    try:
        base = load_spec(TrainConfig, config) if config is not None else TrainConfig()
        given = {
            "epochs": epochs,
            "pair_weight": pair_weight,
            "oversample": oversample,
            "within_subject_gain": within_subject_gain,
            "lr": lr,
            "patience": patience,
            "max_windows_per_step": max_windows_per_step,
            "batch_size": batch_size,
            "eval_every_steps": eval_every,
        }
        fields = base.model_dump() | {k: v for k, v in given.items() if v is not None}
        if hybrid is not None:
            fields["model"] = base.model.model_dump() | {"hybrid": hybrid}
        if range_weight is not None:
            fields["range_weight"] = range_weight
            fields["model"] = fields.get("model", base.model.model_dump()) | {"range_head": range_weight > 0}
        cfg = load_spec(TrainConfig, fields, source_name="bprl estimator train options")
        ckpt = train_estimator(cohort, out, cfg, seed=seed, cache_dir=cache_dir)
    except BprlError as exc:
        _fail(exc)
    metrics = json.loads((ckpt / "metrics.json").read_text())
    if "test" in metrics:
        typer.echo(format_metrics(metrics["test"]))
    if "test_tracking" in metrics:
        typer.echo(format_tracking(metrics["test_tracking"]["model"], "CNN-GRU"))
    typer.echo(f"checkpoint: {ckpt}")


@estimator_app.command("pretrain")
def pretrain_cmd(
    out: Path = typer.Option(
        Path("bprl/estimator/weights/default"), "--out", help="checkpoint folder to write"
    ),
    work: Path = typer.Option(
        Path("results/pretrain"), "--work", help="folder for cohorts and replay tables"
    ),
    threads: int = typer.Option(2, "--threads", help="torch CPU threads"),
    within_subject_gain: bool | None = typer.Option(
        None,
        "--within-subject-gain/--no-within-subject-gain",
        help="end the recipe with (or without) the within-subject gain fitted on the validation "
        "subjects (TrainConfig.within_subject_gain; default: the shipped recipe's setting)",
    ),
) -> None:
    """Rebuild the shipped default estimator from the virtual cohort (bprl.estimator.pretrained)."""
    import torch

    from bprl.estimator.pretrained import PretrainRecipe, train_pretrained
    from bprl.tracking import format_tracking

    torch.set_num_threads(threads)
    recipe = PretrainRecipe()
    if within_subject_gain is not None:
        recipe = recipe.model_copy(
            update={"train": recipe.train.model_copy(update={"within_subject_gain": within_subject_gain})}
        )
    try:
        ckpt = train_pretrained(out, work, recipe)
    except BprlError as exc:
        _fail(exc)
    ev = json.loads((ckpt / "evaluation.json").read_text())
    for spec, held in ev["heldout"].items():
        tr = held["tracking"]
        typer.echo(f"held-out cohort, spec {spec}: {held['n_records']} subjects")
        typer.echo(format_tracking(tr["model"], "CNN-GRU", {"linear": tr["linear"]}))
    typer.echo(f"checkpoint: {ckpt} (model card: {ckpt / 'MODEL_CARD.md'})")


@estimator_app.command("fit-linear")
def fit_linear_cmd(
    cohort: Path = typer.Option(..., "--cohort", help="virtual cohort folder"),
    out: Path = typer.Option(..., "--out", help="JSON file to write"),
    cache_dir: Path = typer.Option(Path("results/features"), "--cache-dir", help="replay-table cache folder"),
    within_subject: bool = typer.Option(
        False, "--within-subject", help="fit slopes within subjects (DeltaLinearEstimator, PAT + HR)"
    ),
) -> None:
    """Fit the PAT linear estimator (SBP/DBP ~ ln PAT_foot + HR) on the cohort's train subjects.

    With --within-subject: the within-subject linear model, the baseline of the tracking metrics.
    """
    from bprl.estimator.dataset import cohort_record_path, load_table, read_manifest
    from bprl.estimator.linear import DeltaLinearEstimator, PatLinearEstimator

    try:
        man = read_manifest(cohort)
        tables = []
        for row in man[man["split"] == "train"].itertuples(index=False):
            path = cohort_record_path(cohort, row.subject_id, row.record_id)
            try:
                tables.append(load_table(path, None, cache_dir))
            except BprlError as exc:
                typer.echo(f"skipped {path}: {exc}", err=True)
        if within_subject:
            delta = DeltaLinearEstimator().fit(tables)
            delta.save(out)
            for name, coef in (("SBP", delta.coef_sbp), ("DBP", delta.coef_dbp)):
                terms = " ".join(f"{c:+.3f}*{f}" for c, f in zip(coef, delta.features, strict=True))
                typer.echo(f"d{name} = {terms}")
            typer.echo(f"wrote {out} ({delta.info['n_steps']} steps, {len(delta.info['subjects'])} subjects)")
            return
        est = PatLinearEstimator().fit(tables)
    except BprlError as exc:
        _fail(exc)
    est.save(out)
    typer.echo(f"SBP = {est.coef_sbp[0]:.2f} {est.coef_sbp[1]:+.2f}*ln(PAT_ms) {est.coef_sbp[2]:+.3f}*HR")
    typer.echo(f"DBP = {est.coef_dbp[0]:.2f} {est.coef_dbp[1]:+.2f}*ln(PAT_ms) {est.coef_dbp[2]:+.3f}*HR")
    typer.echo(f"wrote {out} ({est.info['n_steps']} steps, {len(est.info['subjects'])} subjects)")


@estimator_app.command("evaluate")
def evaluate_cmd(
    checkpoint: Path = typer.Option(
        ...,
        "--checkpoint",
        help="checkpoint folder, .onnx file or linear-model .json ('pretrained': the shipped one)",
    ),
    cohort: Path | None = typer.Option(None, "--cohort", help="cohort folder (scored on --split)"),
    records: Path | None = typer.Option(
        None,
        "--records",
        help="folder of records with ECG, PPG and arterial BP (all scored), instead of --cohort",
    ),
    split: str = typer.Option("test", "--split", help="train, val or test (with --cohort)"),
    linear: Path | None = typer.Option(
        None,
        "--linear",
        help="a fitted linear-model .json to score side by side (fit-linear --within-subject)",
    ),
    cache_dir: Path = typer.Option(Path("results/features"), "--cache-dir", help="replay-table cache folder"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the metrics as JSON"),
) -> None:
    """Print calibration-free metrics (ME, SD, MAE, BHS %, bias SD, MASE) and within-subject tracking.

    Tracking: per subject r, slope, estimate SD / reference SD, and the trend error after a
    one-point calibration at the first step, against *hold* (and the --linear model), medians
    over subjects with bootstrap intervals.
    """
    from bprl.estimator.dataset import cohort_tables, folder_tables
    from bprl.estimator.estimators import load_estimator
    from bprl.estimator.metrics import evaluate_steps, format_metrics
    from bprl.estimator.pretrained import PRETRAINED_NAME, pretrained_path
    from bprl.estimator.ranges import format_ranges
    from bprl.io import write_text_atomic
    from bprl.tracking import estimator_tracking, format_tracking, predict_steps

    if (cohort is None) == (records is None):
        _fail(BprlError("give --cohort or --records (one of them)"))
    try:
        est = load_estimator(pretrained_path() if str(checkpoint) == PRETRAINED_NAME else checkpoint)
        other = load_estimator(linear) if linear is not None else None
        if cohort is not None:
            items, skipped = cohort_tables(cohort, [split], None, cache_dir)
            where = f"{cohort} ({split})"
        else:
            items, skipped = folder_tables(records, None, cache_dir)  # type: ignore[arg-type]
            where = str(records)
        if not items:
            raise BprlError(f"{where}: no usable record ({len(skipped)} skipped)")
        steps = predict_steps(est, items)  # the estimator runs once for both tables
        metrics = evaluate_steps(steps, est.train_mean_mmhg, split if cohort is not None else "records")
        metrics["tracking"] = estimator_tracking(est, items, linear=other, steps=steps)
    except BprlError as exc:
        _fail(exc)
    typer.echo(
        f"{where}: {len(items)} records, {metrics['n_steps']} steps with reference, {metrics['n_estimated']} estimated"
    )
    typer.echo(format_metrics(metrics))
    typer.echo(format_ranges(metrics["by_range"]))
    tr = metrics["tracking"]
    typer.echo(format_tracking(tr["model"], "model", {"linear": tr["linear"]} if "linear" in tr else None))
    for s in skipped:
        typer.echo(f"skipped {s['record']}: {s['error']}", err=True)
    if json_out is not None:
        metrics["skipped"] = skipped
        write_text_atomic(json.dumps(metrics, indent=2, default=float), json_out)


@estimator_app.command("export")
def export_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="checkpoint folder"),
    out: Path = typer.Option(..., "--out", help="ONNX file to write"),
) -> None:
    """Export a CNN-GRU checkpoint to ONNX (dynamic batch; config in the ONNX metadata)."""
    from bprl.estimator.export import export_onnx

    try:
        path = export_onnx(checkpoint, out)
    except BprlError as exc:
        _fail(exc)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add the ``estimator`` command group to the bprl CLI."""
    app.add_typer(estimator_app, name="estimator")
