"""Window dataset speed: shuffled windows/s through a DataLoader, by worker count.

    python bench/loader_throughput.py [--data data/reach_64px] [--context 3 --future 4]

Uses an existing dataset, or collects a small one (60 episodes x 100 steps, 64 px) into a
temporary directory. Figures are medians of ``--repeats`` passes over ``--batches`` batches.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from bench.common import median_rate, table
from jepa_world.config import CollectConfig
from jepa_world.data import WindowDataset
from jepa_world.data.collection import collect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="")
    parser.add_argument("--context", type=int, default=3)
    parser.add_argument("--future", type=int, default=4)
    parser.add_argument("--frameskip", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.data) if args.data else Path(tmp) / "reach"
        if not args.data:
            collect(CollectConfig(episodes=60, episode_length=100, progress=False,
                                  data_dir=str(root)))
        ds = WindowDataset(root, context=args.context, future=args.future,
                           frameskip=args.frameskip)
        rows = []
        for workers in (0, 1, 2):
            loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True,
                                num_workers=workers, persistent_workers=workers > 0,
                                generator=torch.Generator().manual_seed(0))

            def one_pass(loader=loader):
                it = iter(loader)
                for _ in range(args.batches):
                    next(it)
                return args.batches * args.batch_size

            rate, _ = median_rate(one_pass, args.repeats)
            rows.append({"workers": workers, "windows/s": f"{rate:,.0f}",
                         "frames/s": f"{rate * (args.context + args.future):,.0f}"})
        print(f"{len(ds):,} windows of {args.context}+{args.future} frames, frameskip "
              f"{args.frameskip}, batch {args.batch_size}, shuffled; median of {args.repeats}")
        print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
