"""Collect trajectory datasets by rolling out an exploration policy in parallel environments.

Episode ``i`` of a dataset is reset with seed ``cfg.seed + i`` and its actions come from a policy
seeded by that same number, so an episode's content depends only on its index and the settings,
not on how many envs ran in parallel, in which order, or whether the collection was resumed.
"""

from __future__ import annotations

import functools
import multiprocessing
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

import jepa_world
from jepa_world.config import CollectConfig, EnvConfig
from jepa_world.data.store import (
    Episode,
    Manifest,
    remove_partial_files,
    scan_shards,
    write_shard,
)
from jepa_world.envs.exploration import make_policy
from jepa_world.errors import DatasetError


@dataclass
class CollectSummary:
    data_dir: Path
    episodes_total: int  #: episodes in the dataset now
    episodes_collected: int  #: episodes collected by this call
    frames_collected: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames_collected / self.seconds if self.seconds > 0 else 0.0


def env_kwargs(cfg: CollectConfig) -> dict:
    """Constructor arguments of the collection envs (recorded in the manifest)."""
    return {**cfg.env.gym_kwargs(), "terminate_on_success": False}


def make_env(cfg: CollectConfig) -> gym.Env:
    # One long episode per reset: no success termination, time limit = the episode length.
    return cfg.env.make(max_episode_steps=cfg.episode_length, disable_env_checker=True,
                        terminate_on_success=False)


def make_worker_env(cfg: CollectConfig) -> gym.Env:
    """:func:`make_env` in an async worker, which leaves Ctrl-C to the parent: the terminal
    sends SIGINT to the whole process group, and the parent stops the workers itself.
    (``AsyncVectorEnv`` also calls it once in the parent, for the spaces.)"""
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return make_env(cfg)


def make_vector_env(cfg: CollectConfig, num_envs: int) -> gym.vector.VectorEnv:
    if cfg.vectorization == "async":
        # GL contexts do not survive fork: start workers from a clean server process.
        fns = [functools.partial(make_worker_env, cfg) for _ in range(num_envs)]
        return gym.vector.AsyncVectorEnv(fns, context="forkserver")
    return gym.vector.SyncVectorEnv([lambda: make_env(cfg) for _ in range(num_envs)])


def close_vector_env(vec_env: gym.vector.VectorEnv, interrupted: bool) -> None:
    """Close the workers; after an interruption (a step may be pending) stop them at once."""
    if not interrupted:
        vec_env.close()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "close while waiting for a pending call to step"
        vec_env.close(terminate=True)


def build_manifest(cfg: CollectConfig) -> Manifest:
    env = make_env(cfg)
    try:
        obs, info = env.reset(seed=cfg.seed)
        space = env.action_space
        return Manifest(
            env_id=cfg.env.env_id,
            env_kwargs=env_kwargs(cfg),
            image_size=list(obs["pixels"].shape[:2]),
            episode_length=cfg.episode_length,
            action_low=space.low.tolist(),
            action_high=space.high.tolist(),
            proprio_dim=int(obs["proprio"].shape[0]),
            sim_state_dim=int(info["sim_state"].shape[0]),
            policy=asdict(cfg.policy),
            seed=cfg.seed,
            library_version=jepa_world.__version__,
        )
    finally:
        env.close()


def ensure_collected(cfg: CollectConfig, collect_missing: bool = True,
                     is_main: bool = True) -> Path:
    """``cfg.data_dir`` if it holds a dataset; else collect one there (``collect_missing``) or
    raise :class:`DatasetError` saying how to make one.

    Only the main process collects (``is_main``); other processes return at once and must wait
    for it (e.g. at a distributed barrier). An existing dataset is not checked against ``cfg``
    here: readers compare its manifest with what they need.
    """
    root = Path(cfg.data_dir)
    if (root / "manifest.json").exists():
        return root
    if not collect_missing:
        raise DatasetError(f"data.data_dir: {root} holds no dataset; collect one with "
                           f"`python -m jepa_world.collect data_dir={root}` or set "
                           f"data.collect=true")
    if is_main:
        print(f"collecting {cfg.episodes} episodes of {cfg.env.env_id} into {root}",
              file=sys.stderr)
        collect(cfg)
    return root


def ensure_env_data(env: EnvConfig, data: Any, seed: int, progress: bool,
                    is_main: bool = True, data_dir: str | Path | None = None) -> Path:
    """:func:`ensure_collected` for a command's ``data`` group (``data_dir``, ``collect``,
    ``episodes``, ``episode_length``): the one place a training or probe config becomes the
    :class:`CollectConfig` of its dataset. ``data_dir`` overrides ``data.data_dir``."""
    cfg = CollectConfig(env=env, episodes=data.episodes, episode_length=data.episode_length,
                        seed=seed, data_dir=str(data.data_dir if data_dir is None else data_dir),
                        progress=progress)
    return ensure_collected(cfg, data.collect, is_main)


