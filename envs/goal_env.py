"""Shared machinery for goal-image MuJoCo tasks: rendering, reachable goals, the eval protocol.

A task is one small subclass (its MJCF, initial-state sampler, goal vector and proprio) of
:class:`MujocoGoalEnv`. Everything else is here:

* observations: a flat dict with ``pixels`` and ``goal_pixels`` (uint8 ``[H, W, 3]``), ``proprio``,
  and the goal-conditioned ``achieved_goal`` / ``desired_goal`` vectors;
* reachable goals: the goal is the state the exploration policy reaches ``goal_offset`` steps after
  the start (simulated at reset from the episode's seed, then rewound), so it is always reachable;
  the actions that reach it are kept in :attr:`goal_actions`;
* success: every goal coordinate within its tolerance of the goal (``success_tolerance``, or a
  task's own per-coordinate :meth:`~MujocoGoalEnv.success_tolerances`);
* full simulator state get/set, for datasets and for planners that use the simulator as an oracle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from jepa_world.envs.exploration import make_policy
from jepa_world.envs.gl_contexts import fixed_camera, render_scene
from jepa_world.envs.protocol import EvalProtocol
from jepa_world.envs.rendering import import_mujoco

mujoco = import_mujoco()

ASSETS = Path(__file__).resolve().parent / "assets"

def as_hw(image_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Normalise an image size (``64`` or ``(64, 80)``) to ``(height, width)``."""
    if isinstance(image_size, int | np.integer):
        h = w = int(image_size)
    else:
        h, w = (int(v) for v in image_size)
    if h < 8 or w < 8:
        raise ValueError(f"image_size must be at least 8x8 pixels, got {h}x{w}")
    return h, w


def wrap_angle(x: np.ndarray) -> np.ndarray:
    """Map angles to ``[-pi, pi)``."""
    return (np.asarray(x) + np.pi) % (2 * np.pi) - np.pi


def qpos_slice(model: Any) -> slice:
    """Where ``qpos`` lies in a full-physics state vector (``[time, qpos, qvel, ...]``)."""
    time = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_TIME)
    return slice(time, mujoco.mj_stateSize(
        model, mujoco.mjtState.mjSTATE_TIME | mujoco.mjtState.mjSTATE_QPOS))


def goal_distance(error: np.ndarray) -> np.ndarray:
    """``||error||_2`` over the last axis, summed the same way for one vector and a batch
    (``np.linalg.norm`` of a vector takes a BLAS dot whose rounding can differ from the
    batched form, and stable-baselines3 checks ``compute_reward`` both ways for equality)."""
    error = np.asarray(error)
    return np.sqrt(np.sum(error * error, axis=-1))


