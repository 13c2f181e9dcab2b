"""The README and the generated docs pages: size, links, the runnable example, the results page.

The docs site itself is built strictly by ``make docs`` (and inside ``make test``): broken links,
missing pages and failing generated blocks fail there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from bprl import evaluation as ev
from bprl.cli import app
from bprl.errors import EvaluationError
from bprl.provenance import provenance
from bprl.report.docs_page import default_command, results_page, write_results_page
from bprl.schemas import EPISODE_LOG_COLUMNS

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
#: Markdown links and images: [text](target) / ![alt](target)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _readme() -> str:
    return README.read_text(encoding="utf-8")


# ------------------------------------------------------------------ README
def test_readme_is_at_most_12_kb():
    assert README.stat().st_size <= 12 * 1024, f"README.md is {README.stat().st_size} bytes"


def test_readme_links_to_the_calibrator_how_to():
    assert "(docs/how-to/add-calibrator.md)" in _readme()


def test_every_relative_readme_link_resolves():
    targets = LINK.findall(_readme())
    assert targets, "no links found in README.md"
    missing = []
    for target in targets:
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # web address or anchor
        path = (README.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert not missing, f"README.md links to missing files: {missing}"


def test_readme_python_example_runs(monkeypatch, tmp_path, capsys):
    """The ```python block of the README, as written, builds the default data and prints metrics."""
    blocks = re.findall(r"```python\n(.*?)```", _readme(), flags=re.S)
    assert len(blocks) == 1, "README.md should hold exactly one python example"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 12
    monkeypatch.setenv("BPRL_CACHE_DIR", str(tmp_path / "cache"))  # the built-in replay set, built here
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    assert "periodic" in out and "sbp_mae_mmhg" in out and "cuffs_per_hour" in out


# ------------------------------------------------------------------ results page
POLICIES = ("none", "periodic", "oracle")


def _log(seed: int = 0) -> pd.DataFrame:
    """3 policies x 2 seeds x 3 subjects of 20 one-minute steps, errors growing with the policy index."""
    rng = np.random.default_rng(seed)
    frames = []
    for pi, policy in enumerate(POLICIES):
        for s in (0, 1):
            for si in range(3):
                t = (np.arange(20) + 1) * 60.0
                ref_s = 120.0 + 8.0 * si + 15.0 * np.sin(t / 400.0 + si)
                ref_d = 0.6 * ref_s + rng.normal(0, 2, 20)
                noise = (12.0, 4.0, 0.5)[pi]
                cuff = np.zeros(20, bool)
                cuff[:: (40, 5, 40)[pi]] = pi > 0
                frames.append(
                    pd.DataFrame(
                        {
                            "policy": policy,
                            "seed": s,
                            "subject_id": f"v000{si + 1}",
                            "episode": si,
                            "step": np.arange(20),
                            "t_s": t,
                            "est_sbp_mmhg": ref_s + 10 + rng.normal(0, 6, 20),
                            "est_dbp_mmhg": ref_d - 5 + rng.normal(0, 4, 20),
                            "corr_sbp_mmhg": ref_s + rng.normal(0, noise, 20),
                            "corr_dbp_mmhg": ref_d + rng.normal(0, 0.7 * noise, 20),
                            "ref_sbp_mmhg": ref_s,
                            "ref_dbp_mmhg": ref_d,
                            "cuff": cuff,
                            "cuff_sbp_mmhg": np.where(cuff, ref_s + 2, np.nan),
                            "cuff_dbp_mmhg": np.where(cuff, ref_d, np.nan),
                            "reward": -np.abs(rng.normal(0, 1, 20)),
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True)[list(EPISODE_LOG_COLUMNS)]


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    """A results folder as ``bprl run`` leaves it: metrics tables, resolved config, provenance, failures."""
    out = tmp_path_factory.mktemp("results") / "demo"
    out.mkdir()
    log = _log()
    metrics = ev.compare_policies(log, n_resamples=100)
    per_subject = ev.evaluate_subjects(log)
    metrics.to_csv(out / "metrics.csv", index=False)
    per_subject.to_csv(out / "metrics_per_subject.csv", index=False)
    payload = {
        "metrics": json.loads(metrics.to_json(orient="records")),
        "per_subject": json.loads(per_subject.to_json(orient="records")),
    }
    (out / "metrics.json").write_text(json.dumps(payload))
    config = {"name": "demo", "description": "A tiny test.", "seeds": [0, 1], "policies": list(POLICIES)}
    (out / "config.resolved.yaml").write_text(
        "# resolved from experiments/demo.yaml; a valid experiment file itself\n" + yaml.safe_dump(config)
    )
    prov = provenance() | {"git": {"commit": "0123abcd", "dirty": False}, "stage_seconds": {"total": 12.5}}
    (out / "provenance.json").write_text(json.dumps(prov))
    pd.DataFrame({"unit": ["features/r9"], "error": ["r9.hea: no PPG channel"]}).to_csv(
        out / "failures.csv", index=False
    )
    return out


def test_results_page_has_command_experiment_metrics_standards_and_provenance(results_dir):
    page = results_page(results_dir, "make demo")
    assert page.startswith("# Results: demo\n")
    assert "```bash\nmake demo\n```" in page
    assert "**test subjects** (3): `v0001`, `v0002`, `v0003`" in page
    assert "**seeds**: 0, 1" in page
    metrics = pd.read_csv(results_dir / "metrics.csv")
    for policy, mae, lo, hi in zip(
        metrics["policy"],
        metrics["sbp_mae_mmhg"],
        metrics["sbp_mae_ci_lo_mmhg"],
        metrics["sbp_mae_ci_hi_mmhg"],
        strict=True,
    ):
        assert f"| {policy} |" in page
        assert f"{mae:.1f} [{lo:.1f}, {hi:.1f}]" in page  # MAE with its bootstrap interval
    for heading in ("## Accuracy", "## Standards", "## Criterion details", "## Provenance", "## Notes"):
        assert heading in page
    assert "AAMI c1 SBP" in page and "BHS SBP" in page and "IEEE 1708 SBP" in page and "Cuffs / h" in page
    assert "| git commit | 0123abcd |" in page and "| uncommitted changes | no |" in page
    assert "| bprl version | 0.1.0 |" in page and "| numpy |" in page
    assert "oracle" in page and "upper bound" in page  # the oracle note
    assert "Skipped input: features/r9: r9.hea: no PPG channel" in page
    assert results_page(results_dir, "make demo") == page  # deterministic


def test_results_page_from_csv_only(results_dir, tmp_path):
    """Without metrics.json the page reads metrics.csv and metrics_per_subject.csv."""
    for name in ("metrics.csv", "metrics_per_subject.csv"):
        (tmp_path / name).write_bytes((results_dir / name).read_bytes())
    page = results_page(tmp_path, "bprl run x.yaml")
    assert f"# Results: {tmp_path.name}" in page and "`v0002`" in page
    assert "The results folder has no `provenance.json`." in page


def test_results_page_needs_metrics(tmp_path):
    with pytest.raises(EvaluationError, match=r"no metrics\.json or metrics\.csv"):
        results_page(tmp_path, "make demo")


def test_default_command_and_cli(results_dir, tmp_path):
    assert default_command(results_dir) == "bprl run experiments/demo.yaml"
    assert default_command(tmp_path) == f"bprl run {(tmp_path / 'config.resolved.yaml').as_posix()}"
    page = tmp_path / "docs" / "results" / "demo.md"
    res = CliRunner().invoke(app, ["docs", "results-page", str(results_dir), str(page)])
    assert res.exit_code == 0, res.output
    assert page.read_text(encoding="utf-8") == results_page(results_dir, "bprl run experiments/demo.yaml")
    res = CliRunner().invoke(app, ["docs", "results-page", str(tmp_path / "none"), str(page)])
    assert res.exit_code == 2 and "no metrics.json" in res.output
    out = write_results_page(results_dir, tmp_path / "p.md", "make demo")
    assert out.read_text(encoding="utf-8").startswith("# Results: demo")
