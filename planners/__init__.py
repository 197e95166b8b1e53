"""Planners over latent world models (CEM, MPPI, gradient) and the MPC loop.

Installed as ``jepa_world.planners``. Pure tensor code: no files, loggers or Hydra.
"""
