"""Report v2: contents, test population, verdicts, deployable Pareto front, per-subject figures at any
cohort size, every figure as SVG/PDF and every table as LaTeX/CSV, and the page in a real browser."""

from __future__ import annotations

import csv
import re

import numpy as np
import pandas as pd
import pytest
from conftest import browser_console_errors
from test_reports import POLICIES, synthetic_log

from bprl import evaluation as ev
from bprl import report
from bprl.report.exports import latex_escape, latex_table
from bprl.report.subject_figures import SUBJECTS_PER_PAGE, per_subject_figures

SUBJECTS = pd.DataFrame(
    {
        "subject_id": ["s0", "s1", "s2", "s3", "s9"],
        "sex": ["F", "M", "M", "M", "F"],
        "age_years": [50.0, 60.0, 70.0, 40.0, 30.0],
        "af_rate_per_h": [0.0, 1.0, 0.0, 0.0, 0.0],
        "ectopic_prob": [0.01, 0.0, 0.0, 0.02, 0.0],
    }
)


def _with_no_cuff_policy(log: pd.DataFrame) -> pd.DataFrame:
    """The synthetic log plus ``never``: the fixed-interval episodes with every cuff reading removed."""
    never = log[(log["policy"] == "fixed_interval")].copy()
    never["policy"] = "never"
    never["cuff"] = False
    never[["cuff_sbp_mmhg", "cuff_dbp_mmhg"]] = np.nan
    return pd.concat([log, never], ignore_index=True)


@pytest.fixture(scope="module")
def paper_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("paper")
    log = _with_no_cuff_policy(synthetic_log())
    metrics = ev.compare_policies(log, n_resamples=200)
    html_path, md_path = report.write_report(d, log, metrics, {"experiment": "t"}, subjects=SUBJECTS)
    return d, log, metrics, html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")


def test_contents_link_every_section(paper_report):
    _, _, _, page, md = paper_report
    toc = re.search(r'<nav class="toc" id="contents">(.*?)</nav>', page, re.S).group(1)
    targets = re.findall(r'href="#([^"]+)"', toc)
    assert {"test-population", "accuracy", "standards", "bland-altman", "cuffs-vs-mae", "traces"} <= set(
        targets
    )
    for t in targets:
        assert f'<section id="{t}">' in page
    assert len(targets) == page.count("<section ")
    assert "## Contents" in md and "(#test-population)" in md


def test_population_section_matches_the_log(paper_report):
    _, log, _, page, _ = paper_report
    req = ev.iso81060_2_sample_requirements(ev.check_episode_log(log), SUBJECTS)
    by = req.set_index("requirement")
    # independent: per subject share of steps with SBP >= 140, then the mean over subjects
    first = log[(log["policy"] == log["policy"].iloc[0]) & (log["seed"] == 0)]
    shares = [
        100.0 * float((g["ref_sbp_mmhg"].dropna() >= 140).mean()) for _, g in first.groupby("subject_id")
    ]
    assert by.loc["readings with SBP ≥ 140 mmHg", "measured"] == pytest.approx(np.mean(shares))
    assert (by.loc["subjects", "measured"] == 4 and by.loc["subjects", "met"] is False) or not by.loc[
        "subjects", "met"
    ]
    # s0 F, s1-s3 M among the tested subjects (s9 is not tested): 25 % female fails the 30 % rule
    assert (
        by.loc["female subjects", "measured"] == pytest.approx(25.0) and not by.loc["female subjects", "met"]
    )
    assert "ISO 81060-2 sample requirements" in page and "1 of 4 with paroxysmal AF" in page
    # without a subjects table sex cannot be assessed
    no_meta = ev.iso81060_2_sample_requirements(ev.check_episode_log(log)).set_index("requirement")
    assert no_meta.loc["male subjects", "met"] is None
    assert report.tables.requirements_table(no_meta.reset_index())[1][1][3] == "not assessable"


