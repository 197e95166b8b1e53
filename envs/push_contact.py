"""The scripted contact pusher of ``jepa_world/Push-v0`` (numpy only, no MuJoCo import).

A *push* is a contact point on the T block's outline and the face's outward normal, both in the
block's frame. :func:`contact_action` drives the pusher disc there without running into the
block (it circles the block at a safe radius until it is on the contact's side, then moves in)
and then pushes through the point, following it as the block moves and turns. The env uses it
to place goals reachable by construction; :class:`ContactPushPolicy` mixes it with correlated
noise to collect data that touches the block often.

The geometry mirrors ``envs/assets/push.xml`` (a test checks it against the model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The T's two boxes in the block frame: ``(centre x, centre y, half width, half height)``.
BLOCK_BOXES = ((0.0, 0.12, 0.24, 0.06), (0.0, -0.12, 0.06, 0.18))
PUSHER_RADIUS = 0.07
#: The block's outline faces: ``(start, end, outward normal)`` in the block frame.
FACES = (
    ((-0.24, 0.18), (0.24, 0.18), (0.0, 1.0)),     # bar top
    ((0.24, 0.06), (0.24, 0.18), (1.0, 0.0)),      # bar east end
    ((-0.24, 0.06), (-0.24, 0.18), (-1.0, 0.0)),   # bar west end
    ((0.06, 0.06), (0.24, 0.06), (0.0, -1.0)),     # bar underside, east
    ((-0.24, 0.06), (-0.06, 0.06), (0.0, -1.0)),   # bar underside, west
    ((0.06, -0.30), (0.06, 0.06), (1.0, 0.0)),     # stem east side
    ((-0.06, -0.30), (-0.06, 0.06), (-1.0, 0.0)),  # stem west side
    ((-0.06, -0.30), (0.06, -0.30), (0.0, -1.0)),  # stem foot
)
#: Distance from the block origin to its farthest corner.
BLOCK_RADIUS = float(max(np.hypot(abs(cx) + hx, abs(cy) + hy) for cx, cy, hx, hy in BLOCK_BOXES))
#: Radius at which the pusher circles the block, clear of it.
ORBIT_RADIUS = BLOCK_RADIUS + PUSHER_RADIUS + 0.06
STANDOFF = PUSHER_RADIUS + 0.04  #: pusher centre to contact point before pushing


@dataclass(frozen=True)
class Push:
    """A contact point ``point`` on the outline and its face's outward ``normal`` (block frame);
    ``strength`` scales the pushing force."""

    point: np.ndarray
    normal: np.ndarray
    strength: float = 1.0


def rotate(theta: np.ndarray | float, v: np.ndarray) -> np.ndarray:
    """Rotate 2-vectors ``v`` by ``theta`` (rad)."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def sample_push(rng: np.random.Generator, strength: tuple[float, float] = (1.0, 1.0)) -> Push:
    """A random push: a face drawn by its length, a point along it clear of its ends."""
    lengths = np.array([np.hypot(*np.subtract(b, a)) for a, b, _ in FACES])
    a, b, normal = FACES[rng.choice(len(FACES), p=lengths / lengths.sum())]
    t = rng.uniform(0.15, 0.85)
    point = np.asarray(a) + t * (np.asarray(b) - np.asarray(a))
    return Push(point, np.asarray(normal, float), float(rng.uniform(*strength)))


def _pd(position: np.ndarray, velocity: np.ndarray, target: np.ndarray,
        gain: float = 6.0, damping: float = 0.5) -> np.ndarray:
    return np.clip(gain * (target - position) - damping * velocity, -1.0, 1.0)


def contact_action(pusher: np.ndarray, block: np.ndarray, push: Push) -> np.ndarray:
    """The force ``[2]`` in ``[-1, 1]`` that carries out ``push``.

    Args:
        pusher: ``[x, y, vx, vy]`` (the env's proprio).
        block: the block pose ``[x, y, theta]`` (the env's achieved goal).
        push: the contact to seek and push through.
    """
    position, velocity = np.asarray(pusher[:2], float), np.asarray(pusher[2:4], float)
    centre, theta = np.asarray(block[:2], float), float(block[2])
    contact = centre + rotate(theta, push.point)
    normal = rotate(theta, push.normal)
    approach = contact + STANDOFF * normal
    offset = position - contact
    side = np.array([-normal[1], normal[0]])
    along, across = offset @ normal, offset @ side
    if -0.02 < along < STANDOFF + 0.05 and abs(across) < 0.05:  # lined up: push through
        force = np.clip(-1.5 * normal - 8.0 * across * side, -1.0, 1.0)
        return (push.strength * force).astype(np.float32)
    rel, goal_rel = position - centre, approach - centre
    phi, phi_goal = np.arctan2(rel[1], rel[0]), np.arctan2(goal_rel[1], goal_rel[0])
    turn = (phi_goal - phi + np.pi) % (2 * np.pi) - np.pi
    if abs(turn) < 0.45:  # on the contact's side: straight in
        return _pd(position, velocity, approach).astype(np.float32)
    step = phi + np.sign(turn) * min(abs(turn), 0.7)  # else circle towards that side
    target = centre + ORBIT_RADIUS * np.array([np.cos(step), np.sin(step)])
    return _pd(position, velocity, target).astype(np.float32)


__all__ = ["BLOCK_BOXES", "BLOCK_RADIUS", "FACES", "ORBIT_RADIUS", "PUSHER_RADIUS", "Push",
           "contact_action", "rotate", "sample_push"]
