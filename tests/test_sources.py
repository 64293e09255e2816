"""Frame sources on generated media (videos, truncated videos, images, folders, an HTTP stream)
and on the real clips in ../shared/media (skipped when absent)."""
from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from humanpose.config import SourceConfig
from humanpose.sources import Frame, SourceError, open_source, source_kind, source_stem

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
W, H, N, FPS = 64, 48, 12, 10.0


def shared_media(name: str) -> Path:
    p = SHARED / "media" / name
    if not p.exists():
        pytest.skip(f"../shared/media absent: {p}")
    return p


def pattern(i: int) -> np.ndarray:
    """A frame whose mean brightness encodes its index (survives JPEG compression)."""
    img = np.full((H, W, 3), 10 + 20 * i, np.uint8)
    cv2.putText(img, str(i), (5, 35), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    return img


def frame_id(img: np.ndarray) -> int:
    """Recover the index from a decoded pattern (background level at a corner)."""
    return int(round((float(img[:4, -8:].mean()) - 10) / 20))


def write_video(path: Path, n: int = N, fourcc: str = "MJPG") -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (W, H))
    assert w.isOpened(), f"cannot write {fourcc} {path}"
    for i in range(n):
        w.write(pattern(i))
    w.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("vid") / "clip.avi")


def test_video_file_frames_timestamps_and_seek(video):
    with open_source(str(video)) as src:
        assert (src.fps, src.frame_count, src.size) == (FPS, N, (W, H))
        assert src.seekable and not src.is_live and src.name == str(video)
        frames = list(src)
        assert src.error is None
        assert [f.index for f in frames] == list(range(N))
        assert [f.timestamp for f in frames] == pytest.approx([i / FPS for i in range(N)])
        assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
        assert [frame_id(f.image) for f in frames] == list(range(N))
        src.seek(7)
        f = src.read()
        assert f.index == 7 and frame_id(f.image) == 7 and f.timestamp == pytest.approx(0.7)
        src.seek(10_000)                     # clamped to the last frame
        assert src.read().index == N - 1 and src.read() is None
    assert src.closed and src.read() is None


def test_mp4v_video_and_loop(tmp_path):
    path = write_video(tmp_path / "clip.mp4", n=4, fourcc="mp4v")
    with open_source(path, SourceConfig(loop=True)) as src:
        assert src.loop
        got = [src.read().index for _ in range(9)]
    assert got == [0, 1, 2, 3, 0, 1, 2, 3, 0]


def test_truncated_video_ends_with_error(video, tmp_path):
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with open_source(cut) as src:
        assert src.frame_count == N         # the header still promises N frames
        frames = list(src)
    assert 0 < len(frames) < N
    assert src.error and "truncated" in src.error and str(cut) in src.error


def test_corrupt_and_unsupported_files(video, tmp_path):
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"not a video " * 100)
    with pytest.raises(SourceError, match="cannot open video .*garbage.avi"):
        open_source(garbage)
    stub = tmp_path / "stub.avi"
    stub.write_bytes(video.read_bytes()[:300])   # cut inside the header
    with pytest.raises(SourceError, match="cannot open video .*stub.avi"):
        open_source(stub)
    empty = write_video(tmp_path / "empty.avi", n=0)   # opens, but holds no frame
    with pytest.raises(SourceError, match="video .*empty.avi has no decodable frame"):
        open_source(empty)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(SourceError, match=r"unsupported file type '\.txt'"):
        open_source(text)
    with pytest.raises(SourceError, match="file or folder not found: .*missing.mp4"):
        open_source(tmp_path / "missing.mp4")
    bad_img = tmp_path / "bad.png"
    bad_img.write_bytes(b"\x89PNG broken")
    with pytest.raises(SourceError, match="cannot read image .*bad.png"):
        open_source(bad_img)


def test_single_image(tmp_path):
    path = tmp_path / "one.png"
    cv2.imwrite(str(path), pattern(3))
    with open_source(str(path)) as src:
        assert (src.frame_count, src.fps, src.size, src.is_live) == (1, None, (W, H), False)
        f = src.read()
        assert isinstance(f, Frame) and f.name == "one.png" and f.timestamp == 0.0
        assert np.array_equal(f.image, pattern(3))
        assert src.read() is None and src.error is None


