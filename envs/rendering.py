"""Headless OpenGL backend selection for MuJoCo, done once before ``mujoco`` is imported.

MuJoCo picks its offscreen GL backend from the ``MUJOCO_GL`` environment variable when it is first
imported, so the choice has to be made here, in one place, before any env module imports it.

Rules (first match wins):

1. ``MUJOCO_GL`` set by the user: respected as is (validated, and its libraries checked); else a
   ``PYOPENGL_PLATFORM`` of ``egl`` or ``osmesa`` (inherited, say, from a parent process that
   rendered) is followed, since MuJoCo cannot render with a backend that disagrees with it.
2. macOS / Windows: nothing to do, MuJoCo uses the native context (CGL / WGL).
3. Linux with an NVIDIA GPU: ``egl`` (hardware rendering).
4. Linux on a CPU: Mesa's ``egl`` when libEGL, libOpenGL and the Mesa DRI drivers are present,
   else ``osmesa`` when libOSMesa is present.
5. Otherwise: :class:`RenderBackendError` naming the Debian packages to install.

``PYOPENGL_PLATFORM`` is never set here: MuJoCo sets it to match ``MUJOCO_GL``. A value that
conflicts with ``MUJOCO_GL`` makes ``mujoco.Renderer`` silently vanish, so it is an error here.
"""

from __future__ import annotations

import ctypes.util
import glob
import logging
import os
import sys
from collections.abc import Callable, Mapping

VALID_BACKENDS = ("egl", "osmesa", "glfw", "cgl", "wgl", "disable")

EGL_PACKAGES = "libegl1 libopengl0 libgl1-mesa-dri"
OSMESA_PACKAGES = "libosmesa6"

# Libraries each headless backend needs, by the name ctypes.util.find_library understands.
_BACKEND_LIBS = {"egl": ("EGL", "OpenGL"), "osmesa": ("OSMesa",)}


class RenderBackendError(RuntimeError):
    """No usable headless OpenGL backend; the message says what to install or set."""


def _has_mesa_dri() -> bool:
    patterns = ("/usr/lib/*/dri/swrast_dri.so", "/usr/lib/dri/swrast_dri.so",
                "/usr/lib/*/dri/*_dri.so", "/usr/lib64/dri/*_dri.so")
    return any(glob.glob(p) for p in patterns)


def _has_nvidia_gpu() -> bool:
    return os.path.exists("/dev/nvidia0") or os.path.exists("/proc/driver/nvidia/version")


def _has_library(name: str) -> bool:
    return ctypes.util.find_library(name) is not None


def choose_backend(
    environ: Mapping[str, str],
    platform: str,
    has_library: Callable[[str], bool] = _has_library,
    has_nvidia_gpu: Callable[[], bool] = _has_nvidia_gpu,
    has_mesa_dri: Callable[[], bool] = _has_mesa_dri,
) -> str | None:
    """Return the ``MUJOCO_GL`` value to use, or ``None`` to let MuJoCo use its platform default.

    Pure apart from the probes passed in, so every branch is testable without touching the
    machine's GL set-up.
    """
    requested = environ.get("MUJOCO_GL", "").strip().lower()
    pyopengl = environ.get("PYOPENGL_PLATFORM", "").strip().lower()
    if requested in _BACKEND_LIBS and pyopengl and pyopengl != requested:
        raise RenderBackendError(
            f"MUJOCO_GL={requested} conflicts with PYOPENGL_PLATFORM={pyopengl}; MuJoCo cannot "
            "render like that. Unset PYOPENGL_PLATFORM (MuJoCo sets it itself)."
        )
    if not requested and pyopengl in _BACKEND_LIBS:
        requested = pyopengl
    if requested:
        if requested not in VALID_BACKENDS:
            raise RenderBackendError(
                f"MUJOCO_GL={requested!r} is not a MuJoCo GL backend; use one of "
                f"{', '.join(VALID_BACKENDS)} (or unset it to let jepa_world choose)."
            )
        missing = [lib for lib in _BACKEND_LIBS.get(requested, ()) if not has_library(lib)]
        if missing:
            pkgs = EGL_PACKAGES if requested == "egl" else OSMESA_PACKAGES
            raise RenderBackendError(
                f"MUJOCO_GL={requested} but lib{', lib'.join(missing)} was not found; install it "
                f"(Debian/Ubuntu: apt-get install {pkgs}) or unset MUJOCO_GL."
            )
        return requested
    if not platform.startswith("linux"):
        return None
    egl_ok = all(has_library(lib) for lib in _BACKEND_LIBS["egl"])
    if egl_ok and (has_nvidia_gpu() or has_mesa_dri()):
        return "egl"
    if has_library("OSMesa"):
        return "osmesa"
    raise RenderBackendError(
        "No headless OpenGL library found for MuJoCo rendering. Install one of (Debian/Ubuntu) "
        f"`apt-get install {EGL_PACKAGES}` (Mesa EGL, or the NVIDIA driver's EGL on a GPU "
        f"host) or `apt-get install {OSMESA_PACKAGES}` (OSMesa), or set MUJOCO_GL yourself."
    )


def configure_backend() -> str | None:
    """Choose the backend for this process and export it as ``MUJOCO_GL``.

    Must run before ``import mujoco``; if MuJoCo is already imported it only reports what is in
    force. Returns the backend name (``None``: MuJoCo's platform default).
    """
    if "mujoco" in sys.modules:
        return os.environ.get("MUJOCO_GL") or None
    backend = choose_backend(os.environ, sys.platform)
    if backend is not None:
        os.environ["MUJOCO_GL"] = backend
    return backend


def import_mujoco():
    """Import ``mujoco`` after configuring the GL backend; the only place env code imports it."""
    configure_backend()
    # PyOpenGL logs at INFO that its optional C accelerator is absent; that is not news to users.
    logging.getLogger("OpenGL.acceleratesupport").setLevel(logging.WARNING)
    import mujoco

    return mujoco
