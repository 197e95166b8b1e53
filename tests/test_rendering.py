"""Headless GL backend selection: every rule of choose_backend, and real renders in subprocesses."""

from __future__ import annotations

import ctypes.util
import subprocess

import numpy as np
import pytest

from jepa_world.envs.rendering import RenderBackendError, choose_backend
from tests.conftest import PYTHON, python_env


def probes(libs=(), gpu=False, dri=False):
    return dict(has_library=lambda name: name in libs, has_nvidia_gpu=lambda: gpu,
                has_mesa_dri=lambda: dri)


def test_user_choice_is_respected():
    assert choose_backend({"MUJOCO_GL": "osmesa"}, "linux", **probes(libs={"OSMesa"})) == "osmesa"
    assert choose_backend({"MUJOCO_GL": "EGL"}, "linux", **probes(libs={"EGL", "OpenGL"})) == "egl"
    assert choose_backend({"MUJOCO_GL": "glfw"}, "linux", **probes()) == "glfw"


def test_user_choice_without_its_library_names_the_package():
    with pytest.raises(RenderBackendError, match="libosmesa6"):
        choose_backend({"MUJOCO_GL": "osmesa"}, "linux", **probes(libs={"EGL", "OpenGL"}))
    with pytest.raises(RenderBackendError, match="libegl1"):
        choose_backend({"MUJOCO_GL": "egl"}, "linux", **probes(libs={"OSMesa"}))


def test_invalid_user_choice():
    with pytest.raises(RenderBackendError, match="not a MuJoCo GL backend"):
        choose_backend({"MUJOCO_GL": "vulkan"}, "linux", **probes())


def test_automatic_choice_on_linux():
    egl_libs = {"EGL", "OpenGL"}
    assert choose_backend({}, "linux", **probes(libs=egl_libs, gpu=True)) == "egl"
    assert choose_backend({}, "linux", **probes(libs=egl_libs, dri=True)) == "egl"
    # EGL libraries but no driver to back them: OSMesa is the software fallback.
    assert choose_backend({}, "linux", **probes(libs=egl_libs | {"OSMesa"})) == "osmesa"
    assert choose_backend({}, "linux", **probes(libs={"OSMesa"}, dri=True)) == "osmesa"


def test_nothing_available_says_what_to_install():
    with pytest.raises(RenderBackendError) as err:
        choose_backend({}, "linux", **probes())
    assert "libegl1 libopengl0 libgl1-mesa-dri" in str(err.value)
    assert "libosmesa6" in str(err.value)


def test_other_platforms_use_the_native_context():
    assert choose_backend({}, "darwin", **probes()) is None
    assert choose_backend({}, "win32", **probes()) is None


RENDER_SNIPPET = """
import os, sys, numpy as np, gymnasium as gym, jepa_world
env = gym.make("jepa_world/Reach-v0", image_size=48)
obs, _ = env.reset(seed=1)
np.save(sys.argv[1], obs["pixels"])
print(os.environ.get("MUJOCO_GL"))
env.close()
"""


def render_in_subprocess(tmp_path, mujoco_gl=None):
    env = python_env()
    env.pop("MUJOCO_GL", None)
    env.pop("PYOPENGL_PLATFORM", None)  # set by MuJoCo in this process if it rendered already
    if mujoco_gl:
        env["MUJOCO_GL"] = mujoco_gl
    out = tmp_path / f"frame_{mujoco_gl}.npy"
    proc = subprocess.run([PYTHON, "-c", RENDER_SNIPPET, str(out)], env=env, capture_output=True,
                          text=True, timeout=120)
    return proc, out


def test_automatic_backend_renders_the_arm(tmp_path):
    proc, out = render_in_subprocess(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in ("egl", "osmesa")
    assert "Error" not in proc.stderr  # closing at exit must not print EGL errors
    frame = np.load(out)
    assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8
    # The red upper arm and the yellow fingertip are both visible.
    red = (frame[..., 0] > 150) & (frame[..., 1] < 110)
    yellow = (frame[..., 0] > 180) & (frame[..., 1] > 150) & (frame[..., 2] < 120)
    assert red.sum() > 5 and yellow.sum() > 2


@pytest.mark.skipif(ctypes.util.find_library("OSMesa") is None, reason="libosmesa6 not installed")
def test_osmesa_and_egl_render_the_same_scene(tmp_path):
    proc_o, out_o = render_in_subprocess(tmp_path, "osmesa")
    proc_e, out_e = render_in_subprocess(tmp_path, "egl")
    assert proc_o.returncode == 0 and proc_e.returncode == 0, proc_o.stderr + proc_e.stderr
    diff = np.abs(np.load(out_o).astype(int) - np.load(out_e).astype(int))
    assert np.mean(diff > 8) < 0.02  # same software rasteriser family: near-identical frames


def test_bad_backend_fails_with_a_message(tmp_path):
    proc, _ = render_in_subprocess(tmp_path, "vulkan")
    assert proc.returncode != 0
    assert "not a MuJoCo GL backend" in proc.stderr


def test_pyopengl_platform_is_followed_or_reported():
    libs = probes(libs={"EGL", "OpenGL", "OSMesa"}, dri=True)
    assert choose_backend({"PYOPENGL_PLATFORM": "osmesa"}, "linux", **libs) == "osmesa"
    both = {"PYOPENGL_PLATFORM": "egl", "MUJOCO_GL": "egl"}
    assert choose_backend(both, "linux", **libs) == "egl"
    with pytest.raises(RenderBackendError, match="Unset PYOPENGL_PLATFORM"):
        choose_backend({"PYOPENGL_PLATFORM": "egl", "MUJOCO_GL": "osmesa"}, "linux", **libs)
