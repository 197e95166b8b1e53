"""The world model in RL experiments: latent observations, the learned reward, imagination envs
and a planner as a policy.

    from jepa_world import WorldModel
    from jepa_world.rl import ActionRepeat, LatentObservation, ImaginationVectorEnv, DatasetStarts
    model = WorldModel.from_pretrained("reach")
    real = LatentObservation(ActionRepeat(gym.make("jepa_world/Reach-v0"), 5), model)
    dream = ImaginationVectorEnv(model, DatasetStarts(model, "data/reach_64px"), 256,
                                 real.action_space, budget=10)

Every env here is goal-conditioned (``observation`` / ``achieved_goal`` / ``desired_goal``),
rewarded by :class:`LatentReward`, and passes stable-baselines3's ``check_env``;
:func:`jepa_world.rl.sb3.sb3_vec_env` hands the batched imagination env to SB3 as one VecEnv.
"""

from jepa_world.rl.imagination import (
    DatasetStarts,
    EnvStarts,
    ImaginationEnv,
    ImaginationVectorEnv,
    Starts,
)
from jepa_world.rl.latent_obs import ActionRepeat, LatentObservation, LatentObservationVector
from jepa_world.rl.policy import PlannerPolicy
from jepa_world.rl.reward import LatentReward

__all__ = ["ActionRepeat", "DatasetStarts", "EnvStarts", "ImaginationEnv",
           "ImaginationVectorEnv", "LatentObservation", "LatentObservationVector", "LatentReward",
           "PlannerPolicy", "Starts"]
