"""Dead-leaves images: the renderer against a painter in numpy, the radius law, coverage, substitution."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jdeblur.data import dead_leaves as dl

LAW = dict(radius_range=(2.0, 12.0), exponent=3.0)


def paint(centres, radii, size):
    """The disks painted bottom (last) to top (first) in float64: the index each pixel shows."""
    rows, cols = np.mgrid[:size, :size].astype(np.float64)
    shown = np.full((size, size), len(radii))
    for i in reversed(range(len(radii))):
        shown[(rows - centres[i, 0]) ** 2 + (cols - centres[i, 1]) ** 2 <= radii[i] ** 2] = i
    return shown


@pytest.mark.parametrize("num_disks", [5, 32, 45])  # fewer than, one and not a whole number of chunks
def test_top_disk_matches_painter(rng, num_disks):
    size = 24
    centres = rng.uniform(-4, size + 4, (num_disks, 2)).astype(np.float32)
    radii = rng.uniform(0.5, 9, num_disks).astype(np.float32)
    shown = np.asarray(dl.top_disk(jnp.asarray(centres), jnp.asarray(radii), size))
    np.testing.assert_array_equal(shown, paint(centres.astype(np.float64), radii.astype(np.float64), size))
    assert len(np.unique(shown)) > 3


def test_radii_follow_the_power_law(rng):
    low, high = 2.0, 40.0
    radii = np.asarray(dl.power_law_radii(jax.random.key(rng.integers(2**31)), (4000,),
                                          radius_range=(low, high), exponent=3.0))
    assert low <= radii.min() and radii.max() <= high

    def cdf(r):  # of the density 2 r^-3 / (low^-2 - high^-2) on [low, high]
        return (low**-2 - r**-2) / (low**-2 - high**-2)

    assert scipy.stats.kstest(radii, cdf).pvalue > 1e-3


def test_background_shows_where_coverage_says(rng):
    size, num_disks = 32, 64
    coverage = dl.expected_coverage(size, num_disks=num_disks, **LAW)
    keys = jax.random.split(jax.random.key(rng.integers(2**31)), 2000)
    draw = jax.vmap(lambda k: dl.draw_disks(k, size, num_disks=num_disks, **LAW))
    shown = jax.vmap(lambda c, r: dl.top_disk(c, r, size))(*draw(keys))
    centre = np.asarray(shown[:, 8:24, 8:24] == num_disks)  # pixels every disk size can reach
    # Each image's pixels are correlated: judge the per-image fractions' mean by their spread.
    per_image = centre.mean(axis=(1, 2))
    assert abs(per_image.mean() - np.exp(-coverage)) < 4 * per_image.std() / np.sqrt(len(keys)) + 0.01


def test_colours_come_from_the_palette_and_the_key(rng):
    palette = jnp.asarray(rng.uniform(size=(7, 3)), jnp.float32)
    key = jax.random.key(rng.integers(2**31))
    image = dl.dead_leaves(key, palette, 20, num_disks=40, **LAW)
    assert image.shape == (20, 20, 3) and image.dtype == jnp.float32
    colours = {tuple(c) for c in np.asarray(image).reshape(-1, 3)}
    assert colours <= {tuple(c) for c in np.asarray(palette)} and len(colours) > 1
    np.testing.assert_array_equal(image, dl.dead_leaves(key, palette, 20, num_disks=40, **LAW))
    other = dl.dead_leaves(jax.random.fold_in(key, 1), palette, 20, num_disks=40, **LAW)
    assert np.any(np.asarray(other) != np.asarray(image))


def test_substitute_replaces_the_given_share(rng):
    image = jnp.asarray(rng.uniform(size=(16, 16, 3)), jnp.float32)
    keys = jax.random.split(jax.random.key(rng.integers(2**31)), 400)
    options = dict(num_disks=24, **LAW)
    for fraction in (0.0, 0.3, 1.0):
        out = np.asarray(jax.vmap(lambda k: dl.substitute(k, image, fraction=fraction, **options))(keys))
        kept = np.all(out == np.asarray(image), axis=(1, 2, 3))
        # Substituted images show few of the image's 256 colours, in flat disks.
        assert np.all([len(np.unique(o.reshape(-1, 3), axis=0)) <= 25 for o in out[~kept]])
        share = 1 - kept.mean()
        assert abs(share - fraction) <= 4 * np.sqrt(fraction * (1 - fraction) / len(keys)) + 1e-9


@pytest.mark.parametrize("bad, message", [
    (dict(fraction=1.5), "fraction: expected a value in [0, 1], got 1.5"),
    (dict(num_disks=0), "num_disks: expected a static Python int >= 1, got 0"),
    (dict(num_disks=8.0), "num_disks: expected a static Python int >= 1, got 8.0"),
    (dict(radius_range=(3.0, 1.0)), "radius_range: expected 0 < low <= high, got (3.0, 1.0)"),
    (dict(exponent=1.0), "exponent: expected a value other than 1"),
])
def test_bad_options_are_named(bad, message):
    options = dict(fraction=0.5, num_disks=8, **LAW) | bad
    with pytest.raises(ValueError) as error:
        dl.substitute(jax.random.key(0), jnp.zeros((8, 8, 3)), **options)
    assert str(error.value) == message
    with pytest.raises(ValueError, match="expected a square patch, got 8x6"):
        dl.substitute(jax.random.key(0), jnp.zeros((8, 6, 3)), fraction=0.5, num_disks=8, **LAW)
