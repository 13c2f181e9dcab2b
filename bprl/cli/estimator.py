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
    epochs: int = typer.Option(30, "--epochs", help="maximum epochs (early stopping on val subjects)"),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed, same weights)"),
    hybrid: bool = typer.Option(False, "--hybrid", help="also feed PAT (foot) and HR to the head"),
    oversample: bool = typer.Option(False, "--oversample", help="oversample rare SBP ranges"),
    batch_size: int = typer.Option(64, "--batch-size"),
    lr: float = typer.Option(2e-3, "--lr"),
    weight_decay: float = typer.Option(1e-4, "--weight-decay", help="Adam weight decay"),
    dropout: float = typer.Option(0.1, "--dropout", help="dropout before the last layer"),
    patience: int = typer.Option(5, "--patience", help="validations without improvement before stopping"),
    eval_every: int | None = typer.Option(
        None, "--eval-every", help="validate every N optimiser steps (default: after each epoch)"
    ),
    cache_dir: Path = typer.Option(Path("results/features"), "--cache-dir", help="replay-table cache folder"),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads"),
) -> None:
    """Train the CNN-GRU estimator on a cohort's train subjects; writes model.pt, config.json, metrics.json."""
    import torch

    from bprl.estimator.config import ModelConfig, TrainConfig
    from bprl.estimator.metrics import format_metrics
    from bprl.estimator.train import train_estimator

    torch.set_num_threads(threads)
    cfg = TrainConfig(
        model=ModelConfig(hybrid=hybrid, dropout=dropout),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        patience=patience,
        oversample=oversample,
        eval_every_steps=eval_every,
    )
    try:
        ckpt = train_estimator(cohort, out, cfg, seed=seed, cache_dir=cache_dir)
    except BprlError as exc:
        _fail(exc)
    metrics = json.loads((ckpt / "metrics.json").read_text())
    if "test" in metrics:
        typer.echo(format_metrics(metrics["test"]))
    typer.echo(f"checkpoint: {ckpt}")


@estimator_app.command("fit-linear")
def fit_linear_cmd(
    cohort: Path = typer.Option(..., "--cohort", help="virtual cohort folder"),
    out: Path = typer.Option(..., "--out", help="JSON file to write"),
    cache_dir: Path = typer.Option(Path("results/features"), "--cache-dir", help="replay-table cache folder"),
) -> None:
    """Fit the PAT linear estimator (SBP/DBP ~ ln PAT_foot + HR) on the cohort's train subjects."""
    from bprl.estimator.dataset import cohort_record_path, load_table, read_manifest
    from bprl.estimator.linear import PatLinearEstimator

    try:
        man = read_manifest(cohort)
        tables = []
        for row in man[man["split"] == "train"].itertuples(index=False):
            path = cohort_record_path(cohort, row.subject_id, row.record_id)
            try:
                tables.append(load_table(path, None, cache_dir))
            except BprlError as exc:
                typer.echo(f"skipped {path}: {exc}", err=True)
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
        ..., "--checkpoint", help="checkpoint folder, .onnx file or PAT-linear .json"
    ),
    cohort: Path = typer.Option(..., "--cohort", help="cohort folder"),
    split: str = typer.Option("test", "--split", help="train, val or test"),
    cache_dir: Path = typer.Option(Path("results/features"), "--cache-dir", help="replay-table cache folder"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the metrics as JSON"),
) -> None:
    """Print calibration-free metrics (ME, SD, MAE, BHS %, bias SD, MASE vs the training mean) on one split."""
    from bprl.estimator.dataset import build_window_dataset, cohort_record_path, load_table, read_manifest
    from bprl.estimator.estimators import load_estimator
    from bprl.estimator.linear import PatLinearEstimator
    from bprl.estimator.metrics import evaluate_estimator, evaluate_table_estimator, format_metrics
    from bprl.io import write_text_atomic

    skipped: list = []
    try:
        est = load_estimator(checkpoint)
        if isinstance(est, PatLinearEstimator):
            man = read_manifest(cohort)
            tables = []
            for row in man[man["split"] == split].itertuples(index=False):
                path = cohort_record_path(cohort, row.subject_id, row.record_id)
                try:
                    tables.append((load_table(path, None, cache_dir), None))
                except BprlError as exc:
                    skipped.append({"record": str(path), "error": str(exc)})
            metrics = evaluate_table_estimator(est, tables, split)
            typer.echo(
                f"{split}: {metrics['n_steps']} steps with reference, {metrics['n_estimated']} estimated"
            )
        else:
            ds = build_window_dataset(cohort, est.config, None, cache_dir, splits=[split], progress=True)
            skipped = ds.skipped
            metrics = evaluate_estimator(est, ds, split)
            typer.echo(f"{split}: {metrics['n_steps']} steps, {metrics['n_windows']} windows")
    except BprlError as exc:
        _fail(exc)
    typer.echo(format_metrics(metrics))
    if skipped:
        typer.echo(f"skipped {len(skipped)} records (first: {skipped[0]})", err=True)
    if json_out is not None:
        write_text_atomic(json.dumps(metrics, indent=2), json_out)


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
