"""Named state coordinates of a MuJoCo model: what a goal vector is made of.

A coordinate is named by a string, so configs can say what the goal of an env nobody here wrote
is without code:

* ``joint:<name>``: the position (qpos) of a hinge or slide joint; the error of a hinge that
  turns freely (no range) is taken modulo ``2 * pi``;
* ``qpos:<i>``: entry ``i`` of ``qpos``;
* ``body:<name>:<x|y|z>``, ``site:<name>:<x|y|z>``, ``geom:<name>:<x|y|z>``: a world position,
  found by forward kinematics.

:class:`StateCoordinates` turns joint positions ``qpos [..., nq]`` into goal vectors ``[..., G]``,
vectorised, so simulator oracles can score whole batches of rolled-out states.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jepa_world.envs.rendering import import_mujoco
from jepa_world.errors import ConfigError

mujoco = import_mujoco()

_AXES = {"x": 0, "y": 1, "z": 2}
_FRAMES = {"body": ("xpos", mujoco.mjtObj.mjOBJ_BODY),
           "site": ("site_xpos", mujoco.mjtObj.mjOBJ_SITE),
           "geom": ("geom_xpos", mujoco.mjtObj.mjOBJ_GEOM)}
FORMS = "joint:<name>, qpos:<i>, body|site|geom:<name>:x|y|z"
_HINGE, _SLIDE = int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)


def _lookup(model: Any, kind: Any, name: str, coordinate: str) -> int:
    index = mujoco.mj_name2id(model, kind, name)
    if index < 0:
        raise ConfigError(f"goal coordinate {coordinate!r}: the model has no such name")
    return int(index)


class StateCoordinates:
    """Goal vectors ``[..., G]`` from ``qpos [..., nq]`` for a list of named coordinates."""

    def __init__(self, model: Any, names: Sequence[str]) -> None:
        if not names:
            raise ConfigError(f"goal: name at least one state coordinate ({FORMS})")
        self.model, self.names = model, [str(n) for n in names]
        self._qpos: list[int | None] = []        # qpos index, or None for a kinematic position
        self._frames: list[tuple[str, int, int]] = []  # (MjData field, object id, axis)
        wrap = []
        for name in self.names:
            qpos, frame, turns = self._parse(name)
            self._qpos.append(qpos)
            self._frames.append(frame)
            wrap.append(turns)
        self.wrap = np.array(wrap, dtype=bool)
        self._data = mujoco.MjData(model) if any(q is None for q in self._qpos) else None

    def _parse(self, name: str) -> tuple[int | None, tuple[str, int, int], bool]:
        kind, _, rest = name.partition(":")
        if kind == "qpos" and rest.isdigit():
            if int(rest) >= self.model.nq:
                raise ConfigError(f"goal coordinate {name!r}: qpos has {self.model.nq} entries")
            return int(rest), ("", 0, 0), False
        if kind == "joint" and rest:
            joint = _lookup(self.model, mujoco.mjtObj.mjOBJ_JOINT, rest, name)
            jtype = int(self.model.jnt_type[joint])
            if jtype not in (_HINGE, _SLIDE):
                raise ConfigError(f"goal coordinate {name!r}: only hinge and slide joints have "
                                  f"one position; name a body position instead")
            turns = jtype == _HINGE and not self.model.jnt_limited[joint]
            return int(self.model.jnt_qposadr[joint]), ("", 0, 0), bool(turns)
        obj, _, axis = rest.rpartition(":")
        if kind in _FRAMES and obj and axis in _AXES:
            field_name, obj_kind = _FRAMES[kind]
            return None, (field_name, _lookup(self.model, obj_kind, obj, name), _AXES[axis]), False
        raise ConfigError(f"goal coordinate {name!r} is not one of the forms {FORMS}")

    def __len__(self) -> int:
        return len(self.names)

    def __call__(self, qpos: np.ndarray) -> np.ndarray:
        """``qpos [..., nq]`` -> goal vectors ``[..., G]`` (float64)."""
        qpos = np.asarray(qpos, dtype=np.float64)
        lead = qpos.shape[:-1]
        flat = qpos.reshape(-1, qpos.shape[-1])
        out = np.empty((len(flat), len(self)), dtype=np.float64)
        for g, index in enumerate(self._qpos):
            if index is not None:
                out[:, g] = flat[:, index]
        if self._data is not None:
            kinematic = [g for g, index in enumerate(self._qpos) if index is None]
            for row, q in enumerate(flat):
                self._data.qpos[:] = q
                mujoco.mj_kinematics(self.model, self._data)
                for g in kinematic:
                    field_name, obj, axis = self._frames[g]
                    out[row, g] = getattr(self._data, field_name)[obj, axis]
        return out.reshape(*lead, len(self))

    def error(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        """Per-coordinate absolute error ``[..., G]``, modulo ``2 * pi`` for free hinges."""
        diff = np.asarray(achieved, dtype=np.float64) - np.asarray(desired, dtype=np.float64)
        wrapped = (diff + np.pi) % (2 * np.pi) - np.pi
        return np.abs(np.where(self.wrap, wrapped, diff))


def default_coordinates(model: Any) -> list[str]:
    """Every hinge and slide joint of the model, by name (or qpos index when unnamed)."""
    names = []
    for j in range(model.njnt):
        if int(model.jnt_type[j]) in (_HINGE, _SLIDE):
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
            names.append(f"joint:{name}" if name else f"qpos:{model.jnt_qposadr[j]}")
    if not names:
        raise ConfigError("goal: the model has no hinge or slide joints; name the goal's state "
                          f"coordinates ({FORMS})")
    return names


__all__ = ["FORMS", "StateCoordinates", "default_coordinates"]
