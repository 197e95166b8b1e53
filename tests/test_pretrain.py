"""The pretraining loop on a tiny collected dataset: learning, EMA, pixel baseline, exact resume,
NaN guard, checkpoints, config validation and the command line."""

from __future__ import annotations

import importlib
import math
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import jepa_world
from jepa_world.checkpoints import CheckpointError
from jepa_world.config import EnvConfig
from jepa_world.data.env_clips import EnvClips
from jepa_world.errors import ConfigError
from jepa_world.losses import center_by_position, variance_covariance
from jepa_world.models.presets import build_encoder
from jepa_world.training import (
    DataConfig,
    EmaConfig,
    MaskConfig,
    ModelConfig,
    OptimConfig,
    PretrainConfig,
    RegularizerConfig,
    TrainingDivergedError,
    latest_checkpoint,
    pretrain,
)
from tests.conftest import PYTHON, REPO, python_env

#: 4 frames of 32 px, 2x4x4 tubelets -> 2 x 8 x 8 = 128 tokens; ~0.1M parameters.
TINY_MODEL = dict(img_size=32, patch_size=4, num_frames=4, tubelet_size=2, embed_dim=32, depth=1,
                  num_heads=2, mlp_hidden_dim=64, predictor_dim=32, predictor_depth=1,
                  predictor_heads=2, predictor_mlp_hidden_dim=64)
CLI_MODEL = [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
# the module (the package exports the function of the same name)
pretrain_module = importlib.import_module("jepa_world.training.pretrain")


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(data: Path, run_dir: Path, **overrides) -> PretrainConfig:
    fields = dict(
        env=EnvConfig(image_size=32), model=ModelConfig(**TINY_MODEL),
        data=DataConfig(data_dir=str(data), collect=False),
        optim=OptimConfig(lr=2e-3, start_lr=2e-4, warmup_steps=5),
        steps=30, batch_size=4, log_interval=5, checkpoint_interval=10, run_dir=str(run_dir),
        progress=False, tensorboard=False,
    )
    fields.update(overrides)
    return PretrainConfig(**fields)


def state_of(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_feature_objective_learns_and_target_encoder_follows_by_ema(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "run", ema=EmaConfig(start=0.9, final=0.95),
                      tensorboard=True)
    result = pretrain(cfg)
    losses = result.losses
    assert result.steps == 30 and len(losses) == 30
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5, losses

    # the checkpoint loads with the public loader; the target encoder is an EMA of the encoder
    assert result.checkpoint == latest_checkpoint(tmp_path / "run")
    loaded = jepa_world.load_pretrained(result.checkpoint)
    assert loaded.config["objective"] == "feature" and loaded.config["step"] == 30
    torch.manual_seed(cfg.seed)
    init = build_encoder(cfg.model.encoder_config()).state_dict()
    enc, tgt = loaded.encoder.state_dict(), loaded.target_encoder.state_dict()
    names = [name for name, _ in loaded.encoder.named_parameters()]
    moved_enc = sum((enc[k] - init[k]).norm() for k in names)
    moved_tgt = sum((tgt[k] - init[k]).norm() for k in names)
    assert 0 < moved_tgt < moved_enc  # lags behind the encoder, but moved
    video = torch.rand(2, 3, 4, 32, 32)
    assert loaded.target_encoder(video).shape == (2, 128, 32)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/total", "loss/mask0", "loss/mask1", "optim/lr", "optim/weight_decay",
            "ema/momentum", "perf/clips_per_s", "perf/tokens_per_s",
            "collapse/target_std"} <= tags
    assert [e.step for e in events.Scalars("loss/total")] == [5, 10, 15, 20, 25, 30]


def test_pixel_objective_runs(tiny_dataset, tmp_path):
    result = pretrain(tiny_config(tiny_dataset, tmp_path / "run", objective="pixel", steps=6,
                                  checkpoint_interval=3))
    assert len(result.losses) == 6 and all(math.isfinite(x) for x in result.losses)
    assert (result.checkpoint / "pixel_head" / "model.safetensors").is_file()
    loaded = jepa_world.load_pretrained(result.checkpoint)
    assert loaded.target_encoder is None and loaded.config["objective"] == "pixel"

    # the run's `latest` pointer file loads as the folder it names; a stale pointer says so
    pointer = result.checkpoint.parent / "latest"
    assert pointer.read_text().strip() == result.checkpoint.name
    assert jepa_world.load_pretrained(pointer).config["step"] == 6
    assert jepa_world.load_pretrained(tmp_path / "run").config["step"] == 6  # the run folder
    pointer.write_text("step_000099")
    with pytest.raises(CheckpointError, match="step_000099"):
        jepa_world.load_pretrained(pointer)


class Killed(Exception):
    pass


def test_resume_reproduces_the_uninterrupted_run(tiny_dataset, tmp_path):
    # 50 clips / batch 8 = 6 batches an epoch: the run crosses an epoch boundary after step 6.
    common = dict(steps=10, batch_size=8, checkpoint_interval=4)
    straight = pretrain(tiny_config(tiny_dataset, tmp_path / "a", **common), record_indices=True)

    def kill_after_7(step, metrics):
        if step == 7:
            raise Killed

    cfg = tiny_config(tiny_dataset, tmp_path / "b", **common)
    with pytest.raises(Killed):
        pretrain(cfg, callback=kill_after_7)
    assert latest_checkpoint(tmp_path / "b").name == "step_000004"
    resumed = pretrain(cfg, record_indices=True)  # same run_dir: resumes at step 4, redoes 4..9
    assert resumed.start_step == 4 and resumed.steps == 10
    assert torch.equal(torch.tensor(resumed.losses), torch.tensor(straight.losses[4:]))
    assert resumed.indices == straight.indices[4:]
    final_a, final_b = state_of(straight.checkpoint), state_of(resumed.checkpoint)
    assert final_a.keys() == final_b.keys()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)

    # a finished run resumed again does nothing; another architecture is refused
    assert pretrain(cfg).losses == []
    other = tiny_config(tiny_dataset, tmp_path / "b", **common,
                        model=ModelConfig(**dict(TINY_MODEL, depth=2)))
    with pytest.raises(ConfigError, match=r"^resume: .* trained with model\.depth=1 \(now 2\); "
                                          r"pass model\.depth=1 to resume it"):
        pretrain(other)  # only the field that differs is named, not the whole model config
    with pytest.raises(ConfigError, match="^resume: .* another objective"):
        pretrain(tiny_config(tiny_dataset, tmp_path / "b", **common, objective="pixel"))


