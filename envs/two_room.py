"""``jepa_world/TwoRoom-v0``: two rooms joined by a door; start in one, goal in the other.

The wall at ``x = 0`` leaves a door of half-width 0.2 around ``y = 0`` (the agent's radius is
0.08), so every plan must pass through it. See :mod:`jepa_world.envs.point_mass` for the
observations, actions and how goals are drawn.
"""

from __future__ import annotations

import numpy as np

from jepa_world.envs.point_mass import ARENA, CLEARANCE, PointMassEnv

#: Where each room's starts and goals are drawn: clear of the outer walls and the divider.
_ROOM_X = (0.05 + CLEARANCE, ARENA - CLEARANCE)
_ROOM_Y = (-ARENA + CLEARANCE, ARENA - CLEARANCE)


def room(side: int) -> tuple[float, float, float, float]:
    """The box of the room at ``side`` (-1 west, +1 east)."""
    x0, x1 = sorted(side * x for x in _ROOM_X)
    return x0, x1, *_ROOM_Y


class TwoRoomEnv(PointMassEnv):
    """Two rooms and a door; the goal is always in the room the agent does not start in."""

    xml_file = "two_room.xml"
    DOOR_APPROACH = 0.3  #: waypoints this far either side of the door

    def _regions(self, side):
        return room(side), room(-side)

    def waypoints(self, start, goal):
        side = 1.0 if start[0] > 0 else -1.0
        return [np.array([side * self.DOOR_APPROACH, 0.0]),
                np.array([-side * self.DOOR_APPROACH, 0.0]), np.asarray(goal, float)]
