"""Real crashes: the training commands run as processes, are SIGKILLed mid-checkpoint-write and
between checkpoints, and re-running the same command ends with the weights and loss curve of an
uninterrupted run, bit for bit (CPU, one thread)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jepa_world.checkpoints import latest_checkpoint
from tests.commands import call
from tests.conftest import PYTHON, python_env
from tests.test_pretrain import CLI_MODEL
from tests.test_train_wm import TINY_WM, encoder_dir  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def kill_when(args: list[str], ready: Callable[[], bool], cwd: Path, pause: str = "",
              timeout: float = 120) -> None:
    """Start ``python -m <args>``; SIGKILL it (no clean-up runs) as soon as ``ready()``.
    ``pause``: a file name whose atomic write hangs before its rename (the test hook)."""
    env = dict(python_env(), OMP_NUM_THREADS="1")
    if pause:
        env["JEPA_WORLD_TEST_PAUSE_WRITE"] = pause
    proc = subprocess.Popen([PYTHON, "-m", *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"finished before the kill point: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "never reached the kill point"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    # TensorBoard orders a run's event files by name, whose time has whole seconds (then the
    # pid): a re-run within the same second could sort before the killed run's file
    time.sleep(1.1)


def writing(run: Path, name: str) -> Callable[[], bool]:
    """True while a temporary file of ``name`` exists in one of the run's step folders."""
    return lambda: any((run / "checkpoints").glob(f"step_*/.{name}.*.tmp"))


def at_checkpoint(run: Path, step: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return latest_checkpoint(run).name >= f"step_{step:06d}"
        except Exception:  # no checkpoint yet
            return False
    return ready


def loss_curve(run: Path) -> list[tuple[int, float]]:
    """``loss/total`` per step as TensorBoard reads the run (steps re-run after a resume are
    purged from the earlier event files)."""
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars("loss/total")]


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def assert_same_run(crashed: Path, clean: Path, folder: Callable[[Path], Path]) -> None:
    a, b = final_weights(folder(crashed)), final_weights(folder(clean))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    curve = loss_curve(crashed)
    assert curve == loss_curve(clean), (curve, loss_curve(clean))
    assert len(curve) == 6


def test_pretrain_killed_mid_write_and_between_checkpoints_resumes_exactly(tiny_dataset,
                                                                           tmp_path, capsys):
    def args(run: Path) -> list[str]:
        return [f"data.data_dir={tiny_dataset}", f"run_dir={run}", "batch_size=2", "steps=6",
                "checkpoint_interval=2", "log_interval=1", "progress=false", *CLI_MODEL]

    clean, run = tmp_path / "clean", tmp_path / "crashed"
    assert call("pretrain", *args(clean), capsys=capsys)[0] == 0
    command = ["jepa_world.pretrain", *args(run)]
    kill_when(command, writing(run, "model.safetensors"), tmp_path, pause="model.safetensors")
    assert not (run / "checkpoints" / "latest").exists()  # the half-written step does not count
    kill_when(command, at_checkpoint(run, 4), tmp_path)
    code, _, err = call("pretrain", *args(run), capsys=capsys)
    assert code == 0, err
    assert "resuming at step 4" in err
    assert_same_run(run, clean, latest_checkpoint)


def test_train_wm_killed_mid_write_and_between_checkpoints_resumes_exactly(
        tiny_dataset, encoder_dir, tmp_path, capsys):  # noqa: F811
    def args(run: Path) -> list[str]:
        return [f"data.data_dir={tiny_dataset}", f"encoder.path={encoder_dir}",
                "env.image_size=32", "data.episode_length=12", "data.val_fraction=0.2",
                "data.cache_features=false", f"run_dir={run}", "steps=6", "batch_size=4",
                "checkpoint_interval=2", "log_interval=1", "eval_interval=100",
                "loss.rollout_steps=1", "progress=false",
                *[f"model.{k}={v}" for k, v in TINY_WM.items()]]

    clean, run = tmp_path / "clean", tmp_path / "crashed"
    assert call("train_wm", *args(clean), capsys=capsys)[0] == 0
    command = ["jepa_world.train_wm", *args(run)]
    kill_when(command, at_checkpoint(run, 2), tmp_path)
    kill_when(command, writing(run, "state.pt"), tmp_path, pause="state.pt")
    assert latest_checkpoint(run).name >= "step_000002"  # the step being written is not latest
    code, _, err = call("train_wm", *args(run), capsys=capsys)
    assert code == 0, err
    assert "resuming at step" in err + _
    assert_same_run(run, clean, lambda r: r / "world_model")
    assert os.listdir(run / "checkpoints")  # the checkpoints of the crashed run are kept


def test_decode_killed_mid_write_and_between_checkpoints_resumes_exactly(tiny_dataset, tmp_path,
                                                                         capsys):
    from tests.test_decoder import tiny_world_model

    wm = tmp_path / "wm"
    tiny_world_model(image_size=32).save_pretrained(wm)

    def args(run: Path) -> list[str]:
        return [f"world_model={wm}", f"data.data_dir={tiny_dataset}", "env.image_size=32",
                "data.episode_length=12", "data.val_fraction=0.2", "data.cache_features=false",
                "decoder.width=16", "decoder.min_width=8", "imagined_horizon=2",
                "imagined_stride=1", "steps=6", "batch_size=4", "warmup_steps=1",
                "log_interval=1", "eval_interval=100", "checkpoint_interval=2",
                "save_dtype=float32", "device=cpu", f"run_dir={run}", "progress=false"]

    clean, run = tmp_path / "clean", tmp_path / "crashed"
    assert call("decode", *args(clean), capsys=capsys)[0] == 0
    command = ["jepa_world.decode", *args(run)]
    kill_when(command, writing(run, "model.safetensors"), tmp_path, pause="model.safetensors")
    kill_when(command, at_checkpoint(run, 4), tmp_path)
    code, out, err = call("decode", *args(run), capsys=capsys)
    assert code == 0, err
    assert "resum" in out + err
    assert_same_run(run, clean, lambda r: r / "decoder")


def test_probe_killed_mid_run_reruns_to_the_same_results(tiny_dataset, tmp_path, capsys):
    # The probe keeps no state between its seeds: a killed run writes nothing (its results file
    # is written once, atomically, at the end) and re-running gives the uninterrupted numbers.
    import json

    from tests.test_probes import save_fake_checkpoint

    save_fake_checkpoint(tmp_path / "ckpt")

    def args(out: Path) -> list[str]:
        return [f"encoders=[{{name:fake,spec:'{tmp_path / 'ckpt'}'}},random:tiny]",
                f"data.data_dir={tiny_dataset}", "data.collect=false", "seeds=[0,1]",
                "epochs=2", "batch_size=16", "progress=false", f"output_dir={out}",
                f"hydra.run.dir={out}"]

    clean, run = tmp_path / "clean", tmp_path / "crashed"
    assert call("probe", *args(clean), capsys=capsys)[0] == 0
    kill_when(["jepa_world.probe", *args(run)], lambda: any((run / "tb").glob("events.*")),
              tmp_path)
    assert not (run / "probe_results.json").exists()
    assert call("probe", *args(run), capsys=capsys)[0] == 0
    rows = json.loads((run / "probe_results.json").read_text())
    assert rows == json.loads((clean / "probe_results.json").read_text())
