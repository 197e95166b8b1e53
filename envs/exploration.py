"""Exploration policies: the action sources used to collect data and to place reachable goals.

Each draws actions for one episode from its own seeded generator, so an episode's actions depend
only on its seed (and, for env-aware ones, on the observations, themselves determined by the
seed). A policy is called with the env's current observation dict, ``policy(obs)``; the blind ones
(``uniform``, ``correlated``) ignore it, ``contact`` (push's) reads the disc and the block from
it, ``doorway`` (TwoRoom's, :class:`jepa_world.envs.two_room.DoorwayPolicy`) the agent's
position and velocity. Actions are float32 in ``[low, high]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jepa_world.envs.push_contact import Push, contact_action, sample_push

POLICIES = ("uniform", "correlated", "contact", "doorway", "walls")
#: Policies that read one task's observations: the task ids they work on.
POLICY_TASKS = {"contact": ("jepa_world/Push-v0",), "doorway": ("jepa_world/TwoRoom-v0",),
                "walls": ("jepa_world/TwoRoom-v0",)}


@dataclass
class UniformPolicy:
    """Independent uniform actions each step: wide coverage of actions, little of states."""

    low: np.ndarray
    high: np.ndarray
    rng: np.random.Generator

    def __call__(self, obs: dict | None = None) -> np.ndarray:
        return self.rng.uniform(self.low, self.high).astype(np.float32)


@dataclass
class CorrelatedNoisePolicy:
    """First-order autoregressive (Ornstein-Uhlenbeck-like) noise, clipped to the action bounds.

    ``a[t+1] = beta * a[t] + sqrt(1 - beta^2) * sigma * eps``: the stationary std is ``sigma``
    (in units of half the action range) and ``beta`` sets how long a push lasts, so the arm
    sweeps through its workspace instead of jittering in place.
    """

    low: np.ndarray
    high: np.ndarray
    rng: np.random.Generator
    beta: float = 0.9
    sigma: float = 0.8

    def __post_init__(self) -> None:
        self._centre = (self.high + self.low) / 2
        self._half = (self.high - self.low) / 2
        self._z = self.rng.normal(size=self.low.shape) * self.sigma

    def __call__(self, obs: dict | None = None) -> np.ndarray:
        eps = self.rng.normal(size=self.low.shape)
        self._z = self.beta * self._z + np.sqrt(1.0 - self.beta**2) * self.sigma * eps
        return np.clip(self._centre + self._half * self._z, self.low, self.high).astype(np.float32)


@dataclass
class ContactPushPolicy:
    """Push's data policy: the scripted contact pusher with correlated noise, so the data
    cover the table and contact from every side.

    Stretches alternate: with probability ``push_fraction`` a push at a random contact
    (:func:`~jepa_world.envs.push_contact.sample_push`, random strength) for 15-50 steps, the
    correlated noise (``sigma * noise_scale``) added to its forces; otherwise 5-15 steps of the
    correlated noise alone. ``obs`` must hold ``proprio`` (the disc) and ``achieved_goal`` (the
    block pose).
    """

    low: np.ndarray
    high: np.ndarray
    rng: np.random.Generator
    beta: float = 0.9
    sigma: float = 0.8
    push_fraction: float = 0.8
    noise_scale: float = 0.4

    def __post_init__(self) -> None:
        self._noise = CorrelatedNoisePolicy(self.low, self.high, self.rng, self.beta, self.sigma)
        self._push: Push | None = None
        self._left = 0

    def __call__(self, obs: dict | None = None) -> np.ndarray:
        if obs is None or "proprio" not in obs or "achieved_goal" not in obs:
            raise ValueError("the contact policy reads the observation: call it as policy(obs) "
                             "with obs['proprio'] (the disc) and obs['achieved_goal'] (the block)")
        if self._left == 0:
            pushing = self.rng.random() < self.push_fraction
            self._push = sample_push(self.rng, strength=(0.5, 1.0)) if pushing else None
            self._left = int(self.rng.integers(15, 51) if pushing else self.rng.integers(5, 16))
        self._left -= 1
        noise = self._noise()
        if self._push is None:
            return noise
        action = contact_action(obs["proprio"], obs["achieved_goal"], self._push)
        return np.clip(action + self.noise_scale * noise, self.low, self.high).astype(np.float32)


def make_policy(
    name: str,
    low: np.ndarray,
    high: np.ndarray,
    seed: int | np.random.Generator,
    beta: float = 0.9,
    sigma: float = 0.8,
):
    """Build an exploration policy by name (one of :data:`POLICIES`) for one episode."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    if name == "uniform":
        return UniformPolicy(low, high, rng)
    if name == "correlated":
        return CorrelatedNoisePolicy(low, high, rng, beta=beta, sigma=sigma)
    if name == "contact":
        return ContactPushPolicy(low, high, rng, beta=beta, sigma=sigma)
    if name in ("doorway", "walls"):
        from jepa_world.envs.two_room import WALLS_MIX, DoorwayPolicy  # the task imports this

        mix = WALLS_MIX if name == "walls" else {}
        return DoorwayPolicy(low, high, rng, beta=beta, sigma=sigma, **mix)
    raise ValueError(f"unknown exploration policy {name!r}; choose one of {', '.join(POLICIES)}")
