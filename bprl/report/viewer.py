"""``bprl view``: a local, read-only web viewer of a results folder.

:class:`ResultsData` reads a results folder's episode logs (``logs/*.parquet``) once and answers
the viewer's questions as JSON-ready dicts; :class:`ViewerServer` (Python's
:class:`http.server.ThreadingHTTPServer`) serves, on 127.0.0.1 by default:

* ``/``: the page (``viewer_page.html``, vanilla JavaScript) and ``/plotly.min.js``, the
  plotly.js bundled with the installed ``plotly`` package: nothing is fetched from the internet;
* ``/api/index.json``: policies, seeds, subjects, links and the per-subject metrics
  (:func:`bprl.evaluation.evaluate_subjects` of the logs);
* ``/api/trace.json?subject=S&seed=K&policy=P[&policy=Q...][&episode=E]``: time (h), estimate,
  corrected estimate, reference and cuff readings (SBP and DBP, mmHg) of one subject per policy;
* ``/files/<path>``: a regular file inside the results folder (resolved, symlinks followed and
  checked to stay inside); anything else is 404. Only GET and HEAD are answered (others: 405).
"""

from __future__ import annotations

import json
import math
import mimetypes
import shutil
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pandas as pd

from bprl import evaluation as ev
from bprl.errors import EvaluationError
from bprl.report.figures import policy_colors

#: where the viewer listens unless told otherwise (loopback only: the viewer has no login)
DEFAULT_HOST = "127.0.0.1"
#: default port of ``bprl view``
DEFAULT_PORT = 8050
#: URL prefix under which the results folder's files are served
FILES_PREFIX = "/files/"
#: files of a results folder the page links to when present
LINKED_FILES: tuple[str, ...] = ("report.html", "report.md", "metrics.csv", "metrics_per_subject.csv")
#: per-subject metric columns sent to the page (from :func:`bprl.evaluation.evaluate_subjects`)
METRIC_COLUMNS: tuple[str, ...] = (
    "policy",
    "seed",
    "subject_id",
    "sbp_n_pairs",
    "sbp_mae_mmhg",
    "sbp_me_mmhg",
    "sbp_sd_mmhg",
    "dbp_n_pairs",
    "dbp_mae_mmhg",
    "dbp_me_mmhg",
    "dbp_sd_mmhg",
    "n_cuff",
    "cuffs_per_hour",
)
#: log columns sent per policy in a trace (mmHg)
TRACE_COLUMNS: tuple[str, ...] = tuple(
    f"{kind}_{bp}_mmhg" for kind in ("est", "corr", "ref") for bp in ev.BP_KINDS
)
#: Content-Security-Policy of every answer: only this server, never another origin
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'"
)
_TEXT_SUFFIXES = {".md", ".csv", ".yaml", ".yml", ".txt", ".log", ".toml"}


class ViewerQueryError(EvaluationError):
    """A viewer API request named an unknown subject, policy, seed or episode, or a bad value."""


def _floats(values: np.ndarray) -> list[float | None]:
    """Finite values as floats, NaN / inf as None (JSON ``null``)."""
    return [v if math.isfinite(v) else None for v in np.asarray(values, dtype=float).tolist()]


