"""The seed's view of what V-JEPA predicts: decode the predictor's features of a clip's MASKED
region and paste them into the visible context.

:func:`predict_masked` runs a frozen pretraining checkpoint (context encoder + predictor, as in
one training step) on clips with V-JEPA multi-block masks and returns the predictor's features at
the masked tubelets; :meth:`MaskedPrediction.tokens` puts a token decoder's learned ``empty``
token at every other position: the decoder never sees the visible part, as in the paper. A
``kind="tokens"`` decoder (:class:`~jepa_world.models.token_decoder.TokenDecoder`) turns them
into frames; :func:`paste` puts the decoded masked region into the real visible pixels and
:func:`masked_panels` lays out true clip | visible context | pasted prediction for a figure.

Shapes: clips ``[B, T, 3, H, W]`` in ``[0, 1]``; tokens ``[B, T', H' W', D]`` (``T' = T /
tubelet``); regions ``[B, T, 1, H, W]`` of 0 / 1 (1 = masked).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from torch import nn

from jepa_world.checkpoints import Pretrained
from jepa_world.errors import ConfigError
from jepa_world.masks import MaskSpec, sample_multiblock_masks
from jepa_world.models.inputs import imagenet_normalize
from jepa_world.models.token_decoder import scatter_tokens

HIDDEN_GREY = 0.5  #: the masked region's colour in the "visible context" panel


@dataclass
class ClipGeometry:
    """A pretraining checkpoint's clip and token layout."""

    num_frames: int  #: T
    image_size: int  #: H = W
    tubelet: int
    patch: int
    dim: int  #: D

    @property
    def grid(self) -> tuple[int, int, int]:
        side = self.image_size // self.patch
        return self.num_frames // self.tubelet, side, side

    @classmethod
    def of(cls, pretrained: Pretrained) -> ClipGeometry:
        if pretrained.predictor is None or pretrained.encoder is None or \
                pretrained.config.get("predictor_type") != "masked":
            raise ConfigError("pretrained: masked-region decoding needs a V-JEPA pretraining "
                              "checkpoint with its encoder and MASKED predictor "
                              "(a `python -m jepa_world.pretrain` run)")
        enc = pretrained.config["encoder"]
        size = enc["img_size"] if isinstance(enc["img_size"], int) else enc["img_size"][0]
        return cls(enc["num_frames"], size, enc["tubelet_size"], enc["patch_size"],
                   enc["embed_dim"])


@dataclass
class MaskedPrediction:
    values: torch.Tensor  #: ``[B, M, D]``: the predictor's features of the masked tokens
    index: torch.Tensor  #: ``[B, M]``: their positions in the ``T' H' W'`` token grid
    region: torch.Tensor  #: ``[B, T, 1, H, W]``: 1 where the clip was masked
    grid: tuple[int, int, int]  #: ``(T', H', W')``

    def tokens(self, empty: torch.Tensor) -> torch.Tensor:
        """``[B, T', H' W', D]``: the predicted features, ``empty [D]`` at visible positions
        (differentiable in ``empty``: a decoder learns it)."""
        t, h, w = self.grid
        full = scatter_tokens(empty, self.values.to(empty.dtype), self.index, t * h * w)
        return rearrange(full, "b (t n) d -> b t n d", t=t)


def region_pixels(targets: torch.Tensor, geometry: ClipGeometry) -> torch.Tensor:
    """Masked token indices ``[B, M]`` -> the pixels they cover ``[B, T, 1, H, W]`` (0 / 1)."""
    t, h, w = geometry.grid
    hidden = torch.zeros(targets.shape[0], t * h * w, device=targets.device)
    hidden.scatter_(1, targets, 1.0)
    return repeat(hidden, "b (t h w) -> b (t k) 1 (h p) (w q)", t=t, h=h, k=geometry.tubelet,
                  p=geometry.patch, q=geometry.patch)


@torch.no_grad()
def predict_masked(pretrained: Pretrained, clips: torch.Tensor, spec: MaskSpec, mask_index: int,
                   generator: torch.Generator | int = 0) -> MaskedPrediction:
    """The predictor's features of the masked region of ``clips`` ``[B, T, 3, H, W]``.

    Masks of one ``spec`` (the checkpoint's ``mask_index``-th mask type) are drawn from
    ``generator``; the context encoder sees the rest, the predictor fills in the masked tokens.
    """
    geometry = ClipGeometry.of(pretrained)
    want = (geometry.num_frames, 3, geometry.image_size, geometry.image_size)
    if clips.dim() != 5 or tuple(clips.shape[1:]) != want:
        raise ValueError(f"clips must be [B, {', '.join(map(str, want))}], "
                         f"got {list(clips.shape)}")
    device = clips.device
    video = imagenet_normalize(rearrange(clips, "b t c h w -> b c t h w"), channel_dim=1)
    mask = sample_multiblock_masks(geometry.grid, [spec], clips.shape[0], generator=generator)[0]
    context, targets = mask.context.to(device), mask.targets.to(device)
    encoder, predictor = pretrained.encoder, pretrained.predictor
    pred = predictor(encoder(video, masks=context), context, targets, mask_index=mask_index)
    return MaskedPrediction(pred, targets, region_pixels(targets, geometry), geometry.grid)


def paste(decoded: torch.Tensor, clips: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """The decoded pixels inside ``region``, the real ones outside (all ``[B, T, ., H, W]``)."""
    return region * decoded + (1 - region) * clips


def masked_panels(clips: torch.Tensor, region: torch.Tensor, decoded: torch.Tensor):
    """``[3, B, T, 3, H, W]``: the true clip | what the encoder saw (masked region grey) | the
    decoded prediction pasted into the visible context."""
    visible = paste(torch.full_like(clips, HIDDEN_GREY), clips, region)
    return torch.stack([clips, visible, paste(decoded, clips, region)])


def freeze(pretrained: Pretrained) -> Pretrained:
    """Eval mode, no gradients: the checkpoint is only read."""
    for module in (pretrained.encoder, pretrained.predictor):
        if isinstance(module, nn.Module):
            module.requires_grad_(False).eval()
    return pretrained


__all__ = ["ClipGeometry", "MaskedPrediction", "freeze", "masked_panels", "paste",
           "predict_masked", "region_pixels"]
