"""Faults a new user hit (issue 18), each kept fixed: unusable paths, optional outputs that cost
the results, Ctrl-C, output folders of rejected runs, the job log."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from jepa_world.checkpoints.runs import RUN_DIR_TIME
from jepa_world.config import EnvConfig
from jepa_world.planning import session
from jepa_world.planning.config import PlanConfig
from jepa_world.planning.visualize import write_video
from tests.commands import assert_one_line_error, command
from tests.conftest import PYTHON, python_env
from tests.test_planning import tiny_world_model

pytestmark = pytest.mark.usefixtures("one_thread")
QUIET = ["progress=false"]


def one_line_error(proc: subprocess.CompletedProcess, start: str) -> None:
    assert_one_line_error(proc.returncode, proc.stderr, start)


def test_paths_under_a_file_fail_in_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    proc = command("collect", f"data_dir={tmp_path / 'file' / 'x'}", "episodes=1", *QUIET,
                   cwd=tmp_path)
    one_line_error(proc, f"error: data_dir: cannot create {tmp_path / 'file' / 'x'}: Not a dir")
    proc = command("pretrain", f"run_dir={tmp_path / 'file' / 'run'}", cwd=tmp_path)
    one_line_error(proc, f"error: cannot create the output folder {tmp_path / 'file' / 'run'}")
    assert not (tmp_path / "outputs").exists()  # the rejected collect left no output folder
    assert (tmp_path / "file").read_text() == "not a folder"


def test_rejected_runs_leave_no_output_folder_and_keep_existing_ones(tmp_path):
    one_line_error(command("plan", "episodes=-1", cwd=tmp_path), "error: episodes: must be >= 1")
    # rejected after Hydra made the folder: the folder goes again
    proc = command("plan", f"world_model={tmp_path / 'missing'}", cwd=tmp_path)
    one_line_error(proc, "error: world_model: ")
    assert not (tmp_path / "outputs").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    proc = command("plan", f"world_model={tmp_path / 'missing'}", f"hydra.run.dir={mine}",
                   cwd=tmp_path)
    one_line_error(proc, "error: world_model: ")
    assert (mine / "notes.txt").read_text() == "keep"


def test_collect_uses_the_outputs_cmd_time_layout_and_logs_what_it_prints(tmp_path):
    proc = command("collect", f"data_dir={tmp_path / 'ds'}", "episodes=1", "episode_length=3",
                   "env.image_size=16", *QUIET, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = (tmp_path / "outputs" / "collect").iterdir()
    datetime.datetime.strptime(run.name, RUN_DIR_TIME)
    assert (run / "collect.log").read_text() == proc.stdout != ""


@pytest.mark.parametrize("fmt", ["gif", "mp4"])
def test_videos_of_every_format_are_written_and_read_back(tmp_path, fmt):
    frames = [np.full((16, 16, 3), 40 * i, np.uint8) for i in range(4)]
    path = write_video(tmp_path / f"v.{fmt}", frames)
    assert iio.imread(path).shape[0] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"v.{fmt}"]  # no temp file left


def plan_config(folder: Path, out: Path, **fields) -> PlanConfig:
    return PlanConfig(world_model=str(folder), env=EnvConfig(image_size=32), episodes=1,
                      videos=1, planner={"name": "cem", "samples": 8, "iterations": 1,
                                         "elites": 2}, output_dir=str(out), progress=False,
                      tensorboard=False, **fields)


def test_a_video_that_cannot_be_written_never_costs_the_summary(tmp_path, monkeypatch, capsys):
    tiny_world_model().save_pretrained(tmp_path / "wm")
    report = session.plan_episodes(plan_config(tmp_path / "wm", tmp_path / "a",
                                               video_format="mp4"))
    assert (tmp_path / "a" / "videos" / "world_model_seed1000.mp4").stat().st_size > 0
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["episodes"] == 1

    def broken(path, frames):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(session, "write_video", broken)
    session.plan_episodes(plan_config(tmp_path / "wm", tmp_path / "b"))
    written = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert written["agents"]["world_model"]["per_episode"] == \
        report["agents"]["world_model"]["per_episode"]  # same episodes, with or without video
    err = capsys.readouterr().err
    assert "warning: video" in err and "No space left on device" in err


def interrupt_when(args: list[str], ready, cwd: Path, timeout: float = 120):
    """Start a command in its own process group, send the group SIGINT (what Ctrl-C in a
    terminal does) once ``ready()`` holds, return the finished process and its output."""
    # SIGINT back to its default in the child: a runner started in the background of a
    # non-interactive shell (``cmd &``) ignores SIGINT, and children inherit the ignoring
    proc = subprocess.Popen([PYTHON, "-m", *args], cwd=cwd, start_new_session=True, text=True,
                            env=dict(python_env(), OMP_NUM_THREADS="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "never got ready"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # never leave it running (it would slow every later test)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out, err


def test_ctrl_c_in_collect_says_how_to_resume_and_the_rerun_completes(tmp_path):
    data = tmp_path / "ds"
    args = ["jepa_world.collect", f"data_dir={data}", "episodes=20000", "episode_length=10",
            "env.image_size=16", "episodes_per_shard=2", "num_envs=2", "vectorization=async",
            *QUIET]
    rc, out, err = interrupt_when(args, lambda: len(list(data.glob("shard-*.h5"))) >= 2,
                                  tmp_path)
    assert rc == 130, err
    assert err == "interrupted; re-run the same command to collect only the missing episodes\n"
    done = len(list(data.glob("shard-*.h5")))
    assert 2 <= done < 10000
    target = 2 * done + 4  # two shards more than were written before the interrupt landed
    args[2] = f"episodes={target}"  # finish a smaller dataset from what is there
    proc = command("collect", *args[1:], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "dataset" in proc.stdout and f": {target} episodes (4 collected now" in proc.stdout


def test_ctrl_c_in_training_names_the_run_dir_to_resume(tiny_dataset, tmp_path):
    from tests.test_pretrain import CLI_MODEL

    run = tmp_path / "run"
    args = ["jepa_world.pretrain", f"data.data_dir={tiny_dataset}", f"run_dir={run}",
            "batch_size=2", "steps=100000", "checkpoint_interval=1", "tensorboard=false",
            *CLI_MODEL, *QUIET]
    rc, out, err = interrupt_when(args, lambda: (run / "checkpoints").is_dir() and any(
        p.name.startswith("step_") for p in (run / "checkpoints").iterdir()), tmp_path)
    assert rc == 130, err
    assert "Traceback" not in err  # the run's header line, then:
    assert err.splitlines()[-1] == \
        f"interrupted; re-run with run_dir={run} to resume from its last checkpoint"
