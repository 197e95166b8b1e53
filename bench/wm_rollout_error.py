"""Open-loop rollout error of a trained world model on held-out episodes, against horizon.

    python -m bench.wm_rollout_error --model runs/wm/world_model [--data data/reach_64px]
        [--horizons 8] [--windows 400]

For held-out episodes (the last 10% of the dataset, as ``train_wm`` holds out), the model sees
``history`` true frames and then imagines ``--horizons`` steps under the TRUE actions. Reported
per horizon ``h``:

* ``model L1``: mean |imagined - encoded true| latent distance;
* ``copy-last L1``: the same for predicting every future latent as the last observed one;
* ``probe R2 (pred)``: a ridge probe fitted on ENCODED latents of training episodes to the joint
  angles (sin, cos) read on the imagined latents (``R2 (true)``: on the encoded true latents of
  the same frames: the probe's own ceiling).
* with ``--goal-state`` (tasks whose goal is not the agent, e.g. push's block pose): the same
  ridge probe fitted to the task's goal state of each frame (its sim state; angles as sine and
  cosine): ``goal R2`` over the plain coordinates (push: the block's x, y) and ``angle ok``, the
  fraction of windows whose angle read back is within the task's tolerance (push: pi/9).

Also the candidate-steps/s of ``WorldModel.rollout`` at the planner's batch sizes on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.common import table
from jepa_world.data.windows import split_episodes
from jepa_world.errors import JepaWorldError
from jepa_world.training.wm_data import encode_episodes
from jepa_world.world_model import WorldModel


def angle_targets(proprio: torch.Tensor) -> torch.Tensor:
    """``[..., P]`` proprio -> ``[..., 4]`` sin/cos of the two joint angles."""
    q = proprio[..., :2]
    return torch.cat([q.sin(), q.cos()], -1)


def ridge_fit(x: torch.Tensor, y: torch.Tensor, lam: float = 1e-2):
    mean, std = x.mean(0), x.std(0) + 1e-6
    xs = torch.cat([(x - mean) / std, torch.ones(len(x), 1)], 1).double()
    w = torch.linalg.solve(xs.T @ xs + lam * len(x) * torch.eye(xs.shape[1], dtype=xs.dtype),
                           xs.T @ y.double())
    return lambda z: (torch.cat([(z - mean) / std, torch.ones(len(z), 1)], 1).double() @ w)


def r2(pred: torch.Tensor, y: torch.Tensor) -> float:
    y = y.double()
    return float(1 - ((pred - y) ** 2).sum(0).div(((y - y.mean(0)) ** 2).sum(0)).mean())


def angle_within(out: torch.Tensor, y: torch.Tensor, plain: int, tolerance: float) -> float:
    """Fraction of rows whose angle read back (``out``) is within ``tolerance`` of ``y``'s, both
    in ``state_targets``' layout: ``plain`` coordinates, then the sine, then the cosine (one
    angle)."""
    a = plain
    err = torch.atan2(out[:, a], out[:, a + 1]) - torch.atan2(y[:, a], y[:, a + 1])
    err = torch.remainder(err + torch.pi, 2 * torch.pi) - torch.pi
    return float((err.abs() <= tolerance).double().mean())


class GoalReader:
    """A ridge probe from latents to the task's goal state; scores imagined vs true latents."""

    def __init__(self, probe, targets: torch.Tensor, angles: list[bool], tolerances):
        self.probe, self.targets = probe, targets  # targets [E, L, G'] of the held-out episodes
        self.plain = len(angles) - sum(angles)
        self.tolerance = float(tolerances[angles.index(True)]) if any(angles) else None

    def _angle_ok(self, out: torch.Tensor, y: torch.Tensor) -> float:
        return angle_within(out, y, self.plain, self.tolerance)

    def scores(self, pred, truth, episode, frame) -> dict[str, str]:
        y = self.targets[episode, frame].double()  # [W, G']
        row = {}
        for name, z in (("pred", pred), ("true", truth)):
            out = self.probe(z.flatten(1))
            row[f"goal R2 ({name})"] = f"{r2(out[:, :self.plain], y[:, :self.plain]):.3f}"
            if self.tolerance is not None:
                row[f"angle ok ({name})"] = f"{self._angle_ok(out, y):.2f}"
        return row


