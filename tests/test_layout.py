"""The shape of the package (issue 12): stages as packages, small modules and functions, imports
that follow the data flow, old import paths deprecated, and every module importable.

These tests read the source with :mod:`ast`; they fail loudly on an import error of any bprl module
(nothing here is skipped).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import warnings
from pathlib import Path

import pytest

import bprl

PKG = Path(bprl.__file__).resolve().parent

#: Stage packages in data-flow order (DESIGN.md); shared foundations come first.
FOUNDATIONS = (
    "errors",
    "config",
    "provenance",
    "io",
    "schemas",
    "splits",
    "cache_versions",
    "plugins",
    "tracking",
)
STAGES = (
    "sources",
    "cohort",
    "beats",
    "features",
    "estimator",
    "envs",
    "policies",
    "evaluation",
    "report",
    "experiments",
    "cli",
)
#: Deprecated module paths of bprl 0.1 and where their names live now.
SHIMS = {
    "bprl.records": "bprl.sources",
    "bprl.record_checks": "bprl.sources",
    "bprl.signals": "bprl.beats",
    "bprl.synth": "bprl.cohort",
    "bprl.tables": "bprl.schemas",
    "bprl.env": "bprl.envs",
    "bprl.vector_env": "bprl.envs",
    "bprl.calibrators": "bprl.policies",
    "bprl.agents": "bprl.policies.agents",
    "bprl.reports": "bprl.report",
}
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
#: Functions allowed past MAX_FUNCTION_LINES, with the reason.
LONG_FUNCTION_EXCEPTIONS: dict[str, str] = {}


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_shim(path: Path) -> bool:
    return _module_name(path) in SHIMS


def test_every_bprl_module_imports() -> None:
    names = [m.name for m in pkgutil.walk_packages(bprl.__path__, "bprl.")]
    assert len(names) > 40
    for name in names:
        if name in SHIMS:
            continue
        importlib.import_module(name)  # an ImportError fails the test, never skips it


def test_stage_packages_exist() -> None:
    for stage in STAGES:
        assert (PKG / stage / "__init__.py").is_file(), f"bprl/{stage}/ is not a package"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_module_is_small_and_says_what_it_is(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    n = text.count("\n")
    assert n <= MAX_MODULE_LINES, f"{path.relative_to(PKG)}: {n} lines (limit {MAX_MODULE_LINES})"
    tree = ast.parse(text)
    assert ast.get_docstring(tree), f"{path.relative_to(PKG)}: no module docstring"


def _function_lengths(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            doc = ast.get_docstring(node, clean=False)
            first = body[1] if doc is not None and len(body) > 1 else body[0]
            start = first.lineno if doc is not None and len(body) > 1 else node.lineno
            out.append((f"{_module_name(path)}.{node.name}", node.end_lineno - start + 1))
    return out


def test_no_function_over_the_limit() -> None:
    long = [
        f"{name}: {n} lines"
        for path in _modules()
        for name, n in _function_lengths(path)
        if n > MAX_FUNCTION_LINES and name not in LONG_FUNCTION_EXCEPTIONS
    ]
    assert not long, "functions over the limit (docstring not counted):\n" + "\n".join(long)


def _bprl_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "bprl":
                found |= {f"bprl.{a.name}" for a in node.names}
            elif node.module.startswith("bprl."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("bprl.")}
    return found


def _stage_of(module: str) -> str | None:
    top = module.split(".")[1] if module.count(".") else None
    return top if top in STAGES else None


def test_imports_follow_the_data_flow() -> None:
    """A stage imports only foundations and stages above it; evaluation and report read saved logs."""
    order = {s: i for i, s in enumerate(STAGES)}
    log_readers = {"evaluation", "report"}
    bad = []
    for path in _modules():
        me = _stage_of(_module_name(path))
        if me is None or _is_shim(path):
            continue
        for imp in _bprl_imports(path):
            if imp in SHIMS:
                bad.append(f"{_module_name(path)} imports the deprecated {imp}")
                continue
            other = _stage_of(imp)
            if other is None or other == me:
                continue
            if order[other] > order[me]:
                bad.append(f"{_module_name(path)} ({me}) imports {imp}: below it in the data flow")
            if me in log_readers and other in {"estimator", "envs", "policies"}:
                bad.append(f"{_module_name(path)} imports {imp}: evaluation works from saved logs")
    assert not bad, "\n".join(bad)


def test_foundations_import_no_stage() -> None:
    bad = []
    for name in FOUNDATIONS:
        path = PKG / f"{name}.py"
        for imp in _bprl_imports(path):
            if _stage_of(imp) is not None:
                bad.append(f"bprl.{name} imports {imp}")
    assert not bad, "\n".join(bad)


def test_nothing_in_the_project_imports_a_deprecated_path() -> None:
    repo = PKG.parent
    bad = []
    for folder in ("bprl", "tests", "benchmarks", "examples"):
        for path in sorted((repo / folder).rglob("*.py")):
            if path.resolve().parent == PKG and path.stem in {s.split(".")[1] for s in SHIMS}:
                continue
            if path.name == "test_layout.py":
                continue
            for imp in _bprl_imports(path):
                if imp in SHIMS:
                    bad.append(f"{path.relative_to(repo)} imports {imp}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("old", sorted(SHIMS))
def test_old_paths_warn_and_give_the_same_objects(old: str) -> None:
    import sys

    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and SHIMS[old] in str(w.message) for w in caught), (
        f"{old} does not warn that it moved to {SHIMS[old]}"
    )
    new = importlib.import_module(SHIMS[old])
    shared = [n for n in dir(mod) if not n.startswith("_") and hasattr(new, n)]
    assert shared, f"{old} re-exports nothing of {SHIMS[old]}"
    for name in shared:
        assert getattr(mod, name) is getattr(new, name), f"{old}.{name} is not {SHIMS[old]}.{name}"


def test_no_importorskip_of_bprl_modules() -> None:
    tests = PKG.parent / "tests"
    bad = []
    for path in sorted(tests.glob("*.py")):
        if path.name == "test_layout.py":
            continue
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            if "importorskip(" in line and "bprl" in line:
                bad.append(f"{path.name}: {line.strip()}")
    assert not bad, "\n".join(bad)
