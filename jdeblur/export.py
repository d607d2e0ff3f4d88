"""A trained model as a self-contained file for deployment: StableHLO (``jax.export``) or ONNX.

    jdeblur export --workdir runs/qs --format stablehlo --output qs.stablehlo [--tile 256 256]
    jdeblur export --workdir runs/qs --format onnx --output qs.onnx

The artifact computes the model on one tile of a fixed size: input (1, H, W, 3) float32 RGB in
[0, 1], output the same shape (not clipped), with the parameters inside. Tiling, padding and
clipping stay outside it, as ``jdeblur.infer.restore`` does them: pad an image at the bottom and
right to a multiple of the tile (or cut it into overlapping tiles, ``jdeblur.tiling``), run each
tile, crop back, clip to [0, 1]. H and W must be multiples of the model's ``size_multiple``.

- StableHLO: ``jax.export.deserialize(data).call(x)`` runs it in any JAX of a compatible
  serialization version, on CPU or CUDA (both are lowered). Reading it back needs ``flatbuffers``.
- ONNX: converted by ``jax2onnx`` (optional: ``pip install jax2onnx onnxruntime``), run with
  ``onnxruntime.InferenceSession(path).run(None, {'image': x})``. jax2onnx pins
  ``orbax-checkpoint<0.11.37``, which jdeblur's range admits.

Non-blind models (which also take the kernel and noise level) are not exported yet.
"""
import pathlib

import jax
import jax.numpy as jnp

from jdeblur import infer
from jdeblur import workdir as workdirs
from jdeblur.atomic import write_bytes
from jdeblur.checks import check_choice
from jdeblur.errors import UserError
from jdeblur.models.registry import model_inputs

FORMATS = ("stablehlo", "onnx")
DEFAULT_TILE = (256, 256)
INPUT_NAME, OUTPUT_NAME = "image", "restored"


def export_stablehlo(fn, shape) -> bytes:
    """``fn`` on a float32 input of ``shape``, serialised by ``jax.export`` for CPU and CUDA."""
    exported = jax.export.export(jax.jit(fn), platforms=("cpu", "cuda"))(jax.ShapeDtypeStruct(shape, jnp.float32))
    try:
        return bytes(exported.serialize())
    except ImportError as e:  # jax needs flatbuffers to serialise, and does not depend on it
        raise UserError(f"--format stablehlo: {e}; expected it installed: pip install flatbuffers") from e


def onnx_converter():
    """The ``jax2onnx`` module; UserError saying what to install when it is missing."""
    try:
        import jax2onnx
    except ImportError as e:
        raise UserError("--format onnx needs jax2onnx (and onnxruntime to run the file), not installed: "
                        "pip install jax2onnx onnxruntime") from e
    return jax2onnx


def export_onnx(fn, shape) -> bytes:
    """``fn`` on a float32 input of ``shape``, converted by jax2onnx: the ONNX file's bytes."""
    model = onnx_converter().to_onnx(fn, [jax.ShapeDtypeStruct(shape, jnp.float32)], model_name="jdeblur",
                             input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    return model.SerializeToString()


def export_workdir(workdir, fmt: str, output, *, tile=DEFAULT_TILE, checkpoint: str = "best") -> pathlib.Path:
    """Writes the model of ``workdir`` at ``checkpoint`` as a ``fmt`` file for (1, tile_h, tile_w, 3) tiles.

    Raises:
      UserError: an unknown format, a workdir without a trained model, a non-blind model, a tile
        that is not a multiple of the model's size multiple, a missing optional package.
    """
    check_choice(fmt, "--format", FORMATS)
    if fmt == "onnx":
        onnx_converter()  # before the minutes of loading and converting
    tile_h, tile_w = (tile, tile) if isinstance(tile, int) else tuple(tile)
    workdirs.load_config(workdir)
    workdirs.choose_step(workdir, checkpoint)
    output = pathlib.Path(output)
    if not output.parent.is_dir():
        raise UserError(f"--output {output}: no folder {output.parent}; expected a file in an existing folder")
    config, model, params, _ = workdirs.load_trained(workdir, checkpoint)
    if model_inputs(model)[1:]:
        raise UserError(f"--workdir {workdir}: its model ({config.model.name}) is non-blind (it takes "
                        f"{' and '.join(model_inputs(model)[1:])}); expected a blind model, the only kind "
                        "exported for now")
    multiple = model.size_multiple
    if tile_h < multiple or tile_w < multiple or tile_h % multiple or tile_w % multiple:
        raise UserError(f"--tile {tile_h} {tile_w}: expected multiples of the model's size multiple, {multiple}")
    # The model with its parameters captured: exported as constants inside the artifact.
    fn, shape = infer.model_apply_fn(model, params), (1, tile_h, tile_w, 3)
    write_bytes(output, (export_stablehlo if fmt == "stablehlo" else export_onnx)(fn, shape))
    return output
