"""Reproducible installs and what depends on them.

* the lock (``requirements/lock.txt``): exact pins of every dependency, consistent with pyproject.toml,
  installed by the Makefile (torch first, then the lock, then bprl without dependencies);
* cached stages record the major versions of numpy, pandas and torch and are rebuilt under others;
* result files and folders get the user's normal permissions (``0o666 / 0o777 & ~umask``);
* ``bprl --version``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from bprl import provenance
from bprl.cache_versions import (
    STAMP_KEY,
    cache_versions,
    parquet_stamp,
    read_stamped_parquet,
    stale_reason,
    write_stamped_parquet,
)
from bprl.features.replay_set import REPLAY_SET_INFO, write_replay_set
from bprl.io import (
    atomic_output,
    current_umask,
    default_dir_mode,
    default_file_mode,
    make_temp_dir,
    write_parquet_atomic,
    write_text_atomic,
)
from bprl.schemas import REPLAY_COLUMNS, REPLAY_ESTIMATE

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
#: every extra of pyproject.toml: the lock covers them all (the Makefile's EXTRAS lists the same)
EXTRAS: tuple[str, ...] = tuple(PYPROJECT["project"]["optional-dependencies"])
TORCH = "2.13.0"
#: Upper bounds (``<``, ``<=``, ``==``, ``~=``) in pyproject.toml are allowed only for a known break,
#: named here with the reason (pandas 3 works).
KNOWN_BREAKS: dict[str, str] = {
    # 5.x wheels no longer ship the Haar cascade files (cv2.data) that face detection loads
    "opencv-python-headless": "5.1 ships no Haar cascades",
}

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;#]+)\s*(;.*)?$")


def _lock_pins() -> dict[str, str]:
    """``{canonical name: version}`` of the lock; fails on any line that is not an exact pin."""
    pins: dict[str, str] = {}
    for n, raw in enumerate(LOCK.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        m = _PIN.match(line)
        assert m, f"{LOCK.name}:{n}: not an exact pin (name==version): {raw!r}"
        name = canonicalize_name(m["name"])
        assert name not in pins, f"{LOCK.name}:{n}: {name} pinned twice"
        pins[name] = m["version"]
    return pins


def _project_requirements() -> list[Requirement]:
    """The dependencies of ``bprl[dev,onnx,ray,bench]`` as declared in pyproject.toml."""
    reqs = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for extra in EXTRAS:
        reqs += [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]]
    return reqs


# ====================================================================== the lock
def test_lock_has_a_header_saying_how_it_was_made() -> None:
    head = LOCK.read_text().split("\n\n", 1)[0]
    assert "make lock" in head and "pip-compile" in head
    named = re.search(r"bprl\[(?P<extras>[^\]]+)\]", head)
    assert named and set(named["extras"].split(",")) == set(EXTRAS), (
        f"the lock's header should name every extra of pyproject.toml {sorted(EXTRAS)}: run make lock"
    )


def test_makefile_installs_every_extra_of_pyproject() -> None:
    m = re.search(r"^EXTRAS\s*:?=\s*(?P<extras>\S+)\s*$", (REPO / "Makefile").read_text(), re.M)
    assert m and set(m["extras"].split(",")) == set(EXTRAS), (
        f"Makefile EXTRAS should list every extra of pyproject.toml: {sorted(EXTRAS)}"
    )


def test_lock_pins_every_dependency_exactly_within_pyproject_ranges() -> None:
    pins = _lock_pins()
    assert len(pins) > 50, "the lock should hold the whole dependency tree, not only the direct ones"
    for req in _project_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} (from pyproject.toml) is not pinned in {LOCK.name}; run make lock"
        assert req.specifier.contains(Version(pins[name]), prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]}, outside pyproject.toml's {req}; run make lock"
        )


def test_lock_pins_torch_exactly_and_the_build_tools() -> None:
    pins = _lock_pins()
    assert pins["torch"] == TORCH, "torch must be pinned torch==2.13.0 (no local label, no other release)"
    for spec in PYPROJECT["build-system"]["requires"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, (
            f"build requirement {req.name} is not in the lock (needed for --no-build-isolation)"
        )
        assert req.specifier.contains(Version(pins[name]))
    assert "pip" in pins


def test_pyproject_keeps_ranges_without_unexplained_upper_bounds() -> None:
    for req in [*_project_requirements(), *(Requirement(r) for r in PYPROJECT["build-system"]["requires"])]:
        capped = [s for s in req.specifier if s.operator in ("<", "<=", "==", "===", "~=")]
        if capped:
            assert canonicalize_name(req.name) in KNOWN_BREAKS, (
                f"pyproject.toml caps {req} without a known break; keep a range (the lock fixes versions)"
            )


def test_pyproject_version_comes_from_the_package() -> None:
    import bprl

    assert "version" in PYPROJECT["project"].get("dynamic", [])
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "bprl.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", bprl.__version__)


# ================================================================== the Makefile
def _make_dry_run(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    res = subprocess.run(
        ["make", "-n", "-B", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_install_step_installs_torch_then_the_lock_then_bprl_without_dependencies() -> None:
    makefile = (REPO / "Makefile").read_text()
    rule = re.search(r"^\$\(STAMP\):(?P<deps>.*)$", makefile, re.M)
    assert rule and "$(LOCK)" in rule["deps"] and "pyproject.toml" in rule["deps"]
    out = _make_dry_run("venv", "VENV=/nonexistent-venv")
    lines = [ln for ln in out.splitlines() if " -m pip install" in ln]
    torch_i = next(i for i, ln in enumerate(lines) if f"torch=={TORCH}" in ln)
    lock_i = next(i for i, ln in enumerate(lines) if "-r requirements/lock.txt" in ln)
    self_i = next(i for i, ln in enumerate(lines) if ln.rstrip().endswith("-e ."))
    assert torch_i < lock_i < self_i
    assert "--no-deps" in lines[self_i] and "--no-build-isolation" in lines[self_i]
    for ln in lines:  # nothing unpinned: every install names the lock or an exact pin
        assert "requirements/lock.txt" in ln or f"torch=={TORCH}" in ln or "--no-deps" in ln, ln
    assert "pip check" in out


def test_make_lock_and_test_latest_targets() -> None:
    lock = _make_dry_run("lock")
    assert "pip-compile" in lock and "--strip-extras" in lock and "requirements/lock.in" in lock
    assert all(f"--extra {e}" in lock for e in EXTRAS)
    assert f"torch=={TORCH}" in (REPO / "requirements" / "lock.in").read_text()
    latest = _make_dry_run("test-latest")
    assert ".venv-latest" in latest and "--upgrade" in latest and f"torch=={TORCH}" in latest
    assert "pytest" in latest


# ===================================================================== --version
def test_cli_version_prints_the_package_version() -> None:
    import importlib.metadata

    from typer.testing import CliRunner

    import bprl
    from bprl.cli import app

    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0, res.output
    assert res.output == f"bprl {bprl.__version__}\n"
    assert bprl.__version__ == importlib.metadata.version("bprl"), "installed metadata is stale: reinstall"


# ============================================================== cache versions
@pytest.fixture
def numpy_major(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """``set(major)``: pretend the installed numpy has that major version (other packages unchanged)."""
    real = provenance.package_version

    def set_major(major: str) -> None:
        monkeypatch.setattr(
            provenance, "package_version", lambda name: f"{major}.0.0" if name == "numpy" else real(name)
        )

    yield set_major


def _restamp(path: Path, stamp: dict[str, str] | None) -> None:
    """Rewrite a Parquet file's cache stamp (``None``: drop it), as if built under other versions."""
    table = pq.read_table(path)
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != STAMP_KEY.encode()}
    if stamp is not None:
        meta[STAMP_KEY.encode()] = json.dumps(stamp).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)


