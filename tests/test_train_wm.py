"""World-model training on a tiny collected dataset: windows, feature cache, learning, exact
resume, config validation, the command line and two gloo processes."""

from __future__ import annotations

import dataclasses
import importlib
import math
import subprocess
from pathlib import Path

import pytest
import torch

from jepa_world.checkpoints import Pretrained, load_pretrained, save_pretrained
from jepa_world.checkpoints.runs import latest_checkpoint, read_state
from jepa_world.config import EnvConfig
from jepa_world.data.collection import collect
from jepa_world.data.windows import WindowDataset, split_episodes
from jepa_world.errors import ConfigError
from jepa_world.models.conv_encoder import ConvEncoder
from jepa_world.models.presets import EncoderConfig, build_encoder
from jepa_world.probes.runner import probe_state
from jepa_world.training.train_wm import keypoint_targets, train_world_model
from jepa_world.training.wm_config import (
    EncoderSource,
    WMDataConfig,
    WMLossConfig,
    WMModelConfig,
    WMOptimConfig,
    WMTrainConfig,
)
from jepa_world.training.wm_data import cached_encode_episodes, encode_episodes, load_goal_states
from jepa_world.training.wm_loss import GoalHead
from jepa_world.world_model import WorldModel
from tests.conftest import PYTHON, python_env, small_config
from tests.test_distributed import free_port

TINY_ENCODER = EncoderConfig(img_size=32, patch_size=8, num_frames=2, embed_dim=32, depth=1,
                             num_heads=2, mlp_hidden_dim=64)
