"""What the MPC loop plans with: a model of the task that turns the current observation history
and goal into a planning objective.

* :class:`WorldModelAgent`: a learned :class:`~jepa_world.world_model.WorldModel`, goal given as
  an image only (the library's main use);
* :class:`OracleAgent`: the true simulator (the ceiling of a planner at a given budget);
* :class:`BlindAgent`: no model at all (for the random-actions baseline).

An agent is told about every executed planner action (``observe``) and hands out a fresh
``objective`` for each replan. Agents know nothing about planners, loggers or files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from einops import repeat

from jepa_world.planning.objectives import LatentObjective
from jepa_world.world_model import WorldModel


class Agent(Protocol):
    name: str

    def reset(self, env: Any, obs: dict[str, np.ndarray]) -> None: ...

    def observe(self, obs: dict[str, np.ndarray], action: np.ndarray) -> None: ...

    def objective(self) -> Any: ...


@dataclass
class AgentSettings:
    """What the plan command tells every agent; each takes the fields it needs."""

    model: WorldModel | None = None
    cost: str = "l1"
    reduce: str = "sum"
    chunk_size: int = 1024
    proprio_weight: float = 0.0
    proprio_dims: list[int] | None = None
    action_repeat: int = 5


class WorldModelAgent:
    """Plans in the latent space of a world model from pixels (+ proprio) and a goal image.

    Keeps the last ``history_length`` frames' latents, the step actions between them and their
    proprio. A step action is the planner action tiled ``frameskip`` times (the action is held
    for ``frameskip`` env steps, which must be the protocol's action repeat).
    """

    name = "world_model"

    def __init__(self, model: WorldModel, cost: str = "l1", reduce: str = "sum",
                 chunk_size: int = 1024, proprio_weight: float = 0.0,
                 proprio_dims: list[int] | None = None) -> None:
        self.model = model.eval()
        self.cost, self.reduce, self.chunk_size = cost, reduce, chunk_size
        self.proprio_weight, self.proprio_dims = proprio_weight, proprio_dims
        self.device = model.pixel_mean.device
        self.dtype = model.pixel_mean.dtype
        self.latents = self.goal = self.actions = self.proprio = None

    @classmethod
    def build(cls, s: AgentSettings) -> WorldModelAgent:
        if s.model is None:
            raise ValueError("the world_model agent needs a world model")
        return cls(s.model, cost=s.cost, reduce=s.reduce, chunk_size=s.chunk_size,
                   proprio_weight=s.proprio_weight, proprio_dims=s.proprio_dims)

    def encode_frames(self, pixels: np.ndarray) -> torch.Tensor:
        """Frames ``[M, H, W, 3]`` uint8 -> latents ``[M, N, D]`` (one encoder call)."""
        return self.model.encode_images(pixels)

    def _proprio(self, obs: dict[str, np.ndarray]) -> torch.Tensor | None:
        if self.model.config.proprio_dim == 0:
            return None
        return torch.as_tensor(obs["proprio"], dtype=self.dtype, device=self.device)[None, None]

    def reset(self, env: Any, obs: dict[str, np.ndarray]) -> None:
        self.reset_joint([self], [env], [obs])

    @staticmethod
    def reset_joint(agents: list[WorldModelAgent], envs: list[Any],
                    observations: list[dict[str, np.ndarray]]) -> None:
        """:meth:`reset` of every agent (one model), all start and goal frames in ONE encoder
        call."""
        frames = [o["pixels"] for o in observations] + [o["goal_pixels"] for o in observations]
        latents = agents[0].encode_frames(np.stack(frames))               # [2 n, N, D]
        n = len(agents)
        for i, (agent, env, obs) in enumerate(zip(agents, envs, observations, strict=True)):
            agent.model.check_env(env)
            agent.latents, agent.goal = latents[i][None, None], latents[n + i][None]
            agent.proprio = agent._proprio(obs)
            a_dim = agent.model.config.step_action_dim
            agent.actions = torch.zeros(1, 0, a_dim, dtype=agent.dtype, device=agent.device)

    def observe(self, obs: dict[str, np.ndarray], action: np.ndarray) -> None:
        self.observe_joint([self], [obs], [action])

    @staticmethod
    def observe_joint(agents: list[WorldModelAgent], observations: list[dict[str, np.ndarray]],
                      actions: list[np.ndarray]) -> None:
        """:meth:`observe` of every agent (one model), all new frames in ONE encoder call."""
        latents = agents[0].encode_frames(np.stack([o["pixels"] for o in observations]))
        for agent, z, obs, action in zip(agents, latents, observations, actions, strict=True):
            agent._push(z[None, None], obs, action)

    def _push(self, latent: torch.Tensor, obs: dict[str, np.ndarray], action: np.ndarray) -> None:
        """Append the new frame's latents ``[1, 1, N, D]``, the action that led to it and its
        proprio, keeping the last ``history_length`` frames."""
        keep = self.model.config.history_length
        step = repeat(torch.as_tensor(action, dtype=self.dtype, device=self.device),
                      "a -> 1 1 (f a)", f=self.model.config.frameskip)
        self.latents = torch.cat([self.latents, latent], 1)[:, -keep:]
        self.actions = torch.cat([self.actions, step], 1)[:, -(keep - 1):] if keep > 1 \
            else self.actions
        if self.proprio is not None:
            self.proprio = torch.cat([self.proprio, self._proprio(obs)], 1)[:, -keep:]

    @torch.no_grad()
    def imagine(self, plan: torch.Tensor) -> torch.Tensor:
        """The model's imagined latents ``[H, N, D]`` of a plan ``[H, A]`` from now."""
        return self.objective().imagine(plan[None, None].to(self.device, self.dtype))[0, 0]

    def objective(self) -> LatentObjective:
        return self.joint([self])

    @staticmethod
    def joint(agents: list[WorldModelAgent]) -> LatentObjective:
        """One objective for the episodes of ``agents`` (one model; the MPC loop keeps their
        histories the same length): their histories, goals and proprio stacked."""
        a = agents[0]
        proprio = None if a.proprio is None else torch.cat([x.proprio for x in agents])
        return LatentObjective(a.model, torch.cat([x.latents for x in agents]),
                               torch.cat([x.goal for x in agents]),
                               history_actions=torch.cat([x.actions for x in agents]),
                               proprio=proprio, cost=a.cost, reduce=a.reduce,
                               chunk_size=a.chunk_size, proprio_weight=a.proprio_weight,
                               proprio_dims=a.proprio_dims)


class OracleAgent:
    """The simulator scores candidates exactly (:class:`SimulatorObjective`)."""

    name = "oracle"

    def __init__(self, action_repeat: int, reduce: str = "sum") -> None:
        self.action_repeat, self.reduce = action_repeat, reduce
        self.env = None

    @classmethod
    def build(cls, s: AgentSettings) -> OracleAgent:
        return cls(s.action_repeat, reduce=s.reduce)

    def reset(self, env: Any, obs: dict[str, np.ndarray]) -> None:
        self.env = env

    def observe(self, obs: dict[str, np.ndarray], action: np.ndarray) -> None:
        pass

    def objective(self):
        return self.joint([self])

    @staticmethod
    def joint(agents: list[OracleAgent]):
        """The simulator scoring the episodes of ``agents`` in one rollout call."""
        from jepa_world.planning.oracle import SimulatorObjective

        a = agents[0]
        return SimulatorObjective.from_envs([x.env for x in agents],
                                            action_repeat=a.action_repeat, reduce=a.reduce)


class BlindAgent:
    """No model: every candidate costs 0 (the random planner ignores costs anyway)."""

    name = "random"

    @classmethod
    def build(cls, s: AgentSettings) -> BlindAgent:
        return cls()

    def reset(self, env: Any, obs: dict[str, np.ndarray]) -> None:
        pass

    def observe(self, obs: dict[str, np.ndarray], action: np.ndarray) -> None:
        pass

    def objective(self):
        return self.joint([self])

    @staticmethod
    def joint(agents: list[BlindAgent]):
        return lambda actions: actions.new_zeros(actions.shape[:2])


def joint_reset(agents: list[Any], envs: list[Any], observations: list[dict]) -> None:
    """``agents[i].reset(envs[i], observations[i])`` for every episode (agents of one kind),
    through the kind's ``reset_joint`` when it has one (a world model encodes every frame in
    one call)."""
    if hasattr(type(agents[0]), "reset_joint"):
        type(agents[0]).reset_joint(agents, envs, observations)
        return
    for agent, env, obs in zip(agents, envs, observations, strict=True):
        agent.reset(env, obs)


def joint_observe(agents: list[Any], observations: list[dict], actions: list[Any]) -> None:
    """``agents[i].observe(observations[i], actions[i])`` for every episode (agents of one
    kind), through the kind's ``observe_joint`` when it has one."""
    if hasattr(type(agents[0]), "observe_joint"):
        type(agents[0]).observe_joint(agents, observations, actions)
        return
    for agent, obs, action in zip(agents, observations, actions, strict=True):
        agent.observe(obs, action)


def joint_objective(agents: list[Any]) -> Any:
    """One planning objective ``[B, S, H, A] -> [B, S]`` for ``B`` episodes, one agent each (of
    one kind): the agents' ``joint`` when they have one, else each agent's own objective on its
    row."""
    if hasattr(type(agents[0]), "joint"):
        return type(agents[0]).joint(agents)
    objectives = [agent.objective() for agent in agents]
    return lambda actions: torch.cat([objective(actions[i:i + 1])
                                      for i, objective in enumerate(objectives)])


#: The plan command's agents by name (``agents=[...]``): ``AGENTS[name].build(settings)``.
AGENTS = {"world_model": WorldModelAgent, "oracle": OracleAgent, "random": BlindAgent}

__all__ = ["AGENTS", "Agent", "AgentSettings", "BlindAgent", "OracleAgent", "WorldModelAgent",
           "joint_objective", "joint_observe", "joint_reset"]
