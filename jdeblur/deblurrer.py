"""A trained run as a Python object: ``jdeblur.load(workdir).deblur(image)``, and the ``deblur`` command's loop.

    import jdeblur
    model = jdeblur.load("runs/quickstart-20260101-120000")
    sharp = model.deblur("photo.jpg")            # or an array: HW/HWC, gray/RGB/RGBA, 8/16-bit or float
    sharp = model.deblur(blurred, kernel=psf)    # a non-blind run: the kernel (and optionally noise_sigma)

An image comes back with its input's shape, channels and dtype (``jdeblur.infer.restore``); a path
is read as it looks (``jdeblur.photos.read_photo``: EXIF orientation applied, CMYK as RGB). Images
over ``max_pixels`` are restored in overlapping tiles, so any size fits in memory. Images are
reflect-padded to multiples of ``jdeblur.photos.COMPILE_MULTIPLE`` and cropped back, so that photos
of many sizes compile a few programs, and the command and the Python call give the same pixels.
"""
import math
import os
import pathlib

import numpy as np

from jdeblur import infer, photos
from jdeblur import workdir as workdirs
from jdeblur.checks import check_choice, check_folder_writable
from jdeblur.errors import UserError
from jdeblur.kernel_files import check_kernel_fits, normalize_kernel_array, read_kernel
from jdeblur.models.registry import model_inputs

DEFAULT_MAX_PIXELS = 1024 * 1024  # pixels per model call: ~1.5 GB of activations for NAFNet width 32


def load(workdir, *, checkpoint: str = "best") -> "Deblurrer":
    """The trained model of ``workdir`` (a ``train`` or ``import-weights`` run) at ``checkpoint``:
    'best' (by validation PSNR), 'latest' or a step number."""
    config, model, params, step = workdirs.load_trained(workdir, checkpoint)
    return Deblurrer(workdir, config, model, params, step)


def check_noise_sigma(value: float | None, name: str) -> None:
    """Raises UserError unless ``value`` (``name``: the argument or flag) is None or in [0, 1)."""
    if value is not None and not 0 <= value < 1:
        raise UserError(f"{name} {value}: expected a standard deviation in [0, 1) "
                        "(a fraction of the pixel range: 0.01 is 2.55 grey levels of 8 bits)")


class Deblurrer:
    """A trained model with its parameters: ``deblur`` images with it.

    Attributes:
      workdir, config, step: where it was loaded from, the run's config and the checkpoint's step.
      model, params: the Flax module and its (evaluation) parameters.
      nonblind: whether it needs the blur kernel of each image (``jdeblur.models.unfolded``).
      takes_kernel: whether it can be given the kernel: a non-blind model, or a blind one that is
        trained on true kernels and searches for them otherwise (``jdeblur.models.two_stage``).
    """

    def __init__(self, workdir, config, model, params, step: int):
        self.workdir, self.config, self.model, self.params, self.step = workdir, config, model, params, step
        self.nonblind = "kernel" in model_inputs(model)
        self.takes_kernel = "kernel" in model_inputs(model, training=True)

    def __repr__(self) -> str:
        kind = "non-blind" if self.nonblind else "blind"
        return f"Deblurrer({self.config.model.name} {kind}, {self.workdir}, step {self.step})"

    def check_observations(self, *, kernel: bool, ensemble: bool, kernel_name: str = "kernel",
                           ensemble_name: str = "ensemble") -> None:
        """Raises UserError unless a kernel is given when the model is non-blind and only when it takes
        one, and the self-ensemble only without a kernel (the names are the caller's: arguments or flags)."""
        if self.nonblind and not kernel:
            raise UserError(f"{self.workdir}: its model ({self.config.model.name}) is non-blind; give the blur "
                            f"with {kernel_name}")
        if kernel and not self.takes_kernel:
            raise UserError(f"{kernel_name.split()[0]}: the model of {self.workdir} ({self.config.model.name}) is "
                            "blind and estimates the blur itself; give no kernel, or use a non-blind run")
        if kernel and ensemble:
            raise UserError(f"{ensemble_name}: the self-ensemble rotates the image but not its kernel; it is for "
                            "blind models")

    def deblur(self, image, *, kernel=None, noise_sigma: float | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
               tile: int | None = None, overlap: int = infer.DEFAULT_OVERLAP, ensemble: bool = False) -> np.ndarray:
        """Deblurs one image: an array (HW or HWC, C = 1..4; uint8, uint16 or float in [0, 1]) or a file's path.

        Args:
          image: the blurred image, or the path of an image file.
          kernel: the blur, an (H, W) array or a kernel file (``jdeblur.kernel_files``), normalised
            to sum 1: needed by a non-blind model; a two-stage blind one uses it instead of its search.
          noise_sigma: with a kernel: the noise standard deviation in [0, 1] units; None
            estimates it from the image (Donoho's wavelet estimator).
          max_pixels: pixels per model call; larger images are tiled.
          tile: tile side in pixels (default: the largest ``max_pixels`` allows).
          overlap: tile overlap in pixels.
          ensemble: average over the 8 flips and rotations (8x the compute; blind models).

        Returns:
          The restored image, with the input's shape and dtype (uint8 or uint16 for a file).
        """
        pixels = photos.read_photo(image) if isinstance(image, (str, os.PathLike)) else np.asarray(image)
        self.check_observations(kernel=kernel is not None, ensemble=ensemble, kernel_name="kernel=")
        photos.check_tiling(self.model.size_multiple, tile=tile, max_pixels=max_pixels, overlap=overlap)
        observations = {}
        if kernel is not None:
            if isinstance(kernel, (str, os.PathLike)):
                kernel = read_kernel(kernel, name="kernel")
            kernel = normalize_kernel_array(kernel, "kernel")
            check_kernel_fits(kernel, pixels.shape, "image")
            check_noise_sigma(noise_sigma, "noise_sigma")
            sigma = photos.estimate_photo_noise(pixels) if noise_sigma is None else noise_sigma
            observations = {"kernel": kernel, "noise_sigma": sigma}
        height, width = pixels.shape[:2]
        multiple = math.lcm(photos.COMPILE_MULTIPLE, self.model.size_multiple)
        restored = infer.restore(infer.model_apply_fn(self.model, self.params, **observations),
                                 photos.pad_to_multiple(pixels, multiple), size_multiple=self.model.size_multiple,
                                 tile=tile, max_pixels=max_pixels, overlap=overlap, ensemble=ensemble)
        return restored[:height, :width]