def test_folder_natural_order_skips_other_files(tmp_path):
    for i in (10, 2, 1):                       # natural order: 1, 2, 10
        cv2.imwrite(str(tmp_path / f"frame{i}.png"), pattern(i % 8))
    cv2.imwrite(str(tmp_path / "gray.jpg"), np.full((H, W), 128, np.uint8))
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "broken.png").write_bytes(b"nope")
    (tmp_path / "sub").mkdir()
    with open_source(tmp_path, SourceConfig(camera_fps=5.0)) as src:
        assert src.frame_count == 5 and src.fps == 5.0 and src.seekable
        frames = list(src)
        assert src.error is None
    # broken.png sorts first and is skipped, the grey image is converted to 3 channels
    assert [f.name for f in frames] == ["frame1.png", "frame2.png", "frame10.png", "gray.jpg"]
    assert [f.index for f in frames] == [1, 2, 3, 4]
    assert [f.timestamp for f in frames] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert frames[-1].image.shape == (H, W, 3)
    assert src.skipped == [str(tmp_path / "broken.png")]


def test_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(SourceError, match="contains no images"):
        open_source(tmp_path)


def test_missing_camera_is_fast():
    t0 = time.monotonic()
    for spec in (99, "99"):
        with pytest.raises(SourceError, match="no camera at index 99"):
            open_source(spec)
    assert time.monotonic() - t0 < 5.0


def test_a_folder_named_by_digits_is_a_camera_index_with_a_hint(tmp_path, monkeypatch):
    (tmp_path / "98").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match=r"no camera at index 98 .*the folder '98', write \./98"):
        open_source("98")
    cv2.imwrite(str(tmp_path / "98" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    assert open_source("./98").frame_count == 1


def test_kind_and_stem(tmp_path):
    assert source_kind(0) == source_kind(" 1 ") == "camera"
    assert source_kind("rtsp://user:pw@cam.local:554/live") == "stream"
    assert source_kind(tmp_path) == "folder"
    assert source_kind("a/b.MP4") == "video" and source_kind("x.JPG") == "image"
    assert source_stem("0") == "camera0"
    assert source_stem("a/clip.avi") == "clip"
    stem = source_stem("rtsp://user:pw@cam.local:554/live")
    assert "pw" not in stem and stem.startswith("stream_cam.local")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_http_stream(video):
    handler = functools.partial(_Quiet, directory=str(video.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
        with open_source(url) as src:   # a served file has a frame count: behaves like a file
            assert src.frame_count == N and src.size == (W, H)
            assert [frame_id(f.image) for f in src] == list(range(N))
        with pytest.raises(SourceError, match="cannot open stream"):
            open_source(url.replace(video.name, "missing.avi"))
    finally:
        server.shutdown()
        server.server_close()


def test_shared_video_street_people():
    path = shared_media("street_people.avi")
    with open_source(path) as src:
        assert (src.size, src.fps, src.frame_count) == ((1280, 720), 50.0, 205)
        src.seek(204)
        last = src.read()
        assert last.index == 204 and last.timestamp == pytest.approx(204 / 50)
        assert src.read() is None and src.error is None


def test_shared_images():
    messi = shared_media("messi5.jpg")
    with open_source(messi) as src:
        assert src.read().image.shape == (342, 548, 3)
    with open_source(messi.parent) as src:
        names = [f.name for f in src]
    assert names == ["basketball1.png", "messi5.jpg"]


def test_frame_rate_is_measured_from_timestamps_not_taken_from_the_claim():
    from humanpose.sources.rate import FrameRate
    rate = FrameRate()
    announced = [rate.add(i / 50.0) for i in range(40)]
    assert announced[:5] == [None] * 5                  # too few intervals yet
    assert announced[5] == pytest.approx(50.0)          # the first measurement is announced
    assert all(a is None for a in announced[6:])        # ... and no repeat while it holds
    # a late frame and a burst of buffered ones do not move the median
    for t in (0.8 + 0.15, 0.951, 0.952, 0.953):
        rate.add(t)
    assert rate.fps == pytest.approx(50.0)
    assert rate.add(0.953) is None                      # a repeated stamp is ignored
    # the source slows down to 20 fps: announced once the window has more slow than fast gaps
    slow = [rate.add(0.953 + (i + 1) / 20.0) for i in range(30)]
    assert rate.fps == pytest.approx(20.0)
    assert any(a == pytest.approx(20.0) for a in slow if a is not None)
