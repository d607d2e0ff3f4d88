"""Tests of the TFDS builders, each on a small fake tree, and of load_dataset."""
import logging

import numpy as np
import pytest

from jdeblur.data.builders import SKIMAGE_TEST, SKIMAGE_TRAIN, DatasetLayoutError, hash_bucket, hash_split
from jdeblur.data.datasets import MemoryCache, load_dataset
from jdeblur.data.paired_builders import gopro_pairs
from tests.data.fake_gopro import make_gopro


def records(source) -> dict[str, dict]:
    """All records of a data source, by name."""
    out = {}
    for i in range(len(source)):
        record = source[i]
        out[record["name"].decode()] = record
    return out


def test_skimage_images_builds_offline_with_fixed_split(tmp_path, capsys, caplog):
    with caplog.at_level(logging.WARNING, logger="absl"):
        train = records(load_dataset("skimage_images", split="train", data_dir=tmp_path))
    printed = capsys.readouterr().out
    assert "nothing is downloaded" in printed and "Downloading" not in printed
    # TFDS's warning about the version folder it is building itself is not shown to the user.
    assert not [r for r in caplog.records if "Variant folder" in r.getMessage()]
    test = records(load_dataset("skimage_images", split="test", data_dir=tmp_path))
    assert set(train) == set(SKIMAGE_TRAIN) and set(test) == set(SKIMAGE_TEST)
    assert not set(train) & set(test)
    import skimage.data
    np.testing.assert_array_equal(test["chelsea"]["sharp"], skimage.data.chelsea())
    camera = test["camera"]["sharp"]
    assert camera.dtype == np.uint8 and camera.shape == (512, 512, 3)
    np.testing.assert_array_equal(camera, np.stack([skimage.data.camera()] * 3, axis=-1))


def test_image_folder_train_test_subfolders(tmp_path, write_image):
    src = tmp_path / "photos"
    written = {f"train/{n}": write_image(src / "train" / n) for n in ["a.png", "sub/b.png"]}
    written["test/c.png"] = write_image(src / "test" / "c.png", shape=(30, 20), dtype=np.uint16)
    data = tmp_path / "data"
    train = records(load_dataset("image_folder", split="train", data_dir=data, manual_dir=src))
    test = records(load_dataset("image_folder", split="test", data_dir=data, manual_dir=src))
    assert sorted(train) == ["train/a.png", "train/sub/b.png"] and list(test) == ["test/c.png"]
    np.testing.assert_array_equal(train["train/sub/b.png"]["sharp"], written["train/sub/b.png"])
    gray16 = written["test/c.png"]
    np.testing.assert_array_equal(test["test/c.png"]["sharp"],
                                  np.repeat(np.round(gray16 / 257.0).astype(np.uint8)[..., None], 3, axis=-1))


def test_image_folder_hash_split_and_sources_do_not_collide(tmp_path, write_image):
    names = [f"img{i:02d}.png" for i in range(12)]
    for folder in ("one", "two"):
        for name in names:
            write_image(tmp_path / folder / name, shape=(8, 8, 3))
    data = tmp_path / "data"
    split = {s: sorted(records(load_dataset("image_folder", split=s, data_dir=data, manual_dir=tmp_path / "one",
                                            config={"test_percent": 25})))
             for s in ("train", "test")}
    expected = hash_split(names, 25)
    assert split == {"train": expected["train"], "test": expected["test"]}
    assert all(hash_bucket(n) < 25 for n in split["test"]) and split["test"]
    # Another folder with the same file names is another dataset, not the first one reused.
    other = load_dataset("image_folder", split="train", data_dir=data, manual_dir=tmp_path / "two")
    first = records(load_dataset("image_folder", split="train", data_dir=data, manual_dir=tmp_path / "one"))
    name = sorted(records(other))[0]
    assert not np.array_equal(records(other)[name]["sharp"], first.get(name, {"sharp": None})["sharp"])
    assert len({p.name for p in (data / "image_folder").iterdir()}) == 3  # one(25%), one(10%), two(10%)