TINY_WM = dict(pooler_tokens=1, pooler_heads=2, predictor_dim=32, depth=1, num_heads=2,
               history=2, frameskip=2)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> Path:
    """A random-init tiny encoder saved like a pretraining checkpoint."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("encoder") / "step_000001"
    config = {"encoder": dataclasses.asdict(TINY_ENCODER), "predictor_type": "masked"}
    save_pretrained(Pretrained(build_encoder(TINY_ENCODER), None, None, "jepa_world", config),
                    folder)
    return folder


def tiny_config(data: Path, encoder: Path, run_dir: Path, **overrides) -> WMTrainConfig:
    fields = dict(
        env=EnvConfig(image_size=32), encoder=EncoderSource(path=str(encoder)),
        model=WMModelConfig(**TINY_WM),
        data=WMDataConfig(data_dir=str(data), collect=False, episode_length=12,
                          val_fraction=0.2, cache_features=False),
        loss=WMLossConfig(rollout_steps=1),
        optim=WMOptimConfig(lr=3e-3, start_lr=3e-4, warmup_steps=5),
        steps=40, batch_size=8, log_interval=5, eval_interval=20, checkpoint_interval=10,
        run_dir=str(run_dir), progress=False, tensorboard=False, device="cpu")
    fields.update(overrides)
    return WMTrainConfig(**fields)


def test_windows_match_the_window_dataset(tiny_dataset):
    episodes = encode_episodes(tiny_dataset, [0, 1], lambda f: f.float().mean((2, 3))[:, None])
    assert episodes.tokens.shape == (2, 13, 1, 3) and episodes.tokens.dtype == torch.float16
    tokens, actions, proprio = episodes.windows(torch.tensor([1]), torch.tensor([3]), 3, 2)
    ref = WindowDataset(tiny_dataset, context=3, frameskip=2, episodes=[1])
    item = ref[3]
    assert torch.equal(actions[0], item["actions"])
    assert torch.equal(proprio[0], item["proprio"])
    pixels_mean = item["pixels"].float().mean((2, 3)).half().float()
    assert torch.allclose(tokens[0, :, 0], pixels_mean)


def test_feature_cache_is_reused_and_rebuilt_when_corrupt(tiny_dataset, tmp_path):
    calls = []

    def encode(frames):
        calls.append(len(frames))
        return frames.float().mean((2, 3))[:, None]

    first = cached_encode_episodes(tiny_dataset, [0, 2], encode, "enc", tmp_path)
    n = len(calls)
    again = cached_encode_episodes(tiny_dataset, [2, 0], encode, "enc", tmp_path)
    assert len(calls) == n  # read from the cache, not encoded again
    assert torch.equal(first.tokens, again.tokens) and first.ids == again.ids
    cached = next(tmp_path.glob("enc-*.safetensors"))
    cached.write_bytes(b"garbage")
    rebuilt = cached_encode_episodes(tiny_dataset, [0, 2], encode, "enc", tmp_path)
    assert len(calls) > n and torch.equal(rebuilt.tokens, first.tokens)
    other = cached_encode_episodes(tiny_dataset, [0, 2], encode, "other", tmp_path)
    assert torch.equal(other.tokens, first.tokens) and len(list(tmp_path.glob("*"))) == 2


def test_training_learns_and_saves_a_loadable_world_model(tiny_dataset, encoder_dir, tmp_path):
    result = train_world_model(tiny_config(tiny_dataset, encoder_dir, tmp_path / "run"))
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)
    assert set(result.val) >= {"val/teacher_forcing", "val/rollout", "val/copy_last_rollout"}
    model = WorldModel.from_pretrained(tmp_path / "run" / "world_model")
    assert model.config.frameskip == 2 and model.config.proprio_dim == 4
    assert model.config.env_id == "jepa_world/Reach-v0"
    # proprio normalisation was fitted to the data, and the frozen encoder was not trained
    assert not torch.equal(model.proprio_std, torch.ones(4))
    original = load_pretrained(encoder_dir).encoder.state_dict()
    assert all(torch.equal(model.encoder.state_dict()[k], v) for k, v in original.items())
    frames = torch.randint(0, 255, (1, 2, 3, 32, 32), dtype=torch.uint8)
    assert model.encode(frames).shape == (1, 2, 1, 32)


def test_cached_imagination_trains_a_model_whose_rollout_keeps_a_cache(tiny_dataset,
                                                                        encoder_dir, tmp_path):
    """``model.imagination=cached``: the saved model's predictor attends to its last
    ``history`` frames, and its (cached) rollout is what its predictor gives on the growing
    sequence."""
    model = dataclasses.replace(tiny_config(tiny_dataset, encoder_dir, tmp_path).model,
                                imagination="cached", history=2)
    result = train_world_model(tiny_config(tiny_dataset, encoder_dir, tmp_path / "run",
                                           steps=10, model=model))
    assert result.steps == 10 and all(math.isfinite(x) for x in result.losses)
    wm = WorldModel.from_pretrained(tmp_path / "run" / "world_model")
    assert wm.config.imagination == "cached" and wm.predictor.attention_window == 2
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 2, 1, 32, generator=g)
    cands = torch.randn(1, 3, 4, wm.config.step_action_dim, generator=g)
    past, proprio = torch.randn(1, 1, wm.config.step_action_dim, generator=g), torch.randn(1, 2, 4)
    with torch.no_grad():
        new = wm.rollout(z, cands, proprio, history_actions=past)
        old = wm.rollout(z, cands, proprio, history_actions=past, reference=True)
    torch.testing.assert_close(new, old, atol=1e-5, rtol=1e-5)


def test_encoder_path_takes_a_world_models_frozen_encoder(tiny_dataset, encoder_dir, tmp_path):
    """``encoder.path=<world model folder>`` (e.g. a shipped model) trains a new world model on
    that model's encoder, whatever dtype it was stored in."""
    train_world_model(tiny_config(tiny_dataset, encoder_dir, tmp_path / "a", steps=2))
    first = WorldModel.from_pretrained(tmp_path / "a" / "world_model")
    first.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    train_world_model(tiny_config(tiny_dataset, tmp_path / "fp16", tmp_path / "b", steps=2))
    second = WorldModel.from_pretrained(tmp_path / "b" / "world_model")
    want = {k: v.half().float() for k, v in first.encoder.state_dict().items()}
    got = second.encoder.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"format": "jepa_world.world_model"}')
    with pytest.raises(ConfigError, match="^encoder.path: "):
        train_world_model(tiny_config(tiny_dataset, tmp_path / "broken", tmp_path / "c"))


