"""Tests for the model registry: discovery, presets, overrides and the errors that list valid choices."""
import jax.numpy as jnp
import pytest

from jdeblur.models import nafnet, unet
from jdeblur.models.registry import get_model, list_models


def test_list_models_names_every_model_with_its_variants():
    models = list_models()
    assert models["unet"] == list(unet.VARIANTS)
    assert models["nafnet"] == list(nafnet.VARIANTS)
    assert "registry" not in models and "layers" not in models


def test_get_model_applies_variant_then_overrides():
    model = get_model("nafnet", variant="width64", middle_blk_num=3, enc_blk_nums=[1, 2, 3, 4],
                      dtype="bfloat16")
    assert model.width == 64 and model.middle_blk_num == 3
    assert model.enc_blk_nums == (1, 2, 3, 4)  # a config's list becomes a hashable tuple
    assert model.dtype == jnp.bfloat16
    assert get_model("unet").depth == unet.UNet().depth  # no variant: the class defaults


@pytest.mark.parametrize("call, message", [
    (lambda: get_model("resnet"), r"model: expected one of \['nafnet', 'unet'\]"),
    (lambda: get_model("unet", variant="huge"), r"variant: expected one of \['base', 'small', 'tiny'\]"),
    (lambda: get_model("unet", widht=8), r"unknown field\(s\) \['widht'\]; valid fields: .*'width'"),
    (lambda: get_model("unet", norm="batch"), r"norm: expected one of"),
    (lambda: get_model("unet", activation="tanhh"), r"activation: expected one of"),
    (lambda: get_model("nafnet", dec_blk_nums=(1,)), r"dec_blk_nums: expected as many levels"),
])
def test_bad_names_raise_value_errors_listing_valid_choices(call, message):
    with pytest.raises(ValueError, match=message):
        call()
