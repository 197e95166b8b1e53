"""Clips of real video files (mp4, avi, mkv, webm, mov) decoded with PyAV, for V-JEPA pretraining.

A clip is ``num_frames`` frames ``frame_step`` apart, ``span = (num_frames - 1) * frame_step + 1``
frames of the source, starting at a random frame. The same random-resized-crop box is applied to
every frame (or a center crop with ``augment=False``). Each item is float32 ``[3, T, size, size]``
in ``[0, 1]``.

Randomness is a pure function of ``(seed, epoch, index)``, so items are reproducible in any worker
process and in any order; call :meth:`VideoFileClips.set_epoch` to draw new clips each epoch.

Videos shorter than ``span`` frames are *padded with their last frame*: the clip starts at frame 0
and every index past the end reads the last frame (as V-JEPA's own loader does), so a 5-frame
video read with ``num_frames=4, frame_step=2`` gives frames ``0, 2, 4, 4``.

PyAV (``pip install av``, which bundles FFmpeg) is imported only when a dataset is created, so this
module imports without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import Dataset

from jepa_world.data.augment import as_hw, center_crop_box, random_crop_box, resized_crop
from jepa_world.errors import DatasetError

if TYPE_CHECKING:
    import av

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")

INSTALL_HINT = 'pip install av  (or pip install "jepa_world[video]")'

# FFmpeg's threading for decoding ("AUTO": frame and slice threads; "SLICE"; "FRAME"; "NONE").
DECODE_THREAD_TYPE = "AUTO"


def import_av() -> Any:
    """The ``av`` module, or a :class:`DatasetError` telling how to install it."""
    try:
        import av
    except ImportError as error:
        raise DatasetError(f"reading video files needs PyAV, which is not installed: "
                           f"{INSTALL_HINT}") from error
    return av


def find_videos(sources: str | Path | Sequence[str | Path]) -> list[Path]:
    """The video files named by ``sources``: a folder (searched recursively), a file, or a list.

    Folders contribute their files with a known video extension (case-insensitive), sorted; files
    named explicitly are kept whatever their extension. Raises :class:`DatasetError` for a missing
    path or when no video file is found.
    """
    if isinstance(sources, str | Path):
        sources = [sources]
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            files.extend(_videos_in_folder(source))
        elif source.is_file():
            files.append(source)
        else:
            raise DatasetError(f"video source {source} does not exist (expected a folder of "
                               f"videos or a video file)")
    if not files:
        names = ", ".join(str(s) for s in sources) or "an empty list"
        raise DatasetError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) found in {names}")
    return files


def _videos_in_folder(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


@dataclass(frozen=True)
class StreamInfo:
    """What is needed to map frame numbers to timestamps in one video stream."""

    num_frames: int  # exact when the container stores it (mp4, avi), else estimated from duration
    fps: Fraction
    time_base: Fraction
    start_pts: int

    def pts(self, frame: int) -> int:
        """Presentation timestamp of frame number ``frame`` (constant frame rate assumed)."""
        return self.start_pts + int(frame / (self.fps * self.time_base))

    def frame_number(self, pts: int) -> int:
        """The frame number nearest to timestamp ``pts``."""
        return round((pts - self.start_pts) * self.time_base * self.fps)


def probe(container: av.container.InputContainer, path: Path) -> StreamInfo:
    """Frame count, rate and time base of the first video stream of an open container."""
    if not container.streams.video:
        raise DatasetError(f"{path} has no video stream")
    stream = container.streams.video[0]
    fps = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not fps or stream.time_base is None:
        raise DatasetError(f"{path}: cannot tell the frame rate of its video stream")
    num_frames = stream.frames
    if num_frames <= 0:  # mkv / webm don't store a frame count: estimate from the duration
        if stream.duration is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / 1_000_000  # in AV_TIME_BASE units
        else:
            raise DatasetError(f"{path}: the video stores neither a frame count nor a duration")
        num_frames = max(1, math.floor(seconds * fps + 0.5))
    return StreamInfo(num_frames=num_frames, fps=Fraction(fps), time_base=stream.time_base,
                      start_pts=stream.start_time or 0)


def clip_frame_numbers(num_available: int, num_frames: int, frame_step: int,
                       generator: torch.Generator) -> list[int]:
    """``num_frames`` frame numbers ``frame_step`` apart from a random start.

    The start is uniform over the positions where the whole clip fits; when the video is too short
    the clip starts at 0 and numbers past the last frame are clamped to it (last-frame padding).
    """
    span = (num_frames - 1) * frame_step + 1
    start = int(torch.randint(max(num_available - span, 0) + 1, (), generator=generator).item())
    return [min(start + k * frame_step, num_available - 1) for k in range(num_frames)]


def decode_frames(path: Path, frame_numbers: Sequence[int] | None = None,
                  generator: torch.Generator | None = None, num_frames: int = 16,
                  frame_step: int = 4) -> tuple[np.ndarray, list[int]]:
    """Decode a clip of ``path`` as RGB ``uint8 [T, H, W, 3]``, plus the frame numbers asked for.

    Give ``frame_numbers`` explicitly, or leave them ``None`` to draw them with
    :func:`clip_frame_numbers` from ``generator``. Decoding seeks to the keyframe at or before the
    first wanted frame and decodes forward. Numbers past the real end of the stream (frame counts
    of mkv/webm are estimates) get the last decoded frame. Raises :class:`DatasetError` naming the
    file if it can't be opened or decoded.
    """
    av = import_av()
    try:
        with av.open(str(path)) as container:
            info = probe(container, path)
            if frame_numbers is None:
                if generator is None:
                    raise ValueError("pass frame_numbers or a generator to draw them from")
                frame_numbers = clip_frame_numbers(info.num_frames, num_frames, frame_step,
                                                   generator)
            frames = _read(container, info, frame_numbers)
            if not frames:
                raise DatasetError(f"cannot decode video {path}: no frames could be decoded")
            clip = np.stack([frame.to_ndarray(format="rgb24") for frame in frames])
    except av.error.FFmpegError as error:
        raise DatasetError(f"cannot decode video {path}: {error}") from error
    return clip, list(frame_numbers)


def _read(container: av.container.InputContainer, info: StreamInfo,
          frame_numbers: Sequence[int]) -> list[av.VideoFrame]:
    """The decoded frames for ``frame_numbers`` (an empty list if the stream has no frames)."""
    stream = container.streams.video[0]
    stream.codec_context.thread_type = DECODE_THREAD_TYPE
    first = min(frame_numbers)
    if first > 0:
        container.seek(info.pts(first), stream=stream, backward=True, any_frame=False)
        found = _collect(container.decode(stream), info, frame_numbers, strict_start=True)
        if not found.missed_start:
            return found.clip(frame_numbers)
        # the seek landed past the first wanted frame: read from the start instead
        container.seek(info.start_pts, stream=stream, backward=True, any_frame=False)
    found = _collect(container.decode(stream), info, frame_numbers, strict_start=False)
    return found.clip(frame_numbers)


@dataclass
class _Found:
    frames: dict[int, av.VideoFrame]
    last: av.VideoFrame | None = None
    missed_start: bool = False

    def clip(self, frame_numbers: Sequence[int]) -> list[av.VideoFrame]:
        """Frames in clip order; numbers past the end of the stream get the last frame."""
        if self.last is None:
            return []
        return [self.frames.get(n, self.last) for n in frame_numbers]


def _collect(decoded, info: StreamInfo, frame_numbers: Sequence[int],
             strict_start: bool) -> _Found:
    """Decode forward, keeping for each wanted number the first frame at or after it.

    With ``strict_start`` (after a seek), give up (``missed_start``) if the first decoded frame
    is already past the first wanted one or a frame has no timestamp. Otherwise (decoding from
    the start) frames without a timestamp are numbered by counting on from the previous one.
    """
    pending = sorted(set(frame_numbers))
    found = _Found(frames={})
    number = -1
    for frame in decoded:
        number = number + 1 if frame.pts is None else info.frame_number(frame.pts)
        if strict_start and (frame.pts is None or (found.last is None and number > pending[0])):
            return _Found(frames={}, missed_start=True)
        found.last = frame
        while pending and pending[0] <= number:
            found.frames[pending.pop(0)] = frame
        if not pending:
            break
    return found


def _clip_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed mixing the three numbers (stable across processes and platforms)."""
    state = np.random.SeedSequence([seed % 2**64, epoch % 2**64, index]).generate_state(2)
    return (int(state[0]) << 31) ^ int(state[1])


