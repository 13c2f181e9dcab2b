"""``bprl view``: the local results viewer's JSON, its refusal to serve anything outside the
results folder, the command line, and the page in a headless browser."""

from __future__ import annotations

import io
import json
import math
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import browser_console_errors
from typer.testing import CliRunner

from bprl import evaluation as ev
from bprl.cli import app
from bprl.errors import EvaluationError
from bprl.report.viewer import ResultsData, ViewerServer
from bprl.schemas import EPISODE_LOG_COLUMNS

POLICIES = ("hold", "track")
SUBJECTS = ("s0", "s1")
SEEDS = (0, 1)
STEPS = 20
SECRET = "outside the results folder\n"


def episode_log(policy: str, seed: int) -> pd.DataFrame:
    """One policy and seed on both subjects: 20 one-minute steps, a cuff reading every 5 steps."""
    rng = np.random.default_rng(100 * seed + len(policy))
    frames = []
    for si, sid in enumerate(SUBJECTS):
        t_s = (np.arange(STEPS) + 1) * 60.0
        ref_s = 120.0 + 15.0 * si + 10.0 * np.sin(t_s / 300.0)
        ref_d = 0.6 * ref_s
        ref_s[4] = np.nan  # a step without a reference
        cuff = np.arange(STEPS) % 5 == 0
        noise = 1.0 if policy == "track" else 6.0
        frames.append(
            pd.DataFrame(
                {
                    "policy": policy,
                    "seed": seed,
                    "subject_id": sid,
                    "episode": si,
                    "step": np.arange(STEPS),
                    "t_s": t_s,
                    "est_sbp_mmhg": ref_s + 10.0,
                    "est_dbp_mmhg": ref_d - 5.0,
                    "corr_sbp_mmhg": ref_s + rng.normal(0, noise, STEPS),
                    "corr_dbp_mmhg": ref_d + rng.normal(0, noise, STEPS),
                    "ref_sbp_mmhg": ref_s,
                    "ref_dbp_mmhg": ref_d,
                    "cuff": cuff,
                    "cuff_sbp_mmhg": np.where(cuff, ref_s + 1.0, np.nan),
                    "cuff_dbp_mmhg": np.where(cuff, ref_d - 1.0, np.nan),
                    "reward": -np.ones(STEPS),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[list(EPISODE_LOG_COLUMNS)]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A results folder (2 policies x 2 seeds x 2 subjects) with a report, a figure and a symlink
    pointing outside, next to a secret file outside it."""
    base = tmp_path_factory.mktemp("viewer")
    root = base / "res"
    (root / "logs").mkdir(parents=True)
    (root / "figures").mkdir()
    for policy in POLICIES:
        for seed in SEEDS:
            episode_log(policy, seed).to_parquet(root / "logs" / f"{policy}__seed{seed}.parquet")
    (root / "report.html").write_text("<!DOCTYPE html><title>report</title>", encoding="utf-8")
    (root / "figures" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (base / "secret.txt").write_text(SECRET, encoding="utf-8")
    (root / "escape.txt").symlink_to(base / "secret.txt")
    (root / "figures_link").symlink_to(base)
    return root


@pytest.fixture(scope="module")
def server(results):
    srv = ViewerServer(ResultsData(results), port=0)
    srv.start_thread()
    yield srv
    srv.stop()


def fetch(srv: ViewerServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` of one request; ``path`` is sent exactly as given."""
    req = urllib.request.Request(srv.url.rstrip("/") + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_binds_loopback_on_a_free_port(server):
    assert server.server_address[0] == "127.0.0.1" and server.server_address[1] > 0
    assert server.url == f"http://127.0.0.1:{server.server_address[1]}/"


def test_index_lists_choices_and_the_per_subject_metrics(server, results):
    status, headers, body = fetch(server, "/api/index.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    idx = json.loads(body)
    assert idx["results"] == "res" and idx["policies"] == list(POLICIES)
    assert idx["seeds"] == list(SEEDS) and idx["subjects"] == list(SUBJECTS)
    assert idx["episodes"] == {"s0": [0], "s1": [1]} and idx["n_steps"] == 8 * STEPS
    assert idx["report"] == "files/report.html" and idx["problems"] == []
    log = pd.concat([episode_log(p, s) for p in POLICIES for s in SEEDS], ignore_index=True)
    expected = ev.evaluate_subjects(log).set_index(["policy", "seed", "subject_id"])
    cols = idx["metric_columns"]
    assert len(idx["metrics"]) == len(expected) == 8
    for row in idx["metrics"]:
        rec = dict(zip(cols, row, strict=True))
        exp = expected.loc[(rec["policy"], rec["seed"], rec["subject_id"])]
        for c in ("sbp_mae_mmhg", "sbp_me_mmhg", "sbp_sd_mmhg", "dbp_mae_mmhg", "cuffs_per_hour"):
            assert rec[c] == pytest.approx(float(exp[c]), rel=1e-12)
        assert rec["n_cuff"] == 4 and rec["sbp_n_pairs"] == STEPS - 1


def test_trace_values_equal_the_log(server):
    status, _, body = fetch(server, "/api/trace.json?subject=s1&seed=1&policy=track&policy=hold")
    assert status == 200
    tr = json.loads(body)
    assert tr["subject"] == "s1" and tr["seed"] == 1 and tr["missing"] == []
    assert [s["policy"] for s in tr["series"]] == ["track", "hold"]
    for s in tr["series"]:
        log = episode_log(s["policy"], 1)
        g = log[log["subject_id"] == "s1"]
        assert s["episode"] == 1
        assert s["t_h"] == pytest.approx((g["t_s"] / 3600.0).tolist())
        for col in ("est_sbp_mmhg", "corr_sbp_mmhg", "corr_dbp_mmhg", "ref_sbp_mmhg", "ref_dbp_mmhg"):
            want = [None if math.isnan(v) else v for v in g[col]]
            assert s[col] == want, col
        assert s["ref_sbp_mmhg"][4] is None
        cuff = g[g["cuff"]]
        assert s["cuff"]["t_h"] == pytest.approx((cuff["t_s"] / 3600.0).tolist())
        assert s["cuff"]["dbp_mmhg"] == cuff["cuff_dbp_mmhg"].tolist()


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("subject=nobody&seed=0&policy=hold", 404),
        ("subject=s0&seed=7&policy=hold", 404),
        ("subject=s0&seed=0&policy=nope", 404),
        ("subject=s0&seed=0", 400),
        ("subject=s0&seed=zero&policy=hold", 400),
        ("seed=0&policy=hold", 400),
    ],
)
def test_trace_rejects_bad_queries(server, query, status):
    code, _, body = fetch(server, f"/api/trace.json?{query}")
    assert code == status and "error" in json.loads(body)


def test_serves_page_plotly_and_files(server, results):
    status, headers, page = fetch(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<script src="plotly.min.js">' in page
    assert b"http://" not in page and b"https://" not in page  # nothing from the internet
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, _, js = fetch(server, "/plotly.min.js")
    assert status == 200 and b"plotly.js" in js[:200] and len(js) > 1_000_000
    assert fetch(server, "/files/report.html")[2] == (results / "report.html").read_bytes()
    status, headers, png = fetch(server, "/files/figures/x.png")
    assert status == 200 and headers["Content-Type"] == "image/png" and png.startswith(b"\x89PNG")
    status, headers, body = fetch(server, "/", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(page)


@pytest.mark.parametrize(
    "path",
    [
        "/files/../pyproject.toml",
        "/files/../secret.txt",
        "/files/%2e%2e/%2e%2e/etc/passwd",
        "/files/..%2f..%2fetc%2fpasswd",
        "/files/..%2fsecret.txt",
        "/files//etc/passwd",
        "/files/%2Fetc%2Fpasswd",
        "/files/escape.txt",  # a symlink inside the folder pointing outside it
        "/files/figures_link/secret.txt",  # a symlinked folder pointing outside
        "/files/",  # a directory
        "/files/figures",
        "/files/figures/",
        "/files/missing.html",
        "/files/x%00.html",
        "/files",
        "/etc/passwd",
        "/../etc/passwd",
        "/api/nothing.json",
    ],
)
def test_nothing_outside_the_folder_and_no_listings(server, path):
    status, _, body = fetch(server, path)
    assert status == 404, path
    assert SECRET.encode() not in body and b"root:" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get_and_head(server, method):
    status, headers, _ = fetch(server, "/files/report.html", method=method)
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_trace_episode_choice_and_missing_policy(tmp_path):
    (tmp_path / "logs").mkdir()
    two = episode_log("hold", 0)
    two.loc[two["subject_id"] == "s1", ["subject_id", "corr_sbp_mmhg"]] = ["s0", 99.0]  # s0: episodes 0, 1
    two.to_parquet(tmp_path / "logs" / "hold__seed0.parquet")
    episode_log("track", 1).to_parquet(tmp_path / "logs" / "track__seed1.parquet")
    data = ResultsData(tmp_path)
    assert data.index()["episodes"] == {"s0": [0, 1], "s1": [1]}
    first = data.trace("s0", ["hold", "track"], 0)
    assert first["missing"] == ["track"] and first["series"][0]["episode"] == 0
    second = data.trace("s0", ["hold"], 0, episode=1)["series"][0]
    assert second["episode"] == 1 and second["corr_sbp_mmhg"] == [99.0] * STEPS
    assert data.trace("s0", ["hold"], 0, episode=5)["missing"] == ["hold"]


def test_not_a_results_folder(tmp_path):
    with pytest.raises(EvaluationError, match="no episode logs under logs/"):
        ResultsData(tmp_path)
    with pytest.raises(EvaluationError, match="not a folder"):
        ResultsData(tmp_path / "missing")


def test_cli_error_and_url(results, tmp_path, monkeypatch):
    res = CliRunner().invoke(app, ["view", str(tmp_path)])
    assert res.exit_code == 2 and "error:" in res.output and "no episode logs" in res.output
    monkeypatch.setattr(ViewerServer, "serve_until_interrupted", lambda self: self.server_close())
    res = CliRunner().invoke(app, ["view", str(results), "--port", "0"])
    assert res.exit_code == 0, res.output
    assert "bprl view: http://127.0.0.1:" in res.output and "stopped" in res.output


# ------------------------------------------------------------------ the page in a browser
def _wait_rendered(driver, prefix: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d) -> bool:
        return bool(
            d.execute_script(
                "const p = document.getElementById('plot');"
                "return (p.dataset.rendered || '').startsWith(arguments[0])"
                " && p.querySelectorAll('.main-svg .scatterlayer .trace path.js-line').length > 0;",
                prefix,
            )
        )

    WebDriverWait(driver, 30).until(ready)


def _plot_traces(driver) -> list[dict]:
    return driver.execute_script(
        "return document.getElementById('plot').data.map(t => ({name: t.name, y: t.y, yaxis: t.yaxis}));"
    )


def test_page_renders_updates_and_stays_local(server, browser):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser_console_errors(browser)  # drain messages of earlier tests
    browser.get(server.url)
    _wait_rendered(browser, "s0|0|hold|track")
    assert browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")
    assert browser_console_errors(browser) == []
    names = [t["name"] for t in _plot_traces(browser)]
    assert {"reference", "estimate (raw)", "hold", "track", "cuff (track)"} <= set(names)
    rows = browser.find_elements(By.CSS_SELECTOR, "#metrics tbody tr")
    assert len(rows) == 4 and rows[0].find_element(By.TAG_NAME, "td").text == "hold"
    assert (
        browser.find_element(By.LINK_TEXT, "report.html").get_attribute("href").endswith("/files/report.html")
    )

    # another subject: the corrected SBP now is subject s1's
    Select(browser.find_element(By.ID, "subject")).select_by_value("s1")
    _wait_rendered(browser, "s1|0|")
    log = episode_log("track", 0)
    want = [None if math.isnan(v) else v for v in log.loc[log["subject_id"] == "s1", "corr_sbp_mmhg"]]
    track = next(t for t in _plot_traces(browser) if t["name"] == "track" and t["yaxis"] == "y")
    assert track["y"] == want
    # one policy less: its traces and table rows go
    browser.find_element(By.CSS_SELECTOR, "#policies input[value='hold']").click()
    _wait_rendered(browser, "s1|0|track")
    assert "hold" not in [t["name"] for t in _plot_traces(browser)]
    Select(browser.find_element(By.ID, "table-seed")).select_by_value("1")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#metrics tbody tr")) == 1
    assert "subject=s1" in browser.current_url and "policy=track" in browser.current_url
    assert browser_console_errors(browser) == []
    buttons = browser.execute_script(
        "return [...document.querySelectorAll('.modebar-btn')].map(b => b.getAttribute('data-title'));"
    )
    assert "Download plot as a PNG" in buttons and not [b for b in buttons if "Share" in b]  # no cloud upload
    # every resource came from this server
    urls = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
    assert urls and all(u.startswith(server.url) for u in urls)

    png = browser.get_screenshot_as_png()
    img = Image.open(io.BytesIO(png)).convert("RGB")
    width, height, ratio = browser.execute_script(
        "return [window.innerWidth, window.innerHeight, window.devicePixelRatio];"
    )
    assert img.size == (round(width * ratio), round(height * ratio))
    colors = img.getcolors(maxcolors=1_000_000)
    assert colors is not None and len(colors) > 50  # not a blank page
    assert max(n for n, _ in colors) < 0.97 * img.size[0] * img.size[1]
