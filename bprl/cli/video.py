"""``bprl video inspect|ppg``: camera clips (container facts, mean RGB; heart rate by rPPG)."""

from __future__ import annotations

from pathlib import Path

import typer

from bprl.errors import BprlError


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    """Add the ``video`` command group to ``app``."""
    video = typer.Typer(no_args_is_help=True, help="Camera PPG: inspect clips, heart rate from video.")
    app.add_typer(video, name="video")

    @video.command("inspect")
    def inspect_cmd(file: Path = typer.Argument(..., help="a video file (AVI, MP4, ...)")) -> None:
        """Frame rate, size, frames, duration, codec and mean RGB of a clip."""
        from bprl.sources.camera import probe_video, read_video_rgb

        try:
            info = probe_video(file)
            rgb, fs_hz, _t_s = read_video_rgb(file, min_duration_s=0.0, progress=True)
        except BprlError as exc:
            _fail(exc)
        typer.echo(f"file: {file}")
        typer.echo(f"codec: {info.fourcc}  size: {info.width}x{info.height}  fps: {info.fps:g}")
        typer.echo(f"frames: {len(rgb)} decoded ({info.n_frames} in the container)")
        typer.echo(f"duration: {len(rgb) / fs_hz:.2f} s  (timestamps: {fs_hz:.3f} Hz)")
        r, g, b = rgb.mean(axis=0)
        typer.echo(f"mean RGB: {r:.1f} {g:.1f} {b:.1f}")

    @video.command("ppg")
    def ppg_cmd(
        files: list[Path] = typer.Argument(
            ..., help="one clip, or simultaneous region clips of one recording"
        ),
        method: str = typer.Option("pos", "--method", help="green, chrom, pos, lgi, pbv or fused"),
        face: bool = typer.Option(False, "--face", help="full-face video: detect face, forehead and cheeks"),
        csv: bool = typer.Option(False, "--csv", help="print HR over time as CSV (t_s,hr_bpm,snr_db)"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
    ) -> None:
        """Mean heart rate (bpm), heart rate over time and quality of a clip, per region."""
        import numpy as np

        from bprl.sources.camera import video_ppg

        try:
            res = video_ppg(files, method=method, face=face, progress=not quiet)
        except BprlError as exc:
            _fail(exc)
        if csv:
            typer.echo("t_s,hr_bpm,snr_db")
            for t, h, q in zip(res.t_s, res.hr_t_bpm, res.snr_t_db, strict=True):
                typer.echo(f"{t:.2f},{h:.1f},{q:.2f}")
            return
        typer.echo(f"mean HR: {res.hr_bpm:.1f} bpm  (SNR {res.snr_db:.1f} dB, method {method})")
        for name, (h, q, w) in res.per_signal.items():
            typer.echo(f"  {name:<24} HR {h:6.1f} bpm  SNR {q:6.1f} dB  weight {w:.2f}")
        if len(res.t_s):
            hr = " ".join(f"{h:.0f}" for h in res.hr_t_bpm)
            typer.echo(f"HR over time (10 s windows every 2 s, bpm): {hr}")
            typer.echo(f"median of the window HRs: {float(np.median(res.hr_t_bpm)):.1f} bpm")

    @video.command("replay")
    def replay_cmd(
        cohort: Path = typer.Argument(..., help="a virtual cohort made with `bprl cohort make --video`"),
        out: Path = typer.Option(..., "--out", help="replay-set folder to write"),
        window_s: float = typer.Option(30.0, "--window-s", help="replay step window, s"),
    ) -> None:
        """Camera replay set of a video cohort: PPG-only features, delta-linear estimates (no PAT)."""
        from bprl.estimator.camera_replay import build_camera_replay_set
        from bprl.features.config import FeatureConfig

        try:
            rs = build_camera_replay_set(cohort, out, FeatureConfig(window_s=window_s, hop_s=window_s))
        except (BprlError, ValueError) as exc:
            _fail(exc)
        est = rs.info["estimator"]
        typer.echo(f"wrote {len(rs.subjects)} camera replay tables to {out}")
        typer.echo(f"estimator: delta-linear on {', '.join(est['features'])}")