def place_reachable_goal(task: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(goal vector, goal frame)``: where the exploration policy takes the task
    ``goal_offset`` steps from now (its actions kept in ``task.goal_actions``); the simulator
    is then rewound to now through its full physics state."""
    start = task.get_sim_state()
    policy = make_policy(task.goal_policy, task.action_space.low, task.action_space.high, rng)
    for t in range(task.goal_offset):
        task.goal_actions[t] = policy()
        task._simulate(task.goal_actions[t])
    goal, frame = task._achieved_goal().astype(np.float32), task.render_pixels()
    task.set_sim_state(start)
    return goal, frame


class MujocoGoalEnv(gym.Env):
    """Base class of goal-image MuJoCo tasks; see the module docstring for the contract."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    #: MJCF file name in ``envs/assets``; set by subclasses. Envs of one file share a GL context
    #: (its meshes and textures), so a subclass must not change those at run time.
    xml_file: str = ""
    #: Camera name in the MJCF.
    camera: str = "top"
    #: Physics steps per env step when the constructor is given none.
    default_frame_skip: int = 2
    #: Goal coordinates that are angles: their error is taken modulo 2 pi (reach: the shoulder).
    goal_angles: tuple[int, ...] = ()

    def __init__(
        self,
        image_size: int | tuple[int, int] = 64,
        frame_skip: int | None = None,
        goal_offset: int = EvalProtocol.goal_offset,
        success_tolerance: float = EvalProtocol.success_tolerance,
        terminate_on_success: bool = True,
        goal_policy: str = "correlated",
        render_mode: str | None = "rgb_array",
    ):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        frame_skip = self.default_frame_skip if frame_skip is None else frame_skip
        if frame_skip < 1 or goal_offset < 1 or success_tolerance <= 0:
            raise ValueError("frame_skip and goal_offset must be >= 1, success_tolerance > 0")
        self.height, self.width = as_hw(image_size)
        self.frame_skip = int(frame_skip)
        self.goal_offset = int(goal_offset)
        self.success_tolerance = float(success_tolerance)
        self.terminate_on_success = bool(terminate_on_success)
        self.goal_policy = goal_policy
        self.render_mode = render_mode

        self.model = mujoco.MjModel.from_xml_path(str(ASSETS / self.xml_file))
        # The offscreen buffer must hold the largest image we render.
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, self.width)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, self.height)
        self.data = mujoco.MjData(self.model)
        self._camera = fixed_camera(self.model, self.camera)
        self._state_spec = mujoco.mjtState.mjSTATE_FULLPHYSICS

        low, high = self.model.actuator_ctrlrange.T.astype(np.float32)
        self.action_space = spaces.Box(low=low, high=high, dtype=np.float32)
        img = spaces.Box(0, 255, (self.height, self.width, 3), dtype=np.uint8)
        goal_dim = len(self._achieved_goal())
        goal_space = spaces.Box(*self._goal_bounds(), shape=(goal_dim,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "pixels": img,
                "goal_pixels": img,
                "proprio": spaces.Box(*self._proprio_bounds(), shape=(len(self._proprio()),),
                                      dtype=np.float32),
                "achieved_goal": goal_space,
                "desired_goal": goal_space,
            }
        )
        self._goal = np.zeros(goal_dim, dtype=np.float32)
        self._goal_pixels = np.zeros(img.shape, dtype=np.uint8)
        self.goal_actions = np.zeros((self.goal_offset, *self.action_space.shape), np.float32)

    # ----------------------------------------------------------------- task hooks (subclasses)
    def _sample_initial_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(qpos, qvel)`` of a random start state."""
        raise NotImplementedError

    def _place_goal(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The episode's ``(goal vector, goal frame)`` from the start state just set; filling
        :attr:`goal_actions` with actions that reach it (default: the exploration policy's
        ``goal_offset`` steps, :func:`place_reachable_goal`)."""
        return place_reachable_goal(self, rng)

    def goal_from_qpos(self, qpos: np.ndarray) -> np.ndarray:
        """Goal vectors ``[..., G]`` of joint positions ``[..., nq]`` (vectorised; simulator
        oracles apply it to whole batches of rolled-out states)."""
        raise NotImplementedError

    def goal_keypoints(self, goals: np.ndarray) -> np.ndarray | None:
        """Points of the goal's body in the world frame ``[..., K, 2]`` for goal vectors
        ``[..., G]``, where the goal is a rigid body's pose (push: the T's bar ends and stem
        tip); ``None`` where it is not. The world model's goal head can read these instead of
        the pose (``loss.goal_targets=keypoints``)."""
        return None

    def _achieved_goal(self) -> np.ndarray:
        """The goal-space vector of the current state, ``[G]`` (default: from ``qpos``)."""
        return self.goal_from_qpos(self.data.qpos)

    def _proprio(self) -> np.ndarray:
        """Proprioceptive vector of the current state, ``[P]``."""
        raise NotImplementedError

    def _goal_bounds(self) -> tuple[np.ndarray | float, np.ndarray | float]:
        """``(low, high)`` of the goal vector (default unbounded)."""
        return -np.inf, np.inf

    def _proprio_bounds(self) -> tuple[np.ndarray | float, np.ndarray | float]:
        """``(low, high)`` of the proprio vector (default unbounded)."""
        return -np.inf, np.inf

    def goal_error(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        """Per-coordinate error ``[..., G]`` between goal vectors, modulo 2 pi for the
        :attr:`goal_angles`."""
        achieved, desired = np.asarray(achieved), np.asarray(desired)
        error = np.abs(achieved - desired)
        for i in self.goal_angles:
            error[..., i] = np.abs(wrap_angle(achieved[..., i] - desired[..., i]))
        return error

    def success_tolerances(self) -> np.ndarray:
        """Per-coordinate tolerance of success ``[G]``: ``success_tolerance`` for every
        coordinate unless a task overrides it (push: a separate one for the block's angle)."""
        return np.full(self.observation_space["desired_goal"].shape, self.success_tolerance)

    def succeeded(self, error: np.ndarray) -> np.ndarray:
        """Success of per-coordinate errors ``[..., G]`` (every coordinate within its
        tolerance): the one judgement :meth:`is_success` and the step info make."""
        return np.all(np.asarray(error) < self.success_tolerances(), axis=-1)

    # ------------------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        qpos, qvel = self._sample_initial_state(self.np_random)
        self.data.qpos[:], self.data.qvel[:] = qpos, qvel
        mujoco.mj_forward(self.model, self.data)
        self._goal, self._goal_pixels = self._place_goal(self.np_random)
        obs = self._observation()
        return obs, self._info(obs)

    def step(self, action):
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"action must have shape {self.action_space.shape}, got {action.shape}")
        error = None
        if not np.all(np.isfinite(action)):
            error = f"action contains NaN or inf: {action}; the step was not simulated"
        else:  # huge actions are clipped to the bounds
            before = self.get_sim_state()
            self._simulate(np.clip(action, self.action_space.low, self.action_space.high))
            if not (np.all(np.isfinite(self.data.qpos)) and np.all(np.isfinite(self.data.qvel))):
                self.set_sim_state(before)
                error = "the simulation diverged (NaN state); the step was undone"
        obs = self._observation()
        info = self._info(obs)
        reward = -info["goal_distance"]  # compute_reward's value, without a second goal_error
        terminated = bool(info["success"] and self.terminate_on_success)
        if error is not None:  # the episode ends (truncated: no terminal state was reached)
            info["error"] = error
            return obs, reward, terminated, True, info
        return obs, reward, terminated, False, info

    def render(self) -> np.ndarray | None:
        return self.render_pixels() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        """Nothing to free: the GL context is shared by the process's envs of this task and
        size (:mod:`jepa_world.envs.gl_contexts`), and freed at exit."""

    @property
    def task_id(self) -> str:
        """The task's Gymnasium id (what world models record as their env)."""
        return self.spec.id if self.spec is not None else type(self).__name__

    # ------------------------------------------------------------------- goal-conditioned API
    def compute_reward(self, achieved_goal, desired_goal, info=None) -> np.ndarray:
        """Dense reward ``-||error||_2``, vectorised over leading dimensions."""
        return -goal_distance(self.goal_error(achieved_goal, desired_goal))

    def is_success(self, achieved_goal, desired_goal) -> np.ndarray:
        return self.succeeded(self.goal_error(achieved_goal, desired_goal))

    @property
    def desired_goal(self) -> np.ndarray:
        """The current episode's goal vector ``[G]`` (a copy)."""
        return self._goal.copy()

    # ------------------------------------------------------------------------ simulator state
    def get_sim_state(self) -> np.ndarray:
        """Full physics state (time, qpos, qvel, actuator state, ...) as a float64 vector."""
        state = np.empty(mujoco.mj_stateSize(self.model, self._state_spec), dtype=np.float64)
        mujoco.mj_getState(self.model, self.data, state, self._state_spec)
        return state

    def set_sim_state(self, state: np.ndarray) -> None:
        state = np.asarray(state, dtype=np.float64)
        expected = mujoco.mj_stateSize(self.model, self._state_spec)
        if state.shape != (expected,):
            raise ValueError(f"sim state must have shape ({expected},), got {state.shape}")
        mujoco.mj_setState(self.model, self.data, state, self._state_spec)
        mujoco.mj_forward(self.model, self.data)

    def goal_from_sim_states(self, states: np.ndarray) -> np.ndarray:
        """Goal vectors ``[..., G]`` of full-physics states ``[..., S]`` (e.g. a dataset's)."""
        return self.goal_from_qpos(np.asarray(states)[..., qpos_slice(self.model)])

    def set_goal(self, state: np.ndarray) -> None:
        """Make the goal the configuration of a given full sim state (e.g. from a dataset)."""
        current = self.get_sim_state()
        self.set_sim_state(state)
        self._goal = self._achieved_goal().astype(np.float32)
        self._goal_pixels = self.render_pixels()
        self.set_sim_state(current)

    # ------------------------------------------------------------------------------ internals
    def render_pixels(self) -> np.ndarray:
        """Render the task camera: uint8 ``[H, W, 3]``."""
        return render_scene(self.xml_file, self.model, self.data, self._camera,
                            self.height, self.width, task=self.task_id)

    def _simulate(self, action: np.ndarray) -> None:
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)

    def _observation(self) -> dict[str, np.ndarray]:
        return {
            "pixels": self.render_pixels(),
            "goal_pixels": self._goal_pixels.copy(),
            "proprio": self._proprio().astype(np.float32),
            "achieved_goal": self._achieved_goal().astype(np.float32),
            "desired_goal": self._goal.copy(),
        }

    def _info(self, obs: dict[str, np.ndarray]) -> dict[str, Any]:
        error = self.goal_error(obs["achieved_goal"], obs["desired_goal"])
        return {
            "success": bool(self.succeeded(error)),
            "max_goal_error": float(error.max()),
            "goal_error": error.astype(np.float32),  # per coordinate, against success_tolerances
            "goal_distance": float(goal_distance(error)),
            "sim_state": self.get_sim_state(),
        }
