"""Data-parallel pretraining with 2 CPU processes (gloo): disjoint data shards, parameters in sync,
one output directory owned by rank 0 -- through the library (spawn) and through torchrun."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from jepa_world.training import ResumableSampler, latest_checkpoint, pretrain
from jepa_world.training.distributed import DistInfo
from tests.conftest import PYTHON, python_env
from tests.test_pretrain import CLI_MODEL, tiny_config

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, port: int, data: str, tmp: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # Only rank 0's run_dir counts: rank 1 asks for its own folder, which must never appear.
    run_dir = Path(tmp) / ("run" if rank == 0 else "rank1_run")
    cfg = tiny_config(Path(data), run_dir, steps=8, batch_size=4, checkpoint_interval=4,
                      tensorboard=True)
    result = pretrain(cfg, record_indices=True)
    params = {f"{name}.{k}": v.detach().clone()
              for name in ("encoder", "target_encoder", "predictor")
              for k, v in getattr(result.models, name).state_dict().items()}
    torch.save({"losses": result.losses, "indices": result.indices, "params": params,
                "run_dir": str(result.run_dir)}, Path(tmp) / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_gloo_processes_stay_in_sync(tiny_dataset, tmp_path):
    mp.spawn(worker, args=(free_port(), str(tiny_dataset), str(tmp_path)), nprocs=WORLD,
             join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD))

    # both ranks finished every step and report the same (all-reduced) losses
    assert len(r0["losses"]) == len(r1["losses"]) == 8
    assert r0["losses"] == r1["losses"]
    # each step the ranks train on disjoint clips; an epoch's shards (50 clips: 25 + 25, 6
    # batches of 4 per rank) never overlap
    for a, b in zip(r0["indices"], r1["indices"], strict=True):
        assert len(a) == len(b) == 4 and not set(a) & set(b)
    epoch0 = [i for step in r0["indices"][:6] for i in step], [
        i for step in r1["indices"][:6] for i in step]
    assert not set(epoch0[0]) & set(epoch0[1])
    # DDP keeps the weights identical on every rank (and so the EMA target encoders)
    assert r0["params"].keys() == r1["params"].keys()
    assert all(torch.equal(r0["params"][k], r1["params"][k]) for k in r0["params"])
    # one output directory, written by rank 0 only
    assert r0["run_dir"] == r1["run_dir"] == str(tmp_path / "run")
    assert not (tmp_path / "rank1_run").exists()
    assert latest_checkpoint(tmp_path / "run").name == "step_000008"
    assert len(list((tmp_path / "run" / "tb").glob("events.*"))) == 1


def test_resumable_sampler_shards_and_skips():
    infos = [DistInfo(r, 2, r, torch.device("cpu"), owns_group=False) for r in range(2)]
    samplers = [ResumableSampler(10, batch_size=2, info=info, seed=3) for info in infos]
    for s in samplers:
        s.set_epoch(1)
    shards = [list(s) for s in samplers]
    assert sorted(shards[0] + shards[1]) == list(range(10))
    assert samplers[0].batches_per_epoch == 2
    samplers[0].set_epoch(1, start_batch=1)
    assert list(samplers[0]) == shards[0][2:]
    samplers[0].set_epoch(2)
    assert list(samplers[0]) != shards[0]


@pytest.mark.slow
def test_torchrun_entry_point_owns_one_output_dir(tiny_dataset, tmp_path):
    env = dict(python_env(), OMP_NUM_THREADS="1")
    cmd = [PYTHON, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={free_port()}", "-m", "jepa_world.pretrain",
           f"data.data_dir={tiny_dataset}", f"run_dir={tmp_path / 'run'}", "batch_size=4",
           "steps=3", "checkpoint_interval=3", *CLI_MODEL]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("pretrain done: 3 steps") == 1  # rank 0 reports
    assert "2 x cpu" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing from rank 1
    assert latest_checkpoint(tmp_path / "run").name == "step_000003"
    assert (tmp_path / "run" / ".hydra").is_dir()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
