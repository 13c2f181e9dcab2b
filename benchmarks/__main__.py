"""Run every ``benchmarks/bench_*.py`` (or the ones named) and print their tables.

Usage: ``python -m benchmarks [cohort features noise estimator env ...]`` (every ``bench_*.py``
module is found automatically; ``noise`` is the R-peak noise stress test).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main(argv: list[str] | None = None) -> None:
    """Run the named benchmarks (all when none are named)."""
    names = argv if argv is not None else sys.argv[1:]
    found = sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_")
    )
    unknown = [n for n in names if n not in found]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; available: {found}")
    for name in names or found:
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"benchmarks.bench_{name}").main([])


if __name__ == "__main__":
    main()
