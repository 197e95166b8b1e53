"""Envs of one task share a GL context, and each still draws its own model and state."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import jepa_world.envs  # noqa: F401  (registers the tasks)
from jepa_world.envs import gl_contexts
from jepa_world.envs.rendering import import_mujoco

mujoco = import_mujoco()


def _private_render(env) -> np.ndarray:
    """The frame as a renderer of the env's own (the pre-sharing way) draws it."""
    u = env.unwrapped
    with mujoco.Renderer(u.model, u.height, u.width) as renderer:
        renderer.update_scene(u.data, camera=u.camera)
        return renderer.render()


@pytest.mark.parametrize("task", ["jepa_world/Reach-v0", "jepa_world/Push-v0"])
def test_shared_renderer_draws_each_env_like_its_own_renderer(task):
    envs = [gym.make(task, image_size=32) for _ in range(3)]
    for seed, env in enumerate(envs):
        env.reset(seed=seed)
    frames = [env.unwrapped.render_pixels() for env in envs]
    assert not np.array_equal(frames[0], frames[1])  # different states, different frames
    for env, frame in zip(envs, frames, strict=True):
        np.testing.assert_array_equal(frame, _private_render(env))
    keys = [k for k in gl_contexts._POOL.renderers if k[1].endswith(envs[0].unwrapped.xml_file)
            and k[2:] == (32, 32)]
    assert len(keys) == 1  # one context for all three


def test_run_time_model_changes_are_drawn_for_that_env_only():
    a, b = (gym.make("jepa_world/Reach-v0", image_size=32) for _ in range(2))
    a.reset(seed=0)
    b.reset(seed=0)
    before = a.unwrapped.render_pixels()
    np.testing.assert_array_equal(before, b.unwrapped.render_pixels())
    b.unwrapped.model.geom_rgba[:, :3] = 1.0  # everything white, in b's model only
    assert not np.array_equal(b.unwrapped.render_pixels(), before)
    np.testing.assert_array_equal(a.unwrapped.render_pixels(), before)


def test_sizes_get_their_own_context_and_a_closed_env_still_renders():
    small, large = gym.make("jepa_world/Reach-v0", image_size=16), \
        gym.make("jepa_world/Reach-v0", image_size=48)
    small.reset(seed=1)
    large.reset(seed=1)
    assert small.unwrapped.render_pixels().shape == (16, 16, 3)
    assert large.unwrapped.render_pixels().shape == (48, 48, 3)
    small.close()  # frees nothing shared: the other env keeps rendering
    assert large.unwrapped.render_pixels().shape == (48, 48, 3)


def test_unknown_camera_is_named():
    model = gym.make("jepa_world/Reach-v0").unwrapped.model
    with pytest.raises(ValueError, match="no camera 'side'"):
        gl_contexts.fixed_camera(model, "side")
