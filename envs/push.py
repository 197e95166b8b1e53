"""``jepa_world/Push-v0``: push a T-shaped block to a goal pose with a disc, seen from above.

A force-driven pusher disc (radius 0.07, slide joints ``x``, ``y``, damped like the navigation
point mass) and a planar T block (slide x, slide y, hinge z; damped with dry friction, so it
stops within a few steps once nothing pushes it) on a 2 x 2 table with walls. The block moves
only when the disc pushes it.

* actions: the two forces on the disc in ``[-1, 1]``; one env step is 5 physics steps of 10 ms;
* ``proprio``: the disc's ``[x, y, vx, vy]``;
* ``achieved_goal`` / ``desired_goal``: the block pose ``[x, y, theta]`` (theta in
  ``[-pi, pi)``);
* success: both position coordinates within ``success_tolerance`` (0.08, 4% of the table's
  width, Push-T's 20 px of 512) and the angle within ``angle_tolerance`` (pi/9), modulo 2 pi.

Goals are reachable by construction: at reset the scripted contact pusher
(:mod:`jepa_world.envs.push_contact`) circles the block to a random contact point and pushes
through it (switching to a second contact half way) for ``goal_offset`` steps, and the end pose
is the goal; draws that move the block less than :attr:`PushEnv.MIN_MOVE` or turn it less
than :attr:`PushEnv.MIN_TURN` are drawn again, so every goal needs real pushing. The actions
are kept in :attr:`goal_actions`; the simulator is rewound to the start.
"""

from __future__ import annotations

import numpy as np

from jepa_world.envs.goal_env import MujocoGoalEnv, wrap_angle
from jepa_world.envs.push_contact import (
    BLOCK_RADIUS,
    PUSHER_RADIUS,
    contact_action,
    sample_push,
)

TABLE = 1.0  #: half-size of the table inside the walls


class PushEnv(MujocoGoalEnv):
    """Push-T on MuJoCo; see the module docstring for the observations, goals and success."""

    xml_file = "push.xml"
    default_frame_skip = 5  #: 0.05 s an env step
    goal_angles = (2,)  #: the block's angle
    BLOCK_START = 0.35  #: the block's start centre is drawn in ``[-0.35, 0.35]^2``
    PUSHER_START = TABLE - PUSHER_RADIUS - 0.05  #: the disc starts on the table, ...
    PUSHER_REACH = 0.5  #: ... at most this far outside the block's circumcircle
    MIN_MOVE = 0.16  #: a goal moves the block at least this far (twice the tolerance) ...
    MIN_TURN = np.pi / 6  #: ... and turns it at least this much (1.5 angle tolerances)
    GOAL_DRAWS = 30  #: scripted pushes tried per reset before keeping the largest
    #: the T's extreme points in its own frame (``push.xml``): the bar's two ends, the stem's tip
    KEYPOINTS = np.array([[-0.24, 0.12], [0.24, 0.12], [0.0, -0.30]])

    def __init__(self, *args, goal_offset: int = 30, success_tolerance: float = 0.08,
                 angle_tolerance: float = np.pi / 9, **kwargs) -> None:
        if not angle_tolerance > 0:
            raise ValueError(f"angle_tolerance must be > 0, got {angle_tolerance}")
        self.angle_tolerance = float(angle_tolerance)
        super().__init__(*args, goal_offset=goal_offset, success_tolerance=success_tolerance,
                         **kwargs)

    # --------------------------------------------------------------------- MujocoGoalEnv hooks
    def _sample_initial_state(self, rng):
        block = np.array([*rng.uniform(-self.BLOCK_START, self.BLOCK_START, 2),
                          rng.uniform(-np.pi, np.pi)])
        near = BLOCK_RADIUS + PUSHER_RADIUS + 0.03  # clear of the block's circumcircle ...
        far = near + self.PUSHER_REACH  # ... and close enough to reach a contact in time
        while True:  # rejection sampling; about half the draws are kept
            pusher = rng.uniform(-self.PUSHER_START, self.PUSHER_START, 2)
            if near < np.linalg.norm(pusher - block[:2]) < far:
                return np.concatenate([pusher, block]), np.zeros(5)

    def _place_goal(self, rng):
        start = self.get_sim_state()
        block = self._achieved_goal()
        best, best_actions, best_score = None, None, -1.0
        for _ in range(self.GOAL_DRAWS):
            pushes = [sample_push(rng), sample_push(rng)]
            switch = int(rng.integers(self.goal_offset // 3, self.goal_offset + 1))
            for t in range(self.goal_offset):
                self.goal_actions[t] = contact_action(self._proprio(), self._achieved_goal(),
                                                      pushes[t >= switch])
                self._simulate(self.goal_actions[t])
            goal = self._achieved_goal()
            moved = float(np.linalg.norm(goal[:2] - block[:2]))
            turned = float(np.abs(wrap_angle(goal[2] - block[2])))
            score = min(moved / self.MIN_MOVE, turned / self.MIN_TURN)
            if score > best_score:
                best, best_actions = self.get_sim_state(), self.goal_actions.copy()
                best_score = score
            self.set_sim_state(start)
            if score >= 1.0:
                break
        self.goal_actions[:] = best_actions
        self.set_sim_state(best)  # forward kinematics of the goal state, for its frame
        goal, frame = self._achieved_goal().astype(np.float32), self.render_pixels()
        self.set_sim_state(start)
        return goal, frame

    def goal_from_qpos(self, qpos: np.ndarray) -> np.ndarray:
        """``[..., 5]`` -> ``[..., 3]``: the block's ``x``, ``y`` and its angle wrapped to
        ``[-pi, pi)``."""
        qpos = np.asarray(qpos)
        return np.concatenate([qpos[..., 2:4], wrap_angle(qpos[..., 4:5])], axis=-1)

    def goal_keypoints(self, goals: np.ndarray) -> np.ndarray:
        """``[..., 3]`` block poses -> ``[..., 3, 2]`` world positions of :attr:`KEYPOINTS`."""
        goals = np.asarray(goals, dtype=np.float64)
        cos, sin = np.cos(goals[..., 2:3]), np.sin(goals[..., 2:3])  # [..., 1]
        kx, ky = self.KEYPOINTS[:, 0], self.KEYPOINTS[:, 1]  # [3]
        x = goals[..., 0:1] + cos * kx - sin * ky
        y = goals[..., 1:2] + sin * kx + cos * ky
        return np.stack([x, y], axis=-1)

    def success_tolerances(self) -> np.ndarray:
        return np.array([self.success_tolerance, self.success_tolerance, self.angle_tolerance])

    def _goal_bounds(self):
        high = np.array([TABLE, TABLE, np.pi], dtype=np.float32)
        return -high, high

    def _proprio_bounds(self):
        high = np.array([TABLE, TABLE, 10.0, 10.0], dtype=np.float32)  # speeds stay under 3
        return -high, high

    def _proprio(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[:2], self.data.qvel[:2]])


__all__ = ["TABLE", "PushEnv"]
