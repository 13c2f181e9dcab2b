"""The HTML / Markdown report on a small synthetic log: written, complete, and byte-identical on a rerun."""

from __future__ import annotations

import base64
import doctest
import importlib
import re
import sys

import numpy as np
import pandas as pd
import pytest

import bprl.evaluation.pareto
from bprl import evaluation as ev
from bprl import provenance, report
from bprl.schemas import EPISODE_LOG_COLUMNS

POLICIES = ("fixed_interval", "ppo", "oracle")


def synthetic_log(steps: int = 24, step_s: float = 60.0, seed: int = 0) -> pd.DataFrame:
    """3 policies x 2 seeds x 4 subjects; each policy has its own noise level and cuff interval."""
    rng = np.random.default_rng(seed)
    frames = []
    for pi, policy in enumerate(POLICIES):
        for s in (0, 1):
            for si in range(4):
                t = (np.arange(steps) + 1) * step_s
                ref_s = 115.0 + 10.0 * si + 18.0 * np.sin(t / 500.0 + si)
                ref_d = 0.6 * ref_s + rng.normal(0, 2, steps)
                noise = (5.0, 3.0, 0.5)[pi]
                cuff = np.zeros(steps, bool)
                cuff[:: (12, 6, 24)[pi]] = True
                ref_s[3] = np.nan  # a step without reference
                frames.append(
                    pd.DataFrame(
                        {
                            "policy": policy,
                            "seed": s,
                            "subject_id": f"s{si}",
                            "episode": si,
                            "step": np.arange(steps),
                            "t_s": t,
                            "est_sbp_mmhg": ref_s + 12 + rng.normal(0, 6, steps),
                            "est_dbp_mmhg": ref_d - 6 + rng.normal(0, 4, steps),
                            "corr_sbp_mmhg": ref_s + rng.normal(0, noise, steps),
                            "corr_dbp_mmhg": ref_d + rng.normal(0, 0.7 * noise, steps),
                            "ref_sbp_mmhg": ref_s,
                            "ref_dbp_mmhg": ref_d,
                            "cuff": cuff,
                            "cuff_sbp_mmhg": np.where(cuff, ref_s + 2, np.nan),
                            "cuff_dbp_mmhg": np.where(cuff, ref_d, np.nan),
                            "reward": -np.abs(rng.normal(0, 1, steps)),
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True)[list(EPISODE_LOG_COLUMNS)]


PROVENANCE = {"git_commit": "0123abc", "numpy": np.__version__}
CONFIG = {"experiment": "unit-test", "seeds": [0, 1], "env": {"step_s": 60}}


@pytest.fixture(scope="module")
def report_pair(tmp_path_factory):
    log = synthetic_log()
    metrics = ev.compare_policies(log, n_resamples=200)
    out = []
    for name in ("a", "b"):
        d = tmp_path_factory.mktemp(name)
        out.append((d, report.write_report(d, log, metrics, CONFIG, provenance=PROVENANCE)))
    return out


def test_report_written_with_table_and_images(report_pair):
    d, (html_path, md_path) = report_pair[0]
    assert html_path == d / "report.html" and md_path == d / "report.md"
    page = html_path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # the comparison table: every policy has a row, with pass/fail cells
    assert "<table>" in page and "AAMI c1 SBP" in page and "ISO 81060-3 SBP" in page
    for policy in POLICIES:
        assert f"<td>{policy}</td>" in page
    assert 'class="pass"' in page or 'class="fail"' in page
    # self-contained: every image is embedded PNG, no external sources
    imgs = re.findall(r'src="([^"]+)"', page)
    pngs = sorted((d / "figures").glob("*.png"))
    assert len(imgs) == len(pngs) == 10  # population, 2 Bland-Altman, time, cuffs, per subject, 4 traces
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for fig in (
        "test_population",
        "bland_altman_sbp",
        "bland_altman_dbp",
        "cuffs_vs_mae",
        "per_subject_errors",
        *(f"trace_s{i}" for i in range(4)),
    ):
        assert f'id="{fig}"' in page
        # every figure as PNG, SVG and PDF
        assert (d / "figures" / f"{fig}.png").is_file()
        assert (d / "figures" / f"{fig}.svg").read_bytes().lstrip().startswith(b"<?xml")
        assert (d / "figures" / f"{fig}.pdf").read_bytes()[:5] == b"%PDF-"
    # oracle note, subject-count flag, configuration and provenance
    assert "upper bound" in page and "85 subjects" in page
    assert "unit-test" in page and "0123abc" in page
    md = md_path.read_text(encoding="utf-8")
    assert "| Policy |" in md and "](figures/bland_altman_sbp.png)" in md and "```yaml" in md
    # no temporary files left behind by the atomic writes
    assert not [p for p in d.rglob("*") if p.name.endswith(".tmp")]


def test_report_numbers_match_metrics(report_pair):
    _, (html_path, _) = report_pair[0]
    log = synthetic_log()
    metrics = ev.compare_policies(log, n_resamples=200)
    page = html_path.read_text(encoding="utf-8")
    for _, row in metrics.iterrows():
        assert (
            f"{row['sbp_mae_mmhg']:.1f} [{row['sbp_mae_ci_lo_mmhg']:.1f}, {row['sbp_mae_ci_hi_mmhg']:.1f}]"
            in page
        )
        assert f"{row['cuffs_per_hour']:.2f}" in page
    # cuff every 12 / 6 / 24 steps of 60 s over 24-minute episodes: 2 / 4 / 1 readings in 0.4 h
    assert list(metrics["cuffs_per_hour"]) == pytest.approx([5.0, 10.0, 2.5])


def test_report_is_deterministic(report_pair):
    (da, (ha, ma)), (db, (hb, mb)) = report_pair
    assert ha.read_bytes() == hb.read_bytes()
    assert ma.read_bytes() == mb.read_bytes()
    figs_a = sorted(p.name for p in (da / "figures").iterdir())
    assert figs_a == sorted(p.name for p in (db / "figures").iterdir())
    for name in figs_a:
        assert (da / "figures" / name).read_bytes() == (db / "figures" / name).read_bytes()


def test_pareto_front():
    # (cuffs/h, MAE): (1, 9) (2, 5) (3, 6) (4, 2) (4, 3) (NaN, 0): (3, 6) is beaten by (2, 5);
    # (4, 3) by (4, 2); NaN is never on the front
    assert ev.pareto_front([1, 2, 3, 4, 4, np.nan], [9, 5, 6, 2, 3, 0]) == [0, 1, 3]
    # ties: identical points are both kept (neither strictly better)
    assert ev.pareto_front([1, 1], [2, 2]) == [0, 1]
    assert ev.pareto_front([], []) == []
    # the report draws the front with the evaluation package's function
    assert report.pareto_front is ev.pareto_front


def test_pareto_front_docstring_examples():
    result = doctest.testmod(bprl.evaluation.pareto, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_collect_provenance_lists_packages():
    prov = report.collect_provenance()
    assert prov["numpy"] == np.__version__
    assert set(report.PROVENANCE_PACKAGES) <= set(prov) and "git_commit" in prov
    # one implementation: the flat mapping is built from bprl.provenance
    assert prov["git_commit"] == (provenance.git_commit() or "unknown")
    assert {k: prov[k] for k in report.PROVENANCE_PACKAGES} == provenance.package_versions(
        report.PROVENANCE_PACKAGES
    )


def test_format_value_cells():
    assert report.format_value(None) == "–" and report.format_value(float("nan")) == "–"
    assert report.format_value(np.bool_(True)) == "pass" and report.format_value(False) == "FAIL"
    assert report.format_value(np.int64(7)) == "7" and report.format_value(-0.04) == "0.0"
    assert report.format_value(2.345, 2) == "2.35" and report.format_value("B") == "B"


def test_report_rejects_bad_log(tmp_path):
    from bprl.errors import BprlError

    with pytest.raises(BprlError, match="missing columns"):
        report.write_report(tmp_path, synthetic_log().drop(columns=["corr_sbp_mmhg"]))
    assert not (tmp_path / "report.html").exists()


def test_report_shows_recorded_provenance(tmp_path):
    # the runner's provenance.json in the results folder is shown, nested keys flattened
    log = synthetic_log(steps=8)
    log = log[(log["policy"] == "ppo") & (log["seed"] == 0)]
    (tmp_path / "provenance.json").write_text('{"git": {"commit": "feedbee"}, "python": "3.11.9"}')
    html_path, md_path = report.write_report(tmp_path, log, n_resamples=20)
    page = html_path.read_text(encoding="utf-8")
    assert "<td>git.commit</td>" in page and "feedbee" in page
    assert "| git.commit | feedbee |" in md_path.read_text(encoding="utf-8")
    # one policy, no oracle: no upper-bound note
    assert "upper bound" not in page


def test_reports_shim_warns_and_reexports(monkeypatch):
    """The deprecated bprl.reports warns on import and re-exports its old names from bprl.report."""
    import bprl

    monkeypatch.delitem(sys.modules, "bprl.reports", raising=False)  # restored after the test
    monkeypatch.delattr(bprl, "reports", raising=False)
    with pytest.warns(DeprecationWarning, match=r"bprl\.reports is deprecated; import from bprl\.report"):
        shim = importlib.import_module("bprl.reports")
    for name in shim.__all__:
        assert getattr(shim, name) is getattr(report, name)
    assert {"write_report", "collect_provenance", "pareto_front", "PROVENANCE_PACKAGES"} <= set(shim.__all__)