def test_nan_loss_stops_with_message_and_keeps_last_checkpoint(tiny_dataset, tmp_path,
                                                              monkeypatch):
    calls = {"n": 0}
    real_loss = pretrain_module.jepa_loss

    def loss_turning_nan(*args, **kwargs):  # two mask types: two calls per step
        calls["n"] += 1
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 10 else loss

    monkeypatch.setattr(pretrain_module, "jepa_loss", loss_turning_nan)
    run = tmp_path / "run"
    with pytest.raises(TrainingDivergedError,
                       match=r"loss became nan at step 5 .*last good checkpoint is .*step_000004"):
        pretrain(tiny_config(tiny_dataset, run, steps=10, checkpoint_interval=2))
    assert latest_checkpoint(run).name == "step_000004"
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == [
        "step_000002", "step_000004"]
    weights = state_of(run / "checkpoints" / "step_000004")
    assert all(torch.isfinite(t).all() for t in weights.values())


def test_huge_learning_rate_is_caught(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "run", steps=8,
                      optim=OptimConfig(lr=1e30, start_lr=1e30, warmup_steps=0, grad_clip=0.0))
    with pytest.raises(TrainingDivergedError, match="became (nan|inf)"):
        pretrain(cfg)


def test_collapse_monitor_warns_once(tmp_path, capsys):
    from jepa_world.training.telemetry import TrainLogger, feature_std

    healthy = torch.nn.functional.layer_norm(torch.randn(2, 64, 16), (16,))
    collapsed = healthy[:1, :1].expand(2, 64, -1) + 1e-4 * torch.randn(2, 64, 16)
    assert feature_std(healthy) > 0.8 and feature_std(collapsed) < 0.01
    logger = TrainLogger(tmp_path, total_steps=3, progress=False, tensorboard=False,
                         collapse_threshold=0.05)
    assert not logger.check_collapse(1, float(feature_std(healthy)))
    assert logger.check_collapse(2, float(feature_std(collapsed)))
    assert logger.check_collapse(3, float(feature_std(collapsed)))
    logger.close()
    err = capsys.readouterr().err
    assert err.count("possible representation collapse at step 2") == 1 and "step 3" not in err