def _json_value(v: Any) -> Any:
    """A numpy / pandas scalar as a plain JSON value (non-finite floats and NA as None)."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, np.bool_ | bool):
        return bool(v)
    if isinstance(v, np.integer | int):
        return int(v)
    if isinstance(v, np.floating | float):
        return float(v) if math.isfinite(v) else None
    return str(v)


def json_bytes(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON; NaN is refused (callers turn it into None first).

    Args:
        obj: plain dicts, lists, strings, numbers and None.

    Returns:
        The encoded JSON.
    """
    return json.dumps(obj, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class ResultsData:
    """The episode logs of one results folder, read once, and the JSON the viewer serves from them.

    Every file under ``logs/`` ending in ``.parquet`` is read with
    :func:`bprl.evaluation.read_episode_logs` (bad files are skipped and listed in ``problems``).

    Attributes:
        root: the resolved results folder.
        log: the checked, concatenated episode log.
        problems: one message per skipped log file.
        policies: policy names, in the order of the sorted log files.
        seeds: the seeds, ascending.
        subjects: the subject ids, sorted.
        metrics: per (policy, seed, subject) metrics (:func:`bprl.evaluation.evaluate_subjects`).
    """

    def __init__(self, results_dir: str | Path) -> None:
        """Read the logs of ``results_dir``.

        Args:
            results_dir: a results folder written by ``bprl run`` (with ``logs/*.parquet``).

        Raises:
            EvaluationError: not a folder, no episode logs under ``logs/``, or none readable.
        """
        root = Path(results_dir).expanduser()
        if not root.is_dir():
            raise EvaluationError(f"{results_dir}: not a folder (expected a results folder of `bprl run`)")
        self.root = root.resolve()
        paths = sorted(p for p in (self.root / "logs").glob("*.parquet") if p.is_file())
        if not paths:
            raise EvaluationError(
                f"{results_dir}: no episode logs under logs/ (is this a bprl results folder?)"
            )
        log, self.problems = ev.read_episode_logs(paths)
        self.log = log.sort_values(["policy", "seed", "subject_id", "episode", "step"], kind="mergesort")
        self.log = self.log.reset_index(drop=True)
        self.policies = [str(p) for p in pd.unique(log["policy"])]
        self.seeds = sorted(int(s) for s in pd.unique(log["seed"]))
        self.subjects = sorted(str(s) for s in pd.unique(log["subject_id"]))
        self.metrics = ev.evaluate_subjects(log)
        keys = ["policy", "seed", "subject_id"]
        self._rows = {
            (str(p), int(s), str(sid)): idx for (p, s, sid), idx in self.log.groupby(keys).indices.items()
        }

    def index(self) -> dict[str, Any]:
        """What the page needs to start: names, choices, links, notes and the per-subject metrics.

        Returns:
            ``results`` (folder name), ``policies``, ``colors`` (hex per policy), ``seeds``,
            ``subjects``, ``episodes`` (per subject), ``n_steps``, ``links`` (``[{name, href}]``
            of :data:`LINKED_FILES` present), ``report`` (href of report.html or None),
            ``problems``, ``metric_columns`` and ``metrics`` (one list per row, in that order).
        """
        episodes = self.log.groupby("subject_id")["episode"].unique()
        links = [
            {"name": name, "href": f"{FILES_PREFIX[1:]}{name}"}
            for name in LINKED_FILES
            if (self.root / name).is_file()
        ]
        rows = self.metrics.sort_values(["subject_id", "seed"], kind="mergesort")
        return {
            "results": self.root.name,
            "policies": self.policies,
            "colors": policy_colors(self.policies),
            "seeds": self.seeds,
            "subjects": self.subjects,
            "episodes": {str(s): sorted(int(e) for e in eps) for s, eps in episodes.items()},
            "n_steps": len(self.log),
            "links": links,
            "report": next((ln["href"] for ln in links if ln["name"] == "report.html"), None),
            "problems": list(self.problems),
            "metric_columns": list(METRIC_COLUMNS),
            "metrics": [
                [_json_value(v) for v in row] for row in rows[list(METRIC_COLUMNS)].itertuples(index=False)
            ],
        }

    def trace(
        self, subject: str, policies: Sequence[str], seed: int, episode: int | None = None
    ) -> dict[str, Any]:
        """The time series of one subject and seed for each of ``policies``.

        Args:
            subject: subject id.
            policies: policy names (at least one).
            seed: the seed.
            episode: the episode (default: each policy's first episode of the subject).

        Returns:
            ``subject``, ``seed``, ``missing`` (policies without an episode of that subject and
            seed) and ``series``: per policy ``policy``, ``episode``, ``t_h`` (window end, hours),
            the :data:`TRACE_COLUMNS` (mmHg, None where missing) and ``cuff`` (``t_h``,
            ``sbp_mmhg``, ``dbp_mmhg`` of the cuff readings).

        Raises:
            ViewerQueryError: an unknown subject, seed or policy, or no policy given.
        """
        if subject not in self.subjects:
            raise ViewerQueryError(f"unknown subject {subject!r}")
        if seed not in self.seeds:
            raise ViewerQueryError(f"unknown seed {seed!r}")
        unknown = [p for p in policies if p not in self.policies]
        if unknown or not policies:
            raise ViewerQueryError(f"unknown policies {unknown}" if unknown else "no policy given")
        series, missing = [], []
        for policy in policies:
            idx = self._rows.get((policy, seed, subject))
            g = None if idx is None else self.log.iloc[idx]
            if g is not None:
                g = g[g["episode"] == (g["episode"].min() if episode is None else episode)]
            if g is None or g.empty:
                missing.append(policy)
                continue
            series.append(self._series(policy, g))
        return {"subject": subject, "seed": seed, "missing": missing, "series": series}

    @staticmethod
    def _series(policy: str, g: pd.DataFrame) -> dict[str, Any]:
        """One policy's episode as JSON-ready lists (``g`` sorted by step)."""
        t_h = g["t_s"].to_numpy(dtype=float) / 3600.0
        out: dict[str, Any] = {"policy": policy, "episode": int(g["episode"].iloc[0]), "t_h": _floats(t_h)}
        for col in TRACE_COLUMNS:
            out[col] = _floats(g[col].to_numpy(dtype=float))
        cuff = g["cuff"].to_numpy(dtype=bool)
        out["cuff"] = {
            "t_h": _floats(t_h[cuff]),
            "sbp_mmhg": _floats(g["cuff_sbp_mmhg"].to_numpy(dtype=float)[cuff]),
            "dbp_mmhg": _floats(g["cuff_dbp_mmhg"].to_numpy(dtype=float)[cuff]),
        }
        return out

    def file(self, rel: str) -> Path | None:
        """The regular file ``rel`` (URL-decoded, relative) inside the results folder, else None.

        The path is resolved (``..`` and symlinks followed) and must stay inside :attr:`root`;
        absolute paths, folders, missing files and anything outside give None.

        Args:
            rel: the path after :data:`FILES_PREFIX`, already URL-decoded.
        """
        if not rel or "\x00" in rel:
            return None
        try:
            target = (self.root / rel).resolve()
        except (OSError, RuntimeError, ValueError):
            return None
        return target if target.is_relative_to(self.root) and target.is_file() else None


def _page_html() -> bytes:
    """The page, ``viewer_page.html`` next to this module (package data)."""
    return resources.files("bprl.report").joinpath("viewer_page.html").read_bytes()


def _plotly_js() -> bytes:
    """plotly.js as bundled with the installed ``plotly`` package (no network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode("utf-8")


def _content_type(path: Path) -> str:
    """Content type of a served file: plain text for text formats, else by suffix."""
    if path.suffix.lower() in _TEXT_SUFFIXES:
        return "text/plain; charset=utf-8"
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind in ("text/html", "application/json") else kind


class _Handler(BaseHTTPRequestHandler):
    """Answers GET and HEAD from the server's :class:`ResultsData`; 405 for other methods."""

    server: ViewerServer
    server_version = "bprl-view"
    sys_version = ""

    def do_GET(self) -> None:
        """Answer a GET request."""
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        """Answer a HEAD request: the headers of the GET answer, no body."""
        self._answer(send_body=False)

    def _not_allowed(self) -> None:
        """405 with ``Allow: GET, HEAD``."""
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"405 method not allowed\n", "text/plain", True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def log_message(self, format: str, *args: Any) -> None:
        """Log a request to stderr only when the server's ``log_requests`` is on."""
        if self.server.log_requests:
            super().log_message(format, *args)

    def _send(self, status: HTTPStatus, body: bytes, ctype: str, send_body: bool, cache_s: int = 0) -> None:
        """Send ``body`` with the security headers (no body for HEAD)."""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self._common_headers(cache_s)
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET, HEAD")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _common_headers(self, cache_s: int) -> None:
        """Caching and security headers of every answer."""
        self.send_header("Cache-Control", f"max-age={cache_s}" if cache_s else "no-store")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")

    def _answer(self, send_body: bool) -> None:
        """Route one GET / HEAD request."""
        url = urlsplit(self.path)
        path = url.path
        srv = self.server
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, srv.page, "text/html; charset=utf-8", send_body)
        elif path == "/plotly.min.js":
            self._send(HTTPStatus.OK, srv.plotly_js, "text/javascript; charset=utf-8", send_body, 86400)
        elif path == "/api/index.json":
            self._send(HTTPStatus.OK, srv.index_json, "application/json", send_body)
        elif path == "/api/trace.json":
            self._trace(url.query, send_body)
        elif path.startswith(FILES_PREFIX):
            self._file(unquote(path[len(FILES_PREFIX) :]), send_body)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"404 not found\n", "text/plain", send_body)

    def _trace(self, query: str, send_body: bool) -> None:
        """``/api/trace.json``: 400 on a missing or malformed parameter, 404 on unknown names."""
        q = parse_qs(query)
        policies = [p for v in q.get("policy", []) for p in v.split(",") if p]
        try:
            seed = int(q["seed"][0])
            episode = int(q["episode"][0]) if "episode" in q else None
            subject = q["subject"][0]
            if not policies:
                raise KeyError("policy")
        except (KeyError, ValueError):
            err = {"error": "need subject, seed (integer), policy and optionally episode (integer)"}
            self._send(HTTPStatus.BAD_REQUEST, json_bytes(err), "application/json", send_body)
            return
        try:
            body = json_bytes(self.server.data.trace(subject, policies, seed, episode))
        except ViewerQueryError as exc:
            self._send(HTTPStatus.NOT_FOUND, json_bytes({"error": str(exc)}), "application/json", send_body)
            return
        self._send(HTTPStatus.OK, body, "application/json", send_body)

    def _file(self, rel: str, send_body: bool) -> None:
        """``/files/<rel>``: stream a regular file inside the results folder, else 404."""
        target = self.server.data.file(rel)
        if target is None:
            self._send(HTTPStatus.NOT_FOUND, b"404 not found\n", "text/plain", send_body)
            return
        try:
            with target.open("rb") as fh:
                size = target.stat().st_size
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", _content_type(target))
                self.send_header("Content-Length", str(size))
                self._common_headers(0)
                self.end_headers()
                if send_body:
                    shutil.copyfileobj(fh, self.wfile)
        except OSError:
            self.close_connection = True


