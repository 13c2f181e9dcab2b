"""The shipped rhythm models: LightGBM text files under ``bprl/beats/models/``, loaded once.

A text model is read with ``lightgbm.Booster(model_file=...)``: no pickle, nothing executed from
the file. :func:`load_booster` caches the boosters by resolved path, so the AF, rhythm-class and
beat-class models are parsed once per process.
"""

from __future__ import annotations

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