def test_iso3_not_assessable_is_not_fail(paper_report):
    _, _, metrics, page, _ = paper_report
    never = metrics.set_index("policy").loc["never"]
    assert never["sbp_iso3_n_changes"] == 0 and never["sbp_iso3_verdict"] == "not assessable"
    assert not never["sbp_iso3_pass"]  # the boolean stays False: nothing was shown
    standards = re.search(r'<section id="standards">(.*?)</section>', page, re.S).group(1)
    row = re.search(r"<tr><td>never</td>(.*?)</tr>", standards).group(1)
    assert '<td class="na">not assessable</td>' in row
    # a policy with cuff readings has an assessed verdict
    assert metrics.set_index("policy").loc["ppo", "sbp_iso3_verdict"] in ("pass", "fail")
    # inaccurate with no cuff reading: a FAIL, tracking or not
    bad = ev.iso81060_3([20.0, 25.0, 30.0], [np.nan] * 3, [np.nan] * 3)
    assert bad["verdict"] == "fail"


def test_pareto_front_leaves_out_the_oracle(paper_report):
    _, _, metrics, _, _ = paper_report
    for bp in ev.BP_KINDS:
        front = ev.deployable_front(metrics, bp)
        assert "oracle" not in front and front
        # the oracle (lowest MAE at the lowest rate) would otherwise dominate everything it beats
        assert ev.pareto_front(metrics["cuffs_per_hour"], metrics[f"{bp}_mae_mmhg"]) != [
            list(metrics["policy"]).index(p) for p in front
        ]
    svg = report.cuffs_vs_mae_figure(metrics, report.policy_colors(list(metrics["policy"]))).svg.decode()
    assert "oracle (bound)" in svg and "Pareto front" in svg


def test_per_subject_figure_pages_and_names():
    n = 2 * SUBJECTS_PER_PAGE + 5
    rng = np.random.default_rng(0)
    subj = pd.DataFrame(
        [
            {
                "policy": p,
                "seed": 0,
                "subject_id": f"x{i:03d}",
                "sbp_mae_mmhg": rng.uniform(2, 9),
                "dbp_mae_mmhg": 3.0,
            }
            for p in ("a", "b")
            for i in range(n)
        ]
    )
    figs = per_subject_figures(subj, ["a", "b"], {"a": "#000000", "b": "#ff0000"})
    assert [f.name for f in figs] == ["per_subject_errors", "per_subject_errors_2", "per_subject_errors_3"]
    text = "".join(f.svg.decode() for f in figs)
    assert all(f"x{i:03d}" in text for i in range(n))  # every subject named, once per panel row
    # pages keep a readable height: the same rows per inch on a full page as the cohort grows
    assert figs[0].png != figs[1].png and len(figs[2].png) < len(figs[0].png)


def test_tables_as_latex_and_csv(paper_report):
    d, _, _, page, _ = paper_report
    tex = sorted((d / "tables").glob("*.tex"))
    names = {p.stem for p in tex}
    assert {"accuracy", "standards", "iso_81060_2_sample_requirements", "test_subjects"} <= names
    assert names == {p.stem for p in (d / "tables").glob("*.csv")}
    for p in tex:
        src = p.read_text(encoding="utf-8")
        assert "\\toprule" in src and "\\midrule" in src and "\\bottomrule" in src
        body = src.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0].strip().splitlines()
        n_cols = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", src).group(1))
        for line in body:  # every row has one unescaped & fewer than columns
            assert len(re.findall(r"(?<!\\)&", line)) == n_cols - 1, (p.name, line)
        assert src.isascii(), p.name  # no raw Unicode that pdflatex would refuse
        rows = list(csv.reader((d / "tables" / f"{p.stem}.csv").open(encoding="utf-8")))
        assert len(rows) == len(body) + 1 and len(rows[0]) == n_cols
        assert f'href="tables/{p.stem}.tex"' in page
    acc = (d / "tables" / "accuracy.tex").read_text(encoding="utf-8")
    assert "fixed\\_interval" in acc and "[" in acc
    assert latex_escape("a_b & 5 % ± 1") == "a\\_b \\& 5 \\% $\\pm$ 1"
    assert latex_table((["x"], []), "c").count("\\toprule") == 1


