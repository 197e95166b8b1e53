"""The simulator as an oracle world model: MuJoCo itself scores candidate action sequences.

It gives the planners' ceiling on a task (what they reach with a perfect model) and a check of
the planning loop independent of any learned model::

    env = gym.make("jepa_world/Reach-v0", image_size=64)
    env.reset(seed=0)
    objective = SimulatorObjective.from_envs([env], action_repeat=5)
    result = make_planner("cem", ActionBounds.from_space(env.action_space)).plan(objective, 1)

All ``B * S`` candidates are simulated in one ``mujoco.rollout.rollout`` call. The costs are not
differentiable (use CEM / MPPI / random, not the gradient planner).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from jepa_world.envs.goal_env import qpos_slice
from jepa_world.envs.rendering import import_mujoco
from jepa_world.planning.objectives import REDUCTIONS

mujoco = import_mujoco()  # chooses the GL backend first, should anything render later
from mujoco import rollout as mj_rollout  # noqa: E402

GoalFn = Callable[[np.ndarray], np.ndarray]
ErrorFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class SimulatorObjective:
    """``objective(actions [B, S, H, A]) -> costs [B, S]`` from exact MuJoCo rollouts.

    Candidate ``s`` of episode ``b`` starts at ``states[b]``; each of its ``H`` planner actions
    is held for ``action_repeat`` env steps of ``frame_skip`` physics steps. The cost at a
    planner step is ``||goal_error(goal_fn(qpos), goals[b])||_2`` (the env's reward, negated)
    after that step; ``reduce="final"`` keeps the last step's, ``"sum"`` adds the ``H`` steps'.

    Args:
        model: the env's ``mujoco.MjModel`` (``env.unwrapped.model``).
        states: ``[B, state_dim]`` float64 full-physics start states
            (``mjSTATE_FULLPHYSICS``, as ``env.unwrapped.get_sim_state()``).
        goals: ``[B, G]`` goal vectors.
        goal_fn: ``qpos [..., nq] -> goal vectors [..., G]`` (``env.unwrapped.goal_from_qpos``).
        goal_error: ``(achieved [..., G], desired [..., G]) -> [..., G]`` per-coordinate error
            (``env.unwrapped.goal_error``).
        frame_skip: physics steps per env step (``env.unwrapped.frame_skip``).
        action_repeat: env steps each planner action is held for.
        reduce: ``"final"`` or ``"sum"``.
        threads: MuJoCo rollout threads (1: the calling thread).

    ``env_steps`` counts the env steps simulated so far (``B * S * H * action_repeat`` a call).
    """

    def __init__(self, model: Any, states: Any, goals: Any, goal_fn: GoalFn,
                 goal_error: ErrorFn, frame_skip: int, action_repeat: int = 1,
                 reduce: str = "final", threads: int = 1) -> None:
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
        if min(frame_skip, action_repeat, threads) < 1:
            raise ValueError(f"frame_skip, action_repeat and threads must be >= 1, got "
                             f"{frame_skip}, {action_repeat}, {threads}")
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        states = np.array(states, dtype=np.float64, ndmin=2)
        goals = np.array(goals, dtype=np.float64, ndmin=2)
        state_dim = mujoco.mj_stateSize(model, spec)
        if states.ndim != 2 or states.shape[1] != state_dim:
            raise ValueError(f"states must be [B, {state_dim}] full-physics states, got "
                             f"{list(states.shape)}")
        if goals.ndim != 2 or len(goals) != len(states):
            raise ValueError(f"goals must be [B, G] with B={len(states)}, got "
                             f"{list(goals.shape)}")
        self.model, self.states, self.goals = model, states, goals
        self.goal_fn, self.goal_error = goal_fn, goal_error
        self.frame_skip, self.action_repeat, self.reduce = frame_skip, action_repeat, reduce
        self.threads = threads
        self._data = [mujoco.MjData(model) for _ in range(threads)]
        self._qpos = qpos_slice(model)  # where qpos lies in a full-physics state
        self.env_steps = 0

    @classmethod
    def from_envs(cls, envs: Sequence[Any], action_repeat: int = 1, reduce: str = "final",
                  threads: int = 1) -> SimulatorObjective:
        """The oracle of ``B`` envs' current states and goals (one episode each, same task)."""
        units = [env.unwrapped for env in envs]
        if not units:
            raise ValueError("need at least one env")
        first = units[0]
        return cls(first.model, np.stack([u.get_sim_state() for u in units]),
                   np.stack([u.desired_goal for u in units]), first.goal_from_qpos,
                   first.goal_error, first.frame_skip, action_repeat, reduce, threads)

    @property
    def batch_size(self) -> int:
        return len(self.states)

    def simulate(self, actions: torch.Tensor | np.ndarray) -> np.ndarray:
        """Goal vectors ``[B, S, H, G]`` (float64) after each planner step of each candidate."""
        actions = (actions.detach().cpu().double().numpy() if isinstance(actions, torch.Tensor)
                   else np.asarray(actions, dtype=np.float64))
        if actions.ndim != 4 or actions.shape[0] != self.batch_size \
                or actions.shape[-1] != self.model.nu:
            raise ValueError(f"actions must be [B, S, H, A] with B={self.batch_size}, "
                             f"A={self.model.nu}, got {list(actions.shape)}")
        b, s, h, a = actions.shape
        per_action = self.action_repeat * self.frame_skip          # physics steps per action
        control = np.repeat(actions.reshape(b * s, h, a), per_action, axis=1)
        start = np.repeat(self.states, s, axis=0)                  # [B * S, state_dim]
        data = self._data[0] if self.threads == 1 else self._data
        states, _ = mj_rollout.rollout(self.model, data, start, control)
        qpos = states[:, per_action - 1::per_action, self._qpos]  # [B * S, H, nq]
        self.env_steps += b * s * h * self.action_repeat
        return self.goal_fn(qpos).reshape(b, s, h, -1)

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        """``[B, S, H, A]`` -> ``[B, S]`` costs on the device / dtype of ``actions``."""
        achieved = self.simulate(actions)                          # [B, S, H, G]
        desired = self.goals[:, None, None, :]
        distance = np.linalg.norm(self.goal_error(achieved, np.broadcast_to(
            desired, achieved.shape)), axis=-1)                    # [B, S, H]
        costs = distance[..., -1] if self.reduce == "final" else distance.sum(axis=-1)
        return torch.as_tensor(costs, device=actions.device, dtype=actions.dtype)
