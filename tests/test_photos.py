"""A user's photo files: discovery, reading as stored, safe writing, the PNG codec, and deblur_files itself."""
import struct
import weakref
import zlib

import flax.linen as nn
import imageio.v3 as iio
import numpy as np
import pytest

from jdeblur import photos


def reference_png(image: np.ndarray, filters) -> bytes:
    """A PNG encoded by the book, byte by byte (PNG specification section 9), row ``y`` with ``filters[y]``."""
    pixels = image[..., None] if image.ndim == 2 else image
    height, width, channels = pixels.shape
    step = channels * pixels.dtype.itemsize  # bytes per pixel: the distance to the 'left' byte
    rows = [pixels[y].astype(pixels.dtype.newbyteorder(">")).tobytes() for y in range(height)]
    data, previous = bytearray(), bytes(len(rows[0]))
    for row, kind in zip(rows, filters):
        data.append(kind)
        for i, value in enumerate(row):
            a = row[i - step] if i >= step else 0
            b = previous[i]
            c = previous[i - step] if i >= step else 0
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            data.append((value - [0, a, b, (a + b) // 2, paeth][kind]) % 256)
        previous = row

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 8 * pixels.dtype.itemsize, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(data)))
            + chunk(b"IEND", b""))


SHAPES = [(1, 1), (5, 7), (4, 9, 2), (6, 5, 3), (3, 8, 4)]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_decode_png_equals_a_reference_encoder_with_every_filter(rng, dtype):
    for shape in SHAPES:
        image = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
        filters = rng.integers(0, 5, shape[0])
        decoded = photos.decode_png(reference_png(image, filters))
        assert decoded.dtype == dtype and decoded.shape == image.shape
        np.testing.assert_array_equal(decoded, image)


def test_encode_png_is_read_back_exactly_by_pillow_and_by_decode_png(rng):
    # Pillow reads 8-bit images of every colour type and 16-bit gray exactly (not 16-bit colour).
    for shape in SHAPES:
        for dtype in (np.uint8, np.uint16):
            image = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
            data = photos.encode_png(image)
            np.testing.assert_array_equal(photos.decode_png(data), image)
            if dtype == np.uint8 or len(shape) == 2:
                np.testing.assert_array_equal(iio.imread(data, plugin="pillow"), image)


def test_decode_png_rejects_truncated_and_corrupt_files(rng):
    data = photos.encode_png(rng.integers(0, 65536, (8, 8, 3)).astype(np.uint16))
    with pytest.raises(ValueError, match="truncated"):
        photos.decode_png(data[:len(data) // 2])
    corrupt = bytearray(data)
    corrupt[60] ^= 0xFF  # inside the IDAT chunk
    with pytest.raises(ValueError, match="CRC"):
        photos.decode_png(bytes(corrupt))
    with pytest.raises(ValueError, match="not a PNG"):
        photos.decode_png(b"GIF89a" + data)


def write_sample_files(folder, rng) -> dict[str, np.ndarray]:
    """Image files of every form a photo folder may hold (PNG, JPEG, TIFF; gray, gray+alpha, RGB, RGBA;
    8 and 16 bits; odd sizes, 1x1); returns the pixels each decodes to."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "rgb.png": rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),
        "gray.png": rng.integers(0, 256, (40, 31), dtype=np.uint8),
        "rgba.png": rng.integers(0, 256, (29, 45, 4), dtype=np.uint8),
        "gray_alpha.png": rng.integers(0, 256, (33, 20, 2), dtype=np.uint8),
        "deep_gray.png": rng.integers(0, 65536, (26, 38), dtype=np.uint16),
        "dot.png": rng.integers(0, 256, (1, 1, 3), dtype=np.uint8),
    }
    for name, array in arrays.items():
        iio.imwrite(folder / name, array, extension=".png", plugin="pillow")
    arrays["deep_rgba.png"] = rng.integers(0, 65536, (21, 17, 4), dtype=np.uint16)
    (folder / "deep_rgba.png").write_bytes(photos.encode_png(arrays["deep_rgba.png"]))  # Pillow cannot
    arrays["deep_rgb.tif"] = rng.integers(0, 65536, (19, 23, 3), dtype=np.uint16)
    iio.imwrite(folder / "deep_rgb.tif", arrays["deep_rgb.tif"], plugin="tifffile")
    for name, shape in (("photo.jpg", (48, 64, 3)), ("gray_photo.jpeg", (30, 41))):
        iio.imwrite(folder / name, rng.integers(0, 256, shape, dtype=np.uint8), extension=".jpg", plugin="pillow")
        arrays[name] = iio.imread(folder / name, plugin="pillow")  # JPEG is lossy: what it decodes to
    return arrays


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
    deep = photos.encode_png(rng.integers(0, 65536, (16, 16, 3), dtype=np.uint16))
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
    from jdeblur import workdir as workdirs

    arrays = write_sample_files(tmp_path / "in", rng)
    monkeypatch.setattr(workdirs, "load_config", lambda workdir: {})
    monkeypatch.setattr(workdirs, "choose_step", lambda workdir, which: 7)
    monkeypatch.setattr(workdirs, "load_trained", lambda workdir, which: ({}, Identity(), {}, 7))
    alive, most_alive = [], []
    read = photos.read_photo

    def tracked_read(path):
        most_alive.append(sum(ref() is not None for ref in alive))
        image = read(path)
        alive.append(weakref.ref(image))
        return image

    monkeypatch.setattr(photos, "read_photo", tracked_read)
    written = photos.deblur_files("unused", str(tmp_path / "in"), tmp_path / "out", progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)
    assert len(written) == len(arrays)
    for name, expected in arrays.items():
        result = read(tmp_path / "out" / (name.rsplit(".", 1)[0] + ".png"))
        assert result.dtype == expected.dtype and result.shape == expected.shape, name
        np.testing.assert_array_equal(result, expected, err_msg=name)
    assert max(most_alive) <= 1  # each image is released before the next is read


def declared_png(width, height, depth, channels) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` but whose pixel data is a few bytes."""
    header = struct.pack(">IIBBBBB", width, height, depth, {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, 0)
    chunks = [(b"IHDR", header), (b"IDAT", zlib.compress(bytes(64))), (b"IEND", b"")]
    return photos.PNG_SIGNATURE + b"".join(
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        for kind, body in chunks)


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
