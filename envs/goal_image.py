"""Any Gymnasium env that renders ``rgb_array`` frames, as a goal-image task.

:class:`GoalImageEnv` wraps an env nobody here wrote (``Reacher-v5``, ``PointMaze_UMaze-v3``, a
user's own) and gives it the observation contract of jepa_world's own tasks, so that collection,
pretraining, world-model training, planning and probes run on it unchanged::

    env = GoalImageEnv(gym.make("Reacher-v5", render_mode="rgb_array", width=64, height=64),
                       goal=["joint:joint0", "joint:joint1"], success_tolerance=0.05,
                       proprio=[0, 1, 2, 3, 6, 7])
    obs, info = env.reset(seed=0)
    obs["pixels"], obs["goal_pixels"], obs["proprio"], obs["achieved_goal"], obs["desired_goal"]
    info["success"], info["goal_distance"], info["sim_state"]

Goals are reachable by construction: at reset the exploration policy runs ``goal_offset`` steps
from the start, the state it reaches is the goal (its frame is ``goal_pixels``), and the simulator
is rewound to the start through its full physics state (MuJoCo's ``mj_getState`` /
``mj_setState``: time, qpos, qvel, act, warm start, mocap, ...). Envs without a MuJoCo simulator
need a ``goal_sampler``. The goal is a vector of named state coordinates
(:mod:`jepa_world.envs.coordinates`, default every joint) or of a user's ``goal_fn``; success is
every coordinate within ``success_tolerance``, or a user's ``success_fn``.

Registered as ``jepa_world/GoalImage-v0``: ``gym.make("jepa_world/GoalImage-v0",
env_id="Reacher-v5", env_kwargs={...}, image_size=64, goal=[...])`` builds the inner env itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from jepa_world.envs.coordinates import StateCoordinates, default_coordinates
from jepa_world.envs.gl_contexts import claim_gl, close_at_exit
from jepa_world.envs.goal_env import as_hw, goal_distance, place_reachable_goal
from jepa_world.envs.protocol import EvalProtocol
from jepa_world.envs.rendering import import_mujoco
from jepa_world.errors import ConfigError

mujoco = import_mujoco()

#: ``goal_sampler(env, rng) -> (goal vector [G], goal frame [H, W, 3] uint8)``
GoalSampler = Callable[["GoalImageEnv", np.random.Generator], tuple[np.ndarray, np.ndarray]]
#: ``goal_fn(env) -> the current state's goal vector [G]``
GoalFn = Callable[["GoalImageEnv"], np.ndarray]
#: ``success_fn(achieved [G], desired [G]) -> bool``
SuccessFn = Callable[[np.ndarray, np.ndarray], bool]


def find_simulator(env: Any) -> tuple[Any, Any, int] | None:
    """``(MjModel, MjData, frame_skip)`` of a MuJoCo env (also one nested one level down, as
    gymnasium-robotics' mazes keep theirs in ``point_env``), or None."""
    base = env.unwrapped
    candidates = [base, *(v for v in vars(base).values() if hasattr(v, "model"))]
    for obj in candidates:
        model, data = getattr(obj, "model", None), getattr(obj, "data", None)
        if isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData):
            return model, data, int(getattr(obj, "frame_skip", 1))
    return None


