"""Where the units of a stage run: in-process, a local process pool, or a Ray cluster.

Every backend runs the units of one stage with :func:`bprl.experiments.units.execute_unit` and
returns their results in the units' order; a unit that raises something other than a
:class:`~bprl.errors.BprlError` stops the stage (the other running units finish writing first,
so their markers stay valid). Results do not depend on the backend or the number of workers.
"""

from __future__ import annotations

import contextlib
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context

from tqdm.auto import tqdm

from bprl.errors import ConfigError
from bprl.experiments.units import Unit, UnitResult, execute_unit

__all__ = ["Backend", "LocalBackend", "RayBackend", "make_backend"]


def _init_worker() -> None:
    """Worker initialiser: one BLAS/torch thread per process (the workers already run in parallel)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


class Backend:
    """Runs a stage's units and reports each as it finishes (base class: in-process)."""

    name = "local"
    workers = 1

    def map_units(self, units: list[Unit], desc: str, progress: bool = True) -> list[UnitResult]:
        """Run ``units`` (all of one stage); raise the first non-BprlError a unit raised.

        Args:
            units: the units to run.
            desc: label of the progress bar.
            progress: show a tqdm progress bar.

        Returns:
            One result per unit, in the order of ``units``.
        """
        results = []
        for unit in tqdm(units, desc=desc, unit="unit", disable=not progress or not units, leave=False):
            results.append(execute_unit(unit))
        return results

    def close(self) -> None:
        """Release workers."""


class LocalBackend(Backend):
    """A local process pool (``spawn`` processes; ``workers=1`` runs in-process).

    Raises:
        ConfigError: ``workers`` < 1.
    """

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise ConfigError(f"backend: workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=get_context("spawn"), initializer=_init_worker
            )
        return self._pool

    def map_units(self, units: list[Unit], desc: str, progress: bool = True) -> list[UnitResult]:
        """Run the units on the pool (in-process when one worker or one unit)."""
        if self.workers == 1 or len(units) <= 1:
            return super().map_units(units, desc, progress)
        pool = self._get_pool()
        futures = {pool.submit(execute_unit, u): i for i, u in enumerate(units)}
        results: list[UnitResult | None] = [None] * len(units)
        with tqdm(total=len(units), desc=desc, unit="unit", disable=not progress, leave=False) as bar:
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        results[futures[fut]] = fut.result()
                        bar.update(1)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                wait(pending)  # let running units finish writing (their markers stay valid)
                raise
        return [r for r in results if r is not None]

    def close(self) -> None:
        """Shut the pool down."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayBackend(Backend):
    """Runs units as Ray tasks on a cluster (``address``) or a local instance started here.

    Raises:
        ConfigError: the optional dependency ``ray`` is not installed.
    """

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None) -> None:
        try:
            import ray
        except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "backend 'ray' needs the optional dependency ray: pip install 'bprl[ray]'"
            ) from exc
        self._ray = ray
        self.workers = workers
        self._started = False
        if not ray.is_initialized():
            env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
            if address:
                ray.init(address=address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, runtime_env=env, log_to_driver=False)
            self._started = True
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_ray_execute)

    def map_units(self, units: list[Unit], desc: str, progress: bool = True) -> list[UnitResult]:
        """Submit every unit as a Ray task and gather them as they finish."""
        if not units:
            return []
        ray = self._ray
        refs = {self._remote.remote(u): i for i, u in enumerate(units)}
        results: list[UnitResult | None] = [None] * len(units)
        pending = list(refs)
        with tqdm(total=len(units), desc=desc, unit="unit", disable=not progress, leave=False) as bar:
            try:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    for ref in done:
                        try:
                            results[refs[ref]] = ray.get(ref)
                        except ray.exceptions.RayTaskError as exc:
                            raise exc.as_instanceof_cause() from None
                        bar.update(1)
            except BaseException:
                with contextlib.suppress(Exception):
                    ray.wait(pending, num_returns=len(pending))
                raise
        return [r for r in results if r is not None]

    def close(self) -> None:
        """Shut down the Ray instance if this backend started it."""
        if self._started:
            self._ray.shutdown()
            self._started = False


def _ray_execute(unit: Unit) -> UnitResult:
    """A Ray task: one thread per worker, then the unit."""
    _init_worker()
    return execute_unit(unit)


def make_backend(name: str, workers: int = 2, ray_address: str | None = None) -> Backend:
    """A backend by name: ``"local"`` (process pool) or ``"ray"``.

    Args:
        name: ``"local"`` or ``"ray"``.
        workers: processes of the pool / CPUs of a local Ray instance.
        ray_address: Ray cluster address (``None``: start a local instance).

    Raises:
        ConfigError: unknown backend name, or ray not installed.
    """
    if name == "local":
        return LocalBackend(workers)
    if name == "ray":
        return RayBackend(workers, ray_address)
    raise ConfigError(f"backend: unknown backend {name!r}; valid: local, ray")
