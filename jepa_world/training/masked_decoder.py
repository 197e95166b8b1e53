"""Training data of the seed's masked-region decoder (``decoder.kind=tokens``): :class:`MaskedTask`.

Every step draws clips of the env's dataset and one of the pretraining run's two mask types
(short / long range, as its predictor was trained), runs the FROZEN context encoder + predictor
(:func:`jepa_world.masked_decoding.predict_masked`), and trains the token decoder to turn the
predicted features of the masked tubelets into their pixels (loss over the masked pixels only;
the decoder is never shown the visible ones). Held out: the dataset's last episodes, scored by
PSNR inside the masked region against the true clip, and over its object pixels (those unlike
the median frame: the agent, the block), each beside the empty-floor baseline (the median frame
pasted there); plus a figure (true | visible context | pasted prediction).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from einops import rearrange

from jepa_world.checkpoints import CheckpointError, load_pretrained
from jepa_world.data.env_clips import EnvClips
from jepa_world.data.windows import split_episodes
from jepa_world.errors import ConfigError
from jepa_world.masked_decoding import ClipGeometry, freeze, masked_panels, predict_masked
from jepa_world.models.decoder import DecoderConfig
from jepa_world.training.decoder_config import DecodeConfig
from jepa_world.training.pretrain_config import MaskConfig
from jepa_world.training.telemetry import TrainLogger

EVAL_CLIPS = 16
EVAL_SEED = 12345


def run_settings(path: Path) -> tuple[MaskConfig, int]:
    """The masks and frame step a pretraining run used (its ``pretrain_config.json``, found in
    ``path`` or above it), else the defaults."""
    for folder in (path, *path.parents[:3]):
        config = folder / "pretrain_config.json"
        if config.is_file():
            saved = json.loads(config.read_text())
            fields = set(MaskConfig.__dataclass_fields__)
            masks = MaskConfig(**{k: v for k, v in saved.get("masks", {}).items() if k in fields})
            return masks, int(saved.get("data", {}).get("frame_step", 1))
    return MaskConfig(), 1


class MaskedTask:
    """Decode a frozen V-JEPA predictor's features of the masked region of clips."""

    def __init__(self, cfg: DecodeConfig, device: torch.device) -> None:
        from jepa_world.data.collection import ensure_env_data

        path = Path(cfg.pretrained)
        if not path.exists():
            raise ConfigError(f"pretrained: {path} does not exist; pass a "
                              f"`python -m jepa_world.pretrain` run dir or checkpoint")
        self.cfg, self.device, self.source = cfg, device, str(path)
        self.provenance = {"pretrained": self.source}  #: what the decoder folder records
        try:
            self.model = freeze(load_pretrained(path))
        except CheckpointError as err:
            raise ConfigError(f"pretrained: {err} (it must be a `python -m jepa_world.pretrain` "
                              f"run dir or checkpoint; a world model has no masked predictor)"
                              ) from err
        self.geometry = ClipGeometry.of(self.model)  # refuses anything but encoder + masked
        for module in (self.model.encoder, self.model.predictor):
            module.to(device)
        masks, frame_step = run_settings(path)
        self.specs = masks.specs()
        root = ensure_env_data(cfg.env, cfg.data, 0, cfg.progress)
        train_ids, val_ids = split_episodes(root, cfg.data.val_fraction)
        g = self.geometry
        self.train = EnvClips(root, g.num_frames, frame_step, size=g.image_size,
                              episodes=train_ids)
        self.val = EnvClips(root, g.num_frames, frame_step, stride=g.num_frames,
                            size=g.image_size, episodes=val_ids)

    def decoder_config(self) -> DecoderConfig:
        g, d = self.geometry, self.cfg.decoder
        return DecoderConfig(kind="tokens", tokens=g.grid[1] * g.grid[2], latent_dim=g.dim,
                             image_size=g.image_size, width=d.width, min_width=d.min_width,
                             foreground_weight=d.foreground_weight, tubelet=g.tubelet)

    def clips(self, data: EnvClips, index: torch.Tensor) -> torch.Tensor:
        """Clips ``[B, T, 3, H, W]`` in ``[0, 1]`` on the device."""
        stack = torch.stack([data[int(i)] for i in index])
        return rearrange(stack, "b c t h w -> b t c h w").to(self.device)

    def background(self) -> torch.Tensor:
        pick = torch.linspace(0, len(self.train) - 1, 64).long()
        return self.clips(self.train, pick).flatten(0, 1)

    def describe(self) -> str:
        return (f"on the masked predictions of {self.source}; {len(self.train)} train / "
                f"{len(self.val)} held-out clips of {self.geometry.num_frames} frames")

    def loss(self, decoder, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(self.train), (self.cfg.batch_size,), generator=generator)
        kind = int(torch.randint(len(self.specs), (1,), generator=generator))
        clips = self.clips(self.train, index)
        pred = predict_masked(self.model, clips, self.specs[kind], kind, generator)
        return decoder.loss(pred.tokens(decoder.empty), clips, pred.region)

    @torch.no_grad()
    def predictions(self, decoder) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per mask type, on fixed held-out clips and masks: ``(clips, region, decoded)``.

        One clip at a time: in a batch the masks' token counts are equalised by truncating
        targets, and the dropped tokens would be neither seen nor predicted."""
        pick = torch.linspace(0, len(self.val) - 1, min(EVAL_CLIPS, len(self.val))).long()
        clips = self.clips(self.val, pick)
        out = []
        for kind, spec in enumerate(self.specs):
            regions, decoded = [], []
            for i, clip in enumerate(clips):
                pred = predict_masked(self.model, clip[None], spec, kind, EVAL_SEED + 97 * i + kind)
                regions.append(pred.region)
                decoded.append(decoder.decode(pred.tokens(decoder.empty)))
            out.append((clips, torch.cat(regions), torch.cat(decoded)))
        return out

    def evaluate(self, decoder, logger: TrainLogger | None, step: int) -> dict[str, float]:
        decoder.eval()
        metrics, panels = {}, []
        background = decoder.background
        for name, (clips, region, decoded) in zip(("short", "long"), self.predictions(decoder),
                                                  strict=True):
            floor = background.expand_as(clips)
            moving = region * ((clips - background).abs().amax(dim=-3, keepdim=True) > 0.05)
            for part, where in (("", region), ("_objects", moving)):
                metrics[f"val/psnr_masked{part}_{name}"] = masked_psnr(decoded, clips, where)
                metrics[f"val/psnr_floor{part}_{name}"] = masked_psnr(floor, clips, where)
            panels.append(masked_panels(clips[:2], region[:2], decoded[:2]))
        if logger is not None:
            logger.scalars(step, metrics)
            if logger.writer is not None:
                logger.writer.add_image("masked/true|visible|pasted", figure(panels), step)
        return metrics

    def figure(self, decoder) -> torch.Tensor:
        """Two held-out clips per mask type: true | visible context | pasted prediction."""
        decoder.eval()
        return figure([masked_panels(c[:2], r[:2], d[:2])
                       for c, r, d in self.predictions(decoder)])


def masked_psnr(pred: torch.Tensor, truth: torch.Tensor, region: torch.Tensor) -> float:
    """PSNR (dB) over the pixels inside ``region`` only, pooled over the whole batch."""
    err = ((pred - truth).square() * region).sum() / (region.sum() * 3).clamp_min(1)
    return float(10 * torch.log10(1 / err.clamp_min(1e-10)))


def figure(panels: list[torch.Tensor]) -> torch.Tensor:
    """``[3, rows H, T W]``: for each ``[3, B, T, 3, H, W]`` of :func:`masked_panels`, each
    clip's true | visible | pasted rows (frames left to right)."""
    rows = torch.cat([rearrange(p, "k b t c h w -> (b k) t c h w") for p in panels])
    return rearrange(rows.clamp(0, 1), "r t c h w -> c (r h) (t w)")


__all__ = ["MaskedTask", "figure", "masked_psnr", "run_settings"]
