"""Shared machinery of the point-mass navigation tasks (two rooms, U-maze).

A force-driven point mass (slide joints ``x``, ``y``; actions are the two forces in ``[-1, 1]``;
damped, so it coasts to a stop) moves among walls seen from above. A task names where starts
and goals are drawn (always on opposite sides of a wall, so the straight line is blocked) and
the waypoints a path between them takes. Goals are drawn states, not exploration endpoints: the
start's side is random, the goal is on the other. :attr:`goal_actions` holds the actions of a
scripted waypoint controller that reaches the goal from the start (simulated at reset and
rewound), which proves every goal reachable within ``goal_offset`` steps.

``achieved_goal`` / ``desired_goal`` are the position ``[x, y]``; ``proprio`` is
``[x, y, vx, vy]``; success when both coordinates are within ``success_tolerance``.
"""

from __future__ import annotations

import numpy as np

from jepa_world.envs.goal_env import MujocoGoalEnv

#: Arena half-size inside the walls, and the clearance the agent (radius 0.08) keeps from them.
ARENA, CLEARANCE = 1.0, 0.12


def waypoint_action(position: np.ndarray, velocity: np.ndarray, target: np.ndarray,
                    gain: float = 4.0, damping: float = 0.6) -> np.ndarray:
    """A PD force towards ``target``, clipped to the action box."""
    return np.clip(gain * (target - position) - damping * velocity, -1.0, 1.0).astype(np.float32)


class PointMassEnv(MujocoGoalEnv):
    """Base of the navigation tasks; subclasses draw starts / goals and name waypoints."""

    default_frame_skip = 5  #: 0.05 s an env step: the agent crosses the arena in ~20 steps
    camera = "top"
    #: distance at which the scripted controller moves on to the next waypoint
    WAYPOINT_RADIUS = 0.15

    def __init__(self, *args, goal_offset: int = 50, success_tolerance: float = 0.1,
                 **kwargs) -> None:
        # The navigation protocol: the scripted path gets the whole 50-step budget; success
        # within 0.1 of the goal (the arena is 2 x 2, the agent's radius 0.08).
        super().__init__(*args, goal_offset=goal_offset, success_tolerance=success_tolerance,
                         **kwargs)

    def _sample_in(self, rng: np.random.Generator, box: tuple[float, float, float, float]):
        x0, x1, y0, y1 = box
        return np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])

    def _regions(self, side: int) -> tuple[tuple, tuple]:
        """``(start box, goal box)`` as ``(x0, x1, y0, y1)`` for the start's ``side`` (+-1)."""
        raise NotImplementedError

    def waypoints(self, start: np.ndarray, goal: np.ndarray) -> list[np.ndarray]:
        """The points a path from ``start`` to ``goal`` passes, ending at ``goal``."""
        raise NotImplementedError

    # --------------------------------------------------------------------- MujocoGoalEnv hooks
    def _sample_initial_state(self, rng):
        self._side = int(rng.choice([-1, 1]))
        start_box, _ = self._regions(self._side)
        return self._sample_in(rng, start_box), np.zeros(2)

    def _place_goal(self, rng):
        start = self.get_sim_state()
        _, goal_box = self._regions(self._side)
        goal = self._sample_in(rng, goal_box)
        self.data.qpos[:], self.data.qvel[:] = goal, 0.0
        frame = self._render_here()
        self.set_sim_state(start)
        route = self.waypoints(self.data.qpos.copy(), goal)
        for t in range(self.goal_offset):
            position, velocity = self.data.qpos.copy(), self.data.qvel.copy()
            while len(route) > 1 and np.linalg.norm(route[0] - position) < self.WAYPOINT_RADIUS:
                route.pop(0)
            self.goal_actions[t] = waypoint_action(position, velocity, route[0])
            self._simulate(self.goal_actions[t])
        self.set_sim_state(start)
        return goal.astype(np.float32), frame

    def _render_here(self) -> np.ndarray:
        import mujoco

        mujoco.mj_forward(self.model, self.data)
        return self.render_pixels()

    def goal_from_qpos(self, qpos: np.ndarray) -> np.ndarray:
        """``[..., 2]`` -> ``[..., 2]``: the position."""
        return np.asarray(qpos)[..., :2]

    def _goal_bounds(self):
        return np.float32(-ARENA), np.float32(ARENA)

    def _proprio_bounds(self):
        high = np.array([ARENA, ARENA, 10.0, 10.0], dtype=np.float32)  # speeds stay under 3
        return -high, high

    def _proprio(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[:2], self.data.qvel[:2]])


__all__ = ["ARENA", "CLEARANCE", "PointMassEnv", "waypoint_action"]
