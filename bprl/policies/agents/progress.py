"""Training progress: an SB3 callback that reports steps done and speed every tenth of the budget."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Say = Callable[[str], None]


def _progress_callback_class() -> type:
    """The SB3 callback class that reports progress (built on first use: SB3 is imported lazily)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class ProgressCallback(BaseCallback):
        """Report steps done and speed every tenth of the budget."""

        def __init__(self, total: int, say: Say) -> None:
            super().__init__()
            self.total, self.say, self.next_at = total, say, max(total // 10, 1)

        def _on_training_start(self) -> None:
            import time

            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_at:
                import time

                rate = self.num_timesteps / max(time.perf_counter() - self.t0, 1e-9)
                self.say(f"{self.num_timesteps}/{self.total} steps ({rate:.0f} steps/s)")
                self.next_at += max(self.total // 10, 1)
            return True

    return ProgressCallback


def progress_callback(total: int, say: Say) -> Any:
    """An SB3 callback calling ``say`` with steps done and steps/s every tenth of ``total`` steps."""
    return _progress_callback_class()(total, say)
