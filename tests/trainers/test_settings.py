"""Trainer settings: one typed source of every default, YAML that only overrides, unknown keys refused."""

from __future__ import annotations

from dataclasses import fields

import pytest
import yaml
from hydra import compose, initialize_config_dir

from vla_razor.config import config_dir
from vla_razor.errors import BadInputError
from vla_razor.schemas import register_schemas
from vla_razor.trainers.bc import BCSettings
from vla_razor.trainers.ppo import PPOSettings
from vla_razor.trainers.rft import RFTSettings
from vla_razor.workflows.training import TRAINERS, trainer_settings

SETTINGS = (BCSettings, PPOSettings, RFTSettings)


@pytest.mark.parametrize("cls", SETTINGS)
def test_unknown_key_is_an_error_listing_the_valid_ones(cls) -> None:
    with pytest.raises(
        BadInputError, match=r"unknown trainer setting\(s\) grad_clip for .*; valid: name, lr, "
    ):
        cls.from_mapping({"lr": 1e-4, "grad_clip": 1.0})


def test_one_name_per_idea_across_trainers() -> None:
    for cls in SETTINGS:
        names = {f.name for f in fields(cls)}
        assert {"num_iterations", "minibatch_size", "max_grad_norm", "lr", "seed"} <= names, cls
        assert not names & {"max_steps", "total_updates", "iterations", "batch_size", "grad_clip"}, cls


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_trainer_yaml_only_overrides_the_dataclass(name: str) -> None:
    cls = TRAINERS[name]
    defaults = {f.name: f.default for f in fields(cls)}
    own = yaml.safe_load((config_dir() / "trainer" / f"{name}.yaml").read_text())
    for key, value in own.items():
        if key in ("defaults", "name"):
            continue
        assert key in defaults, f"{name}.yaml sets {key}, which {cls.__name__} does not declare"
        assert value != defaults[key], f"{name}.yaml repeats the default {key}={value!r} of {cls.__name__}"


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_composed_trainer_config_has_every_setting_and_builds(name: str) -> None:
    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"trainer={name}", "seed=7", "trainer.lr=0.5"])
    settings = trainer_settings(cfg)
    assert isinstance(settings, TRAINERS[name])
    # hydra's schema shows every key (so `--cfg job` and `trainer.<key>=...` work for all of them) ...
    assert set(cfg.trainer) == {f.name for f in fields(TRAINERS[name])}
    # ... and the run's seed and the override reach the typed settings.
    assert (settings.name, settings.seed, settings.lr) == (name, 7, 0.5)
    if name == "bc_kl":
        assert settings.kl_coef == 0.1  # type: ignore[attr-defined]
