"""Clips of real video files: synthetic videos are written with PyAV at test time.

Frame ``i`` of every test video is flat grey at level ``16 + 4 i`` with a small white square moving
one pixel per frame, so the median intensity of any crop tells which frame was read, even after
lossy compression and resizing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from jepa_world.data.video_files import VideoFileClips, decode_frames, find_videos
from jepa_world.errors import DatasetError

LONG = 48  # frames in the regular test videos


def write_video(path: Path, num_frames: int = LONG, width: int = 64, height: int = 48,
                codec: str = "libx264", fps: int = 24) -> Path:
    """A synthetic video whose frame ``i`` has grey level ``16 + 4 i`` (see module docstring)."""
    av = pytest.importorskip("av")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = 12  # several keyframes, so reads really seek
        if codec == "mpeg4":
            stream.bit_rate = 4_000_000  # the default bit rate is too coarse for the grey code
        for i in range(num_frames):
            image = np.full((height, width, 3), 16 + 4 * i, dtype=np.uint8)
            x = i % (width - 8)
            image[height // 2 - 4:height // 2 + 4, x:x + 8] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def frame_numbers(clip: torch.Tensor) -> list[int]:
    """Which source frames a ``[3, T, h, w]`` clip in [0, 1] holds, from their grey level."""
    levels = clip[1].flatten(1).median(dim=1).values * 255
    return [round((level - 16) / 4) for level in levels.tolist()]


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> Path:
    """mp4 (libx264), avi (mpeg4) and mkv (no stored frame count) videos, one in a subfolder."""
    pytest.importorskip("av", reason="PyAV is not installed: pip install av")
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "a.mp4")
    write_video(root / "b.avi", codec="mpeg4")
    write_video(root / "sub" / "c.mkv")
    (root / "notes.txt").write_text("not a video")
    return root


@pytest.fixture(scope="module")
def short_video(tmp_path_factory) -> Path:
    pytest.importorskip("av", reason="PyAV is not installed: pip install av")
    return write_video(tmp_path_factory.mktemp("short") / "short.mp4", num_frames=5)


def test_folder_discovery(video_dir):
    expected = [video_dir / "a.mp4", video_dir / "b.avi", video_dir / "sub" / "c.mkv"]
    assert find_videos(video_dir) == expected
    assert VideoFileClips(str(video_dir)).files == expected
    # A list may mix files (any extension) and folders; a single file works too.
    assert find_videos([video_dir / "sub", video_dir / "a.mp4"]) == expected[2:] + expected[:1]
    assert len(VideoFileClips(video_dir / "a.mp4", clips_per_video=3)) == 3


def test_item_shape_dtype_range(video_dir):
    dataset = VideoFileClips(video_dir, num_frames=8, frame_step=2, size=32)
    assert len(dataset) == 3
    for index in range(len(dataset)):
        clip = dataset[index]
        assert clip.shape == (3, 8, 32, 32)
        assert clip.dtype == torch.float32
        assert clip.min() >= 0.0 and clip.max() <= 1.0
        assert clip.max() > 0.9  # the white square is there


@pytest.mark.parametrize("frame_step", [1, 3, 5])
@pytest.mark.parametrize("augment", [True, False])
def test_frame_step_spacing(video_dir, frame_step, augment):
    num_frames = 6
    dataset = VideoFileClips(video_dir, num_frames=num_frames, frame_step=frame_step, size=24,
                             augment=augment, clips_per_video=2, seed=frame_step)
    span = (num_frames - 1) * frame_step + 1
    for index in range(len(dataset)):
        numbers = frame_numbers(dataset[index])
        assert numbers == [numbers[0] + k * frame_step for k in range(num_frames)], numbers
        assert 0 <= numbers[0] <= LONG - span


def test_starts_cover_the_video_and_seek_past_keyframes(video_dir):
    dataset = VideoFileClips(video_dir / "a.mp4", num_frames=4, frame_step=2, size=16,
                             clips_per_video=16)
    starts = {frame_numbers(dataset[i])[0] for i in range(len(dataset))}
    assert len(starts) > 8 and max(starts) > 24  # many starts, well past the second keyframe


def test_decode_frames_reads_exact_frames(video_dir):
    for name in ("a.mp4", "b.avi", "sub/c.mkv"):
        frames, numbers = decode_frames(video_dir / name, [13, 29, 30, 47])
        assert frames.shape == (4, 48, 64, 3) and frames.dtype == np.uint8
        clip = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255
        assert frame_numbers(clip) == numbers == [13, 29, 30, 47], name


def test_deterministic_for_a_seed(video_dir):
    a = VideoFileClips(video_dir, num_frames=4, size=16, seed=5)
    b = VideoFileClips(video_dir, num_frames=4, size=16, seed=5)
    c = VideoFileClips(video_dir, num_frames=4, size=16, seed=6)
    for index in range(len(a)):
        torch.testing.assert_close(a[index], b[index])
        torch.testing.assert_close(a[index], a[index])  # re-reading gives the same clip
    assert any(not torch.equal(a[i], c[i]) for i in range(len(a)))


def test_new_clips_each_epoch(video_dir):
    dataset = VideoFileClips(video_dir, num_frames=4, frame_step=2, size=16)
    first = [dataset[i] for i in range(len(dataset))]
    dataset.set_epoch(1)
    second = [dataset[i] for i in range(len(dataset))]
    assert any(not torch.equal(x, y) for x, y in zip(first, second, strict=True))
    dataset.set_epoch(0)
    for index, clip in enumerate(first):
        torch.testing.assert_close(dataset[index], clip)


def test_short_video_is_padded_with_its_last_frame(short_video):
    dataset = VideoFileClips(short_video, num_frames=6, frame_step=2, size=16)
    assert frame_numbers(dataset[0]) == [0, 2, 4, 4, 4, 4]
    dataset = VideoFileClips(short_video, num_frames=8, frame_step=1, size=16, augment=False)
    assert frame_numbers(dataset[0]) == [0, 1, 2, 3, 4, 4, 4, 4]


def test_center_crop_without_augment(video_dir):
    dataset = VideoFileClips(video_dir / "a.mp4", num_frames=2, frame_step=1, size=48,
                             augment=False)
    frames, _ = decode_frames(video_dir / "a.mp4", frame_numbers(dataset[0]))
    expected = torch.from_numpy(frames[:, :, 8:56]).permute(3, 0, 1, 2).float() / 255
    torch.testing.assert_close(dataset[0], expected)


def test_corrupt_file_raises_with_its_name(tmp_path):
    pytest.importorskip("av", reason="PyAV is not installed: pip install av")
    write_video(tmp_path / "good.mp4", num_frames=4)
    (tmp_path / "x.mp4").write_bytes(b"this is not a video " * 200)
    dataset = VideoFileClips(tmp_path, num_frames=2, size=16)  # files are only opened per item
    assert dataset[0].shape == (3, 2, 16, 16)
    with pytest.raises(DatasetError, match=r"x\.mp4"):
        dataset[1]


def test_missing_and_empty_sources_raise(tmp_path):
    pytest.importorskip("av", reason="PyAV is not installed: pip install av")
    with pytest.raises(DatasetError, match="does-not-exist.*does not exist"):
        VideoFileClips(tmp_path / "does-not-exist")
    with pytest.raises(DatasetError, match="nope.mp4"):
        VideoFileClips([tmp_path / "nope.mp4"])
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DatasetError, match="no video files"):
        VideoFileClips(tmp_path)
    with pytest.raises(DatasetError, match="no video files"):
        VideoFileClips([])


def test_missing_pyav_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    with pytest.raises(DatasetError, match="pip install av"):
        VideoFileClips(tmp_path)


def test_multi_worker_dataloader(video_dir):
    dataset = VideoFileClips(video_dir, num_frames=4, frame_step=3, size=16, clips_per_video=2)
    loader = DataLoader(dataset, batch_size=3, num_workers=2)
    batches = list(loader)
    assert [tuple(b.shape) for b in batches] == [(3, 3, 4, 16, 16)] * 2
    # Items depend only on (seed, epoch, index), so workers give what the main process gives.
    torch.testing.assert_close(torch.cat(batches), torch.stack([dataset[i] for i in range(6)]))
