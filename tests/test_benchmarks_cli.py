"""``python -m benchmarks``: names run in turn; options after one name reach that benchmark."""

from __future__ import annotations

import types

import pytest

from benchmarks import __main__ as cli


def test_options_reach_the_named_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, list[str]]] = []

    def fake_import(name: str) -> types.SimpleNamespace:
        return types.SimpleNamespace(main=lambda argv: seen.append((name, argv)))

    monkeypatch.setattr(cli.importlib, "import_module", fake_import)
    cli.main(["features", "--datasets", "", "--repeat", "9"])
    assert seen == [("benchmarks.bench_features", ["--datasets", "", "--repeat", "9"])]
    seen.clear()
    cli.main(["cohort", "noise"])
    assert seen == [("benchmarks.bench_cohort", []), ("benchmarks.bench_noise", [])]


@pytest.mark.parametrize("argv", [["--repeat", "3"], ["features", "noise", "--repeat", "3"]])
def test_options_need_exactly_one_benchmark(argv: list[str]) -> None:
    with pytest.raises(SystemExit, match="exactly one benchmark"):
        cli.main(argv)


def test_unknown_benchmark_is_named() -> None:
    with pytest.raises(SystemExit, match="nope"):
        cli.main(["nope"])