def test_env_clips_shapes_resize_and_seeded_transform(tiny_dataset):
    seen = []

    def flip(clip, generator):
        seen.append(torch.rand(1, generator=generator).item())
        return clip.flip(-1)

    clips = EnvClips(tiny_dataset, num_frames=4, frame_step=2, size=16, transform=flip, seed=1)
    clip = clips[3]
    assert clip.shape == (3, 4, 16, 16) and clip.dtype == torch.float32
    assert clip.min() >= 0.0 and clip.max() <= 1.0
    clips[3]
    clips.set_epoch(1)
    clips[3]
    assert seen[0] == seen[1] != seen[2]  # same (seed, epoch, index): same draw
    assert len(EnvClips(tiny_dataset, num_frames=4)) == 5 * 10  # 13 frames -> 10 windows


@pytest.mark.parametrize("build, field", [
    (lambda: PretrainConfig(objective="mae"), "objective: 'mae' is not one of feature, pixel"),
    (lambda: ModelConfig(img_size=30), "model.img_size: 30 is not divisible"),
    (lambda: ModelConfig(embed_dim=100), "model.embed_dim: 100 is not divisible"),
    (lambda: OptimConfig(lr=-1.0), "optim.lr: must be >= 0"),
    (lambda: OptimConfig(beta2=1.0), "optim.beta2: must be in [0, 1)"),
    (lambda: EmaConfig(start=1.5), "ema.start: must be in [0, 1]"),
    (lambda: MaskConfig(long_range_scale=0.0), "masks.long_range_scale: must be in (0, 1]"),
    (lambda: MaskConfig(truncate="last"), "masks.truncate: 'last' is not one of"),
    (lambda: MaskConfig(temporal_scale=[0.5, 1.5]), "masks.temporal_scale: must be [min, max]"),
    (lambda: RegularizerConfig(variance_weight=-1.0), "regularizer.variance_weight: must be"),
    (lambda: DataConfig(source="video"), "data.paths: data.source=video needs"),
    (lambda: PretrainConfig(steps=0), "steps: must be >= 1"),
    (lambda: MaskConfig(future_fraction=1.0), "masks.future_fraction: must be in [0, 1)"),
    (lambda: PretrainConfig(device="tpu"), "device: 'tpu' is not"),
    (lambda: PretrainConfig(env=EnvConfig(image_size=32)), "env.image_size: 32 differs"),
])
def test_config_errors_name_the_field(build, field):
    with pytest.raises(ConfigError) as err:
        build()
    assert str(err.value).startswith(field), str(err.value)


def test_temporal_scale_reaches_both_mask_types():
    from jepa_world.masks import sample_multiblock_masks

    assert all(spec.temporal_scale == (1.0, 1.0) for spec in MaskConfig().specs())  # V-JEPA
    def seen_at_another_time(cfg: MaskConfig) -> float:
        # share of samples where some masked (h, w) position is in the context at another time
        hits = [bool({int(i) % 16 for i in c} & {int(i) % 16 for i in t})
                for masks in sample_multiblock_masks((4, 4, 4), cfg.specs(), batch_size=16,
                                                     generator=0)
                for c, t in zip(masks.context, masks.targets, strict=True)]
        return sum(hits) / len(hits)

    specs = MaskConfig(temporal_scale=[0.5, 0.5]).specs()
    assert [spec.temporal_scale for spec in specs] == [(0.5, 0.5)] * 2
    assert seen_at_another_time(MaskConfig()) == 0.0  # tubes: masked at every time step
    assert seen_at_another_time(MaskConfig(temporal_scale=[0.5, 0.5])) > 0.5


