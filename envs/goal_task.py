"""The outermost wrapper of jepa_world's tasks: goal-conditioned methods where callers look.

``gym.make`` adds :class:`GoalConditioned` outside the time limit of every jepa_world task (own
or adapted), so that code holding the outermost wrapper sees ``compute_reward`` /
``is_success`` / ``desired_goal``: stable-baselines3's ``check_env`` and HER call
``env.compute_reward``, and Gymnasium 1.x wrappers no longer forward attributes.
"""

from __future__ import annotations

import gymnasium as gym


class GoalConditioned(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Forwards the goal task's (``env.unwrapped``'s) goal-conditioned methods; nothing else
    changes."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def compute_reward(self, achieved_goal, desired_goal, info=None):
        return self.env.unwrapped.compute_reward(achieved_goal, desired_goal, info)

    def is_success(self, achieved_goal, desired_goal):
        return self.env.unwrapped.is_success(achieved_goal, desired_goal)

    @property
    def desired_goal(self):
        return self.env.unwrapped.desired_goal


GOAL_CONDITIONED_SPEC = gym.envs.registration.WrapperSpec(
    name="GoalConditioned", entry_point="jepa_world.envs.goal_task:GoalConditioned", kwargs={})

__all__ = ["GOAL_CONDITIONED_SPEC", "GoalConditioned"]
