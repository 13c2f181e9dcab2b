"""Video reading for camera PPG: decode with OpenCV, spatial-mean RGB per frame, frame times.

Two inputs are handled:

- skin-region crops (the whole frame is skin, as in the shipped ``bias_eval_rppg`` clips):
  :func:`read_video_rgb` averages the frame (or a fixed ``roi`` box, optionally only the
  pixels inside YCrCb skin thresholds) into one RGB triple per frame;
- full-face video: :func:`read_face_regions` finds the face with OpenCV's bundled Haar
  cascade (``cv2.data.haarcascades``; no weights are downloaded), places forehead and cheek
  boxes inside the face box and re-detects every ``redetect_every`` frames.

Errors are :class:`bprl.errors.RecordError` naming the file: unreadable or unsupported
(codec) files, clips without frames, clips shorter than ``min_duration_s``, no face found.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bprl.errors import RecordError

#: clips shorter than this (seconds) are refused: too short for a heart-rate spectrum
MIN_DURATION_S = 5.0
#: YCrCb skin thresholds (Chai & Ngan 1999): Cr in 133..173, Cb in 77..127
SKIN_CR = (133, 173)
SKIN_CB = (77, 127)
#: face regions as fractions (x0, y0, x1, y1) of the detected face box
FACE_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "forehead": (0.30, 0.08, 0.70, 0.25),
    "leftcheek": (0.15, 0.50, 0.38, 0.70),
    "rightcheek": (0.62, 0.50, 0.85, 0.70),
}

Box = tuple[int, int, int, int]  # x, y, width, height in pixels


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a clip.

    Attributes:
        path: the file.
        fps: frame rate in frames per second (as stored in the container).
        width: frame width in pixels.
        height: frame height in pixels.
        n_frames: frame count stored in the container (may differ from frames decoded).
        duration_s: ``n_frames / fps``.
        fourcc: the codec's four-character code (``"FMP4"``, ``"MJPG"``).
    """

    path: str
    fps: float
    width: int
    height: int
    n_frames: int
    duration_s: float
    fourcc: str


def _open(path: str | Path) -> cv2.VideoCapture:
    """Open ``path`` with OpenCV; RecordError when it is missing or cannot be decoded."""
    p = Path(path)
    if not p.is_file():
        raise RecordError(f"{p}: no such video file")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise RecordError(f"{p}: cannot open the video (unreadable file or unsupported codec)")
    return cap


def _fourcc(cap: cv2.VideoCapture) -> str:
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() else f"0x{code:08x}"


def probe_video(path: str | Path) -> VideoInfo:
    """Container facts of a clip without decoding it.

    Raises:
        RecordError: the file is missing, unreadable or of an unsupported codec.
    """
    cap = _open(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        return VideoInfo(
            path=str(path),
            fps=fps,
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            n_frames=n,
            duration_s=n / fps if fps > 0 else float("nan"),
            fourcc=_fourcc(cap),
        )
    finally:
        cap.release()


def iter_frames(
    path: str | Path, max_frames: int | None = None, progress: bool = False
) -> Iterator[tuple[np.ndarray, float]]:
    """Decoded frames (BGR uint8, as OpenCV gives them) with their time in seconds.

    The time is ``CAP_PROP_POS_MSEC`` when the container gives increasing times, else
    frame index / fps. ``progress`` shows a tqdm bar (frames, on stderr).

    Raises:
        RecordError: the file cannot be opened.
    """
    cap = _open(path)
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        if max_frames is not None and total is not None:
            total = min(total, max_frames)
        bar = tqdm(total=total, unit="frame", desc=Path(path).name, leave=False)
    try:
        i = 0
        last_t = -1.0
        while max_frames is None or i < max_frames:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            t = float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
            if not np.isfinite(t) or t <= last_t:
                t = i / fps
            last_t = t
            if bar is not None:
                bar.update(1)
            yield frame, t
            i += 1
    finally:
        cap.release()
        if bar is not None:
            bar.close()


def skin_mask(frame_bgr: np.ndarray) -> np.ndarray:
    """Boolean mask of skin pixels by fixed YCrCb thresholds (Chai & Ngan 1999, IEEE TCSVT 9(4))."""
    ycrcb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YCrCb)
    cr, cb = ycrcb[..., 1], ycrcb[..., 2]
    return (cr >= SKIN_CR[0]) & (cr <= SKIN_CR[1]) & (cb >= SKIN_CB[0]) & (cb <= SKIN_CB[1])


def mean_rgb(frame_bgr: np.ndarray, box: Box | None = None, use_skin_mask: bool = False) -> np.ndarray:
    """Spatial mean (R, G, B) of a frame, of a box ``(x, y, w, h)`` in it, optionally of skin pixels only.

    With ``use_skin_mask`` and fewer than 1 % skin pixels the whole box is averaged.
    """
    crop = frame_bgr
    if box is not None:
        x, y, w, h = box
        crop = frame_bgr[max(y, 0) : y + h, max(x, 0) : x + w]
    if use_skin_mask:
        m = skin_mask(crop)
        if m.sum() >= 0.01 * m.size:
            return crop[m].mean(axis=0)[::-1].astype(np.float64)
    return np.asarray(cv2.mean(crop)[:3][::-1], dtype=np.float64)


