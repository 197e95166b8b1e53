"""``jepa_world/TwoRoom-v0``: two rooms joined by a door; start in one, goal in the other.

The wall at ``x = 0`` leaves a door of half-width 0.2 around ``y = 0`` (the agent's radius is
0.08), so every plan must pass through it. Goals lie at least ``GOAL_X_MIN`` from the wall: a
goal just across it makes the wall a local minimum of every goal-distance cost (the simulator
itself, planning with CEM at a 50-step lookahead, stayed pressed against it in 3 of 30 such
episodes). See :mod:`jepa_world.envs.point_mass` for the
observations, actions and how goals are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jepa_world.envs.exploration import CorrelatedNoisePolicy
from jepa_world.envs.point_mass import ARENA, CLEARANCE, PointMassEnv, waypoint_action

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


#: Stretch mix of the ``walls`` policy (a :class:`DoorwayPolicy`): fewer door trips, many
#: drives straight across the wall.
WALLS_MIX = {"trip_fraction": 0.4, "press_fraction": 0.35}


@dataclass
class DoorwayPolicy:
    """TwoRoom's data policy (``doorway``): trips through the door among correlated noise, so
    the data hold many door passages, at varied offsets from its centre (the wall's ends are
    where a model's dynamics are least sure), not only the few that noise alone makes.

    Stretches alternate: with probability ``trip_fraction`` a trip to a random point of the
    other room through the door, crossing at a random height within ``cross_spread`` of its
    centre (the door is ``|y| < 0.2``; the agent's radius 0.08), driven by the waypoint
    controller with the correlated noise (``sigma * noise_scale``) added, until it arrives or
    60 steps pass; with probability ``press_fraction`` (policy ``walls``) 10-25 steps driving
    straight across the wall at a random height of the whole arena, so the data show the wall
    stopping the agent everywhere along it (and the door letting it through); otherwise 5-15
    steps of the correlated noise alone. ``obs`` must hold ``proprio`` (``[x, y, vx, vy]``).
    """

    low: np.ndarray
    high: np.ndarray
    rng: np.random.Generator
    beta: float = 0.9
    sigma: float = 0.8
    trip_fraction: float = 0.6
    noise_scale: float = 0.5
    cross_spread: float = 0.18
    press_fraction: float = 0.0

    def __post_init__(self) -> None:
        self._noise = CorrelatedNoisePolicy(self.low, self.high, self.rng, self.beta, self.sigma)
        self._route: list[np.ndarray] = []
        self._left = 0
        self._trip = False

    def _new_stretch(self, position: np.ndarray) -> None:
        draw = self.rng.random()
        self._trip = bool(draw < self.trip_fraction)
        side = 1.0 if position[0] > 0 else -1.0
        if not self._trip:
            if draw < self.trip_fraction + self.press_fraction:
                across = np.array([-side * self.rng.uniform(0.2, 0.6),
                                   self.rng.uniform(-ARENA, ARENA)])
                self._route, self._left = [across], int(self.rng.integers(10, 26))
            else:
                self._route, self._left = [], int(self.rng.integers(5, 16))
            return
        height = self.rng.uniform(-self.cross_spread, self.cross_spread)
        x0, x1, y0, y1 = room(-int(side))
        target = np.array([self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)])
        approach = TwoRoomEnv.DOOR_APPROACH
        self._route = [np.array([side * approach, height]),
                       np.array([-side * approach, height]), target]
        self._left = 60

    def __call__(self, obs: dict | None = None) -> np.ndarray:
        if obs is None or "proprio" not in obs:
            raise ValueError("the doorway policy reads the observation: call it as policy(obs) "
                             "with obs['proprio'] = [x, y, vx, vy]")
        position, velocity = np.asarray(obs["proprio"][:2]), np.asarray(obs["proprio"][2:4])
        while self._route and np.linalg.norm(self._route[0] - position) < \
                PointMassEnv.WAYPOINT_RADIUS:
            self._route.pop(0)
        if self._left == 0 or (self._trip and not self._route):  # done, or arrived
            self._new_stretch(position)
        self._left -= 1
        noise = self._noise()
        if not self._route:
            return noise
        action = waypoint_action(position, velocity, self._route[0])
        return np.clip(action + self.noise_scale * noise, self.low, self.high).astype(np.float32)
