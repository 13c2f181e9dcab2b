"""``bprl compare`` (bprl.report.compare, bprl.cli.compare): one report over several results folders.

Four tiny real experiments (a small virtual cohort, the PAT-linear estimator, classical
calibrators, no report) run once per module: ``a`` (seeds 0, 1), ``b`` (seed 2, same cohort and
split), ``split1`` (another split seed: other test subjects) and ``cohort6`` (another cohort seed:
the same subject ids, different people).
"""

from __future__ import annotations

import dataclasses
import doctest
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from bprl import experiments as ex
from bprl.cli import app
from bprl.errors import EvaluationError
from bprl.report import compare as cmp

N_RESAMPLES = 200
SEED = 3
TINY = {
    "name": "tiny",
    "cohort": {"virtual": {"subjects": 6, "hours": 0.1, "seed": 5}},
    "splits": {"train": 0.5, "val": 0.17, "test": 0.33, "seed": 0},
    "features": {"window_s": 30, "hop_s": 30},
    "estimator": {"kind": "pat_linear"},
    "env": {"spec": "envs/default.yaml"},
    "policies": ["none", "one_shot"],
    "seeds": [0, 1],
    "evaluation": {"n_resamples": 20},
}


def _no_report(*args: object, **kwargs: object) -> None:
    """The runs' own reports are not needed here (the comparison writes one)."""


@pytest.fixture
def fast_report(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Replace the report (figures dominate its time; the fixture ``comparison`` writes a real one)
    with a stub writing ``report.html``; returns the keyword arguments of each call."""
    calls: list[dict] = []

    def stub(results_dir: Path, logs: pd.DataFrame, metrics: pd.DataFrame, config: dict, **kwargs) -> tuple:
        calls.append({"logs": logs, "metrics": metrics, "config": config, **kwargs})
        html = Path(results_dir) / "report.html"
        html.write_text(str(kwargs["title"]))
        return html, Path(results_dir) / "report.md"

    monkeypatch.setattr(cmp, "write_report", stub)
    return calls


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The four results folders (see the module docstring)."""
    root = tmp_path_factory.mktemp("runs")
    stages = dataclasses.replace(ex.default_stages(), report=_no_report)
    variants = {
        "a": TINY,
        "b": TINY | {"seeds": [2]},
        "split1": TINY | {"splits": TINY["splits"] | {"seed": 1}},
        "cohort6": TINY | {"cohort": {"virtual": TINY["cohort"]["virtual"] | {"seed": 6}}},
    }
    return {
        name: ex.run_experiment(cfg, results_dir=root / name, workers=1, stages=stages, progress=False)
        for name, cfg in variants.items()
    }


@pytest.fixture(scope="module")
def comparison(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> cmp.Comparison:
    """``a`` against ``b``."""
    out = tmp_path_factory.mktemp("cmp") / "ab"
    return cmp.compare_results([runs["a"], runs["b"]], out=out, seed=SEED, n_resamples=N_RESAMPLES)


def _subjects(folder: Path) -> set[str]:
    return {s for p in (folder / "logs").glob("*.parquet") for s in pd.read_parquet(p)["subject_id"]}


def _subject_mae(folder: Path, policy: str) -> pd.DataFrame:
    """Per subject: SBP / DBP MAE of each seed, then the mean over seeds, straight from the Parquet logs."""
    log = pd.concat([pd.read_parquet(p) for p in sorted((folder / "logs").glob(f"{policy}__seed*.parquet"))])
    out = {}
    for bp in ("sbp", "dbp"):
        err = (log[f"corr_{bp}_mmhg"] - log[f"ref_{bp}_mmhg"]).abs()
        per_seed = err[np.isfinite(err)].groupby([log["subject_id"], log["seed"]]).mean()
        out[bp] = per_seed.groupby(level=0).mean()
    return pd.DataFrame(out).sort_index()


# ------------------------------------------------------------------ the comparison
def test_report_and_files(comparison: cmp.Comparison, runs: dict[str, Path]):
    out = comparison.out
    assert comparison.report == out / "report.html" and comparison.report.is_file()
    assert comparison.labels == ["a", "b"]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# Comparison of runs: a, b")
    assert md.index("Paired per-subject differences between runs") < md.index("## Methods")
    for name in ("a:none", "b:none", "a:one_shot", "b:one_shot"):
        assert name in md
    policies = list(pd.read_csv(out / "metrics.csv")["policy"])
    assert policies == ["a:none", "b:none", "a:one_shot", "b:one_shot"]
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "paired_differences.csv", keep_default_na=False),
        comparison.paired,
        check_dtype=False,
    )
    compared = json.loads((out / cmp.COMPARED_FILE).read_text())
    assert compared["reference"] == "a"
    assert [r["folder"] for r in compared["runs"]] == [str(runs["a"]), str(runs["b"])]
    assert [r["seeds"] for r in compared["runs"]] == [[0, 1], [2]]
    assert [r["experiment"] for r in compared["runs"]] == ["tiny", "tiny"]
    for r, name in zip(compared["runs"], "ab", strict=True):
        assert r["git_commit"] == json.loads((runs[name] / "provenance.json").read_text())["git"]["commit"]
    assert compared["test_subjects"] == sorted(_subjects(runs["a"]))