def test_stale_reason_names_the_changed_packages() -> None:
    now = {"numpy": "2", "pandas": "3", "torch": "2"}
    assert stale_reason(dict(now), now) is None
    assert stale_reason({"numpy": "1", "pandas": "2", "torch": "2"}, now) == (
        "built under numpy 1, pandas 2, now numpy 2, pandas 3"
    )
    assert "records no package versions" in stale_reason(None, now)
    assert set(cache_versions()) == {"numpy", "pandas", "torch"}
    assert cache_versions()["numpy"] == np.__version__.split(".")[0]
    assert cache_versions()["pandas"] == pd.__version__.split(".")[0]


def test_stamped_parquet_is_reused_only_under_the_same_major_versions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, numpy_major
) -> None:
    path = tmp_path / "t.parquet"
    df = pd.DataFrame({"a": [1.0, 2.0]})
    write_stamped_parquet(df, path)
    assert parquet_stamp(path) == cache_versions()
    pd.testing.assert_frame_equal(read_stamped_parquet(path), df)
    assert read_stamped_parquet(tmp_path / "absent.parquet") is None
    with caplog.at_level(logging.WARNING, logger="bprl.cache"):
        numpy_major("99")
        assert read_stamped_parquet(path) is None
    assert "cache rebuilt" in caplog.text and "now numpy 99" in caplog.text


