"""Each default lives once: what Hydra composes from configs/ equals the dataclass defaults,
and the model group equals the architecture presets."""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from jepa_world.checkpoints.runs import RUN_DIR_TIME, default_run_dir
from jepa_world.cli import group_options, to_dataclass
from jepa_world.models.conv_encoder import ConvEncoder
from jepa_world.models.encoder import VideoViT
from jepa_world.models.presets import PRESETS, EncoderConfig
from jepa_world.training.pretrain_config import ModelConfig

SCHEMAS = {
    "collect": "jepa_world.config:CollectConfig",
    "pretrain": "jepa_world.training.pretrain_config:PretrainConfig",
    "train_wm": "jepa_world.training.wm_config:WMTrainConfig",
    "plan": "jepa_world.planning.config:PlanConfig",
    "probe": "jepa_world.probes.config:ProbeConfig",
    "decode": "jepa_world.training.decoder_config:DecodeConfig",
}


def composed(command: str, overrides: list[str] | None = None):
    importlib.import_module(f"jepa_world.{command}")  # registers the command's schema
    module, _, name = SCHEMAS[command].partition(":")
    schema = getattr(importlib.import_module(module), name)
    with initialize_config_module("jepa_world.configs", version_base="1.3"):
        cfg = compose(command, overrides=overrides or [])
    return to_dataclass(cfg, schema), schema


@pytest.mark.parametrize("command", sorted(SCHEMAS))
def test_command_config_equals_dataclass_defaults(command):
    config, schema = composed(command)
    default = schema()
    if command == "plan":  # the planner group is checked below, against the planner's config
        assert config.planner["name"] == default.planner["name"]
        config = dataclasses.replace(config, planner=default.planner)
    assert config == default


@pytest.mark.parametrize("command", sorted(SCHEMAS))
def test_hydra_run_folders_use_the_library_default_name(command):
    # runs without run_dir land in outputs/<command>/<time to the microsecond>, whether Hydra or
    # the library picks the folder (two runs started in the same second once shared one)
    importlib.import_module(f"jepa_world.{command}")
    with initialize_config_module("jepa_world.configs", version_base="1.3"):
        cfg = compose(command, return_hydra_config=True)
    run_dir = OmegaConf.to_container(cfg.hydra.run, resolve=False)["dir"]
    assert run_dir == f"outputs/{command}/${{now:{RUN_DIR_TIME}}}"
    assert default_run_dir(command).rsplit("/", 1)[0] == f"outputs/{command}"


@pytest.mark.parametrize("name", group_options("planner"))
def test_planner_group_spells_out_every_planner_field(name):
    """``planner`` is a plain dict to Hydra, so its YAML is the only list of what
    ``planner.<field>=`` may override: every field of the planner's config, and nothing else
    (the values are the CPU planning budget, smaller than the library's defaults)."""
    from jepa_world.planners import _REGISTRY

    config, _ = composed("plan", [f"planner={name}"])
    fields = {k: v for k, v in config.planner.items() if k != "name"}
    planner_cls = _REGISTRY[name][0]
    assert set(fields) == {f.name for f in dataclasses.fields(planner_cls)}
    planner_cls(**fields)  # valid values


@pytest.mark.parametrize("name", group_options("model"))
def test_model_group_equals_preset(name):
    config, _ = composed("pretrain", [f"model={name}"])
    expected = ModelConfig.from_preset(name)
    # Activation checkpointing is a training choice (on for the big presets), not architecture.
    assert dataclasses.replace(config.model, activation_checkpointing=False) == expected
    assert config.model.activation_checkpointing == (name != "tiny")


def test_tiny_architecture_has_one_source():
    tiny = PRESETS["tiny"]
    assert ModelConfig() == ModelConfig.from_preset("tiny")
    assert ModelConfig().encoder_config() == tiny.encoder
    assert ModelConfig().predictor_config() == tiny.predictor
    # the module's keyword defaults are its config's (which the tiny preset starts from)
    params = inspect.signature(VideoViT).parameters
    conv = inspect.signature(ConvEncoder).parameters
    for field in dataclasses.fields(EncoderConfig):
        if field.name == "kind":
            continue
        if field.name == "conv_channels":  # the conv encoder's own field
            assert conv["channels"].default == field.default
            continue
        assert params[field.name].default == field.default, field.name
