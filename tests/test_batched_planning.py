"""All episodes of an evaluation planned together (run_episodes / evaluate with W envs): the
same per-episode results and plans as one episode at a time, for the same seeds; one planner
call per MPC step for the live episodes, finished ones dropping out; per-episode draws."""

from __future__ import annotations

import pytest
import torch

from jepa_world.planners import ActionBounds, make_planner
from jepa_world.planners.base import draw_rows
from jepa_world.planning.agents import BlindAgent, OracleAgent, WorldModelAgent, joint_objective
from jepa_world.planning.evaluate import evaluate
from jepa_world.planning.mpc import run_episode, run_episodes
from tests.test_planning import make_env, tiny_world_model

pytestmark = pytest.mark.usefixtures("one_thread")
SEEDS = [3, 4, 5, 6, 7]


def generators(seeds):
    return [torch.Generator().manual_seed(100 + s) for s in seeds]


def same_episodes(batched, alone):
    for b, a in zip(batched, alone, strict=True):
        assert (b.seed, b.success, b.steps, b.error) == (a.seed, a.success, a.steps, a.error)
        assert b.final_error == pytest.approx(a.final_error, abs=1e-6)
        assert [s for s, _ in b.plans] == [s for s, _ in a.plans]
        for (_, pb), (_, pa) in zip(b.plans, a.plans, strict=True):
            torch.testing.assert_close(pb, pa, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["world_model", "oracle", "random"])
def test_batched_episodes_equal_one_at_a_time(kind):
    model = tiny_world_model(frameskip=5) if kind == "world_model" else None
    agent = {"world_model": lambda: WorldModelAgent(model, chunk_size=7),
             "oracle": lambda: OracleAgent(5), "random": BlindAgent}[kind]
    envs = [make_env(budget=30) for _ in SEEDS]
    bounds = ActionBounds.from_space(envs[0].action_space)
    planner = make_planner("random", bounds, horizon=4) if kind == "random" else \
        make_planner("cem", bounds, samples=24, iterations=3, elites=4, horizon=4)
    try:
        alone = [run_episode(envs[0], agent(), planner, s, 5, 30, generator=g)
                 for s, g in zip(SEEDS, generators(SEEDS), strict=True)]
        batched = run_episodes(envs, [agent() for _ in SEEDS], planner, SEEDS, 5, 30,
                               generators=generators(SEEDS))
    finally:
        for env in envs:
            env.close()
    same_episodes(batched, alone)
    if kind == "oracle":  # some finish early, the others go on planning without them
        assert len({len(r.plans) for r in batched}) > 1


def test_one_planner_call_per_step_for_the_live_episodes():
    envs = [make_env(budget=30) for _ in range(3)]
    bounds = ActionBounds.from_space(envs[0].action_space)
    planner = make_planner("cem", bounds, samples=16, iterations=2, elites=4, horizon=4)
    sizes = []
    original = planner.plan

    def counting(objective, batch_size, **kw):
        sizes.append(batch_size)
        return original(objective, batch_size, **kw)

    planner.plan = counting
    try:
        results = run_episodes(envs, [OracleAgent(5) for _ in envs], planner, [0, 1, 2], 5, 30,
                               generators=generators([0, 1, 2]))
    finally:
        for env in envs:
            env.close()
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 3
    assert len(sizes) == max(len(r.plans) for r in results)  # one call per step, not per episode
    assert sum(sizes) == sum(len(r.plans) for r in results)


def test_evaluate_in_waves_equals_one_env():
    envs = [make_env(budget=20) for _ in range(2)]
    bounds = ActionBounds.from_space(envs[0].action_space)
    planner = make_planner("cem", bounds, samples=16, iterations=2, elites=4, horizon=4)
    kw = dict(seeds=[0, 1, 2], action_repeat=5, step_budget=20, progress=False)
    try:
        one = evaluate(envs[0], OracleAgent(5), planner, **kw)
        seen = []
        waves = evaluate(envs, [OracleAgent(5), OracleAgent(5)], planner,
                         on_episode=lambda i, r: seen.append((i, r.seed)), **kw)
    finally:
        for env in envs:
            env.close()
    assert one.per_episode == waves.per_episode
    assert seen == [(0, 0), (1, 1), (2, 2)]


def test_draw_rows_gives_each_episode_its_own_stream():
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    rows = draw_rows(torch.randn, (2, 3, 4), gens)
    torch.testing.assert_close(rows[1:], torch.randn((1, 3, 4),
                                                     generator=torch.Generator().manual_seed(2)))
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        draw_rows(torch.randn, (3, 4), gens)


def test_joint_objective_falls_back_to_rows():
    class Plain:
        def __init__(self, value):
            self.value = value

        def objective(self):
            return lambda actions: actions.new_full(actions.shape[:2], self.value)

    costs = joint_objective([Plain(1.0), Plain(2.0)])(torch.zeros(2, 3, 4, 2))
    torch.testing.assert_close(costs, torch.tensor([[1.0] * 3, [2.0] * 3]))


def test_batched_waves_show_their_env_step_in_the_progress_bar(capsys):
    envs = [make_env(budget=10) for _ in range(2)]
    planner = make_planner("cem", ActionBounds.from_space(envs[0].action_space), samples=8,
                           iterations=1, elites=2, horizon=2)
    try:
        evaluate(envs, [OracleAgent(5), OracleAgent(5)], planner, seeds=[0, 1],
                 action_repeat=5, step_budget=10, progress=True)
    finally:
        for env in envs:
            env.close()
    assert "wave step 0/10" in capsys.readouterr().err


def test_world_model_agents_encode_every_episode_frame_in_one_call():
    model = tiny_world_model(frameskip=5)
    envs = [make_env(budget=10) for _ in range(3)]
    planner = make_planner("cem", ActionBounds.from_space(envs[0].action_space), samples=8,
                           iterations=1, elites=2, horizon=2)
    calls = []
    original = model.encode_images
    model.encode_images = lambda pixels: calls.append(len(pixels)) or original(pixels)
    try:
        results = run_episodes(envs, [WorldModelAgent(model) for _ in envs], planner, [0, 1, 2],
                               5, 10, replan_every=1, generators=generators([0, 1, 2]))
    finally:
        for env in envs:
            env.close()
    assert calls[0] == 6  # three start and three goal frames
    assert calls[1:] == [3]  # budget 10 at repeat 5: one observation between the two replans
    assert all(len(r.plans) == 2 for r in results)
