"""Hugging Face transformers V-JEPA 2 folders: conformance error and load time at ViT-L size.

    OMP_NUM_THREADS=1 python -m bench.hf_load [--repeats 3] [--threads 1]

1. Max abs error of our encoder / predictor against the conformance fixture
   (``../shared/fixtures/hf_vjepa2``, skipped when absent).
2. ``load_pretrained`` time of a ViT-L-sized ``VJEPA2Model`` folder (transformers'
   ``VJEPA2Config()`` defaults: 1024 wide, 24 blocks, 256 px, predictor 384 x 12) built at random
   and written with ``save_pretrained`` into a temporary folder (no download; needs
   ``pip install transformers``). Median of ``--repeats`` loads, after one warm-up load that
   brings the file into the page cache.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from bench.common import table
from jepa_world.checkpoints import load_pretrained
from jepa_world.hf_vjepa2 import predict_targets

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "hf_vjepa2"


def cpu_name() -> str:
    """The ``Model name`` line of ``lscpu`` (or the platform's processor string)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    names = [line.split(":", 1)[1].strip() for line in out.splitlines()
             if line.startswith("Model name")]
    return names[0] if names else "unknown CPU"


def fixture_errors() -> dict[str, str] | None:
    """Max abs errors of the encoder and predictor on the fixture, or None without it."""
    if not FIXTURES.is_dir():
        return None
    exp = load_file(str(FIXTURES / "hf_vjepa2_tiny_expected.safetensors"))
    model = load_pretrained(FIXTURES / "hf_vjepa2_tiny")
    enc, pred = predict_targets(model.encoder.eval(), model.predictor.eval(), exp["video"],
                                exp["context_idx"], exp["target_idx"])
    return {"encoder": f"{(enc - exp['encoder_out']).abs().max().item():.2e}",
            "predictor": f"{(pred - exp['predictor_out']).abs().max().item():.2e}"}


def vit_l_folder(root: Path) -> tuple[Path, int]:
    """Write a random ViT-L-sized transformers folder under ``root``; ``(folder, parameters)``."""
    import transformers

    torch.manual_seed(0)
    model = transformers.VJEPA2Model(transformers.VJEPA2Config())
    folder = root / "vjepa2_vitl_random"
    model.save_pretrained(folder)
    return folder, sum(p.numel() for p in model.parameters())


def time_loads(folder: Path, repeats: int) -> list[float]:
    load_pretrained(folder)  # warm-up: page cache, lazy imports
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        model = load_pretrained(folder)
        seconds.append(time.perf_counter() - start)
        del model
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()}; torch {torch.__version__}, {args.threads} thread(s)")

    errors = fixture_errors()
    if errors is None:
        print(f"fixture not found at {FIXTURES}: conformance skipped")
    else:
        print("max abs error vs transformers (fixture, float32, tolerance 1e-4):")
        print(table([errors], list(errors)))

    try:
        import transformers
    except ImportError:
        print("transformers is not installed (pip install transformers): load time skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder, params = vit_l_folder(Path(tmp))
        size = sum(f.stat().st_size for f in folder.iterdir()) / 2**30
        seconds = time_loads(folder, args.repeats)
    row = {"folder": f"ViT-L VJEPA2Model, {params / 1e6:.0f} M params, {size:.2f} GiB",
           "transformers": transformers.__version__,
           f"load_pretrained s (median of {args.repeats})": f"{statistics.median(seconds):.2f}",
           "all runs s": ", ".join(f"{s:.2f}" for s in seconds)}
    print(table([row], list(row)))


if __name__ == "__main__":
    main()