class VideoFileClips(Dataset):
    """Random clips from a folder or list of video files; item: float32 ``[3, T, size, size]``.

    * ``sources``: a folder searched recursively for ``.mp4/.avi/.mkv/.webm/.mov`` files, a single
      file, or a list of files and folders.
    * ``num_frames`` frames ``frame_step`` source frames apart (short videos: last-frame padding).
    * ``augment=True``: random-resized-crop with area fraction in ``crop_scale`` and aspect ratio
      in ``crop_ratio``, the same box for every frame, plus a random left-right flip of the whole
      clip when ``flip=True``. ``augment=False``: the central square, resized.
    * ``clips_per_video``: items per file per epoch (each from its own random start);
      ``len(dataset) == len(files) * clips_per_video`` and item ``i`` reads
      ``files[i // clips_per_video]``.

    Nothing is opened in ``__init__`` (only the folder is listed): each item opens, decodes and
    closes its file, so the dataset is safe in multi-worker DataLoaders. Unreadable files raise
    :class:`DatasetError` with the file name when their item is read; they are never skipped.
    ``set_epoch`` must be called before the DataLoader iterator is created (workers get a copy
    of the dataset), so don't combine it with ``persistent_workers=True``.
    """

    def __init__(
        self,
        sources: str | Path | Sequence[str | Path],
        num_frames: int = 16,
        frame_step: int = 4,
        size: int | tuple[int, int] = 224,
        augment: bool = True,
        crop_scale: tuple[float, float] = (0.3, 1.0),
        clips_per_video: int = 1,
        seed: int = 0,
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: bool = False,
    ):
        if num_frames < 1 or frame_step < 1 or clips_per_video < 1:
            raise ValueError(f"need num_frames, frame_step and clips_per_video >= 1; got "
                             f"num_frames={num_frames}, frame_step={frame_step}, "
                             f"clips_per_video={clips_per_video}")
        import_av()
        self.files = find_videos(sources)
        self.num_frames = num_frames
        self.frame_step = frame_step
        self.size = as_hw(size)
        self.augment = augment
        self.crop_scale = tuple(crop_scale)
        self.crop_ratio = tuple(crop_ratio)
        self.flip = flip
        self.clips_per_video = clips_per_video
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw different clips (starts, crops) from now on; items stay a function of the epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files) * self.clips_per_video

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        index %= len(self)
        generator = torch.Generator().manual_seed(_clip_seed(self.seed, self.epoch, index))
        path = self.files[index // self.clips_per_video]
        frames, _ = decode_frames(path, generator=generator, num_frames=self.num_frames,
                                  frame_step=self.frame_step)
        return self.transform(frames, generator)

    def transform(self, frames: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        """RGB ``uint8 [T, H, W, 3]`` -> crop, resize, scale: float32 ``[3, T, h, w]`` in [0, 1]."""
        video = rearrange(torch.from_numpy(frames), "t h w c -> c t h w")
        height, width = video.shape[-2:]
        if self.augment:
            box = random_crop_box(height, width, self.crop_scale, self.crop_ratio, generator)
        else:
            box = center_crop_box(height, width, self.size)
        clip = resized_crop(video, box, self.size).div_(255)  # uint8 in, so within [0, 1]
        if self.augment and self.flip and torch.rand((), generator=generator).item() < 0.5:
            clip = clip.flip(-1)
        return clip