def test_hash_split_sends_one_image_to_test_when_the_rule_gives_none():
    names = [n for n in (f"f{i}.png" for i in range(50)) if hash_bucket(n) >= 5][:3]
    split = hash_split(names, 5)
    assert split["test"] == [min(names, key=hash_bucket)]
    assert sorted(split["train"] + split["test"]) == sorted(names)
    assert hash_split(names, 0) == {"train": names, "test": []}
    assert sorted(hash_split(names, 100)["test"]) == sorted(names)


def test_folder_builders_layout_errors(tmp_path, write_image):
    with pytest.raises(DatasetLayoutError, match="Expected layout"):
        load_dataset("image_folder", split="train", data_dir=tmp_path / "d", manual_dir=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="no image files"):
        load_dataset("image_folder", split="train", data_dir=tmp_path / "d", manual_dir=tmp_path / "empty")
    with pytest.raises(DatasetLayoutError, match="manual_dir"):
        load_dataset("image_folder", split="train", data_dir=tmp_path / "d")
    with pytest.raises(ValueError, match="unknown options"):
        load_dataset("image_folder", split="train", data_dir=tmp_path / "d", manual_dir=tmp_path,
                     config={"test_list": "x.txt"})
    with pytest.raises(ValueError, match="name"):
        load_dataset("imagefolder", split="train")
    write_image(tmp_path / "only_train" / "train" / "a.png")
    with pytest.raises(ValueError, match="has splits"):
        load_dataset("image_folder", split="test", data_dir=tmp_path / "d", manual_dir=tmp_path / "only_train")


def test_gopro_configs(tmp_path, write_image):
    tree = make_gopro(tmp_path / "manual", write_image)
    for config in ("blur", "blur_gamma"):
        for split in ("train", "test"):
            got = records(load_dataset("gopro", split=split, data_dir=tmp_path / "data",
                                       manual_dir=tmp_path / "manual", config=config))
            assert sorted(got) == sorted(name for s, name in tree if s == split)
            for name, record in got.items():
                np.testing.assert_array_equal(record["blurred"], tree[(split, name)][config])
                np.testing.assert_array_equal(record["sharp"], tree[(split, name)]["sharp"])


def test_gopro_layout_errors(tmp_path, write_image):
    with pytest.raises(DatasetLayoutError, match="GOPRO_Large"):
        load_dataset("gopro", split="train", data_dir=tmp_path / "d1", manual_dir=tmp_path / "missing")
    write_image(tmp_path / "m1" / "train" / "s" / "blur" / "0.png")  # no sharp/, no test/
    with pytest.raises(DatasetLayoutError, match="lacks blur/ or sharp/"):
        load_dataset("gopro", split="train", data_dir=tmp_path / "d2", manual_dir=tmp_path / "m1")
    make_gopro(tmp_path / "m2", write_image)
    write_image(tmp_path / "m2" / "GOPRO_Large" / "test" / "GOPR0384_11_00" / "sharp" / "extra.png")
    with pytest.raises(DatasetLayoutError, match="no counterpart.*extra"):
        load_dataset("gopro", split="train", data_dir=tmp_path / "d3", manual_dir=tmp_path / "m2")
    with pytest.raises(ValueError, match="config"):
        load_dataset("gopro", split="train", data_dir=tmp_path / "d4", manual_dir=tmp_path / "m2", config="gamma")


def test_gopro_pairs_names_the_folder_at_fault_before_any_build(tmp_path, write_image):
    tree = make_gopro(tmp_path / "good", write_image)
    pairs = gopro_pairs(tmp_path / "good", "blur_gamma")
    assert {split: [name for name, _, _ in p] for split, p in pairs.items()} == {
        split: sorted(name for s, name in tree if s == split) for split in ("train", "test")}
    for split, split_pairs in pairs.items():
        for name, blurred, sharp in split_pairs:
            scene, frame = name.split("/")
            assert blurred.parts[-4:] == (split, scene, "blur_gamma", f"{frame}.png")
            assert sharp.parts[-4:] == (split, scene, "sharp", f"{frame}.png")
    (tmp_path / "no_train" / "GOPRO_Large" / "test").mkdir(parents=True)
    (tmp_path / "empty_train" / "train").mkdir(parents=True)
    (tmp_path / "empty_scene" / "train" / "s" / "blur").mkdir(parents=True)
    (tmp_path / "empty_scene" / "train" / "s" / "sharp").mkdir()
    cases = {
        "missing": (tmp_path / "missing", "manual_dir"),
        "no_train": (tmp_path / "no_train" / "GOPRO_Large" / "train", "no folder"),
        "empty_train": (tmp_path / "empty_train" / "train", "no scenes in"),
        "empty_scene": (tmp_path / "empty_scene" / "train" / "s" / "blur", "no image files in"),
    }
    for case, (folder, problem) in cases.items():
        with pytest.raises(DatasetLayoutError) as error:
            gopro_pairs(tmp_path / case)
        first, *layout = str(error.value).splitlines()
        assert problem in first and str(folder) in first, case
        assert layout[0] == "Expected layout:" and "train/<scene>/blur/*.png" in layout[1], case


