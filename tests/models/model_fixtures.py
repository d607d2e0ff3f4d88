"""Cheap stand-ins for the costly parts of model tests: random parameters, quickly compiled functions.

Compiling ``model.init`` on CPU costs seconds per parameter array (XLA compiles a random-bits
kernel for each), and LLVM's optimisations dominate compile time for the tiny shapes tests use. So
tests that only need *some* well-scaled parameters draw them with numpy, and compile with XLA's
backend optimisations off (same numerics up to float rounding, several times faster to compile).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np

_FAST_COMPILE = {"xla_backend_optimization_level": 0}


def quick_jit(fn, **kw):
    """``jax.jit`` with XLA's backend optimisations off: for tests on small arrays."""
    return jax.jit(fn, compiler_options=_FAST_COMPILE, **kw)


def random_params(model, input_shape, seed: int = 0):
    """Parameters for ``model`` on inputs of ``input_shape``: kernels ~ N(0, 1/fan_in), the rest ~ 0.1 N(0, 1)
    (LayerNorm scales around 1), so every block, NAFNet's zero-initialised beta/gamma included, is at work."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(input_shape, jnp.float32))
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        if len(leaf.shape) == 4:
            return (rng.standard_normal(leaf.shape) / math.sqrt(math.prod(leaf.shape[:-1]))).astype(np.float32)
        offset = 1.0 if path[-1].key == "scale" else 0.0
        return (offset + 0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes["params"])