def test_paired_numbers_equal_an_independent_computation(comparison: cmp.Comparison, runs: dict[str, Path]):
    paired = comparison.paired.set_index("policy")
    assert list(paired.index) == ["none", "one_shot"]
    assert set(paired["reference"]) == {"a"} and set(paired["run"]) == {"b"}
    for policy in paired.index:
        ref, run = _subject_mae(runs["a"], policy), _subject_mae(runs["b"], policy)
        assert list(ref.index) == list(run.index)
        row = paired.loc[policy]
        assert row["n_subjects"] == len(ref)
        for bp in ("sbp", "dbp"):
            d = (run[bp] - ref[bp]).to_numpy()
            assert row[f"{bp}_diff_mmhg"] == pytest.approx(d.mean(), abs=1e-12)
            assert row[f"{bp}_mae_reference_mmhg"] == pytest.approx(ref[bp].mean(), abs=1e-12)
            assert row[f"{bp}_mae_run_mmhg"] == pytest.approx(run[bp].mean(), abs=1e-12)
            assert row[f"{bp}_n_better"] == int((d < -cmp.TIE_MMHG).sum())
            assert row[f"{bp}_n_worse"] == int((d > cmp.TIE_MMHG).sum())
            # percentile bootstrap over subjects, written out
            idx = np.random.default_rng(SEED).integers(0, len(d), size=(N_RESAMPLES, len(d)))
            lo, hi = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
            assert row[f"{bp}_diff_ci_lo_mmhg"] == pytest.approx(lo, abs=1e-12)
            assert row[f"{bp}_diff_ci_hi_mmhg"] == pytest.approx(hi, abs=1e-12)
    # one-shot calibration depends on the seed (where its reading falls): the runs differ somewhere
    assert (paired.loc["one_shot", ["sbp_diff_mmhg", "dbp_diff_mmhg"]] != 0).any()


def test_same_run_against_itself_is_exactly_zero(runs: dict[str, Path], tmp_path: Path, fast_report: list):
    """A copy of ``a`` without its one_shot logs: ``none`` differs by exactly 0; one_shot is noted."""
    copy = shutil.copytree(runs["a"], tmp_path / "a_again")
    for p in (copy / "logs").glob("one_shot__seed*.parquet"):
        p.unlink()
    # a stale log of a seed the experiment no longer has is not read (as by `bprl report`)
    stale = pd.read_parquet(copy / "logs" / "none__seed0.parquet").assign(seed=7)
    stale["corr_sbp_mmhg"] += 5.0
    stale.to_parquet(copy / "logs" / "none__seed7.parquet")
    for folder in (runs["a"], copy):
        config = yaml.safe_load((folder / "config.resolved.yaml").read_text())
        assert cmp.current_log_paths(folder, config) == ex.current_logs(folder, config)
    res = cmp.compare_results(
        [runs["a"], copy], out=tmp_path / "self", labels=["first", "again"], n_resamples=N_RESAMPLES
    )
    paired = res.paired
    assert list(paired["policy"]) == ["none"] and list(paired["run"]) == ["again"]
    for bp in ("sbp", "dbp"):
        for col in ("diff_mmhg", "diff_ci_lo_mmhg", "diff_ci_hi_mmhg", "n_better", "n_worse"):
            assert (paired[f"{bp}_{col}"] == 0).all(), col
        assert (paired[f"{bp}_mae_run_mmhg"] == paired[f"{bp}_mae_reference_mmhg"]).all()
    (call,) = fast_report
    assert "policy one_shot is only in run first: no paired difference" in call["problems"]
    assert call["title"] == "Comparison of runs: first, again"
    assert list(pd.unique(call["logs"]["policy"])) == ["first:none", "again:none", "first:one_shot"]
    assert list(pd.unique(call["logs"]["family"])) == ["first:none", "again:none", "first:one_shot"]
    # a policy missing from the first run is compared with the first run that has it
    trio = [cmp.read_run(f, n) for f, n in ((copy, "again"), (runs["a"], "a"), (runs["b"], "b"))]
    paired = cmp.paired_differences(trio, n_resamples=N_RESAMPLES)
    assert list(paired["policy"]) == ["none", "none", "one_shot"]
    assert list(paired["reference"]) == ["again", "again", "a"]
    assert list(paired["run"]) == ["a", "b", "b"]
    assert (paired.loc[paired["run"] == "a", ["sbp_diff_mmhg", "dbp_diff_mmhg"]] == 0).all(axis=None)