def goal_reader(root: str, env_id: str, probe_eps, val, z: torch.Tensor) -> GoalReader:
    """Fit the goal-state probe on the probe episodes' encoded latents ``z``."""
    from jepa_world.config import EnvConfig
    from jepa_world.probes.runner import probe_state
    from jepa_world.training.wm_data import load_goal_states

    env = EnvConfig(name=env_id, probe_state="goal")
    _, angles, state_fn = probe_state(env)
    if sum(angles) > 1:
        raise SystemExit("error: --goal-state scores one angle; this task's goal has "
                         f"{sum(angles)}")
    fit = load_goal_states(root, probe_eps.ids, state_fn, angles).flatten(0, 1)
    task = env.make(disable_env_checker=True)
    try:
        tolerances = task.unwrapped.success_tolerances()
    finally:
        task.close()
    return GoalReader(ridge_fit(z, fit), load_goal_states(root, val.ids, state_fn, angles),
                      list(angles), tolerances)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default="data/reach_64px")
    ap.add_argument("--horizons", type=int, default=8)
    ap.add_argument("--windows", type=int, default=400)
    ap.add_argument("--probe-episodes", type=int, default=60)
    ap.add_argument("--batches", type=int, nargs="+", default=[128, 300, 1024])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--goal-state", action="store_true",
                    help="also read the task's goal state (push: the block pose) back")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:  # a bad --model or --data: one line, before any work
        model = WorldModel.from_pretrained(args.model).eval()
        train_ids, val_ids = split_episodes(args.data, 0.1)
    except JepaWorldError as err:
        raise SystemExit(f"error: {err}") from None
    cfg = model.config

    def encode(frames):
        return model.encode(frames[None])[0]

    with torch.no_grad():
        val = encode_episodes(args.data, val_ids, encode)
        probe_eps = encode_episodes(args.data, train_ids[:args.probe_episodes], encode)
    z = probe_eps.tokens.float().flatten(0, 1).flatten(1)
    probe = ridge_fit(z, angle_targets(probe_eps.proprio.flatten(0, 1)))
    goal = goal_reader(args.data, cfg.env_id, probe_eps, val, z) if args.goal_state else None

    h, s, horizon = cfg.history_length, cfg.frameskip, args.horizons
    window = h + horizon
    gen = torch.Generator().manual_seed(0)
    starts = val.window_starts(window, s)
    episode = torch.randint(len(val.ids), (args.windows,), generator=gen)
    start = torch.randint(starts, (args.windows,), generator=gen)
    tokens, actions, proprio = val.windows(episode, start, window, s)
    with torch.no_grad():
        pred = model.rollout(tokens[:, :h], actions[:, h - 1:][:, None],
                             proprio[:, :h] if cfg.proprio_dim else None,
                             history_actions=actions[:, :h - 1])[:, 0]  # [W, H, N, D]
    truth, last = tokens[:, h:], tokens[:, h - 1]
    rows = []
    for k in range(horizon):
        y = angle_targets(proprio[:, h + k])
        rows.append({
            "horizon (steps)": k + 1, "env steps": (k + 1) * s,
            "model L1": f"{(pred[:, k] - truth[:, k]).abs().mean():.4f}",
            "copy-last L1": f"{(last - truth[:, k]).abs().mean():.4f}",
            "probe R2 (pred)": f"{r2(probe(pred[:, k].flatten(1)), y):.3f}",
            "probe R2 (true)": f"{r2(probe(truth[:, k].flatten(1)), y):.3f}"})
        if goal is not None:
            rows[-1].update(goal.scores(pred[:, k], truth[:, k], episode, start + (h + k) * s))
    print(f"model {args.model}: {cfg.tokens_per_frame} x {cfg.encoder.embed_dim} latent, history "
          f"{h}, frameskip {s}; {args.windows} windows of {len(val.ids)} held-out episodes")
    print(table(rows, list(rows[0])))

    rate_rows = []
    for b in args.batches:
        hist = tokens[:1, :h].expand(1, h, *tokens.shape[2:])
        cand = torch.rand(1, b, 5, cfg.step_action_dim) * 2 - 1
        kw = dict(history_actions=actions[:1, :h - 1],
                  proprio=proprio[:1, :h] if cfg.proprio_dim else None)
        times = []
        with torch.no_grad():
            model.rollout(hist, cand, **kw)
            for _ in range(5):
                t0 = time.perf_counter()
                model.rollout(hist, cand, **kw)
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        rate_rows.append({"candidates": b, "horizon": 5, "seconds": f"{med:.4f}",
                          "candidate-steps/s": f"{b * 5 / med:,.0f}"})
    print(f"\nrollout throughput ({torch.get_num_threads()} threads, median of 5)")
    print(table(rate_rows, list(rate_rows[0])))


if __name__ == "__main__":
    main()