def test_future_masks_hide_the_last_frames_whole():
    """``masks.future_fraction``: the long-range type hides the clip's last time steps, every
    token of them, and shows every token before; the short-range type stays V-JEPA's."""
    from jepa_world.masks import sample_multiblock_masks

    cfg = MaskConfig(future_fraction=0.5)
    short, future = sample_multiblock_masks((4, 4, 4), cfg.specs(), batch_size=3, generator=0)
    frame = 16  # tokens a time step on a 4 x 4 grid
    for context, targets in zip(future.context, future.targets, strict=True):
        assert context.tolist() == list(range(2 * frame))
        assert targets.tolist() == list(range(2 * frame, 4 * frame))
    assert cfg.specs()[0] == MaskConfig().specs()[0]
    assert short.targets.shape[1] < 4 * frame  # blocks, not whole frames
    assert MaskConfig(future_fraction=0.25).specs()[1].temporal_scale == (0.25, 0.25)


def test_variance_covariance_regularizer_adds_to_the_loss(tiny_dataset, tmp_path):
    seen: list[dict] = []
    reg = RegularizerConfig(variance_weight=1.0, covariance_weight=0.5)
    pretrain(tiny_config(tiny_dataset, tmp_path / "run", steps=3, regularizer=reg),
             callback=lambda step, metrics: seen.append(metrics))
    for m in seen:
        prediction = (m["loss/mask0"] + m["loss/mask1"]) / 2
        assert m["loss/variance"] > 0 and m["loss/covariance"] > 0
        assert m["loss/total"] == pytest.approx(
            prediction + m["loss/variance"] + 0.5 * m["loss/covariance"], rel=1e-5)
    assert PretrainConfig().regularizer.enabled  # the CPU recipe's default
    off = RegularizerConfig(variance_weight=0.0, covariance_weight=0.0)
    for name, overrides in (("plain", dict(regularizer=off)), ("pixel", dict(objective="pixel"))):
        plain: list[dict] = []  # plain V-JEPA, and the pixel baseline whatever the regulariser
        pretrain(tiny_config(tiny_dataset, tmp_path / name, steps=1, **overrides),
                 callback=lambda step, metrics, record=plain.append: record(metrics))
        assert "loss/variance" not in plain[0], name
        assert plain[0]["loss/total"] == pytest.approx((plain[0]["loss/mask0"]
                                                        + plain[0]["loss/mask1"]) / 2, rel=1e-5)


def test_position_centred_regularizer_ignores_what_every_clip_shows_at_a_position(
        tiny_dataset, tmp_path):
    """``regularizer.centering=position``: a per-position code (here a huge constant a position)
    leaves the centred rows unchanged, while plain flattening keeps it; training runs with it."""
    torch.manual_seed(0)
    tokens, idx = torch.randn(4, 6, 8), torch.stack([torch.randperm(12)[:6] for _ in range(4)])
    code = 50 * torch.randn(12, 8)
    centred = center_by_position(tokens + code[idx], idx, 12)
    assert torch.allclose(centred, center_by_position(tokens, idx, 12), atol=1e-4)
    shared = idx.flatten()
    once = torch.bincount(shared, minlength=12)[shared] == 1  # alone at its position: zero
    assert torch.allclose(centred[once], torch.zeros_like(centred[once]), atol=1e-4)
    coded = (tokens + code[idx]).flatten(0, 1)
    assert variance_covariance(coded)[0] == 0  # the position code alone satisfies the hinge
    assert variance_covariance(centred)[0] > 0
    with pytest.raises(ValueError, match="idx"):
        center_by_position(tokens, idx[:, :3], 12)
    seen: list[dict] = []
    reg = RegularizerConfig(variance_weight=1.0, covariance_weight=0.5, centering="position")
    pretrain(tiny_config(tiny_dataset, tmp_path / "run", steps=2, regularizer=reg),
             callback=lambda step, metrics: seen.append(metrics))
    assert all(m["loss/variance"] > 0 and math.isfinite(m["loss/total"]) for m in seen)
    with pytest.raises(ConfigError, match="regularizer.centering"):
        RegularizerConfig(centering="time")


