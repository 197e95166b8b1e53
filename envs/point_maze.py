"""``jepa_world/PointMaze-v0``: a U-maze; start in one arm, goal in the other.

A bar from the west wall to ``x = 0.4`` along ``y = 0`` makes a U open on the east side.
Starts and goals are drawn west of ``x = 0.2`` in opposite arms, so the straight line crosses
the bar and every plan must go around its east end. Starts fill their arm; goals lie in the
other arm's corner nearest the bend and away from the bar (``x >= GOAL_X_MIN``,
``|y| >= GOAL_Y_MIN``). A goal deep in the far arm, or just across the bar, makes the bar a
local minimum of every goal-distance cost: the simulator itself, planning with CEM 128 x 6 at
horizon 5 or 10, was stuck there in 15-45% of such episodes; on the corner's goals, at the
task's horizon 10 (``configs/env/maze.yaml``), it reached 30 of 30 (see the README). See
:mod:`jepa_world.envs.point_mass` for the observations, actions and how goals are drawn.
"""

from __future__ import annotations

import numpy as np

from jepa_world.envs.point_mass import ARENA, CLEARANCE, PointMassEnv

_BAR_HALF_WIDTH = 0.07
_ARM_X = (-ARENA + CLEARANCE, 0.2)
_ARM_Y = (_BAR_HALF_WIDTH + CLEARANCE, ARENA - CLEARANCE)


def arm(side: int, x_min: float = _ARM_X[0],
        y_min: float = _ARM_Y[0]) -> tuple[float, float, float, float]:
    """The box of the arm at ``side`` (-1 south, +1 north) west of ``x = 0.2``, east of
    ``x_min`` and at least ``y_min`` from the bar's axis, where starts and goals are drawn."""
    y0, y1 = sorted(side * y for y in (y_min, _ARM_Y[1]))
    return x_min, _ARM_X[1], y0, y1


class PointMazeEnv(PointMassEnv):
    """A U-maze; the goal is always in the arm the agent does not start in."""

    xml_file = "point_maze.xml"
    TURN_X, TURN_Y = 0.72, 0.45  #: the waypoints round the bar's east end
    GOAL_X_MIN, GOAL_Y_MIN = -0.35, 0.5  #: the corner of the goal's arm they are drawn in

    def _regions(self, side):
        return arm(side), arm(-side, self.GOAL_X_MIN, self.GOAL_Y_MIN)

    def waypoints(self, start, goal):
        side = 1.0 if start[1] > 0 else -1.0
        return [np.array([self.TURN_X, side * self.TURN_Y]),
                np.array([self.TURN_X, -side * self.TURN_Y]), np.asarray(goal, float)]