def test_resume_reproduces_the_uninterrupted_run(tiny_dataset, encoder_dir, tmp_path):
    full = train_world_model(tiny_config(tiny_dataset, encoder_dir, tmp_path / "a", steps=20))

    def crash(step, loss):
        if step == 13:  # after the checkpoint at step 10
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_world_model(tiny_config(tiny_dataset, encoder_dir, tmp_path / "b", steps=20),
                          callback=crash)
    assert latest_checkpoint(tmp_path / "b").name == "step_000010"
    resumed = train_world_model(tiny_config(tiny_dataset, encoder_dir, tmp_path / "b",
                                            steps=20))
    assert resumed.losses == full.losses[10:]
    a = WorldModel.from_pretrained(tmp_path / "a" / "world_model").state_dict()
    b = WorldModel.from_pretrained(tmp_path / "b" / "world_model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="resume: .* another batch_size"):
        train_world_model(tiny_config(tiny_dataset, encoder_dir, tmp_path / "b", steps=30,
                                      batch_size=4))


def test_fine_tuned_encoder_learns_from_frames_and_resumes_exactly(tiny_dataset, encoder_dir,
                                                                   tmp_path):
    """``encoder.lr_scale`` > 0: the encoder trains too, at that fraction of the learning rate,
    on frames encoded at every step (no feature cache); the saved model holds the tuned encoder,
    and a resumed run reproduces the losses."""
    def config(run, **kw):
        cfg = tiny_config(tiny_dataset, encoder_dir, tmp_path / run, **kw)
        cfg.encoder = EncoderSource(path=str(encoder_dir), lr_scale=0.5)
        return cfg

    full = train_world_model(config("a", steps=20))
    first, last = sum(full.losses[:5]) / 5, sum(full.losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    original = load_pretrained(encoder_dir).encoder.state_dict()
    tuned = WorldModel.from_pretrained(tmp_path / "a" / "world_model")
    changed = [k for k, v in original.items() if not torch.equal(tuned.encoder.state_dict()[k], v)]
    assert len(changed) == len(original), sorted(set(original) - set(changed))
    assert not any(p.requires_grad for p in tuned.encoder.parameters())  # loaded: frozen again
    state = read_state(latest_checkpoint(tmp_path / "a"))
    lrs = sorted({g["lr"] for g in state["optimizer"]["param_groups"]})
    assert len(lrs) == 2 and lrs[0] == pytest.approx(0.5 * lrs[1])

    def crash(step, loss):
        if step == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_world_model(config("b", steps=20), callback=crash)
    frozen = tiny_config(tiny_dataset, encoder_dir, tmp_path / "b", steps=20)
    with pytest.raises(ConfigError, match=r"resume: .* encoder.lr_scale=0.5"):
        train_world_model(frozen)  # the optimiser has the encoder's groups: refuse, clearly
    resumed = train_world_model(config("b", steps=20))
    assert resumed.losses == full.losses[10:]
    b = WorldModel.from_pretrained(tmp_path / "b" / "world_model").state_dict()
    assert all(torch.equal(tuned.state_dict()[k], b[k]) for k in b)


def test_conv_encoder_is_trained_from_scratch_with_the_world_model(tiny_dataset, encoder_dir,
                                                                    tmp_path):
    """``encoder.kind=conv``: a conv encoder, randomly initialised under the run's seed, learns
    with the world model; the saved model rebuilds it and encodes frames to its latents."""
    def config(run, seed=0):
        cfg = tiny_config(tiny_dataset, encoder_dir, tmp_path / run, steps=30, seed=seed)
        cfg.encoder = EncoderSource(kind="conv", lr_scale=1.0)
        return cfg

    result = train_world_model(config("a"))
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    model = WorldModel.from_pretrained(tmp_path / "a" / "world_model")
    assert isinstance(model.encoder, ConvEncoder) and model.config.encoder.kind == "conv"
    frames = torch.randint(0, 255, (1, 3, 3, 32, 32), dtype=torch.uint8)
    assert model.encode(frames).shape == (1, 3, 1, model.latent_dim)
    again = WorldModel.from_pretrained(train_world_model(config("b")).run_dir / "world_model")
    other = WorldModel.from_pretrained(train_world_model(config("c", seed=1)).run_dir /
                                       "world_model")
    key = "encoder.net.0.weight"
    assert torch.equal(model.state_dict()[key], again.state_dict()[key])
    assert not torch.equal(model.state_dict()[key], other.state_dict()[key])


@pytest.mark.parametrize("build, field", [
    (lambda: WMLossConfig(kind="huber"), "loss.kind"),
    (lambda: WMModelConfig(predictor_dim=30, num_heads=4), "model.predictor_dim"),
    (lambda: WMDataConfig(val_fraction=1.0), "data.val_fraction"),
    (lambda: WMTrainConfig(model=WMModelConfig(frameskip=40)), "model.frameskip"),
    (lambda: WMTrainConfig(model=WMModelConfig(use_proprio=False)), "loss.proprio_weight"),
    (lambda: WMTrainConfig(loss=WMLossConfig(goal_weight=1.0)), "loss.goal_weight"),
    (lambda: WMModelConfig(imagination="kv"), "model.imagination"),
    (lambda: WMLossConfig(goal_targets="corners"), "loss.goal_targets"),
    (lambda: EncoderSource(lr_scale=-1.0), "encoder.lr_scale"),
    (lambda: EncoderSource(kind="cnn"), "encoder.kind"),
    (lambda: EncoderSource(kind="conv"), "encoder.lr_scale"),
    (lambda: EncoderSource(kind="conv", lr_scale=1.0, path="runs/x"), "encoder.path"),
])
def test_config_errors_name_the_field(build, field):
    with pytest.raises(ConfigError, match=f"^{field}: "):
        build()


PUSH = EnvConfig(name="push", image_size=32, frame_skip=5, probe_state="goal",
                 exploration="contact")


def test_goal_head_reads_the_block_pose_and_resumes_exactly(encoder_dir, tmp_path):
    """``loss.goal_weight``: a training-only head learns push's block pose from the latents
    (its error on the training frames falls); it is kept in ``state.pt``, not in the saved
    world model, and a resumed run reproduces the losses."""
    data = tmp_path / "push"
    collect(small_config(data, env=PUSH, episode_length=12))
    loss = WMLossConfig(rollout_steps=1, goal_weight=1.0)

    def run(name: str, steps: int, callback=None):
        return train_world_model(tiny_config(data, encoder_dir, tmp_path / name, env=PUSH,
                                             loss=loss, steps=steps), callback=callback)

    def goal_error(step: Path, trained: bool = True) -> float:  # on every training frame
        model = WorldModel.from_pretrained(step)
        ids = split_episodes(data, 0.2)[0]
        episodes = encode_episodes(data, ids, lambda f: model.encode_patches(f[None])[0])
        _, angles, state_fn = probe_state(PUSH)
        goal = load_goal_states(data, ids, state_fn, angles)
        torch.manual_seed(0)
        head = GoalHead(1, model.latent_dim, goal.shape[-1])
        saved = read_state(step)["goal_head"]
        head.load_state_dict(saved if trained else {**head.state_dict(), "mean": saved["mean"],
                                                    "std": saved["std"]})
        with torch.no_grad():
            return float(head.error(model.pool(episodes.tokens.float()), goal))

    full = run("a", 40)
    last = tmp_path / "a" / "checkpoints" / "step_000040"
    trained, untrained = goal_error(last), goal_error(last, trained=False)
    assert trained < 0.8 * untrained, (trained, untrained)  # measured 0.52 vs 0.84
    saved = WorldModel.from_pretrained(tmp_path / "a" / "world_model").state_dict()
    assert not any("goal" in k for k in saved)

    def crash(step, _):
        if step == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run("b", 40, callback=crash)
    assert run("b", 40).losses == full.losses[10:]


def test_goal_head_can_read_the_blocks_keypoints(encoder_dir, tmp_path):
    """``loss.goal_targets=keypoints``: the head's targets are the T's three keypoints (six
    coordinates, no angle) of every training frame, and a task whose goal is no rigid body's
    pose is refused by name."""
    data = tmp_path / "push"
    collect(small_config(data, env=PUSH, episode_length=12))
    loss = WMLossConfig(rollout_steps=1, goal_weight=1.0, goal_targets="keypoints")
    cfg = tiny_config(data, encoder_dir, tmp_path / "a", env=PUSH, loss=loss, steps=4)
    train_world_model(cfg)
    head = read_state(tmp_path / "a" / "checkpoints" / "step_000004")["goal_head"]
    to_keypoints, angles = keypoint_targets(cfg, probe_state(PUSH)[2])
    assert angles == [False] * 6
    goal = load_goal_states(data, split_episodes(data, 0.2)[0], to_keypoints, angles)
    assert goal.shape[-1] == 6
    torch.testing.assert_close(head["mean"], goal.reshape(-1, 6).float().mean(0))

    reach = dataclasses.replace(cfg, env=EnvConfig(name="reach", probe_state="goal"))
    with pytest.raises(ConfigError, match="^loss.goal_targets=keypoints: .*Reach"):
        keypoint_targets(reach, probe_state(reach.env)[2])


def test_missing_encoder_is_a_clear_error(tiny_dataset, tmp_path):
    cfg = tiny_config(tmp_path / "no_data", tmp_path / "nope", tmp_path / "run")
    cfg.data.collect = True
    with pytest.raises(ConfigError, match="encoder.path: .* does not exist"):
        train_world_model(cfg)
    assert not (tmp_path / "no_data").exists()  # failed before collecting anything


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "jepa_world.train_wm", *args], cwd=cwd,
                          env=dict(python_env(), OMP_NUM_THREADS="1"), capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_cli_trains_and_reports_bad_overrides(tiny_dataset, encoder_dir, tmp_path):
    model = [f"model.{k}={v}" for k, v in TINY_WM.items()]
    proc = run_cli(f"data.data_dir={tiny_dataset}", f"encoder.path={encoder_dir}",
                   "env.image_size=32", "data.episode_length=12", "data.val_fraction=0.2",
                   f"run_dir={tmp_path / 'run'}", "steps=4", "batch_size=4",
                   "checkpoint_interval=2", "loss.rollout_steps=1", *model, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "train_wm done: 4 steps" in proc.stdout
    assert latest_checkpoint(tmp_path / "run").name == "step_000004"
    assert (tmp_path / "run" / "world_model" / "model.safetensors").is_file()
    assert list((tmp_path / "run" / "tb").glob("events.*"))
    proc = run_cli("loss.kind=huber", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: loss.kind: 'huber' is not one of l1, l2"


@pytest.mark.slow
def test_torchrun_two_gloo_processes(tiny_dataset, encoder_dir, tmp_path):
    model = [f"model.{k}={v}" for k, v in TINY_WM.items()]
    proc = subprocess.run(
        [PYTHON, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={free_port()}", "-m", "jepa_world.train_wm",
         f"data.data_dir={tiny_dataset}",
         f"encoder.path={encoder_dir}", "env.image_size=32", "data.episode_length=12",
         "data.val_fraction=0.2", f"run_dir={tmp_path / 'run'}", "steps=4", "batch_size=4",
         "checkpoint_interval=2", "loss.rollout_steps=1", "progress=false", *model],
        cwd=tmp_path, env=dict(python_env(), OMP_NUM_THREADS="1"), capture_output=True,
        text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("train_wm done: 4 steps") == 1  # rank 0 reports
    assert "2 x cpu" in proc.stderr + proc.stdout
    assert latest_checkpoint(tmp_path / "run").name == "step_000004"



def test_default_encoder_is_pretrained_first_when_missing(tiny_dataset, encoder_dir, tmp_path,
                                                          monkeypatch):
    """Without encoder.path, the encoder comes from pretrain_dir, pretrained there if empty."""
    pretrain_module = importlib.import_module("jepa_world.training.pretrain")

    calls = []

    def fake_pretrain(cfg):
        calls.append(cfg)
        return pretrain_module.PretrainResult(run_dir=Path(cfg.run_dir), start_step=0, steps=1,
                                              checkpoint=encoder_dir)

    monkeypatch.setattr(pretrain_module, "pretrain", fake_pretrain)
    cfg = tiny_config(tiny_dataset, encoder_dir, tmp_path / "run", steps=2)
    cfg.encoder = EncoderSource(path="", pretrain_dir=str(tmp_path / "enc"))
    train_world_model(cfg)
    assert len(calls) == 1 and calls[0].run_dir == str(tmp_path / "enc")
    assert calls[0].env.image_size == 32 and calls[0].model.img_size == 32
    assert calls[0].data.data_dir == str(tiny_dataset) and calls[0].data.episode_length == 12
    cfg.encoder = EncoderSource(path="", pretrain_dir=str(tmp_path / "enc2"), pretrain=False)
    with pytest.raises(ConfigError, match="encoder.path: no pretrained encoder in"):
        train_world_model(cfg)
