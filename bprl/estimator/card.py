"""The model card (``MODEL_CARD.md``) of a CNN-GRU checkpoint: model, data, metrics, intended use, limitations."""

from __future__ import annotations

from typing import Any

from bprl.estimator.metrics import format_metrics

__all__ = ["model_card"]


def model_card(info: dict[str, Any], metrics: dict[str, Any]) -> str:
    """MODEL_CARD.md text of a checkpoint: data, architecture, metrics, intended use, limitations.

    Args:
        info: the checkpoint's ``config.json`` contents.
        metrics: its ``metrics.json`` contents (``test``: :func:`~bprl.estimator.metrics.evaluate_predictions` output).

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
    return f"""# Model card: bprl CNN-GRU blood-pressure estimator

## Model
1-D CNN ({len(m["conv_channels"])} blocks, channels {m["conv_channels"]}, kernels {m["conv_kernels"]},
pools {m["pools"]}) -> bidirectional GRU ({m["gru_hidden"]} units per direction) -> attention pooling
-> head ({m["head_hidden"]} hidden) -> SBP, DBP. After Eom et al., Sensors 2020, 20(8):2338.
Input: {m["window_s"]} s of ECG and PPG at {m["fs_hz"]} Hz, each z-normalised per window.
Hybrid (PAT/HR features): {m["hybrid"]}. Parameters: {info["n_parameters"]}. Seed: {info["seed"]}.
Kept the weights of epoch {info["best_epoch"]} (optimiser step {info["best_step"]}) of {info["epochs_run"]} epochs run
(early stopping on {info["early_stopping_on"]} subjects).

## Data
Source: `{data["source"]}`. Labels: the replay step's reference BP (median of valid arterial-line beats).
Subject-disjoint splits:

| split | subjects | windows |
| --- | --- | --- |
{split_lines}

Label normalisation: mean {info["normalisation"]["label_mean_mmhg"]}, SD {info["normalisation"]["label_sd_mmhg"]} mmHg.

## Calibration-free metrics on test subjects (step level: median over sub-windows)
{test_txt}

MASE = MAE of the model / MAE of a predictor that always outputs the training mean.
`bias_sd` is the SD of per-subject mean errors: what per-subject calibration removes.

## Intended use
A population estimator whose per-subject bias and drift are corrected by bprl's calibration
policies. Research use on replayed records only.

## Limitations
Not a medical device; no standard (AAMI/ISO 81060-2, BHS, IEEE 1708) is met calibration-free.
When trained on virtual (synthetic) subjects, errors on real ICU records are much larger
(domain shift in waveform morphology, noise, pre-ejection period).
Window-level z-normalisation removes absolute amplitude information by design.
"""