def test_every_figure_in_three_formats_deterministic(paper_report, tmp_path):
    d, log, metrics, _, _ = paper_report
    report.write_report(tmp_path, log, metrics, {"experiment": "t"}, subjects=SUBJECTS)
    for sub in ("figures", "tables"):
        files = sorted(p.name for p in (d / sub).iterdir())
        assert files == sorted(p.name for p in (tmp_path / sub).iterdir())
        for name in files:
            assert (d / sub / name).read_bytes() == (tmp_path / sub / name).read_bytes(), name
    stems = {p.stem for p in (d / "figures").glob("*.png")}
    assert (
        stems
        == {p.stem for p in (d / "figures").glob("*.svg")}
        == {p.stem for p in (d / "figures").glob("*.pdf")}
    )
    assert {f"trace_{s}" for s in log["subject_id"].unique()} <= stems


def test_report_renders_in_a_browser(paper_report, browser):
    from selenium.webdriver.common.by import By

    d, _, _, _, _ = paper_report
    browser.get((d / "report.html").as_uri())
    browser_console_errors(browser)  # drain
    browser.get((d / "report.html").as_uri())
    imgs = browser.find_elements(By.TAG_NAME, "img")
    assert len(imgs) == len(list((d / "figures").glob("*.png")))
    for img in imgs:  # every embedded figure decoded to a real image
        w = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
        assert w and w > 300, img.get_attribute("alt")
    assert browser_console_errors(browser) == []
    # the contents link scrolls to its section
    browser.find_element(By.CSS_SELECTOR, 'nav.toc a[href="#traces"]').click()
    top = browser.execute_script("return document.getElementById('traces').getBoundingClientRect().top")
    assert abs(top) < 50
    shot = browser.get_screenshot_as_png()
    import io

    from PIL import Image

    im = Image.open(io.BytesIO(shot)).convert("L")
    assert im.size[0] >= 1000 and len(set(im.getdata())) > 20  # a real rendering, not a blank page
    for policy in POLICIES:
        assert browser.find_elements(By.XPATH, f"//td[text()='{policy}']")


def test_latex_tables_compile_with_pdflatex(paper_report, tmp_path):
    """Every table inside a plain article with booktabs only (skipped where pdflatex is absent)."""
    import shutil
    import subprocess

    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip(
            "pdflatex not found (Debian: apt-get install texlive-latex-base texlive-latex-recommended)"
        )
    d = paper_report[0]
    body = "\n\n".join(f"\\input{{{p.as_posix()}}}" for p in sorted((d / "tables").glob("*.tex")))
    doc = tmp_path / "paper.tex"
    doc.write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n\\begin{document}\n"
        f"{body}\n\\includegraphics{{{(d / 'figures' / 'cuffs_vs_mae.pdf').as_posix()}}}\n\\end{{document}}\n",
        encoding="ascii",
    )
    run = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "paper.pdf").read_bytes()[:5] == b"%PDF-"


def test_population_rhythm_text_of_real_records_without_simulator_settings():
    """Real records have sex and age in a manifest but no simulator rhythm settings: the report says
    so instead of printing a NaN median; mixed cohorts count only the virtual subjects."""
    from bprl.report.sections import population_section

    log = synthetic_log()
    real = SUBJECTS.assign(af_rate_per_h=np.nan, ectopic_prob=np.nan)
    text = " ".join(population_section(log, real).text)
    assert "nan" not in text and "Rhythm settings: not recorded" in text
    mixed = SUBJECTS.assign(
        af_rate_per_h=[0.0, np.nan, np.nan, 0.5, 0.0], ectopic_prob=[0.01, np.nan, np.nan, 0.02, 0.0]
    )
    text = " ".join(population_section(log, mixed).text)
    assert "1 of 2 with paroxysmal AF episodes; ectopic beats median 1.50 % (max 2.00 %)" in text, text
