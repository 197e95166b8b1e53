"""Image similarity of decoded frames: PSNR and SSIM (Wang et al. 2004, an 11 x 11 Gaussian
window of sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``, computed per channel and averaged; no padding,
as the reference implementation). Frames are ``[..., 3, H, W]`` floats in ``[0, 1]``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: ``[..., C, H, W]`` -> ``[...]``."""
    mse = (pred.float() - target.float()).square().mean(dim=(-3, -2, -1))
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _gaussian_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-x.square() / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image: ``[..., C, H, W]`` -> ``[...]`` (1 for equal images)."""
    lead, (c, h, w) = pred.shape[:-3], pred.shape[-3:]
    x = pred.float().reshape(-1, c, h, w)
    y = target.float().reshape(-1, c, h, w)
    kernel = _gaussian_window(window, sigma, c).to(x.device)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, kernel, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.square()
    var_y = blur(y * y) - mu_y.square()
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)
    return (num / den).mean(dim=(-3, -2, -1)).reshape(lead)


__all__ = ["psnr", "ssim"]
