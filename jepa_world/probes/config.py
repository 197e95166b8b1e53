"""Typed, self-validating config of ``python -m jepa_world.probe`` (:func:`run_probes`).

Errors are :class:`~jepa_world.errors.ConfigError` starting with the field's dotted name. Library
code and tests build it directly::

    ProbeConfig(encoders=["random:tiny", {"name": "mine", "spec": "runs/x/checkpoints/latest"}],
                tasks=["state"], seeds=[0, 1], epochs=5)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from jepa_world.config import EnvConfig, check, check_choice
from jepa_world.errors import ConfigError
from jepa_world.probes.heads import PROBE_KINDS
from jepa_world.probes.tasks import TASK_NAMES

#: The shipped tiny V-JEPA world model (may not be installed yet) and a random-init baseline.
DEFAULT_ENCODERS = ({"name": "vjepa_tiny", "spec": "pkg:pretrained/reach"},
                    {"name": "random_tiny", "spec": "random:tiny"})


@dataclass
class EncoderSpec:
    """One encoder to probe: a display name and a spec (see :mod:`jepa_world.probes.encoders`)."""

    name: str
    spec: str


@dataclass
class ProbeDataConfig:
    """The probe dataset: the task's dataset collected (when missing) with its own seeds, so that
    neither train nor test episodes were seen in pretraining (which uses seeds from 0)."""

    data_dir: str = ""  #: default ``data/<env>_probe_<size>px``
    collect: bool = True  #: collect the dataset first when ``data_dir`` holds none
    episodes: int = 60  #: episodes to collect
    episode_length: int = 50  #: steps per collected episode
    seed: int = 1_000_000  #: episode ``i`` is reset with ``seed + i``
    test_fraction: float = 0.2  #: the last episodes held out for testing
    frame_stride: int = 2  #: state: env steps between the frames taken from an episode
    clip_frames: int = 4  #: motion: frames a clip (a multiple of the encoder's tubelet)
    clip_step: int = 2  #: motion: env steps between consecutive clip frames
    clip_stride: int = 2  #: motion: env steps between the starts of consecutive clips

    def __post_init__(self) -> None:
        for name in ("episodes", "episode_length", "frame_stride", "clip_step", "clip_stride"):
            value = getattr(self, name)
            check(value >= 1, f"data.{name}", f"must be >= 1, got {value}")
        check(self.clip_frames >= 2, "data.clip_frames",
              f"must be >= 2 (motion needs time), got {self.clip_frames}")
        check(self.seed >= 0, "data.seed", f"must be >= 0, got {self.seed}")
        check(0 < self.test_fraction < 1, "data.test_fraction",
              f"must be in (0, 1), got {self.test_fraction}")


def _encoder_specs(entries: list[Any]) -> list[EncoderSpec]:
    specs = []
    for i, entry in enumerate(entries):
        where = f"encoders[{i}]"
        if isinstance(entry, EncoderSpec):
            spec = entry
        elif isinstance(entry, str):
            spec = EncoderSpec(name=entry, spec=entry)
        elif isinstance(entry, dict):
            unknown = sorted(set(entry) - {"name", "spec"})
            check(not unknown, where, f"unknown keys {unknown}; give {{name: ..., spec: ...}}")
            check("spec" in entry, where, "needs a spec, e.g. {name: mine, spec: runs/x}")
            spec = EncoderSpec(name=str(entry.get("name") or entry["spec"]),
                               spec=str(entry["spec"]))
        else:
            raise ConfigError(f"{where}: expected a spec string or {{name, spec}}, got {entry!r}")
        check(bool(spec.spec.strip()), where, "the spec is empty")
        specs.append(spec)
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    check(not dupes, "encoders", f"display names must be unique, repeated: {dupes}")
    return specs


@dataclass
class ProbeConfig:
    """``python -m jepa_world.probe``: frozen-feature probes of encoders on a task's state
    (``env.state_dims``) and motion."""

    env: EnvConfig = field(default_factory=EnvConfig)
    data: ProbeDataConfig = field(default_factory=ProbeDataConfig)
    #: spec strings or ``{name, spec}`` dicts; becomes a list of :class:`EncoderSpec`
    encoders: list[Any] = field(default_factory=lambda: [dict(e) for e in DEFAULT_ENCODERS])
    tasks: list[str] = field(default_factory=lambda: list(TASK_NAMES))
    probes: list[str] = field(default_factory=lambda: list(PROBE_KINDS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 25
    batch_size: int = 64  #: probe training batch; also the feature-extraction batch
    lr: float = 1e-3  #: attentive probes' AdamW peak LR (one-epoch warmup, cosine decay to 0)
    linear_lr: float = 3e-3  #: the same for linear probes
    weight_decay: float = 0.01
    attentive_depth: int = 1  #: blocks of the attentive probe (the last one cross-attends)
    attentive_queries: int = 1  #: learnable query tokens of the attentive probe
    device: str = "auto"  #: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:1``...
    output_dir: str = ""  #: default ``outputs/probe/<time>`` (the CLI: Hydra's run dir)
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        check(bool(self.env.state_dims), "env.state_dims",
              "the state and motion probes read these proprio entries; name them (e.g. [0, 1])")
        self.encoders = _encoder_specs(list(self.encoders))
        check(bool(self.encoders), "encoders", "give at least one encoder")
        for name, known in (("tasks", TASK_NAMES), ("probes", PROBE_KINDS)):
            values = [str(v) for v in getattr(self, name)]
            check(bool(values), name, f"give at least one of {', '.join(known)}")
            for value in values:
                check_choice(value, known, name)
            check(len(set(values)) == len(values), name, f"repeated entries in {values}")
            setattr(self, name, values)
        self.seeds = [int(s) for s in self.seeds]
        check(bool(self.seeds), "seeds", "give at least one seed")
        check(len(set(self.seeds)) == len(self.seeds), "seeds", f"repeated seeds {self.seeds}")
        for name in ("epochs", "batch_size", "attentive_depth", "attentive_queries"):
            value = getattr(self, name)
            check(value >= 1, name, f"must be >= 1, got {value}")
        for name in ("lr", "linear_lr"):
            value = getattr(self, name)
            check(value > 0, name, f"must be > 0, got {value}")
        check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        check(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
              "device", f"{self.device!r} is not auto, cpu, cuda or cuda:<index>")

    @property
    def data_dir(self) -> str:
        """The dataset folder (``data.data_dir`` or its default)."""
        return self.data.data_dir or f"data/{self.env.short_name}_probe_{self.env.image_size}px"

    def to_dict(self) -> dict:
        """Plain-JSON copy."""
        return asdict(self)


__all__ = ["DEFAULT_ENCODERS", "EncoderSpec", "ProbeConfig", "ProbeDataConfig"]
