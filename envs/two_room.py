"""``jepa_world/TwoRoom-v0``: two rooms joined by a door; start in one, goal in the other.

The wall at ``x = 0`` leaves a door of half-width 0.2 around ``y = 0`` (the agent's radius is
0.08), so every plan must pass through it. Goals lie at least ``GOAL_X_MIN`` from the wall: a
goal just across it makes the wall a local minimum of every goal-distance cost (the simulator
itself, planning with CEM at a 50-step lookahead, stayed pressed against it in 3 of 30 such
episodes). See :mod:`jepa_world.envs.point_mass` for the
observations, actions and how goals are drawn.
"""

from __future__ import annotations

import numpy as np

from jepa_world.envs.point_mass import ARENA, CLEARANCE, PointMassEnv

#: Where each room's starts and goals are drawn: clear of the outer walls and the divider.
_ROOM_X = (0.05 + CLEARANCE, ARENA - CLEARANCE)
_ROOM_Y = (-ARENA + CLEARANCE, ARENA - CLEARANCE)


def room(side: int, x_min: float = _ROOM_X[0]) -> tuple[float, float, float, float]:
    """The box of the room at ``side`` (-1 west, +1 east), at least ``x_min`` from the wall."""
    x0, x1 = sorted(side * x for x in (x_min, _ROOM_X[1]))
    return x0, x1, *_ROOM_Y


class TwoRoomEnv(PointMassEnv):
    """Two rooms and a door; the goal is always in the room the agent does not start in."""

    xml_file = "two_room.xml"
    DOOR_APPROACH = 0.3  #: waypoints this far either side of the door
    GOAL_X_MIN = 0.45  #: goals lie at least this far from the wall

    def _regions(self, side):
        return room(side), room(-side, self.GOAL_X_MIN)

    def waypoints(self, start, goal):
        side = 1.0 if start[0] > 0 else -1.0
        return [np.array([side * self.DOOR_APPROACH, 0.0]),
                np.array([-side * self.DOOR_APPROACH, 0.0]), np.asarray(goal, float)]