def _fake_table(n: int = 3) -> pd.DataFrame:
    cols: dict[str, object] = {}
    for name, dtype in {**REPLAY_COLUMNS, **REPLAY_ESTIMATE}.items():
        cols[name] = ["s1"] * n if dtype == "string" else np.arange(n, dtype=dtype)
    return pd.DataFrame(cols)


def test_replay_table_cache_is_rebuilt_under_other_major_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bprl import features
    from bprl.features import cache as feature_cache

    builds: list[int] = []

    def fake_build(record: object, config: object) -> pd.DataFrame:
        builds.append(1)
        return _fake_table()

    monkeypatch.setattr(feature_cache, "read_record", lambda path: object())
    monkeypatch.setattr(feature_cache, "build_replay_table", fake_build)
    hea = tmp_path / "rec" / "r1.hea"
    hea.parent.mkdir()
    hea.write_text("r1 2 125 100\n")
    cache = tmp_path / "cache"
    first = features.load_replay_table(hea, cache_dir=cache)
    target = features.cache_path(hea, features.FeatureConfig(), cache)
    assert parquet_stamp(target) == cache_versions()
    features.load_replay_table(hea, cache_dir=cache)
    assert len(builds) == 1, "a table cached under the same major versions is reused"

    with caplog.at_level(logging.WARNING, logger="bprl.cache"):
        _restamp(target, {**cache_versions(), "numpy": "1"})  # built under numpy 1
        again = features.load_replay_table(hea, cache_dir=cache)
        assert len(builds) == 2 and parquet_stamp(target) == cache_versions()
        assert f"{target}: cache rebuilt: built under numpy 1, now numpy {np.__version__[0]}" in caplog.text
        _restamp(target, None)  # written by an older bprl
        features.load_replay_table(hea, cache_dir=cache)
        assert len(builds) == 3 and "records no package versions" in caplog.text
        target.write_bytes(b"not parquet")
        features.load_replay_table(hea, cache_dir=cache)
        assert len(builds) == 4 and "unreadable" in caplog.text
    pd.testing.assert_frame_equal(first, again)


def test_estimates_cache_is_rebuilt_under_other_major_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, numpy_major
) -> None:
    from bprl import estimator as est

    calls: list[int] = []

    def fake_add(table: pd.DataFrame, record: object, model: object) -> pd.DataFrame:
        calls.append(1)
        return table.assign(est_sbp_mmhg=120.0, est_dbp_mmhg=80.0)

    class FakeModel:
        kind = est.PatLinearEstimator.kind

        def fingerprint(self) -> str:
            return "fake"

    monkeypatch.setattr(est.inference, "add_estimates", fake_add)
    table = _fake_table()
    for _ in range(2):
        est.estimate_replay_table("r1.hea", FakeModel(), tmp_path, table=table, table_key="k")
    assert len(calls) == 1
    with caplog.at_level(logging.WARNING, logger="bprl.cache"):
        numpy_major("1")
        est.estimate_replay_table("r1.hea", FakeModel(), tmp_path, table=table, table_key="k")
    assert len(calls) == 2 and "now numpy 1" in caplog.text


