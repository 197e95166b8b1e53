"""Input normalisation shared by pretraining, probes and the world model."""

import torch

#: ImageNet channel statistics: V-JEPA normalises RGB in [0, 1] with them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """``(x - mean) / std`` with the ImageNet statistics along ``channel_dim`` (size 3) of RGB
    in ``[0, 1]``, e.g. ``channel_dim=1`` for clips ``[B, 3, T, H, W]``."""
    shape = [1] * x.dim()
    shape[channel_dim] = 3
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(shape)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(shape)
    return (x - mean) / std