def _check_length(path: str | Path, n: int, t_s: np.ndarray, min_duration_s: float) -> float:
    """Frame rate from the timestamps; RecordError for empty or too-short clips."""
    if n == 0:
        raise RecordError(f"{path}: no frame could be decoded (empty file or unsupported codec)")
    dur = float(t_s[-1] - t_s[0]) if n > 1 else 0.0
    fs_hz = (n - 1) / dur if dur > 0 else 0.0
    if n < 2 or dur + 1.0 / max(fs_hz, 1e-9) < min_duration_s:
        raise RecordError(
            f"{path}: clip too short for a heart rate ({n} frames, {dur:.2f} s; "
            f"at least {min_duration_s:g} s needed)"
        )
    return fs_hz


def read_video_rgb(
    path: str | Path,
    roi: Box | None = None,
    max_frames: int | None = None,
    use_skin_mask: bool = False,
    min_duration_s: float = MIN_DURATION_S,
    progress: bool = False,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Spatial-mean RGB trace of a clip (skin-region crop or a fixed box in it).

    Args:
        path: the video file (anything OpenCV/FFmpeg decodes).
        roi: box ``(x, y, w, h)`` in pixels, or ``None`` for the whole frame (skin crops).
        max_frames: decode at most this many frames.
        use_skin_mask: average only pixels inside YCrCb skin thresholds (:func:`skin_mask`).
        min_duration_s: shorter clips raise RecordError.
        progress: show a progress bar while decoding.

    Returns:
        ``(rgb, fs_hz, t_s)``: ``rgb`` float64 (N, 3) mean R, G, B (0-255) per frame,
        ``fs_hz`` the frame rate from the timestamps, ``t_s`` (N,) frame times in seconds.

    Raises:
        RecordError: unreadable file or codec, no frames decoded, clip too short.
    """
    rows: list[np.ndarray] = []
    times: list[float] = []
    for frame, t in iter_frames(path, max_frames, progress):
        rows.append(mean_rgb(frame, roi, use_skin_mask))
        times.append(t)
    t_s = np.asarray(times, dtype=np.float64)
    fs_hz = _check_length(path, len(rows), t_s, min_duration_s)
    return np.vstack(rows), fs_hz, t_s


_CASCADE: cv2.CascadeClassifier | None = None


def detect_face(frame_bgr: np.ndarray) -> Box | None:
    """Largest frontal face ``(x, y, w, h)`` found by OpenCV's bundled Haar cascade (Viola & Jones 2001).

    Uses ``haarcascade_frontalface_default.xml`` from ``cv2.data.haarcascades`` (shipped with
    opencv-python; nothing is downloaded). ``None`` when no face is found.
    """
    global _CASCADE
    if _CASCADE is None:
        _CASCADE = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    side = min(gray.shape[:2])
    faces = _CASCADE.detectMultiScale(gray, 1.1, 5, minSize=(max(side // 8, 24), max(side // 8, 24)))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return int(x), int(y), int(w), int(h)


def face_region_boxes(face: Box) -> dict[str, Box]:
    """Forehead and cheek boxes inside a face box (fractions in :data:`FACE_REGIONS`)."""
    x, y, w, h = face
    out = {}
    for name, (a, b, c, d) in FACE_REGIONS.items():
        out[name] = (x + int(a * w), y + int(b * h), max(int((c - a) * w), 1), max(int((d - b) * h), 1))
    return out


def read_face_regions(
    path: str | Path,
    redetect_every: int = 15,
    max_frames: int | None = None,
    min_duration_s: float = MIN_DURATION_S,
    progress: bool = False,
) -> tuple[dict[str, np.ndarray], float, np.ndarray]:
    """Mean RGB per frame of forehead and cheeks of a full-face clip, tracked by re-detection.

    The face is detected (:func:`detect_face`) on the first frame and every ``redetect_every``
    frames; the box is smoothed (exponential, factor 0.5) and kept when a detection fails.
    Skin pixels only (:func:`skin_mask`) are averaged inside each region.

    Returns:
        ``({region: rgb (N, 3)}, fs_hz, t_s)`` as in :func:`read_video_rgb`.

    Raises:
        RecordError: unreadable file, no frames, clip too short, or no face in the clip.
    """
    rows: dict[str, list[np.ndarray]] = {k: [] for k in FACE_REGIONS}
    times: list[float] = []
    face: np.ndarray | None = None
    pending: list[np.ndarray] = []
    for i, (frame, t) in enumerate(iter_frames(path, max_frames, progress)):
        times.append(t)
        if face is None or i % redetect_every == 0:
            found = detect_face(frame)
            if found is not None:
                f = np.asarray(found, dtype=np.float64)
                face = f if face is None else 0.5 * face + 0.5 * f
        if face is None:
            pending.append(frame)
            continue
        boxes = face_region_boxes(tuple(int(v) for v in face))  # type: ignore[arg-type]
        for fr in [*pending, frame]:
            for name, box in boxes.items():
                rows[name].append(mean_rgb(fr, box, use_skin_mask=True))
        pending = []
    t_s = np.asarray(times, dtype=np.float64)
    fs_hz = _check_length(path, len(times), t_s, min_duration_s)
    if face is None:
        raise RecordError(f"{path}: no face found in {len(times)} frames")
    return {k: np.vstack(v) for k, v in rows.items()}, fs_hz, t_s
