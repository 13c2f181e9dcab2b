"""The shipped rhythm models: LightGBM text files under ``bprl/beats/models/``, loaded once.

A text model is read with ``lightgbm.Booster(model_file=...)``: no pickle, nothing executed from
the file. :func:`load_booster` caches the boosters by resolved path, so the AF, rhythm-class,
beat-class and QRS onset models are parsed once per process.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

#: folder of the shipped model files
MODELS_DIR = Path(__file__).resolve().parent / "models"


@lru_cache(maxsize=8)
def _cached(path: str) -> Any:
    import lightgbm as lgb

    return lgb.Booster(model_file=path)


def load_booster(path: str | Path) -> Any:
    """The ``lightgbm.Booster`` of the text model file ``path`` (cached by resolved path)."""
    return _cached(str(Path(path).resolve()))


def load_model_with_card(
    path: Path, feature_names: tuple[str, ...], what: str, rebuild: str = "python -m bprl.beats.train_rhythm"
) -> tuple[Any, dict[str, Any]]:
    """A shipped model and its JSON card (same name, ``.json``; empty when absent), checked to take
    ``feature_names`` in that order.

    Args:
        path: the model's text file.
        feature_names: the features the calling code computes, in model-input order.
        what: the model's name in messages (``"AF model"``, ``"rhythm model"``).
        rebuild: the command that rebuilds the file, named when it is missing.

    Raises:
        FeatureError: the file is missing (naming the command that rebuilds it) or its features
            differ from ``feature_names``.
    """
    from bprl.errors import FeatureError

    if not path.is_file():
        raise FeatureError(f"{what} {path} not found ({rebuild} rebuilds it)")
    booster = load_booster(path)
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.is_file() else {}
    if tuple(booster.feature_name()) != tuple(feature_names):
        raise FeatureError(f"{what} {path}: its features are not the ones bprl computes")
    return booster, card
