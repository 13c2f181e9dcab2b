"""Run every ``benchmarks/bench_*.py`` (or the ones named) and print their tables.

Usage: ``python -m benchmarks [cohort features noise estimator env ...]`` (every ``bench_*.py``
module is found automatically; ``noise`` is the R-peak noise stress test), or
``python -m benchmarks NAME --option ...``: one benchmark with its own options (for example
``python -m benchmarks features --datasets '' --repeat 9``).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main(argv: list[str] | None = None) -> None:
    """Run the named benchmarks (all when none are named)."""
    args = list(argv if argv is not None else sys.argv[1:])
    first_option = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
    names, options = args[:first_option], args[first_option:]
    if options and len(names) != 1:
        raise SystemExit(f"options {options} need exactly one benchmark named before them, got {names}")
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
        importlib.import_module(f"benchmarks.bench_{name}").main(options)


if __name__ == "__main__":
    main()
