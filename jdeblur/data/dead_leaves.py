"""Dead-leaves images: synthetic sharp images with the statistics of natural ones, made on the device.

A dead-leaves image is a stack of opaque disks dropped one over another (Matheron's model; as a
model of natural images, Lee, Mumford and Huang, IJCV 2001). With radii drawn from a density
proportional to ``r ** -3`` the picture is scale invariant and has the ``1 / f**2`` power spectrum
of photographs; occlusion gives it sharp edges of every orientation and curvature. Networks for
denoising and deblurring trained on such images alone come within a fraction of a dB of ones
trained on photos (Achddou, Gousseau and Ladjal, "Synthetic images as a regularity prior for image
restoration neural networks", SSVM 2021), which makes them a cheap source of variety when the
photos are few (the embedded default has 11 training photos).

Here the disks take their colours from a palette, e.g. the pixels of a real patch, so that the
colour statistics stay those of the photos. Everything is pure JAX: the images are drawn inside the
train step from per-image keys, like the degradation, with no host work and no transfer.
"""
import jax
import jax.numpy as jnp
import ml_collections

from jdeblur.errors import UserError, one_line

DISKS_PER_TEST = 32  # disks tested against every pixel at once (see top_disk)


def power_law_radii(key, shape, *, radius_range: tuple[float, float], exponent: float) -> jax.Array:
    """Radii with density proportional to ``r ** -exponent`` on ``radius_range`` (inverse CDF).

    ``exponent`` must not be 1 (that density's CDF is a logarithm, not used here).
    """
    low, high = radius_range
    a = 1.0 - exponent
    u = jax.random.uniform(key, shape)
    return (low**a + u * (high**a - low**a)) ** (1.0 / a)


def dead_leaves(key, palette, size: int, *, num_disks: int, radius_range: tuple[float, float],
                exponent: float) -> jax.Array:
    """One ``size`` x ``size`` dead-leaves image whose colours are drawn from ``palette``.

    Args:
      key: a JAX random key; the same key and palette give the same image.
      palette: (P, C) colours (float); each disk and the background take one row, uniformly.
      size: the side of the image in pixels (static).
      num_disks: disks per image (static); see ``expected_coverage`` for how many are enough.
      radius_range: the smallest and largest radius in pixels.
      exponent: the radii's density is proportional to ``r ** -exponent``; 3 is scale invariant.

    Returns:
      (size, size, C) in the palette's dtype: ``colours[top_disk(centres, radii, size)]``.
    """
    k_disks, k_colour = jax.random.split(key)
    centres, radii = draw_disks(k_disks, size, num_disks=num_disks, radius_range=radius_range,
                                exponent=exponent)
    colours = palette[jax.random.randint(k_colour, (num_disks + 1,), 0, palette.shape[0])]
    return colours[top_disk(centres, radii, size)]