# ------------------------------------------------------------------ refusals
def test_refuses_different_test_subjects(runs: dict[str, Path], tmp_path: Path):
    only_a = sorted(_subjects(runs["a"]) - _subjects(runs["split1"]))
    only_c = sorted(_subjects(runs["split1"]) - _subjects(runs["a"]))
    assert only_a and only_c
    with pytest.raises(EvaluationError) as info:
        cmp.compare_results([runs["a"], runs["split1"]], out=tmp_path / "x")
    msg = str(info.value)
    assert "different test subjects" in msg
    assert f"only in {runs['a']}: {', '.join(only_a)} ({len(only_a)})" in msg
    assert f"only in {runs['split1']}: {', '.join(only_c)} ({len(only_c)})" in msg
    assert not (tmp_path / "x").exists(), "nothing is written before the checks pass"


def test_refuses_same_ids_of_another_cohort(runs: dict[str, Path], tmp_path: Path):
    assert _subjects(runs["a"]) == _subjects(runs["cohort6"])
    with pytest.raises(
        EvaluationError, match=r"different cohorts \(cohort.virtual: .*'seed': 5.* against .*'seed': 6"
    ):
        cmp.compare_results([runs["a"], runs["cohort6"]], out=tmp_path / "x")


def test_refuses_bad_folders_and_labels(runs: dict[str, Path], tmp_path: Path):
    a, b = runs["a"], runs["b"]
    cases = [
        ([a], {}, "at least two results folders, got 1"),
        ([a, a], {}, "the same results folder given twice"),
        ([a, tmp_path / "missing"], {}, "not a folder"),
        ([a, tmp_path], {}, "not a results folder of `bprl run`"),
        ([a, b], {"labels": ["x", "x"]}, r"duplicate label\(s\) \['x'\]"),
        ([a, b], {"labels": ["x"]}, "1 labels for 2 results folders"),
        ([a, b], {"labels": ["x", "y:z"]}, r"invalid label\(s\) \['y:z'\]"),
        ([a, b], {"out": a}, "is the input folder of run a"),
        ([a, b], {"out": a / "logs"}, "is not an earlier comparison"),
    ]
    for folders, kwargs, pattern in cases:
        with pytest.raises(EvaluationError, match=pattern):
            cmp.compare_results(folders, **kwargs)


def test_default_labels_and_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert cmp.default_labels(["x/run", "y/run", "z/other"]) == ["x-run", "y-run", "other"]
    assert cmp.default_labels(["p/x/run", "q/x/run"]) == ["x-run-1", "x-run-2"]
    assert cmp.default_labels(["r/.hidden run"]) == ["hidden_run"]
    failures = doctest.testmod(cmp, verbose=False).failed
    assert failures == 0
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "compare_a_b").mkdir(parents=True)
    (tmp_path / "results" / "compare_a_b" / "precious.txt").write_text("not a comparison")
    with pytest.raises(EvaluationError, match=r"results/compare_a_b exists and is not an earlier comparison"):
        cmp._check_out(Path("results") / "compare_a_b", [])


# ------------------------------------------------------------------ command line
def test_cli(runs: dict[str, Path], comparison: cmp.Comparison, tmp_path: Path, fast_report: list):
    cli = CliRunner()
    out = tmp_path / "again"
    args = ["compare", str(runs["a"]), str(runs["b"]), "--out", str(out), "--seed", str(SEED)]
    res = cli.invoke(app, [*args, "--n-resamples", str(N_RESAMPLES)])
    assert res.exit_code == 0, res.output
    assert f"report: {out / 'report.html'}" in res.output
    # deterministic: the same inputs give byte-identical files (the report's own determinism is
    # tested in test_reports.py; here it is a stub)
    for name in ("paired_differences.csv", "metrics.csv", cmp.COMPARED_FILE):
        assert (out / name).read_bytes() == (comparison.out / name).read_bytes(), name
    assert fast_report[0]["seed"] == SEED and fast_report[0]["n_resamples"] == N_RESAMPLES

    res = cli.invoke(app, ["compare", str(runs["a"]), str(runs["split1"]), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert res.output.startswith("error: compare: ") and "different test subjects" in res.output
    res = cli.invoke(app, ["compare", str(runs["a"])])
    assert res.exit_code == 2 and "at least two results folders" in res.output
    res = cli.invoke(app, [*args, "--label", "x", "--label", "x"])
    assert res.exit_code == 2 and "duplicate label" in res.output
    assert len(fast_report) == 1