def test_missing_dataset_without_collect_is_a_clear_error(tmp_path):
    cfg = tiny_config(tmp_path / "nothing", tmp_path / "run")
    with pytest.raises(jepa_world.errors.DatasetError, match="data.data_dir: .* holds no dataset"):
        pretrain(cfg)


def test_hydra_config_composes_every_model_preset():
    from hydra import compose, initialize_config_module

    from jepa_world.cli import hydra_argv, to_dataclass

    importlib.import_module("jepa_world.pretrain")  # registers pretrain_schema (alone, too)
    with initialize_config_module("jepa_world.configs", version_base="1.3"):
        for name, size in [("tiny", 64), ("vit_l", 224), ("vit_h", 224), ("vit_g", 256)]:
            cfg = to_dataclass(compose("pretrain", overrides=[f"model={name}"]), PretrainConfig)
            assert cfg.model.name == name and cfg.env.image_size == cfg.model.img_size == size
    assert hydra_argv(["run_dir=r", "steps=3"], rank=0) == [
        "run_dir=r", "steps=3", "hydra.run.dir=r"]
    assert "hydra.output_subdir=null" in hydra_argv(["run_dir=r"], rank=1)
    assert "hydra.run.dir=r" not in hydra_argv(["run_dir=r"], rank=1)


def run_cli(*args, cwd, timeout=120):
    env = dict(python_env(), OMP_NUM_THREADS="1")
    return subprocess.run([PYTHON, "-m", "jepa_world.pretrain", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_trains_resumes_and_reports_bad_overrides(tiny_dataset, tmp_path):
    args = [f"data.data_dir={tiny_dataset}", f"run_dir={tmp_path / 'run'}", "batch_size=4",
            "steps=4", "checkpoint_interval=2", *CLI_MODEL]
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "pretrain done: 4 steps" in proc.stdout
    assert "step/s" in proc.stderr  # the progress bar
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()  # Hydra writes to run_dir
    assert latest_checkpoint(tmp_path / "run").name == "step_000004"

    proc = run_cli(*args[:-len(CLI_MODEL)], "steps=6", *CLI_MODEL, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "resuming at step 4" in proc.stderr and "pretrain done: 6 steps" in proc.stdout

    proc = run_cli("objective=mae", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: objective: 'mae' is not one of feature, pixel"
    proc = run_cli("model=vit_z", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown model 'vit_z'; known: tiny, vit_g")


def test_repository_configs_are_shipped():
    assert (REPO / "configs" / "pretrain.yaml").is_file()
    for name in ("tiny", "vit_l", "vit_h", "vit_g"):
        assert (REPO / "configs" / "model" / f"{name}.yaml").is_file()


def test_env_clip_augmentation_is_opt_in_and_seeded(tiny_dataset, tmp_path):
    from jepa_world.training.distributed import DistInfo

    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"),
                    owns_group=False)
    plain = pretrain_module.build_clips(tiny_config(tiny_dataset, tmp_path), info)
    cfg = tiny_config(tiny_dataset, tmp_path)
    cfg.data = DataConfig(data_dir=str(tiny_dataset), collect=False, augment_env=True,
                          crop_scale=[0.3, 0.5])
    augmented = pretrain_module.build_clips(cfg, info)
    assert plain.transform is None and augmented.transform is not None
    a, b = augmented[3], augmented[3]
    assert a.shape == plain[3].shape == (3, TINY_MODEL["num_frames"], 32, 32)
    assert torch.equal(a, b)  # same seed, epoch and index: same crop
    assert not torch.equal(a, plain[3])  # a crop of at most half the frame, resized back
