"""A user's photo files: finding them, reading them as they are, writing results safely.

Unlike the datasets (which store every image as uint8 RGB), deblurring a user's photos keeps each
file's form: grayscale stays grayscale, an alpha channel is kept, 16-bit stays 16-bit. Results are
PNG files with the input's base name, written to a temporary name and renamed, so an interrupted
run never leaves a half-written file under a final name.
"""
import glob
import os
import pathlib
import tempfile

import imageio.v3 as iio
import numpy as np

from jdeblur.data.images import is_image_file, list_images


def collect_inputs(spec: str) -> list[pathlib.Path]:
    """The image files named by ``spec``: a file, a folder (recursively) or a glob pattern.

    Raises FileNotFoundError naming ``spec`` when it matches nothing readable.
    """
    path = pathlib.Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = [path / p for p in list_images(path)]
        if not found:
            raise FileNotFoundError(f"--input {spec}: folder holds no image files "
                                    f"(expected .png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp, .ppm, .pgm)")
        return found
    matches = sorted(pathlib.Path(p) for p in glob.glob(spec, recursive=True))
    found = [p for p in matches if p.is_file() and is_image_file(p)]
    if not found:
        raise FileNotFoundError(f"--input {spec}: no such file or folder, and no image file matches it as a pattern")
    return found


def read_photo(path: pathlib.Path) -> np.ndarray:
    """Reads an image file as HxW or HxWxC (C = 1..4), uint8 or uint16, exactly as stored.

    Raises ValueError naming the file for anything that is not a whole, decodable image.
    """
    try:
        image = iio.imread(path)
    except Exception as e:  # decoders raise many types; the user needs the file's name and the reason
        raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e
    if image.ndim == 4:  # animated GIF/WebP or multi-page TIFF: the first frame
        image = image[0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4)):
        raise ValueError(f"{path}: expected an HxW or HxWxC image with C in 1..4, got shape {image.shape}")
    if image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    elif image.dtype not in (np.uint8, np.uint16):
        if np.issubdtype(image.dtype, np.integer) and image.min() >= 0 and image.max() <= 65535:
            image = image.astype(np.uint16)
        else:
            raise ValueError(f"{path}: expected 8- or 16-bit integer pixels, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{path}: empty image of shape {image.shape}")
    return image


def output_path(input_path: pathlib.Path, output_dir: pathlib.Path) -> pathlib.Path:
    """Where the result for ``input_path`` goes: the same base name, as PNG."""
    return output_dir / (input_path.stem + ".png")


def write_png_atomic(path: pathlib.Path, image: np.ndarray) -> None:
    """Writes ``image`` as PNG at ``path`` via a temporary file in the same folder and a rename."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png.tmp", dir=path.parent)
    os.close(fd)
    try:
        iio.imwrite(tmp, image, extension=".png")
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def plan_outputs(inputs: list[pathlib.Path], output_dir: pathlib.Path, *, overwrite: bool) -> list[pathlib.Path]:
    """The output path of every input; raises if two inputs share one, or one exists (unless overwrite)."""
    outputs = [output_path(p, output_dir) for p in inputs]
    seen = {}
    for source, target in zip(inputs, outputs):
        if target in seen:
            raise ValueError(f"--input: {seen[target]} and {source} would both be written to {target}; "
                             f"rename one or deblur them separately")
        seen[target] = source
    existing = [str(t) for t in outputs if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"--output {output_dir}: {len(existing)} result(s) already exist "
                              f"(e.g. {existing[0]}); pass --overwrite or choose another folder")
    return outputs


def deblur_files(workdir, input_spec: str, output_dir, *, tile=None, max_pixels=1024 * 1024, overlap=64,
                 ensemble=False, which="best", overwrite=False) -> list[pathlib.Path]:
    """Deblurs every image named by ``input_spec`` with a trained run; returns the written paths.

    Every input is read and checked before anything is written, so a bad file stops the run with
    nothing half-done; each result is written atomically as it is finished.
    """
    import tqdm

    from jdeblur import infer
    from jdeblur.workdir import load_trained

    inputs = collect_inputs(input_spec)
    output_dir = pathlib.Path(output_dir)
    outputs = plan_outputs(inputs, output_dir, overwrite=overwrite)
    for path in inputs:  # fail on a bad file before spending time on the good ones
        read_photo(path)
    config, model, params, step = load_trained(workdir, which)
    output_dir.mkdir(parents=True, exist_ok=True)
    apply_fn = infer.model_apply_fn(model, params)
    for source, target in tqdm.tqdm(list(zip(inputs, outputs)), desc="deblur", unit="image", dynamic_ncols=True):
        image = read_photo(source)
        restored = infer.restore(apply_fn, image, size_multiple=model.size_multiple, tile=tile,
                                 max_pixels=max_pixels, overlap=overlap, ensemble=ensemble)
        write_png_atomic(target, restored)
    print(f"{len(outputs)} image(s) deblurred with {workdir} (checkpoint {step}) into {output_dir}")
    return outputs
