"""Exploration policies: bounds, determinism, time correlation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jepa_world.envs.exploration import make_policy

LOW, HIGH = np.array([-1.0, -2.0]), np.array([1.0, 0.5])


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(["uniform", "correlated"]), seed=st.integers(0, 2**31),
       beta=st.floats(0.0, 0.99), sigma=st.floats(0.05, 5.0))
def test_actions_stay_in_bounds_and_are_float32(name, seed, beta, sigma):
    policy = make_policy(name, LOW, HIGH, seed, beta=beta, sigma=sigma)
    actions = np.stack([policy() for _ in range(50)])
    assert actions.dtype == np.float32
    assert np.all(actions >= LOW.astype(np.float32)) and np.all(actions <= HIGH.astype(np.float32))


@pytest.mark.parametrize("name", ["uniform", "correlated"])
def test_same_seed_same_actions(name):
    a = make_policy(name, LOW, HIGH, 5)
    b = make_policy(name, LOW, HIGH, 5)
    np.testing.assert_array_equal([a() for _ in range(20)], [b() for _ in range(20)])


def lag1_autocorrelation(x):
    x = x - x.mean(0)
    return float(np.mean(np.sum(x[1:] * x[:-1], 0) / np.sum(x * x, 0)))


def test_correlated_noise_is_correlated_in_time():
    corr = make_policy("correlated", LOW, HIGH, 0, beta=0.9)
    unif = make_policy("uniform", LOW, HIGH, 0)
    assert lag1_autocorrelation(np.stack([corr() for _ in range(2000)])) > 0.6
    assert abs(lag1_autocorrelation(np.stack([unif() for _ in range(2000)]))) < 0.1


def test_unknown_policy():
    with pytest.raises(ValueError, match="uniform, correlated"):
        make_policy("brownian", LOW, HIGH, 0)
