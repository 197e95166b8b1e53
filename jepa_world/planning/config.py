"""Typed, self-validating config of ``python -m jepa_world.plan`` (:func:`plan_episodes`)."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from jepa_world.config import EnvConfig, check, check_choice
from jepa_world.devices import PRECISIONS
from jepa_world.errors import ConfigError
from jepa_world.planning.agents import AGENTS
from jepa_world.planning.objectives import REDUCTIONS
from jepa_world.planning.visualize import IMAGINED_PANELS, VIDEO_FORMATS
from jepa_world.world_model import shipped_model_dir
from jepa_world.world_model_config import COST_KINDS


@dataclass
class PlanConfig:
    """N seeded episodes of MPC under the fixed-budget protocol, per agent.

    ``planner``: ``{"name": "cem" | "mppi" | "gradient" | "random", <its config fields>}``
    (Hydra group ``planner=``). ``agents``: what plans: ``world_model`` (the model in the
    folder ``world_model``, goal given as an image), ``oracle`` (the simulator, same planner:
    the ceiling of this budget), ``random`` (uniform random actions); reported side by side.
    """

    env: EnvConfig = field(default_factory=EnvConfig)
    planner: dict[str, Any] = field(default_factory=lambda: {"name": "cem"})
    world_model: str = ""  #: world-model folder; default the shipped model of the env
    agents: list[str] = field(default_factory=lambda: ["world_model"])
    episodes: int = 50
    seed: int = 1000  #: first episode's env seed (episode i: seed + i); data used seeds < 1000
    step_budget: int = 0  #: env steps per episode; 0: the task's (``env.protocol``)
    action_repeat: int = 0  #: env steps per planner action; 0: the task's
    replan_every: int = 1  #: planner actions executed between replans
    warm_start: bool = True
    cost: str = "l1"  #: latent distance to the goal: ``l1`` or ``l2``
    reduce: str = "sum"  #: ``sum`` over the horizon or ``final`` step only
    proprio_weight: float = 0.0  #: proprio-head term of the cost (see LatentObjective)
    #: proprio entries in the cost; None: the task's ``env.state_dims``
    proprio_dims: Optional[list[int]] = None  # noqa: UP045  (OmegaConf needs Optional)
    chunk_size: int = 1024  #: candidates imagined at once (memory bound)
    #: episodes planned together: one planner call per MPC step for all of them (their envs
    #: are open at once, ~20 MB each); 1: one episode at a time (the same per-episode results)
    batch_episodes: int = 50
    videos: int = 3  #: episodes per agent written as videos (0: none)
    video_format: str = "gif"
    #: the videos' imagined panel: ``decoded`` by the model's pixel decoder, ``nearest`` bank
    #: frame, ``auto`` (decoded when the model folder has a decoder)
    imagined_panel: str = "auto"
    device: str = "cpu"  #: ``cpu``, ``cuda``, ``auto``
    #: ``fp32``; ``bf16`` autocast; ``auto``: bf16 on CUDA and on CPUs with native bf16
    #: (AVX-512 BF16 / AMX), fp32 elsewhere. fp32 by default: bf16 plans differ from fp32 ones
    precision: str = "fp32"
    threads: int = 0  #: torch CPU threads (0: torch's default)
    output_dir: str = ""  #: default ``outputs/plan/<time>`` (the CLI: Hydra's output dir)
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        name = self.planner.get("name") if isinstance(self.planner, dict) else None
        fields_ = {k: v for k, v in dict(self.planner).items() if k != "name"}
        try:
            import torch

            from jepa_world.planners import ActionBounds, make_planner

            make_planner(str(name), ActionBounds(-torch.ones(1), torch.ones(1)), **fields_)
        except (ValueError, TypeError) as err:
            # The planners name their own dataclass ("CEMConfig.samples ..."); users wrote
            # planner.samples=..., so say that.
            message = re.sub(r"^\w+Config\.", "planner.", str(err))
            raise ConfigError(message if message != str(err) else f"planner: {err}") from None
        self.step_budget = self.step_budget or self.env.protocol.step_budget
        self.action_repeat = self.action_repeat or self.env.protocol.action_repeat
        if self.proprio_dims is None:
            self.proprio_dims = list(self.env.state_dims)
        self.agents = [str(a) for a in self.agents]
        check(bool(self.agents), "agents", f"name at least one of {', '.join(AGENTS)}")
        for agent in self.agents:
            check_choice(agent, AGENTS, "agents")
        for key in ("episodes", "step_budget", "action_repeat", "replan_every", "chunk_size",
                    "batch_episodes"):
            value = getattr(self, key)
            check(value >= 1, key, f"must be >= 1, got {value}")
        check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        check(self.videos >= 0, "videos", f"must be >= 0, got {self.videos}")
        check(self.threads >= 0, "threads", f"must be >= 0, got {self.threads}")
        check(self.proprio_weight >= 0, "proprio_weight",
              f"must be >= 0, got {self.proprio_weight}")
        self.proprio_dims = [int(d) for d in self.proprio_dims]
        check_choice(self.precision, PRECISIONS, "precision")
        check_choice(self.cost, COST_KINDS, "cost")
        check_choice(self.reduce, REDUCTIONS, "reduce")
        check_choice(self.video_format, VIDEO_FORMATS, "video_format")
        check_choice(self.imagined_panel, IMAGINED_PANELS, "imagined_panel")
        check(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
              "device", f"{self.device!r} is not auto, cpu, cuda or cuda:<index>")
        horizon = int(self.planner.get("horizon", 5))
        check(self.replan_every <= horizon, "replan_every",
              f"{self.replan_every} exceeds the planner horizon {horizon}")

    @property
    def planner_name(self) -> str:
        return str(self.planner["name"])

    @property
    def planner_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.planner.items() if k != "name"}

    @property
    def model_dir(self) -> Path:
        if self.world_model:
            return Path(self.world_model)
        return shipped_model_dir(self.env.short_name)

    def protocol(self) -> dict[str, Any]:
        return {"goal_offset": self.env.protocol.goal_offset,
                "success_tolerance": self.env.protocol.success_tolerance,
                "step_budget": self.step_budget, "action_repeat": self.action_repeat,
                "episodes": self.episodes, "first_seed": self.seed}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def with_task_planner(planner: dict[str, Any], task: dict[str, Any],
                      given: Collection[str] = ()) -> dict[str, Any]:
    """``planner`` (the planner group's settings) with the task's (``env.planner``) in place
    of those the planner has, except the keys in ``given`` (set on the command line)."""
    from jepa_world.planners import PLANNERS, planner_fields

    if planner.get("name") not in PLANNERS:  # PlanConfig names the bad planner
        return dict(planner)
    own = planner_fields(str(planner["name"]))
    return {**planner, **{k: v for k, v in task.items() if k in own and k not in given}}


__all__ = ["PlanConfig", "shipped_model_dir", "with_task_planner"]
