"""GL contexts in a process: one shared renderer per task scene and size, fork and exit safety.

Making a ``mujoco.Renderer`` (a GL context, the scene's meshes and textures uploaded into it)
costs about 50 ms on a CPU, the price of a hundred 64 px renders; an evaluation that opens one env
per episode paid it fifty times over. What a GL context holds depends only on the MJCF (meshes,
textures, materials), so envs built from the same file can share one. Each render still builds its
scene from the calling env's own model and data (``mjv_updateScene``), so run-time changes to
positions, colours or sizes are drawn as before; only meshes and textures are taken from the file.

GL contexts are bound to a thread and do not survive ``fork``: the pool is per thread and process,
and :func:`claim_gl` refuses to render in a child forked from a process that had rendered. At exit
every context is freed before MuJoCo's own exit hook terminates the display (freeing one after it
prints EGL errors): the shared renderers, and envs that own one (:func:`close_at_exit`).
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref

import gymnasium as gym
import numpy as np

from jepa_world.envs.rendering import import_mujoco

mujoco = import_mujoco()

# The process that made this module's first GL context. A GL context made before a fork (EGL /
# OSMesa state) hangs the forked child's first render, so the child refuses to render instead.
_GL_OWNER_PID: int | None = None


def claim_gl(task: str) -> None:
    """Call before a process makes its first renderer; raise in a forked child of one that
    had rendered (Gymnasium's async vector envs fork by default on Linux)."""
    global _GL_OWNER_PID
    pid = os.getpid()
    if _GL_OWNER_PID is not None and pid != _GL_OWNER_PID:
        raise RuntimeError(
            f"{task}: this process was forked after its parent had rendered, and GL contexts do "
            f"not survive fork (it would hang); start workers with forkserver or spawn, e.g. "
            f"gym.make_vec(..., vectorization_mode='async', "
            f"vector_kwargs={{'context': 'forkserver'}})")
    _GL_OWNER_PID = pid


# Envs that own a GL context (wrapped Gymnasium envs render themselves), closed at exit.
_LIVE_ENVS: weakref.WeakSet = weakref.WeakSet()
_exit_hook_registered = False
_EXIT_LOCK = threading.Lock()


def _close_all() -> None:
    for env in list(_LIVE_ENVS):
        env.close()
    with _EXIT_LOCK:
        while _SHARED:
            pid, renderer = _SHARED.pop()
            if pid == os.getpid():  # a forked child leaves its parent's contexts alone
                renderer.close()


def _register_exit_hook() -> None:
    """Register :func:`_close_all` once, after a first context exists: it then runs before
    MuJoCo's exit hook (``atexit`` runs last-registered first)."""
    global _exit_hook_registered
    with _EXIT_LOCK:
        if not _exit_hook_registered:
            atexit.register(_close_all)
            _exit_hook_registered = True


def close_at_exit(env: gym.Env) -> None:
    """Close ``env`` at exit, before MuJoCo's exit hook runs; call it once its renderer exists."""
    _LIVE_ENVS.add(env)
    _register_exit_hook()


class _Pool(threading.local):
    renderers: dict[tuple, mujoco.Renderer]

    def __init__(self) -> None:
        self.renderers = {}


_POOL = _Pool()
_SHARED: list[tuple[int, mujoco.Renderer]] = []  # (pid, renderer) of every thread, freed at exit
_SCENE_OPTION = mujoco.MjvOption()  # MuJoCo's defaults, only read


def fixed_camera(model: mujoco.MjModel, name: str) -> mujoco.MjvCamera:
    """The model's camera ``name`` as an ``MjvCamera``; ``ValueError`` naming it if absent."""
    camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if camera_id < 0:
        raise ValueError(f"the scene has no camera {name!r}; its cameras: "
                         f"{[model.camera(i).name for i in range(model.ncam)]}")
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
    camera.fixedcamid = camera_id
    return camera


def render_scene(scene_key: str, model: mujoco.MjModel, data: mujoco.MjData,
                 camera: mujoco.MjvCamera, height: int, width: int, task: str) -> np.ndarray:
    """Render ``data`` of ``model`` through ``camera``: uint8 ``[H, W, 3]``, a fresh array.

    ``scene_key`` names the MJCF the model was built from: models with the same key must have the
    same meshes and textures (the same file does), since they share one GL context. ``task``
    names the caller in errors.
    """
    key = (os.getpid(), scene_key, height, width)  # a forked child never reuses its parent's
    renderer = _POOL.renderers.get(key)
    if renderer is None:
        claim_gl(task)
        renderer = mujoco.Renderer(model, height, width)
        with _EXIT_LOCK:
            _SHARED.append((key[0], renderer))
        _register_exit_hook()
        _POOL.renderers[key] = renderer
    mujoco.mjv_updateScene(model, data, _SCENE_OPTION, None, camera,
                           mujoco.mjtCatBit.mjCAT_ALL, renderer.scene)
    return renderer.render()