def draw_disks(key, size: int, *, num_disks: int, radius_range: tuple[float, float],
               exponent: float) -> tuple[jax.Array, jax.Array]:
    """Random disks for a ``size`` x ``size`` image: centres (N, 2) as (row, column), radii (N,).

    Centres are uniform over the image enlarged by half the largest radius on every side, so that
    disks cut by the border are about as common there as inside.
    """
    for name, value in (("size", size), ("num_disks", num_disks)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a static Python int >= 1, got {value!r}")
    low, high = radius_range
    if not 0 < low <= high:
        raise ValueError(f"radius_range: expected 0 < low <= high, got {tuple(radius_range)}")
    if exponent == 1.0:
        raise ValueError("exponent: expected a value other than 1")
    k_centre, k_radius = jax.random.split(key)
    reach = high / 2
    centres = jax.random.uniform(k_centre, (num_disks, 2), minval=-reach, maxval=size - 1 + reach)
    return centres, power_law_radii(k_radius, (num_disks,), radius_range=radius_range, exponent=exponent)


def top_disk(centres, radii, size: int) -> jax.Array:
    """Which disk each pixel shows: (size, size) int32, the topmost disk covering its centre.

    Disk ``0`` lies on top, disk ``N - 1`` at the bottom; ``N`` (the background) where none covers
    the pixel, about ``exp(-coverage)`` of them (see ``expected_coverage``).
    """
    num_disks = radii.shape[0]
    rows = jnp.arange(size, dtype=jnp.float32)[:, None, None]
    cols = jnp.arange(size, dtype=jnp.float32)[None, :, None]
    # The topmost covering disk is the smallest covering index. Disks are tested a chunk at a
    # time: a (size, size, chunk) test stays in cache, where one test of all disks at once is
    # 9x slower on a CPU (280 against 30 ms for 16 images of 82 px with 1024 disks).
    chunk = min(num_disks, DISKS_PER_TEST)
    padded = -(-num_disks // chunk) * chunk  # padding disks have radius -1 and cover nothing
    centres = jnp.pad(centres, ((0, padded - num_disks), (0, 0)))
    radii = jnp.pad(radii, (0, padded - num_disks), constant_values=-1.0)

    def cover_chunk(i, top):
        first = i * chunk
        c = jax.lax.dynamic_slice_in_dim(centres, first, chunk)
        r = jax.lax.dynamic_slice_in_dim(radii, first, chunk)
        covers = (rows - c[:, 0]) ** 2 + (cols - c[:, 1]) ** 2 <= r * jnp.abs(r)
        return jnp.minimum(top, jnp.min(jnp.where(covers, first + jnp.arange(chunk), num_disks), axis=-1))

    return jax.lax.fori_loop(0, padded // chunk, cover_chunk, jnp.full((size, size), num_disks))


def expected_coverage(size: int, *, num_disks: int, radius_range: tuple[float, float],
                      exponent: float) -> float:
    """The mean number of disks over a pixel: ``num_disks * E[pi r**2] / area of the centres``.

    The background shows through at about ``exp(-coverage)`` of the pixels.
    """
    low, high = radius_range
    a = 1.0 - exponent
    b = 3.0 - exponent
    # E[r^2] for the density c * r^-exponent on [low, high], c = a / (high^a - low^a).
    mean_square = (a / (high**a - low**a)) * ((high**b - low**b) / b if b else jnp.log(high / low))
    side = size + high  # centres span the image plus high / 2 on each side
    return float(num_disks * jnp.pi * mean_square / side**2)


def default_config() -> ml_collections.ConfigDict:
    """``config.data.dead_leaves``: the share of training images replaced by dead leaves, and their law."""
    cfg = ml_collections.ConfigDict()
    cfg.fraction = 0.0  # each training image is replaced with this probability; 0 is off
    cfg.num_disks = 768  # with radii 2-48 px: 3.6 disks over each pixel of a 82 px patch
    cfg.radius_range = (2.0, 48.0)  # smallest and largest radius in pixels
    cfg.exponent = 3.0  # radii density proportional to r ** -exponent (3: scale invariant; not 1)
    return cfg


def check_dead_leaves_config(cfg, *, side: int) -> None:
    """Raises UserError, naming the field, unless ``config.data.dead_leaves`` draws ``side``-pixel patches.

    Traces ``substitute`` on one patch with ``jax.eval_shape`` (nothing is drawn). Off (fraction 0)
    is always valid.
    """
    settings = cfg.to_dict()
    if not settings["fraction"]:
        return
    patch = jax.ShapeDtypeStruct((side, side, 3), jnp.float32)
    try:
        jax.eval_shape(lambda x: substitute(jax.random.key(0), x, **settings), patch)
    except (ValueError, TypeError) as e:
        message = one_line(e)
        names_a_field = message.split(":")[0] in settings
        raise UserError(f"config.data.dead_leaves{'.' if names_a_field else ': '}{message}") from e


def substitute(key, image, *, fraction: float, num_disks: int, radius_range: tuple[float, float],
               exponent: float) -> jax.Array:
    """``image`` (H, W, C), or with probability ``fraction`` a dead-leaves image coloured from its pixels.

    The draw and the picture come from ``key`` alone, so a batch mapped with one key per image is
    the same however it is split over devices. The leaves are square, so the image must be too.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction: expected a value in [0, 1], got {fraction!r}")
    height, width, channels = image.shape
    if height != width:
        raise ValueError(f"image: expected a square patch, got {height}x{width}")
    k_use, k_leaves = jax.random.split(key)
    leaves = dead_leaves(k_leaves, image.reshape(-1, channels), height, num_disks=num_disks,
                         radius_range=tuple(radius_range), exponent=exponent)
    return jnp.where(jax.random.uniform(k_use) < fraction, leaves, image)
