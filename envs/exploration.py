"""Exploration policies: the action sources used to collect data and to place reachable goals.

They know nothing about observations: each draws actions for one episode from its own seeded
generator, so an episode's actions depend only on its seed. Actions are float32 in ``[low, high]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POLICIES = ("uniform", "correlated")


@dataclass
class UniformPolicy:
    """Independent uniform actions each step: wide coverage of actions, little of states."""

    low: np.ndarray
    high: np.ndarray
    rng: np.random.Generator

    def __call__(self) -> np.ndarray:
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

    def __call__(self) -> np.ndarray:
        eps = self.rng.normal(size=self.low.shape)
        self._z = self.beta * self._z + np.sqrt(1.0 - self.beta**2) * self.sigma * eps
        return np.clip(self._centre + self._half * self._z, self.low, self.high).astype(np.float32)


def make_policy(
    name: str,
    low: np.ndarray,
    high: np.ndarray,
    seed: int | np.random.Generator,
    beta: float = 0.9,
    sigma: float = 0.8,
):
    """Build an exploration policy by name (``uniform`` or ``correlated``) for one episode."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    if name == "uniform":
        return UniformPolicy(low, high, rng)
    if name == "correlated":
        return CorrelatedNoisePolicy(low, high, rng, beta=beta, sigma=sigma)
    raise ValueError(f"unknown exploration policy {name!r}; choose one of {', '.join(POLICIES)}")
