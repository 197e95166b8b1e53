"""``jepa_world/Reach-v0``: a planar two-joint arm, seen from above, to be brought to a goal pose.

Actions are the two joint torques in ``[-1, 1]``; the goal is a joint configuration (shown to
planners as an image), reached when both joints are within ``success_tolerance`` (0.05 rad) of it.
The shoulder turns freely, so its error is measured modulo 2*pi.
"""

from __future__ import annotations

import numpy as np

from jepa_world.envs.goal_env import MujocoGoalEnv, wrap_angle


class ReachEnv(MujocoGoalEnv):
    """Two-joint reach task; see :class:`MujocoGoalEnv` for the observation and goal contract.

    ``proprio`` is ``[shoulder, elbow, shoulder_velocity, elbow_velocity]`` (angles in rad, the
    shoulder wrapped to ``[-pi, pi)``); ``achieved_goal`` / ``desired_goal`` are the two angles.
    """

    xml_file = "reach.xml"
    goal_angles = (0,)  # the shoulder turns freely
    ELBOW_START_RANGE = 2.4  # rad; inside the joint's +-2.6 limit

    def _sample_initial_state(self, rng):
        qpos = np.array([rng.uniform(-np.pi, np.pi),
                         rng.uniform(-self.ELBOW_START_RANGE, self.ELBOW_START_RANGE)])
        return qpos, np.zeros(2)

    def goal_from_qpos(self, qpos: np.ndarray) -> np.ndarray:
        """``[..., 2]`` -> ``[..., 2]``: the shoulder wrapped to ``[-pi, pi)``, the elbow."""
        qpos = np.asarray(qpos)
        return np.stack([wrap_angle(qpos[..., 0]), qpos[..., 1]], axis=-1)

    def _goal_bounds(self):
        return np.float32(-np.pi), np.float32(np.pi)  # the elbow's 2.6 rad limit is inside

    def _proprio_bounds(self):
        # Joint speeds stay under ~6 rad/s at full torque (damping); 50 is a safe bound.
        high = np.array([np.pi, np.pi, 50, 50], dtype=np.float32)
        return -high, high

    def _proprio(self) -> np.ndarray:
        return np.concatenate([self._achieved_goal(), self.data.qvel])


__all__ = ["ReachEnv", "wrap_angle"]
