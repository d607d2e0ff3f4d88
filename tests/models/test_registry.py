"""Tests for the model registry: discovery, presets, overrides and the errors that list valid choices."""
import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import pytest

from jdeblur.errors import UserError
from jdeblur.models import nafnet, unet, unfolded
from jdeblur.models.registry import apply_model, check_model_config, get_model, list_models


def test_list_models_names_every_model_with_its_variants():
    models = list_models()
    assert models["unet"] == list(unet.VARIANTS)
    assert models["nafnet"] == list(nafnet.VARIANTS)
    assert models["unfolded"] == list(unfolded.VARIANTS)
    assert "registry" not in models and "layers" not in models


def test_get_model_applies_variant_then_overrides():
    model = get_model("nafnet", variant="width64", middle_blk_num=3, enc_blk_nums=[1, 2, 3, 4],
                      dtype="bfloat16")
    assert model.width == 64 and model.middle_blk_num == 3
    assert model.enc_blk_nums == (1, 2, 3, 4)  # a config's list becomes a hashable tuple
    assert model.dtype == jnp.bfloat16
    assert get_model("unet").depth == unet.UNet().depth  # no variant: the class defaults


@pytest.mark.parametrize("call, message", [
    (lambda: get_model("resnet"), r"model: expected one of \['blind_unfolded', 'nafnet', 'two_stage', 'unet', 'unfolded'\]"),
    (lambda: get_model("unet", variant="huge"), r"variant: expected one of \['base', 'small', 'tiny'\]"),
    (lambda: get_model("unet", widht=8), r"unknown field\(s\) \['widht'\]; valid fields: .*'width'"),
    (lambda: get_model("unet", norm="batch"), r"norm: expected one of"),
    (lambda: get_model("unet", activation="tanhh"), r"activation: expected one of"),
    (lambda: get_model("nafnet", dec_blk_nums=(1,)), r"dec_blk_nums: expected as many levels"),
])
def test_bad_names_raise_value_errors_listing_valid_choices(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def model_config(name="unet", variant="tiny", **kwargs):
    return ml_collections.ConfigDict(dict(name=name, variant=variant, kwargs=kwargs))


@pytest.mark.parametrize("cfg, message", [
    (model_config(name="resnet"),
     r"^config.model.name='resnet': unknown model; valid models: blind_unfolded, nafnet, two_stage, unet, unfolded$"),
    (model_config(variant="huge"), r"^config.model.variant='huge': unknown variant of unet; valid variants: tiny,"),
    (model_config(widht=8), r"^config.model.kwargs: unknown field\(s\) \['widht'\] of unet; valid fields: .*width"),
    (model_config(width=0), r"^config.model.kwargs.width=0: expected int, such as 8 \(variant tiny's\); unet cannot "
                            r"be built with it: ZeroDivisionError"),
    (model_config("nafnet", width="a"), r"^config.model.kwargs.width='a': expected int, such as 16 \(variant tiny's\)"),
    (model_config(variant=None, depth=-1), r"^config.model.kwargs.depth=-1: expected int, such as 4 \(the default\)"),
])
def test_check_model_config_builds_the_model_abstractly_and_names_the_field(cfg, message):
    with pytest.raises(UserError, match=message) as info:
        check_model_config(cfg)
    assert "\n" not in str(info.value)


def test_check_model_config_accepts_every_variant_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, variants in list_models().items():
        for variant in variants:
            check_model_config(model_config(name, variant))
    check_model_config(model_config(width=12, blocks=0))  # fields that build, together
    assert list(tmp_path.iterdir()) == []


def test_apply_model_in_training_runs_the_module_the_model_trains_as():
    class Scaled(nn.Module):
        factor: float = 1.0

        def for_training(self):
            return self.clone(factor=2.0)

        def __call__(self, x):
            return x * self.factor

    x = jnp.arange(3.0)
    assert apply_model(Scaled(), {}, {"blurred": x})["image"].tolist() == [0.0, 1.0, 2.0]
    assert apply_model(Scaled(), {}, {"blurred": x}, training=True)["image"].tolist() == [0.0, 2.0, 4.0]