class ViewerServer(ThreadingHTTPServer):
    """The viewer's HTTP server over one :class:`ResultsData` (one thread per request).

    Use :meth:`serve_until_interrupted` from a command line, or :meth:`start_thread` and
    :meth:`stop` from Python (tests, notebooks).

    Attributes:
        data: the results folder's data.
        log_requests: print one line per request to stderr (off: quiet).
        page: the HTML page; plotly_js: plotly.js; index_json: ``/api/index.json``.
    """

    daemon_threads = True

    def __init__(
        self,
        data: ResultsData,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        log_requests: bool = False,
    ) -> None:
        """Bind ``host:port`` (port 0: a free port chosen by the system); does not serve yet.

        Args:
            data: the results folder's data.
            host: address to bind (default 127.0.0.1; an IPv6 address such as ``::1`` works too).
            port: TCP port, 0 for any free one.
            log_requests: print one line per request to stderr.

        Raises:
            OSError: the address cannot be bound (port in use, unknown host).
        """
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.data = data
        self.log_requests = log_requests
        self.page = _page_html()
        self.plotly_js = _plotly_js()
        self.index_json = json_bytes(data.index())
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        """Bind without the reverse-DNS lookup of :class:`http.server.HTTPServer` (can be slow)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up mid-answer; report other errors as the stdlib does."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        """The page's URL, e.g. ``http://127.0.0.1:8050/``."""
        host = self.server_name
        return f"http://[{host}]:{self.server_port}/" if ":" in host else f"http://{host}:{self.server_port}/"

    def start_thread(self) -> threading.Thread:
        """Serve in a daemon thread; returns it (stop with :meth:`stop`)."""
        self._thread = threading.Thread(target=self.serve_forever, name="bprl-view", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Stop serving (when :meth:`start_thread` started it) and close the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def serve_until_interrupted(self) -> None:
        """Serve in this thread until Ctrl-C (or SIGTERM in the main thread), then close the socket."""
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.server_close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
