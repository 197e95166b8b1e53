"""What a V-JEPA predictor fills in: its masked-region features decoded, against the empty floor.

    python -m bench.masked_decoding --env maze --pretrained runs/pretrain_tiny_maze \\
        --decoder runs/decode_maze_masked/decoder [--png docs/decoder_masked.png] [--threads 1]

On 16 held-out clips of the env's dataset (the last 10% of episodes) with fixed masks of each of
the run's two mask types (short / long range), one clip at a time: PSNR inside the masked region
of the decoded prediction (``decoder.kind=tokens``, trained by ``python -m jepa_world.decode``)
against the true clip, and over the masked OBJECT pixels (those unlike the median frame: the
agent, the block), each beside the median frame pasted there (what knowing nothing about the
clip gives). ``--png``: true | visible context | prediction pasted in, two clips per mask type.
"""

from __future__ import annotations

import argparse

import torch

from bench.common import table
from jepa_world.checkpoints.decoder import load_decoder
from jepa_world.config import EnvConfig
from jepa_world.training.decoder_config import DecodeConfig, DecoderModelConfig
from jepa_world.training.figures import write_figure
from jepa_world.training.masked_decoder import MaskedTask
from jepa_world.training.wm_config import WMDataConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="maze")
    ap.add_argument("--pretrained", required=True)
    ap.add_argument("--decoder", required=True)
    ap.add_argument("--data", default="", help="dataset folder (default: the env's)")
    ap.add_argument("--png", default="")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = DecodeConfig(env=EnvConfig(name=args.env), pretrained=args.pretrained,
                       decoder=DecoderModelConfig(kind="tokens"),
                       data=WMDataConfig(data_dir=args.data), progress=False)
    task = MaskedTask(cfg, torch.device("cpu"))
    decoder = load_decoder(args.decoder).float()
    metrics = task.evaluate(decoder, None, 0)
    def cell(name: str, kind: str) -> str:
        return f"{metrics[f'val/psnr_{name}_{kind}']:.2f} / " \
               f"{metrics[f'val/psnr_{name}_objects_{kind}']:.2f}"

    columns = ["mask", "decoded: region / objects", "median frame: region / objects"]
    rows = [dict(zip(columns, (kind, cell("masked", kind), cell("floor", kind)), strict=True))
            for kind in ("short", "long")]
    print(f"{args.env}: {len(task.val)} held-out clips, 16 scored; PSNR dB")
    print(table(rows, columns))
    if args.png:
        write_figure(args.png, task.figure(decoder))
        print(f"wrote {args.png}: per clip, rows true | visible context | prediction pasted in")


if __name__ == "__main__":
    main()
