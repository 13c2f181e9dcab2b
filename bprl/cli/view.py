"""``bprl view``: browse a results folder in a local, read-only web viewer (:mod:`bprl.report.viewer`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer

from bprl.errors import BprlError


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    """Add the ``view`` command to ``app``."""

    @app.command("view")
    def view_cmd(
        results_dir: Path = typer.Argument(..., help="a results folder written by `bprl run`"),
        host: str = typer.Option(
            "127.0.0.1", "--host", help="address to listen on (default: this machine only)"
        ),
        port: int = typer.Option(8050, "--port", min=0, max=65535, help="TCP port; 0 = any free port"),
        open_browser: bool = typer.Option(
            False, "--open/--no-open", help="open the page in the default web browser"
        ),
        log_requests: bool = typer.Option(False, "--log-requests", help="print one line per request"),
    ) -> None:
        """Serve a read-only web page of a results folder: BP traces per subject and policy, per-subject
        metrics, the report. Stop with Ctrl-C."""
        from bprl.report.viewer import ResultsData, ViewerServer

        try:
            server = ViewerServer(ResultsData(results_dir), host, port, log_requests=log_requests)
        except BprlError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            typer.echo(f"error: cannot listen on {host}:{port} ({exc})", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"bprl view: {server.url}  (serving {server.data.root} read-only; Ctrl-C to stop)")
        if not _is_loopback(host):
            typer.echo(
                f"warning: listening on {host}: anyone who can reach this address can read the results "
                "folder (there is no login); prefer 127.0.0.1 with `ssh -L`",
                err=True,
            )
        if open_browser:
            import webbrowser

            webbrowser.open(server.url)
        server.serve_until_interrupted()
        typer.echo("bprl view: stopped")