def deblur_files(workdir, input_spec: str, output_dir, *, tile=None, max_pixels=DEFAULT_MAX_PIXELS, overlap=64,
                 ensemble=False, which="best", overwrite=False, skip_existing=False, progress=True,
                 kernel=None, noise_sigma=None, fmt: str = "png", quality: int = 95) -> list[pathlib.Path]:
    """Deblurs every image named by ``input_spec`` with a trained run; returns the written paths.

    Results are written as ``fmt`` (``photos.OUTPUT_FORMATS``: png, jpeg with ``quality`` 1-95, tiff)
    by ``photos.write_result_atomic``.

    ``skip_existing`` leaves the results already in ``output_dir`` as they are and deblurs the
    others: the way to finish a folder an interrupted run left half done (results are written
    atomically, so every result there is whole).

    Everything is checked before anything is written: the workdir and its checkpoint, the inputs
    (each decoded once), the output names and folder, the kernel. Then images are read, restored
    and written one at a time (memory stays that of the largest image), each result atomically.

    A non-blind model (``jdeblur.models.unfolded``) needs ``kernel``: a kernel file
    (``jdeblur.kernel_files``) applied to every input, no larger than any of them; and the noise
    level, ``noise_sigma`` (in [0, 1] units), or, when None, each image's own estimate
    (``jdeblur.physics.noise.estimate_noise_sigma``, Donoho's wavelet estimator), printed. A
    two-stage blind model (``jdeblur.models.two_stage``) given ``kernel`` uses it instead of
    searching for one.
    """
    import tqdm

    workdirs.load_config(workdir)
    workdirs.choose_step(workdir, which)
    kernel = None if kernel is None else read_kernel(kernel)
    check_noise_sigma(noise_sigma, "--noise-sigma")
    check_choice(fmt, "--format", photos.OUTPUT_FORMATS)
    if not 1 <= quality <= 95:
        raise UserError(f"--quality {quality}: expected a JPEG quality from 1 to 95 (Pillow's scale)")
    inputs = photos.collect_inputs(input_spec)
    output_dir = pathlib.Path(output_dir)
    outputs = photos.plan_outputs(inputs, output_dir, overwrite=overwrite, skip_existing=skip_existing, fmt=fmt)
    skipped = 0
    if skip_existing:
        pending = [(source, target) for source, target in zip(inputs, outputs) if not target.exists()]
        skipped = len(inputs) - len(pending)
        inputs, outputs = [source for source, _ in pending], [target for _, target in pending]
        if not pending:
            print(f"all {skipped} result(s) already in {output_dir}; nothing to deblur")
            return []
    check_folder_writable(output_dir, "--output")
    # Shown on a terminal only, and erased by the with on an error, so that the error is the one
    # line a script reading stderr gets.
    with tqdm.tqdm(inputs, desc="check inputs", unit="image", leave=False, dynamic_ncols=True,
                   disable=True if not progress or len(inputs) < 50 else None) as bar:
        for path in bar:
            image = photos.read_photo(path)  # fail on a bad file before spending time on the good ones
            if kernel is not None:
                check_kernel_fits(kernel, image.shape, f"--input {path}")
    deblurrer = load(workdir, checkpoint=which)
    deblurrer.check_observations(kernel=kernel is not None, ensemble=ensemble,
                                 kernel_name="--kernel FILE (.npy or a grayscale PNG/TIFF)",
                                 ensemble_name="--ensemble")
    photos.check_tiling(deblurrer.model.size_multiple, tile=tile, max_pixels=max_pixels, overlap=overlap)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tqdm.tqdm(zip(inputs, outputs), total=len(inputs), desc="deblur", unit="image", dynamic_ncols=True,
                   disable=not progress) as bar:
        for source, target in bar:
            photo = photos.read_photo_with_metadata(source)
            sigma = noise_sigma
            if kernel is not None and noise_sigma is None:
                sigma = photos.estimate_photo_noise(photo.pixels)
                bar.write(f"{source}: estimated noise sigma {sigma:.4f} ({sigma * 255:.2f} of 255)")
            restored = deblurrer.deblur(photo.pixels, kernel=kernel, noise_sigma=sigma, tile=tile,
                                        max_pixels=max_pixels, overlap=overlap, ensemble=ensemble)
            photos.write_result_atomic(target, restored, fmt, quality=quality, icc_profile=photo.icc_profile,
                                       exif=photo.exif)
            del photo, restored  # one image in memory at a time
    done = f"{len(outputs)} image(s) deblurred with {workdir} (checkpoint {deblurrer.step}) into {output_dir}"
    print(done + (f"; {skipped} already there, skipped" if skipped else ""))
    return outputs
