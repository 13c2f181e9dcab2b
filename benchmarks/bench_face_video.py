"""Full-face camera PPG speed: 640 x 480, 30 fps, face detection and tracking, side by side with
decoding alone.

The clip is a synthetic full face with a known pulse (``bprl.sources.camera.synthetic_face``,
72 bpm, drifting by 6 px, sensor noise 2 DN, MJPG), written to a temporary folder; the bundled
real clips are skin crops and have no face. Rows: decoding only (``iter_frames``), the face path
(``read_face_regions``: Haar detection every ``redetect_every`` frames, forehead and cheek
boxes, skin-pixel means), and the face path plus each rPPG algorithm on all three regions and
the quality fusion (``analyse_regions``). Speed as x real time (clip duration / CPU time of this
process, one OpenCV thread), and the mean HR error against the clip's 72 bpm.

Usage: ``python -m benchmarks face_video [--seconds 60] [--redetect-every 15]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2

from bprl.sources.camera import METHODS, analyse_regions, read_face_regions
from bprl.sources.camera.synthetic_face import write_face_video
from bprl.sources.camera.video import iter_frames

HR_BPM = 72.0


def _cpu(fn) -> tuple[float, object]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def main(argv: list[str] | None = None) -> None:
    """Print the speed table."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks face_video")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--redetect-every", type=int, default=15)
    args = ap.parse_args(argv if argv is not None else sys.argv[1:])
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_face_video(Path(tmp) / "face.avi", duration_s=args.seconds, fps=30.0, size=(640, 480))
        dur = args.seconds
        rows = []
        t, n = _cpu(lambda: sum(1 for _ in iter_frames(path)))
        rows.append(("decode only", t, ""))
        t, got = _cpu(lambda: read_face_regions(path, redetect_every=args.redetect_every))
        regions, fs_hz, _ = got
        rows.append((f"decode + face detection (every {args.redetect_every} frames) + regions", t, ""))
        t1, _ = _cpu(lambda: read_face_regions(path, redetect_every=1))
        rows.append(("decode + face detection (every frame) + regions", t1, ""))
        for method in [*METHODS, "fused"]:
            t_m, res = _cpu(lambda m=method: analyse_regions(regions, fs_hz, m))
            rows.append((f"  ... + {method} on 3 regions", t + t_m, f"{res.hr_bpm - HR_BPM:+.2f}"))
    print(f"clip: {dur:g} s, 640 x 480, 30 fps, MJPG, {n} frames; synthetic face, pulse {HR_BPM:g} bpm")
    print(f"{'step':<58}{'CPU s':>8}{'x real time':>13}{'HR error bpm':>14}")
    for label, t, err in rows:
        print(f"{label:<58}{t:>8.2f}{dur / t:>13.1f}{err:>14}")
    print(
        "CPU time of this process, one OpenCV thread; goal (issue 18): >= 2x real time with face detection."
    )


if __name__ == "__main__":
    main()