def open_dataset_for_writing(root: Path, manifest: Manifest) -> set[int]:
    """Create ``root`` or check it matches ``manifest``; return the episode ids already stored.

    Nothing already on disk is modified except left-over temporary files of a killed run.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent is a file, no permission, read-only disk
        raise DatasetError(f"data_dir: cannot create {root}: {exc.strerror}") from None
    if (root / "manifest.json").exists():
        on_disk = Manifest.load(root)
        diffs = on_disk.mismatches(manifest)
        if diffs:
            raise DatasetError(f"{root} holds a dataset collected with other settings ("
                               + "; ".join(diffs) + "); choose another data_dir")
    else:
        manifest.save(root)
    remove_partial_files(root)
    return {ref.index for ref in scan_shards(root, manifest)}


def shard_plan(missing: list[int], per_shard: int) -> Iterator[list[int]]:
    """Group missing episode ids into runs of consecutive ids, at most ``per_shard`` long."""
    run: list[int] = []
    for i in missing:
        if run and (i != run[-1] + 1 or len(run) == per_shard):
            yield run
            run = []
        run.append(i)
    if run:
        yield run


def rollout_group(
    vec_env: gym.vector.VectorEnv, cfg: CollectConfig, ids: list[int]
) -> list[Episode]:
    """Run one episode per id in lockstep (unused env slots run a throwaway episode)."""
    n, length = vec_env.num_envs, cfg.episode_length
    seeds = [cfg.seed + i for i in ids] + [cfg.seed + ids[0]] * (n - len(ids))
    space = vec_env.single_action_space
    policies = [make_policy(cfg.policy.name, space.low, space.high, np.random.default_rng([s, 1]),
                            beta=cfg.policy.beta, sigma=cfg.policy.sigma) for s in seeds]
    obs, info = vec_env.reset(seed=seeds)
    pixels = np.empty((n, length + 1, *obs["pixels"].shape[1:]), np.uint8)
    proprio = np.empty((n, length + 1, obs["proprio"].shape[1]), np.float32)
    sim_state = np.empty((n, length + 1, info["sim_state"].shape[1]), np.float64)
    actions = np.empty((n, length, *space.shape), np.float32)
    goals = obs["desired_goal"].copy()
    pixels[:, 0], proprio[:, 0], sim_state[:, 0] = obs["pixels"], obs["proprio"], info["sim_state"]
    for t in range(length):
        actions[:, t] = np.stack([policy({key: value[k] for key, value in obs.items()})
                                  for k, policy in enumerate(policies)])
        obs, _, terminated, truncated, info = vec_env.step(actions[:, t])
        if t < length - 1 and np.any(terminated | truncated):
            raise RuntimeError(f"an episode ended early at step {t + 1} of {length}")
        pixels[:, t + 1], proprio[:, t + 1] = obs["pixels"], obs["proprio"]
        sim_state[:, t + 1] = info["sim_state"]
    return [Episode(i, seeds[k], pixels[k], actions[k], proprio[k], sim_state[k], goals[k])
            for k, i in enumerate(ids)]


def collect(cfg: CollectConfig) -> CollectSummary:
    """Collect episodes until ``cfg.data_dir`` holds ``cfg.episodes`` of them (resumable)."""
    root = Path(cfg.data_dir)
    manifest = build_manifest(cfg)
    done = open_dataset_for_writing(root, manifest)
    missing = [i for i in range(cfg.episodes) if i not in done]
    start = time.perf_counter()
    frames = 0
    if missing:
        num_envs = min(cfg.num_envs, len(missing))
        vec_env = make_vector_env(cfg, num_envs)
        bar = tqdm(total=len(missing), unit="ep", desc=f"collect {cfg.env.short_name}",
                   disable=not cfg.progress)
        try:
            for shard_ids in shard_plan(missing, cfg.episodes_per_shard):
                episodes: list[Episode] = []
                for g in range(0, len(shard_ids), num_envs):
                    group = shard_ids[g:g + num_envs]
                    episodes += rollout_group(vec_env, cfg, group)
                    frames += len(group) * (cfg.episode_length + 1)
                    bar.update(len(group))
                    bar.set_postfix(fps=f"{frames / (time.perf_counter() - start):.0f}")
                write_shard(root, episodes)
        except BaseException:
            bar.close()
            close_vector_env(vec_env, interrupted=True)
            raise
        bar.close()
        close_vector_env(vec_env, interrupted=False)
    return CollectSummary(root, len(done) + len(missing), len(missing), frames,
                          time.perf_counter() - start)