class GoalImageEnv(gym.Env):
    """A goal-image task on top of any ``rgb_array`` Gymnasium env (see the module docstring).

    It holds the env (``self.env``) rather than subclassing ``gym.Wrapper``, so that
    ``env.unwrapped`` of ``gym.make("jepa_world/GoalImage-v0", ...)`` is the goal task itself, as
    for jepa_world's own tasks (oracles, HER and stable-baselines3 look there).

    Args:
        env: the env, made with ``render_mode="rgb_array"``; its actions must be a bounded Box.
        goal: named state coordinates of the goal (MuJoCo envs; default every hinge / slide).
        goal_fn: instead of ``goal``: the current state's goal vector, for any env.
        success_tolerance: success when every goal coordinate is within it (default protocol).
        success_fn: instead of the tolerance: ``(achieved, desired) -> bool``.
        proprio: indices into the env's vector observation (its ``observation`` entry for a
            dict); None or empty: no proprio (a ``[0]`` vector).
        goal_offset: exploration steps from the start to the goal.
        goal_policy: the exploration policy that places goals (``correlated`` or ``uniform``).
        goal_sampler: instead of simulating and rewinding: ``(env, rng) -> (goal, goal frame)``.
        terminate_on_success: end the episode when the goal is reached.
        image_size: frame size ``H`` (square) or ``(H, W)``; default the env's ``height`` /
            ``width`` attributes.
    """

    def __init__(
        self,
        env: gym.Env,
        goal: Sequence[str] | None = None,
        goal_fn: GoalFn | None = None,
        success_tolerance: float = EvalProtocol.success_tolerance,
        success_fn: SuccessFn | None = None,
        proprio: Sequence[int] | None = None,
        goal_offset: int = EvalProtocol.goal_offset,
        goal_policy: str = "correlated",
        goal_sampler: GoalSampler | None = None,
        terminate_on_success: bool = True,
        image_size: int | Sequence[int] | None = None,
    ) -> None:
        self.env = env
        name = getattr(env.spec, "id", None) or type(env.unwrapped).__name__
        self.task_id = name
        if env.render_mode != "rgb_array":
            raise ConfigError(f"env {name}: render_mode is {env.render_mode!r}; make it with "
                              f"render_mode='rgb_array' (goal images are rendered frames)")
        space = env.action_space
        if not isinstance(space, spaces.Box) or not (np.all(np.isfinite(space.low))
                                                     and np.all(np.isfinite(space.high))):
            raise ConfigError(f"env {name}: actions must be a bounded Box, got {space}; "
                              f"planners sample continuous actions in bounds")
        if goal_offset < 1 or success_tolerance <= 0:
            raise ConfigError(f"env {name}: goal_offset must be >= 1 and success_tolerance > 0, "
                              f"got {goal_offset} and {success_tolerance}")
        self.simulator = find_simulator(env)
        if self.simulator is None and (goal_sampler is None or goal_fn is None):
            raise ConfigError(f"env {name} has no MuJoCo simulator state to rewind; pass "
                              f"goal_sampler= and goal_fn= to make goals for it")
        self.model = self.simulator[0] if self.simulator else None
        self.data = self.simulator[1] if self.simulator else None
        self.frame_skip = self.simulator[2] if self.simulator else 1
        self.coordinates = None
        if goal_fn is None:
            self.coordinates = StateCoordinates(self.model, goal or default_coordinates(self.model))
        self.goal_fn, self.success_fn, self.goal_sampler = goal_fn, success_fn, goal_sampler
        self.success_tolerance, self.goal_offset = float(success_tolerance), int(goal_offset)
        self.goal_policy, self.terminate_on_success = goal_policy, bool(terminate_on_success)
        self.action_space, self.render_mode = space, "rgb_array"
        self.metadata = {**env.metadata, "render_modes": ["rgb_array"]}
        self.proprio_index = np.array([int(i) for i in (proprio or [])], dtype=np.int64)
        self.height, self.width = self._image_size(image_size, name)
        self._check_proprio(name)
        self._rng = np.random.default_rng()
        self._state_spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self.observation_space = self._spaces()
        self._goal = np.zeros(self.observation_space["desired_goal"].shape, np.float32)
        self._goal_pixels = np.zeros((self.height, self.width, 3), np.uint8)
        self.goal_actions = np.zeros((self.goal_offset, *space.shape), np.float32)
        self._last_vector = np.zeros(0, np.float32)
        self._rendered = False

    # ------------------------------------------------------------------------------ set-up
    def _image_size(self, image_size, name: str) -> tuple[int, int]:
        if image_size is None:
            base = self.env.unwrapped
            if not (hasattr(base, "height") and hasattr(base, "width")):
                raise ConfigError(f"env {name}: pass image_size=; the env has no height / width")
            return int(base.height), int(base.width)
        return as_hw(image_size)

    def _check_proprio(self, name: str) -> None:
        if not len(self.proprio_index):
            return
        space = self.env.observation_space
        if isinstance(space, spaces.Dict) and "observation" in space.spaces:
            space = space["observation"]
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ConfigError(f"env {name}: proprio indexes a flat vector observation, but the "
                              f"env observes {space}; pass proprio=[] (none)")
        bad = [int(i) for i in self.proprio_index if not 0 <= i < space.shape[0]]
        if bad:
            raise ConfigError(f"env {name}: proprio indices {bad} out of range for its "
                              f"{space.shape[0]}-entry observation (0..{space.shape[0] - 1})")

    def _spaces(self) -> spaces.Dict:
        img = spaces.Box(0, 255, (self.height, self.width, 3), dtype=np.uint8)
        dims = len(self.coordinates) if self.coordinates is not None else len(self.goal_fn(self))
        goal = spaces.Box(-np.inf, np.inf, (dims,), dtype=np.float32)
        proprio = spaces.Box(-np.inf, np.inf, (len(self.proprio_index),), dtype=np.float32)
        return spaces.Dict({"pixels": img, "goal_pixels": img, "proprio": proprio,
                            "achieved_goal": goal, "desired_goal": goal})

    # ------------------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        inner_obs, inner_info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = np.random.default_rng([int(seed), 2])
        self._last_vector = self._vector(inner_obs)
        if self.goal_sampler is not None:
            goal, frame = self.goal_sampler(self, self._rng)
            self._goal, self._goal_pixels = np.asarray(goal, np.float32), self._check_frame(frame)
        else:
            self._goal, self._goal_pixels = place_reachable_goal(self, self._rng)
        obs = self._observation()
        return obs, {**inner_info, **self._info(obs)}

    def step(self, action):
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, "
                             f"got {action.shape}")
        inner_obs, env_reward, terminated, truncated, inner_info = self.env.step(action)
        self._last_vector = self._vector(inner_obs)
        obs = self._observation()
        info = {**inner_info, **self._info(obs), "env_reward": float(env_reward)}
        reward = -info["goal_distance"]  # compute_reward's value
        done = bool(terminated) or bool(info["success"] and self.terminate_on_success)
        return obs, reward, done, bool(truncated), info

    def render(self) -> np.ndarray:
        return self.render_pixels()

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------- goal-conditioned API
    def goal_error(self, achieved, desired) -> np.ndarray:
        """Per-coordinate error ``[..., G]``."""
        if self.coordinates is not None:
            return self.coordinates.error(achieved, desired)
        return np.abs(np.asarray(achieved, np.float64) - np.asarray(desired, np.float64))

    def compute_reward(self, achieved_goal, desired_goal, info=None) -> np.ndarray:
        """Dense reward ``-||error||_2``, vectorised over leading dimensions."""
        return -goal_distance(self.goal_error(achieved_goal, desired_goal))

    def is_success(self, achieved_goal, desired_goal) -> bool:
        if self.success_fn is not None:
            try:
                return bool(self.success_fn(np.asarray(achieved_goal), np.asarray(desired_goal)))
            except Exception as err:
                raise ConfigError(f"env {self.task_id}: success_fn raised "
                                  f"{type(err).__name__}: {err}") from err
        return bool(np.all(self.goal_error(achieved_goal, desired_goal) < self.success_tolerance))

    def goal_from_qpos(self, qpos: np.ndarray) -> np.ndarray:
        """Goal vectors ``[..., G]`` of joint positions ``[..., nq]`` (for simulator oracles)."""
        if self.coordinates is None:
            raise ConfigError(f"env {self.task_id}: its goal comes from goal_fn, so a "
                              f"simulator oracle cannot score rolled-out states")
        return self.coordinates(qpos)

    @property
    def desired_goal(self) -> np.ndarray:
        return self._goal.copy()

    # ------------------------------------------------------------------------ simulator state
    def get_sim_state(self) -> np.ndarray:
        """Full physics state as float64 (an empty vector for envs without a simulator)."""
        if self.model is None:
            return np.zeros(0, np.float64)
        state = np.empty(mujoco.mj_stateSize(self.model, self._state_spec), np.float64)
        mujoco.mj_getState(self.model, self.data, state, self._state_spec)
        return state

    def set_sim_state(self, state: np.ndarray) -> None:
        if self.model is None:
            raise ConfigError(f"env {self.task_id} has no simulator state to set")
        mujoco.mj_setState(self.model, self.data, np.asarray(state, np.float64), self._state_spec)
        mujoco.mj_forward(self.model, self.data)

    def render_pixels(self) -> np.ndarray:
        """The env's frame, checked: uint8 ``[H, W, 3]``."""
        if not self._rendered:
            claim_gl(self.task_id)
        frame = self._check_frame(self.env.render())
        if not self._rendered:
            close_at_exit(self)  # its renderer must go before MuJoCo's exit hook
            self._rendered = True
        return frame

    def _simulate(self, action: np.ndarray) -> None:
        """One env step outside the episode (goals, frame banks): no time limit, no success."""
        self.env.unwrapped.step(np.asarray(action, np.float32))

    # ------------------------------------------------------------------------------ internals
    def _achieved_goal(self) -> np.ndarray:
        if self.goal_fn is not None:
            return np.asarray(self.goal_fn(self), np.float32)
        return self.coordinates(self.data.qpos)

    def _vector(self, inner_obs: Any) -> np.ndarray:
        if not len(self.proprio_index):
            return np.zeros(0, np.float32)
        if isinstance(inner_obs, dict):
            inner_obs = inner_obs["observation"]
        return np.asarray(inner_obs, np.float32)[self.proprio_index]

    def _check_frame(self, frame: Any) -> np.ndarray:
        """A uint8 ``[H, W, 3]`` frame; one of another size is resized (bilinear), for envs
        whose render size cannot be set."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ConfigError(f"env {self.task_id}: rendered a {frame.dtype} frame of shape "
                              f"{list(frame.shape)}, expected uint8 [H, W, 3] RGB")
        if frame.shape[:2] != (self.height, self.width):
            from PIL import Image

            frame = np.asarray(Image.fromarray(frame).resize((self.width, self.height),
                                                             Image.BILINEAR))
        return frame.copy()

    def _observation(self) -> dict[str, np.ndarray]:
        return {"pixels": self.render_pixels(), "goal_pixels": self._goal_pixels.copy(),
                "proprio": self._last_vector.copy(),
                "achieved_goal": self._achieved_goal().astype(np.float32),
                "desired_goal": self._goal.copy()}

    def _info(self, obs: dict[str, np.ndarray]) -> dict[str, Any]:
        error = self.goal_error(obs["achieved_goal"], obs["desired_goal"])
        return {"success": self.is_success(obs["achieved_goal"], obs["desired_goal"]),
                "max_goal_error": float(error.max()) if error.size else 0.0,
                "goal_error": np.asarray(error, dtype=np.float32),
                "goal_distance": float(goal_distance(error)),
                "sim_state": self.get_sim_state()}


def make_goal_image_env(env_id: str, env_kwargs: dict[str, Any] | None = None,
                        image_size: int = 64, **adapter: Any) -> GoalImageEnv:
    """Entry point of ``jepa_world/GoalImage-v0``: make ``env_id`` (``module:Name-v0`` imports
    the module first) rendering ``image_size`` frames, without its own time limit, and wrap it."""
    given = dict(env_kwargs or {})
    sized = {"render_mode": "rgb_array", "width": image_size, "height": image_size, **given}
    try:
        try:
            inner = gym.make(env_id, max_episode_steps=-1, disable_env_checker=True, **sized)
        except TypeError as err:
            if "width" not in str(err) and "height" not in str(err):
                raise
            # an env whose render size is fixed: its frames are resized instead
            inner = gym.make(env_id, max_episode_steps=-1, disable_env_checker=True,
                             **{"render_mode": "rgb_array", **given})
    except gym.error.Error as err:
        raise ConfigError(f"env.id: cannot make {env_id!r}: {err}") from err
    except TypeError as err:
        raise ConfigError(f"env.kwargs: {env_id} does not take these arguments "
                          f"({', '.join(given) or 'none given'}): {err}") from err
    try:
        return GoalImageEnv(inner, image_size=image_size, **adapter)
    except Exception:
        inner.close()
        raise


__all__ = ["GoalImageEnv", "find_simulator", "make_goal_image_env"]
