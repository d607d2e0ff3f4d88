"""A user's photo files: discovery, reading as they look, safe writing with metadata, and deblur_files itself."""
import weakref

import flax.linen as nn
import imageio.v3 as iio
import numpy as np
import PIL.Image
import pytest

from jdeblur import deblurrer, photos
from jdeblur.errors import UserError
from jdeblur.png import encode_png
from tests.photo_files import declared_png, exif_with, smooth_rgb, write_sample_files


def test_read_photo_keeps_channels_and_bit_depth(tmp_path, rng):
    arrays = write_sample_files(tmp_path, rng)
    for name, expected in arrays.items():
        image = photos.read_photo(tmp_path / name)
        assert image.dtype == expected.dtype and image.shape == expected.shape, name
        np.testing.assert_array_equal(image, expected)
    iio.imwrite(tmp_path / "mask.png", rng.random((5, 6)) > 0.5, extension=".png", plugin="pillow")
    assert set(np.unique(photos.read_photo(tmp_path / "mask.png"))) <= {0, 255}


def test_read_photo_names_the_file_and_the_problem(tmp_path, rng):
    iio.imwrite(tmp_path / "whole.jpg", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), extension=".jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "half.jpg").write_bytes(data[:len(data) // 2])
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    deep = encode_png(rng.integers(0, 65536, (16, 16, 3), dtype=np.uint16))
    (tmp_path / "half16.png").write_bytes(deep[:len(deep) // 2])
    for name, problem in (("half.jpg", "truncated"), ("notes.png", "not an image file"),
                          ("empty.png", "not an image file"), ("half16.png", "truncated")):
        with pytest.raises(photos.PhotoError, match=problem) as info:
            photos.read_photo(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and "expected a complete image file" in str(info.value)


def test_collect_inputs_file_folder_glob(tmp_path, rng):
    write_sample_files(tmp_path / "in", rng)
    (tmp_path / "in" / "sub").mkdir()
    iio.imwrite(tmp_path / "in" / "sub" / "nested.png", np.zeros((3, 3), np.uint8))
    (tmp_path / "in" / "notes.txt").write_text("skipped")
    (tmp_path / "in" / ".hidden.png").write_bytes(b"skipped")
    found = photos.collect_inputs(str(tmp_path / "in"))
    assert len(found) == 11 and tmp_path / "in" / "sub" / "nested.png" in found
    assert photos.collect_inputs(str(tmp_path / "in" / "rgb.png")) == [tmp_path / "in" / "rgb.png"]
    assert photos.collect_inputs(str(tmp_path / "in" / "*.jp*g")) == sorted(
        [tmp_path / "in" / "gray_photo.jpeg", tmp_path / "in" / "photo.jpg"])
    (tmp_path / "empty").mkdir()
    for spec, message in ((tmp_path / "missing.png", "no such file"), (tmp_path / "empty", "no image files"),
                          (tmp_path / "in" / "*.gif", "no such file")):
        with pytest.raises(photos.PhotoError, match=message):
            photos.collect_inputs(str(spec))


def test_plan_outputs_refuses_clashes_existing_results_and_overwriting_inputs(tmp_path):
    inputs = [tmp_path / "a.png", tmp_path / "sub" / "b.jpg"]
    out = tmp_path / "out"
    assert photos.plan_outputs(inputs, out, overwrite=False) == [out / "a.png", out / "b.png"]
    with pytest.raises(photos.PhotoError, match="would both be written"):
        photos.plan_outputs(inputs + [tmp_path / "a.jpg"], out, overwrite=False)
    out.mkdir()
    (out / "b.png").write_bytes(b"earlier result")
    with pytest.raises(photos.PhotoError, match="already exist.*--overwrite"):
        photos.plan_outputs(inputs, out, overwrite=False)
    assert photos.plan_outputs(inputs, out, overwrite=True)[1] == out / "b.png"
    (tmp_path / "a.png").write_bytes(b"the input")
    with pytest.raises(photos.PhotoError, match="replace the input itself"):
        photos.plan_outputs(inputs, tmp_path, overwrite=True)


def test_write_png_atomic_leaves_only_the_result(tmp_path, rng, monkeypatch):
    image = rng.integers(0, 65536, (5, 4, 3), dtype=np.uint16)
    photos.write_png_atomic(tmp_path / "r.png", image)
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]
    np.testing.assert_array_equal(photos.read_photo(tmp_path / "r.png"), image)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(photos, "encode_png", fail)
    with pytest.raises(OSError, match="disk full"):
        photos.write_png_atomic(tmp_path / "s.png", image)
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]


def test_pad_to_multiple_reflects_and_crops_back(rng):
    for shape in ((1, 1), (37, 53, 3), (128, 5, 2)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        padded = photos.pad_to_multiple(image, 128)
        assert padded.shape[0] % 128 == 0 and padded.shape[1] % 128 == 0 and padded.shape[2:] == shape[2:]
        np.testing.assert_array_equal(padded[:shape[0], :shape[1]], image)
        if 1 < shape[0] < padded.shape[0]:  # the row below the image mirrors the one above the last
            np.testing.assert_array_equal(padded[shape[0], :shape[1]], image[shape[0] - 2])


class Identity(nn.Module):
    """A 'model' whose restoration is its input: deblur_files must then reproduce every file's pixels."""

    size_multiple = 4

    @nn.compact
    def __call__(self, x):
        return x


def test_deblur_files_keeps_every_form_and_holds_one_image_at_a_time(tmp_path, rng, monkeypatch):
    arrays = write_sample_files(tmp_path / "in", rng)
    identity_workdir(monkeypatch)
    alive, most_alive = [], []
    read = photos.read_photo
    read_with_metadata = photos.read_photo_with_metadata

    def tracked_read(path):
        most_alive.append(sum(ref() is not None for ref in alive))
        photo = read_with_metadata(path)
        alive.append(weakref.ref(photo.pixels))
        return photo

    monkeypatch.setattr(photos, "read_photo_with_metadata", tracked_read)
    written = deblurrer.deblur_files("unused", str(tmp_path / "in"), tmp_path / "out", progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)
    assert len(written) == len(arrays)
    for name, expected in arrays.items():
        result = read(tmp_path / "out" / (name.rsplit(".", 1)[0] + ".png"))
        assert result.dtype == expected.dtype and result.shape == expected.shape, name
        np.testing.assert_array_equal(result, expected, err_msg=name)
    assert max(most_alive) <= 1  # each image is released before the next is read


def test_results_as_tiff_keep_every_form_and_as_jpeg_are_8_bit_without_alpha(tmp_path, rng, monkeypatch):
    arrays = write_sample_files(tmp_path / "in", rng)
    identity_workdir(monkeypatch)
    deblurrer.deblur_files("unused", str(tmp_path / "in"), tmp_path / "tiff", progress=False, fmt="tiff")
    for name, expected in arrays.items():
        np.testing.assert_array_equal(photos.read_photo(tmp_path / "tiff" / (name.rsplit(".", 1)[0] + ".tif")),
                                      expected, err_msg=name)
    sizes = {}
    for quality in (30, 95):
        out = tmp_path / f"jpeg{quality}"
        deblurrer.deblur_files("unused", str(tmp_path / "in"), out, progress=False, fmt="jpeg", quality=quality)
        sizes[quality] = (out / "rgb.jpg").stat().st_size
    for name, expected in arrays.items():
        result = photos.read_photo(tmp_path / "jpeg95" / (name.rsplit(".", 1)[0] + ".jpg"))
        colour = expected[..., :3] if expected.ndim == 3 and expected.shape[-1] >= 3 else expected if \
            expected.ndim == 2 else expected[..., 0]
        assert result.dtype == np.uint8 and result.shape == colour.shape, name
    deep = photos.read_photo(tmp_path / "jpeg95" / "deep_gray.jpg").astype(int)
    assert np.abs(deep - arrays["deep_gray.png"] / 257).mean() < 40  # rounded to 8 bits, then JPEG's loss
    assert sizes[30] < sizes[95]
    with pytest.raises(UserError, match="--format: expected one of"):
        deblurrer.deblur_files("unused", str(tmp_path / "in"), tmp_path / "x", progress=False, fmt="webp")
    with pytest.raises(UserError, match="--quality 100: expected a JPEG quality from 1 to 95"):
        deblurrer.deblur_files("unused", str(tmp_path / "in"), tmp_path / "x", progress=False, quality=100)


def identity_workdir(monkeypatch):
    """Makes ``deblur_files`` restore with the ``Identity`` model, whatever workdir it is given."""
    from jdeblur import workdir as workdirs

    monkeypatch.setattr(workdirs, "load_config", lambda workdir: {})
    monkeypatch.setattr(workdirs, "choose_step", lambda workdir, which: 7)
    monkeypatch.setattr(workdirs, "load_trained", lambda workdir, which: ({}, Identity(), {}, 7))


def test_deblur_files_writes_cmyk_and_sideways_photos_upright_in_rgb_with_their_metadata(tmp_path, monkeypatch):
    """Defects: a CMYK JPEG came out RGBA (K as alpha); an Orientation=6 photo came out sideways, its tags lost."""
    from PIL import ImageCms

    identity_workdir(monkeypatch)
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    (tmp_path / "in").mkdir()
    shown = smooth_rgb(40, 30)
    PIL.Image.fromarray(smooth_rgb()).convert("CMYK").save(tmp_path / "in" / "print.jpg", quality=95)
    PIL.Image.fromarray(np.ascontiguousarray(np.rot90(shown))).save(
        tmp_path / "in" / "phone.jpg", exif=exif_with(6), icc_profile=profile, quality=95)
    deep = np.random.default_rng(0).integers(0, 65536, (30, 40, 3), dtype=np.uint16)  # 16-bit: jdeblur.png writes it
    (tmp_path / "in" / "deep.png").write_bytes(encode_png(deep, icc_profile=profile, exif=exif_with(3).tobytes()))
    deblurrer.deblur_files("unused", str(tmp_path / "in"), tmp_path / "out", progress=False)
    with PIL.Image.open(tmp_path / "out" / "print.png") as result:
        assert result.mode == "RGB" and np.abs(np.asarray(result).astype(int) - smooth_rgb()).max() <= 6
    with PIL.Image.open(tmp_path / "out" / "phone.png") as result:
        assert result.size == (30, 40) and np.abs(np.asarray(result).astype(int) - shown).max() <= 6
        assert result.info["icc_profile"] == profile and dict(result.getexif()) == {0x010F: "Maker", 0x0112: 1}
    with PIL.Image.open(tmp_path / "out" / "deep.png") as result:
        assert result.info["icc_profile"] == profile and dict(result.getexif()) == {0x010F: "Maker", 0x0112: 1}
    np.testing.assert_array_equal(photos.read_photo(tmp_path / "out" / "deep.png"), deep[::-1, ::-1])


def test_skip_existing_finishes_an_interrupted_folder(tmp_path, rng, monkeypatch, capsys):
    identity_workdir(monkeypatch)
    arrays = write_sample_files(tmp_path / "in", rng)
    out = tmp_path / "out"
    out.mkdir()
    (out / "rgb.png").write_bytes(b"a result of the interrupted run")
    (out / "gray.png.x1y2z3.tmp").write_bytes(b"what the kill left")
    with pytest.raises(photos.PhotoError, match="1 result.* already exist .*--skip-existing"):
        deblurrer.deblur_files("unused", str(tmp_path / "in"), out, progress=False)
    with pytest.raises(photos.PhotoError, match="--overwrite and --skip-existing"):
        deblurrer.deblur_files("unused", str(tmp_path / "in"), out, progress=False, overwrite=True, skip_existing=True)
    written = deblurrer.deblur_files("unused", str(tmp_path / "in"), out, progress=False, skip_existing=True)
    assert len(written) == len(arrays) - 1 and out / "rgb.png" not in written
    assert (out / "rgb.png").read_bytes() == b"a result of the interrupted run"
    assert f"{len(arrays) - 1} image(s) deblurred" in capsys.readouterr().out
    np.testing.assert_array_equal(photos.read_photo(out / "gray.png"), arrays["gray.png"])
    assert deblurrer.deblur_files("unused", str(tmp_path / "in"), out, progress=False, skip_existing=True) == []
    assert "nothing to deblur" in capsys.readouterr().out


def test_read_photo_refuses_an_image_too_large_for_memory_before_decoding_it(tmp_path):
    import tifffile

    side = 15000  # 225 Mpixel, over MAX_PIXELS: 675 MB as 8-bit RGB, 2.7 GB as float32
    (tmp_path / "huge.png").write_bytes(declared_png(side, side, 8, 3))  # Pillow's own limit
    (tmp_path / "huge16.png").write_bytes(declared_png(side, side, 16, 4))  # our decoder: the header check
    tifffile.imwrite(tmp_path / "huge.tif", shape=(side, side), dtype=np.uint8)  # sparse: no pixels written
    for name in ("huge.png", "huge16.png", "huge.tif"):
        with pytest.raises(photos.PhotoError, match="too large to deblur in memory") as info:
            photos.read_photo(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
        assert f"at most {photos.MAX_PIXELS} pixels" in str(info.value)
    assert photos.MAX_PIXELS < side * side


def test_check_tiling_refuses_a_tile_over_the_pixel_budget():
    photos.check_tiling(4, tile=32, max_pixels=32 * 32, overlap=8)
    with pytest.raises(photos.PhotoError, match=r"--tile 33: .* budget of --max-pixels 1024.* at most 32"):
        photos.check_tiling(4, tile=33, max_pixels=32 * 32, overlap=8)