def test_paired_folder_flat_subfolders_and_list_files(tmp_path, write_image):
    flat = tmp_path / "hide"
    pairs = {n: (write_image(flat / "blur" / f"{n}.png"), write_image(flat / "sharp" / f"{n}.png")) for n in "abc"}
    got = records(load_dataset("paired_folder", split="test", data_dir=tmp_path / "d", manual_dir=flat))
    assert sorted(got) == ["a", "b", "c"]  # flat layout: all test by default
    for n, (blurred, sharp) in pairs.items():
        np.testing.assert_array_equal(got[n]["blurred"], blurred)
        np.testing.assert_array_equal(got[n]["sharp"], sharp)

    nested = tmp_path / "nested"  # train/test with input/target names (Restormer-style test sets)
    for split in ("train", "test"):
        write_image(nested / split / "input" / "x.jpg")
        write_image(nested / split / "target" / "x.png")
    got = records(load_dataset("paired_folder", split="train", data_dir=tmp_path / "d", manual_dir=nested))
    assert list(got) == ["train/x"]

    real = tmp_path / "realblur"  # RealBlur: list files of "gt blur" lines, names repeating across scenes
    lines = []
    for scene in ("scene001", "scene002"):
        gt, blur = f"RB/{scene}/gt/gt_1.png", f"RB/{scene}/blur/blur_1.png"
        write_image(real / gt)
        write_image(real / blur)
        lines.append(f"{gt} {blur}")
    (real / "train_list.txt").write_text(lines[0] + "\n\n")
    (real / "test_list.txt").write_text(lines[1] + " extra_column\n")
    options = {"train_list": "train_list.txt", "test_list": "test_list.txt"}
    for split, scene in (("train", "scene001"), ("test", "scene002")):
        got = records(load_dataset("paired_folder", split=split, data_dir=tmp_path / "d", manual_dir=real,
                                   config=options))
        assert list(got) == [f"RB/{scene}/blur/blur_1.png"]


def test_paired_folder_errors(tmp_path, write_image):
    write_image(tmp_path / "p1" / "blur" / "a.png")
    write_image(tmp_path / "p1" / "sharp" / "a.png", shape=(40, 40, 3))
    with pytest.raises(ValueError, match="sizes differ"):
        load_dataset("paired_folder", split="test", data_dir=tmp_path / "d1", manual_dir=tmp_path / "p1")
    write_image(tmp_path / "p2" / "blurry" / "a.png")
    with pytest.raises(DatasetLayoutError, match="blur\\|blurred\\|input"):
        load_dataset("paired_folder", split="test", data_dir=tmp_path / "d2", manual_dir=tmp_path / "p2")
    (tmp_path / "p2" / "list.txt").write_text("only_one_column.png\n")
    with pytest.raises(DatasetLayoutError, match="list.txt:1"):
        load_dataset("paired_folder", split="test", data_dir=tmp_path / "d3", manual_dir=tmp_path / "p2",
                     config={"test_list": "list.txt"})


def test_memory_cache_keeps_records_within_budget():
    reads = []

    class Source:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            reads.append(i)
            return {"sharp": np.full((10,), i, np.uint8), "name": b"x"}

    cache = MemoryCache(Source(), max_bytes=20)  # room for two records of 10 bytes
    for i in [0, 1, 2, 0, 1, 2]:
        assert cache[i]["sharp"][0] == i
    assert reads == [0, 1, 2, 2] and len(cache) == 3
