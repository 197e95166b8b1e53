"""A planner as a policy: ``act(obs) -> action`` under model-predictive control.

RL code compares with, distils or warm-starts from planning through the same call it makes to a
policy::

    policy = PlannerPolicy(model, env.action_space, planner="cem")
    obs, _ = env.reset(seed=0)                 # env = ActionRepeat(task, model frameskip)
    policy.reset(obs)
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy.act(obs))

Each call replans from the latest observation (pixels + proprio, the goal image of the
episode), warm-started from the previous plan shifted by one action, exactly as
``python -m jepa_world.plan`` does; call it once per held action (``frameskip`` env steps).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from jepa_world.planners import ActionBounds, make_planner, shift_plan
from jepa_world.planning.agents import WorldModelAgent
from jepa_world.world_model import WorldModel


class PlannerPolicy:
    """MPC with a world model behind ``reset(obs)`` / ``act(obs)``.

    Args:
        model: the world model (planning happens on its device).
        action_space: the task's action box.
        planner: ``cem``, ``mppi``, ``gradient`` or ``random`` (``jepa_world.planners``).
        seed: seeds the planner's generator at every :meth:`reset` (reproducible episodes).
        cost, chunk_size: as in ``python -m jepa_world.plan``.
        **planner_fields: the planner's config (``samples``, ``iterations``, ``horizon``...).
    """

    def __init__(self, model: WorldModel, action_space: Any, planner: str = "cem",
                 seed: int = 0, cost: str = "l1", chunk_size: int = 1024,
                 **planner_fields: Any) -> None:
        device = model.pixel_mean.device
        self.planner = make_planner(planner, ActionBounds.from_space(action_space,
                                                                     device=device),
                                    **planner_fields)
        self.agent = WorldModelAgent(model, cost=cost, chunk_size=chunk_size)
        self.seed = int(seed)
        self._generator = torch.Generator(device=device)
        self._plan: torch.Tensor | None = None
        self._last: np.ndarray | None = None

    def reset(self, obs: dict[str, np.ndarray], seed: int | None = None) -> None:
        """Start an episode from its first observation (``pixels``, ``goal_pixels``,
        ``proprio``)."""
        self.agent.reset(None, obs)
        self._generator.manual_seed(self.seed if seed is None else int(seed))
        self._plan, self._last = None, None

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The first action of a fresh plan from ``obs`` (the observation after the previous
        action, or the episode's first one)."""
        if self.agent.latents is None:
            raise RuntimeError("call reset(obs) at the start of each episode")
        if self._last is not None:
            self.agent.observe(obs, self._last)
        init = shift_plan(self._plan, 1) if self._plan is not None else None
        plan = self.planner.plan(self.agent.objective(), 1, init=init,
                                 generator=self._generator)
        self._plan = plan.actions
        self._last = plan.actions[0, 0].cpu().numpy().astype(np.float32)
        return self._last.copy()


__all__ = ["PlannerPolicy"]