def _stub_cohort_build(calls: list[Path]):
    def build(cohort_dir, out_dir, info=None, features_cache=None) -> Path:
        calls.append(Path(out_dir))
        from bprl.envs.replay_sets import FEATURE_CODE_KEY
        from bprl.features import feature_code_version

        meta = {**(info or {}), STAMP_KEY: cache_versions(), FEATURE_CODE_KEY: feature_code_version()}
        write_replay_set(out_dir, {"s1": _fake_table()}, {"s1": "train"}, meta)
        return Path(out_dir)

    return build


def _cached_cohort_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[Path], Path, Path]:
    """A cohort replay set built once (by the stub) in a fresh cache: the module, the stub's
    calls, the cohort folder and the set's folder (already reused once)."""
    from bprl.envs import replay_sets as env

    calls: list[Path] = []
    monkeypatch.setenv("BPRL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(env, "build_cohort_replay_set", _stub_cohort_build(calls))
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    root = env.replay_set_for_cohort(cohort)
    assert env.replay_set_for_cohort(cohort) == root and len(calls) == 1
    return env, calls, cohort, root


def test_cached_replay_set_of_a_cohort_is_rebuilt_under_other_major_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, numpy_major
) -> None:
    env, calls, cohort, root = _cached_cohort_set(tmp_path, monkeypatch)
    info_path = root / REPLAY_SET_INFO
    info = json.loads(info_path.read_text())
    info[STAMP_KEY] = {**info[STAMP_KEY], "torch": "1"}
    info_path.write_text(json.dumps(info))
    with caplog.at_level(logging.WARNING, logger="bprl.cache"):
        assert env.replay_set_for_cohort(cohort) == root
        assert (
            len(calls) == 2 and f"built under torch 1, now torch {cache_versions()['torch']}" in caplog.text
        )
        assert json.loads(info_path.read_text())[STAMP_KEY] == cache_versions()
        numpy_major("1")
        env.replay_set_for_cohort(cohort)
    assert len(calls) == 3 and "now numpy 1" in caplog.text
    assert not [p for p in root.parent.iterdir() if p.name.startswith(f".{root.name}.")], "temp folders left"


