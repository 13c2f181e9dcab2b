"""The model card (``MODEL_CARD.md``) of a CNN-GRU checkpoint: model, data, metrics, intended use, limitations."""

from __future__ import annotations

from typing import Any

from bprl.estimator.metrics import format_metrics
from bprl.estimator.ranges import format_ranges

__all__ = ["model_card"]


def _tracking_section(metrics: dict[str, Any], evaluation: dict[str, Any] | None) -> str:
    """The within-subject tracking part of the card: test split, and the held-out cohort when given."""
    from bprl.tracking import format_paired, format_tracking

    parts = ["## Within-subject tracking (one-point calibration at each subject's first step)"]
    test = metrics.get("test_tracking")
    if test:
        parts += ["", "Test subjects of the training cohort:", "", format_tracking(test["model"])]
    for spec, ev in (evaluation or {}).get("heldout", {}).items():
        tr = ev["tracking"]
        others = {"linear (within-subject)": tr["linear"]} if tr.get("linear") else None
        parts += [
            "",
            f"Held-out cohort, spec `{spec}` (`{ev['cohort']}`, {ev['n_records']} subjects, a seed never "
            "used in training), next to the within-subject linear model fitted on the training subjects:",
            "",
            format_tracking(tr["model"], "CNN-GRU", others),
        ]
        if tr.get("paired_vs_linear"):
            parts += [
                "",
                "Paired per-subject differences:",
                "",
                format_paired(tr["paired_vs_linear"], "CNN-GRU"),
            ]
        parts += ["", "Calibration-free:", "", format_metrics(ev["calibration_free"])]
    if evaluation:
        if "timing_s" in evaluation:
            t = evaluation["timing_s"]
            cohorts = "reused from the work folder" if t.get("cohorts_reused") else f"{t['cohorts']} s"
            parts += [
                "",
                f"Time on this machine: cohorts {cohorts}, training {t['training']} s (2 torch threads).",
            ]
    if len(parts) == 1:
        parts.append("(not evaluated)")
    return "\n".join(parts)


def _gain_line(info: dict[str, Any]) -> str:
    """The sentence on the within-subject gain (empty when training did not fit one)."""
    gain = info["normalisation"].get("within_subject_gain")
    if not gain:
        return ""
    return (
        f"The within-subject changes were scaled by {gain[0]:.3f} / {gain[1]:.3f} (SBP / DBP), the "
        "least-squares gain of the validation subjects' reference changes on the estimate's;\n"
    )


def model_card(
    info: dict[str, Any], metrics: dict[str, Any], evaluation: dict[str, Any] | None = None
) -> str:
    """MODEL_CARD.md text of a checkpoint: data, architecture, metrics, intended use, limitations.

    Args:
        info: the checkpoint's ``config.json`` contents.
        metrics: its ``metrics.json`` contents (``test``: :func:`~bprl.estimator.metrics.evaluate_predictions`
            output, ``test_tracking``: :func:`~bprl.tracking.estimator_tracking`-style output).
        evaluation: a held-out evaluation (``evaluation.json`` of :func:`~bprl.estimator.pretrained.train_pretrained`).

    Returns:
        the Markdown text.
    """
    m = info["model"]
    data = info["data"]
    split_lines = "\n".join(
        f"| {sp} | {d['n_subjects']} | {d['n_windows']} |" for sp, d in data["splits"].items()
    )
    test = metrics.get("test")
    test_txt = format_metrics(test) if test else "(no test subjects)"
    if test and test.get("by_range"):
        test_txt += "\n\nBy reference BP range (step level):\n\n" + format_ranges(test["by_range"])
    return f"""# Model card: bprl CNN-GRU blood-pressure estimator

## Model
1-D CNN ({len(m["conv_channels"])} blocks, channels {m["conv_channels"]}, kernels {m["conv_kernels"]},
pools {m["pools"]}) -> bidirectional GRU ({m["gru_hidden"]} units per direction) -> attention pooling
-> head ({m["head_hidden"]} hidden) -> SBP, DBP. After Eom et al., Sensors 2020, 20(8):2338.
Input: {m["window_s"]} s of ECG and PPG at {m["fs_hz"]} Hz, each z-normalised per window.
Hybrid: {m["hybrid"]} (step features {m.get("feature_columns")} to the head; linear feature path:
{m.get("feature_skip")}). Loss: {info["train"].get("absolute_weight")} x absolute MSE + {info["train"].get("pair_weight")} x
within-subject paired MSE (label-normalised). Parameters: {info["n_parameters"]}. Seed: {info["seed"]}.
Kept the weights of epoch {info["best_epoch"]} (optimiser step {info["best_step"]}) of {info["epochs_run"]} epochs run
(early stopping on {info["early_stopping_on"]} subjects).

## Data
Source: `{data["source"]}`. Labels: the replay step's reference BP (median of valid arterial-line beats).
Subject-disjoint splits:

| split | subjects | windows |
| --- | --- | --- |
{split_lines}

Label normalisation: mean {info["normalisation"]["label_mean_mmhg"]}, SD {info["normalisation"]["label_sd_mmhg"]} mmHg;
{_gain_line(info)}after training the output was shifted by {info["normalisation"].get("recentred_by_mmhg")} mmHg (SBP, DBP) so that its
mean error on the training windows is zero.

## Calibration-free metrics on test subjects (step level: median over sub-windows)
{test_txt}

MASE = MAE of the model / MAE of a predictor that always outputs the training mean.
`bias_sd` is the SD of per-subject mean errors: what per-subject calibration removes.

{_tracking_section(metrics, evaluation)}

## Intended use
A population estimator whose per-subject bias and drift are corrected by bprl's calibration
policies. Research use on replayed records only.

## Limitations
Not a medical device; no standard (AAMI/ISO 81060-2, BHS, IEEE 1708) is met calibration-free.
When trained on virtual (synthetic) subjects, errors on real ICU records are much larger
(domain shift in waveform morphology, noise, pre-ejection period).
Window-level z-normalisation removes absolute amplitude information by design.
"""