def test_cached_replay_set_is_rebuilt_by_other_feature_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A replay set built by other beat and feature code (e.g. before an R-peak detector fix) is
    rebuilt, not replayed with the old tables."""
    env, calls, cohort, root = _cached_cohort_set(tmp_path, monkeypatch)
    info_path = root / REPLAY_SET_INFO
    info = json.loads(info_path.read_text())
    info[env.FEATURE_CODE_KEY] = "0" * 16
    info_path.write_text(json.dumps(info))
    with caplog.at_level(logging.WARNING, logger="bprl.cache"):
        assert env.replay_set_for_cohort(cohort) == root
    assert len(calls) == 2 and "built by other beat and feature code (0000000000000000" in caplog.text
    assert env.replay_set_for_cohort(cohort) == root and len(calls) == 2


def test_default_replay_set_is_rebuilt_under_other_major_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, numpy_major
) -> None:
    import bprl.cohort
    from bprl.envs import replay_sets as env

    calls: list[Path] = []
    monkeypatch.setenv("BPRL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(env, "build_cohort_replay_set", _stub_cohort_build(calls))
    monkeypatch.setattr(bprl.cohort, "make_cohort", lambda out, **kw: Path(out))
    root = env.default_replay_set()
    assert env.default_replay_set() == root and len(calls) == 1
    with caplog.at_level(logging.WARNING, logger="bprl.cache"):
        numpy_major("1")
        assert env.default_replay_set() == root
    assert len(calls) == 2 and "cache rebuilt" in caplog.text
    assert json.loads((root / REPLAY_SET_INFO).read_text())[STAMP_KEY]["numpy"] == "1"


def _write_text_unit(out: Path, text: str) -> dict[str, int]:
    """A runner unit (module level, picklable): write ``text`` to ``out``."""
    out.write_text(text)
    return {"chars": len(text)}


def _write_dir_unit(out: Path) -> None:
    """A runner unit whose output is a folder (the runner creates ``out``)."""
    (out / "part.txt").write_text("x")


def test_runner_units_rerun_under_other_major_versions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, numpy_major
) -> None:
    from bprl import experiments as ex

    def unit() -> ex.Unit:
        return ex.Unit(
            "demo/a",
            _write_text_unit,
            {"text": "hello"},
            tmp_path / "out.txt",
            tmp_path / "state" / "a.json",
            ex.fingerprint("demo", "a"),
        )

    first = ex._run_stage(ex.Backend(), [unit()], "demo", ex.RunState(), False)
    assert first["demo/a"].status == "done"
    assert json.loads((tmp_path / "state" / "a.json").read_text())[STAMP_KEY] == cache_versions()
    assert ex._run_stage(ex.Backend(), [unit()], "demo", ex.RunState(), False)["demo/a"].status == "cached"
    fp_before = ex.fingerprint("demo", "a")
    with caplog.at_level(logging.WARNING, logger="bprl.cache"):
        numpy_major("1")
        assert ex.fingerprint("demo", "a") != fp_before
        again = ex._run_stage(ex.Backend(), [unit()], "demo", ex.RunState(), False)
    assert again["demo/a"].status == "done"
    assert "stage demo: cache rebuilt: 1 unit(s) rerun: built under numpy" in caplog.text
    assert "now numpy 1" in caplog.text


# ================================================================= permissions
@pytest.fixture
def umask_027() -> Iterator[int]:
    """Run with umask 027 (group read, others nothing), restored afterwards."""
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_umask_is_read_without_changing_it(umask_027: int) -> None:
    assert current_umask() == 0o027
    assert current_umask() == 0o027
    assert default_file_mode() == 0o640 and default_dir_mode() == 0o750


def test_atomic_writes_give_the_mode_of_a_plain_open(tmp_path: Path, umask_027: int) -> None:
    with open(tmp_path / "plain.txt", "w") as fh:
        fh.write("x")
    expected = _mode(tmp_path / "plain.txt")
    assert expected == 0o640
    with atomic_output(tmp_path / "a.bin") as tmp:
        tmp.write_bytes(b"x")
    write_text_atomic("x", tmp_path / "b.txt")
    write_parquet_atomic(pd.DataFrame({"a": [1]}), tmp_path / "c.parquet")
    write_stamped_parquet(pd.DataFrame({"a": [1]}), tmp_path / "d.parquet")
    write_replay_set(tmp_path / "rs", {"s1": _fake_table()}, {"s1": "train"})
    written = [tmp_path / n for n in ("a.bin", "b.txt", "c.parquet", "d.parquet")]
    written += [p for p in (tmp_path / "rs").rglob("*") if p.is_file()]
    assert {p.name: _mode(p) for p in written} == {p.name: expected for p in written}


def test_temp_folders_that_become_results_get_normal_modes(tmp_path: Path, umask_027: int) -> None:
    from bprl import experiments as ex

    made = make_temp_dir(tmp_path, prefix=".x.")
    assert _mode(made) == 0o750
    dir_unit = ex.Unit(
        "demo/d", _write_dir_unit, {}, tmp_path / "outdir", tmp_path / "state" / "d.json", "fp", True
    )
    file_unit = ex.Unit(
        "demo/f", _write_text_unit, {"text": "t"}, tmp_path / "out.txt", tmp_path / "state" / "f.json", "fp"
    )
    for u in (dir_unit, file_unit):
        assert ex.execute_unit(u).status == "done"
    assert _mode(tmp_path / "outdir") == 0o750
    assert _mode(tmp_path / "outdir" / "part.txt") == 0o640
    assert _mode(tmp_path / "out.txt") == 0o640
    assert _mode(tmp_path / "state" / "d.json") == 0o640


def test_cache_versions_docstring_examples() -> None:
    import doctest

    import bprl.cache_versions

    result = doctest.testmod(bprl.cache_versions, verbose=False)
    assert result.attempted > 0 and result.failed == 0
