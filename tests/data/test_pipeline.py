"""Tests of the grain input pipeline: determinism, exact resume, process shards, device prefetch."""
import json

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jdeblur.data.pipeline import (
    DevicePrefetchIterator,
    EpochPermutations,
    PhasedBatches,
    default_data_config,
    make_batches,
    make_train_dataset,
    make_train_loader,
    patch_phases,
)


def config(**overrides):
    cfg = default_data_config()
    cfg.patch_size = 8
    cfg.read_threads = 0
    for key, value in overrides.items():
        node, *path = key.split(".")
        target = cfg[node] if path else cfg
        target[path[0] if path else node] = value
    return cfg


def id_source(n, shape=(20, 20, 3)):
    """Records whose pixels all equal their index: a patch names the record it came from."""
    return [{"sharp": np.full(shape, i, np.uint8), "name": str(i).encode()} for i in range(n)]


def random_source(rng, n=6):
    return [{"sharp": rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8), "name": b"x"} for i in range(n)]


def take(iterator, count):
    return [next(iterator) for _ in range(count)]


def assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(np.asarray(x[key]), np.asarray(y[key]))


AUGMENT_ALL = {"augment.scale_range": (0.7, 1.3), "augment.brightness": 0.1, "augment.color": 0.05}


def test_same_seed_same_batches_other_seed_others_any_thread_count(rng):
    source = random_source(rng)
    run = lambda seed, threads=0: take(iter(make_train_dataset(
        source, ("sharp",), config(read_threads=threads, **AUGMENT_ALL), seed=seed, global_batch=4,
        process_index=0, process_count=1)), 5)
    first = run(0)
    assert first[0]["sharp"].shape == (4, 8, 8, 3) and first[0]["sharp"].dtype == np.uint8
    assert_batches_equal(first, run(0))
    assert_batches_equal(first, run(0, threads=3))
    other = run(1)
    assert not np.array_equal(first[0]["sharp"], other[0]["sharp"])


def test_restored_state_gives_the_batches_that_would_have_come(rng):
    source = random_source(rng)
    cfg = config(read_threads=2, **AUGMENT_ALL)
    make = lambda: iter(make_train_dataset(source, ("sharp",), cfg, seed=7, global_batch=4,
                                           process_index=0, process_count=1))
    uninterrupted = make()
    take(uninterrupted, 3)
    state = json.loads(json.dumps(uninterrupted.get_state()))  # as a checkpoint would store it
    expected = take(uninterrupted, 4)
    resumed = make()
    resumed.set_state(state)
    assert_batches_equal(take(resumed, 4), expected)


def test_process_shares_are_disjoint_cover_the_epoch_and_form_the_global_batch(rng):
    def shares(source, cfg, count):
        return [take(iter(make_train_dataset(source, ("sharp",), cfg, seed=3, global_batch=4, process_index=p,
                                             process_count=count)), 3) for p in range(count)]

    # Ids survive crops, turns and resampling (not the jitter): 3 global batches of 4 = one epoch of 12.
    halves = shares(id_source(12), config(**{"augment.scale_range": (0.7, 1.3)}), 2)
    ids = [{int(x) for b in half for x in b["sharp"][:, 0, 0, 0]} for half in halves]
    assert not ids[0] & ids[1] and ids[0] | ids[1] == set(range(12))
    # The global batch, augmentation included, does not depend on the number of processes.
    source, cfg = random_source(rng), config(**AUGMENT_ALL)
    halves, (single,) = shares(source, cfg, 2), shares(source, cfg, 1)
    joined = [{"sharp": np.concatenate([halves[0][i]["sharp"], halves[1][i]["sharp"]])} for i in range(3)]
    assert_batches_equal(joined, single)
    with pytest.raises(ValueError, match="multiple of process_count"):
        make_train_dataset(source, ("sharp",), cfg, seed=0, global_batch=3, process_index=0, process_count=2)


def test_one_pass_without_repeat_in_whole_global_batches():
    source = id_source(10)
    cfg = config(repeat=False)
    shares = [list(make_train_dataset(source, ("sharp",), cfg, seed=0, global_batch=4, process_index=p,
                                      process_count=2)) for p in range(2)]
    assert [len(s) for s in shares] == [2, 2]  # 10 records -> 2 whole global batches, as many steps each
    ids = [int(x) for s in shares for b in s for x in b["sharp"][:, 0, 0, 0]]
    assert len(set(ids)) == 8


def test_epoch_permutations():
    order = EpochPermutations(5, seed=1)
    epochs = [[order[e * 5 + i] for i in range(5)] for e in range(3)]
    assert all(sorted(e) == list(range(5)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1  # reshuffled each epoch
    assert [EpochPermutations(5, seed=1, shuffle=False)[i] for i in range(7)] == [0, 1, 2, 3, 4, 0, 1]
    assert len(EpochPermutations(5, seed=1, epochs=2)) == 10


def test_margin_widens_the_patch(rng):
    batch = next(iter(make_train_dataset(random_source(rng), ("sharp",), config(), seed=0, global_batch=2,
                                         margin=3, process_index=0, process_count=1)))
    assert batch["sharp"].shape == (2, 14, 14, 3)


def test_loader_of_built_pairs_keeps_them_aligned(tmp_path, rng, write_image):
    lookup = rng.permutation(256).astype(np.uint8)  # blurred = f(sharp) pixelwise
    for i in range(4):
        sharp = write_image(tmp_path / "pairs" / "sharp" / f"{i}.png", shape=(30 + i, 26, 3))
        write_image(tmp_path / "pairs" / "blur" / f"{i}.png", image=lookup[sharp])
    cfg = config(name="paired_folder", data_dir=str(tmp_path / "data"), manual_dir=str(tmp_path / "pairs"),
                 train_split="test", read_threads=2)
    for batch in take(make_train_loader(cfg, seed=0, global_batch=4, process_index=0, process_count=1), 3):
        assert set(batch) == {"blurred", "sharp"} and batch["sharp"].shape == (4, 8, 8, 3)
        np.testing.assert_array_equal(batch["blurred"], lookup[batch["sharp"]])


def shard_over(mesh):
    """Places a host batch on ``mesh``'s devices, split over ``data`` (as the trainer does)."""
    return lambda batch: jax.device_put(batch, NamedSharding(mesh, P("data")))


def test_device_prefetch_shards_over_data_and_resumes(rng):
    mesh = jax.make_mesh((8,), ("data",), devices=jax.devices()[:8])
    source = random_source(rng)
    make = lambda: iter(make_train_dataset(source, ("sharp",), config(), seed=2, global_batch=8,
                                           process_index=0, process_count=1))
    host = take(make(), 4)
    prefetched = DevicePrefetchIterator(make(), shard_over(mesh), 2)
    first = take(prefetched, 2)
    assert isinstance(first[0]["sharp"], jax.Array) and first[0]["sharp"].sharding.spec == P("data")
    assert len(first[0]["sharp"].sharding.device_set) == 8
    state = json.loads(json.dumps(prefetched.get_state()))  # taken with 2 more batches in flight
    resumed = DevicePrefetchIterator(make(), shard_over(mesh), 2)
    resumed.set_state(state)
    assert_batches_equal(first + take(resumed, 2), host)


def test_phased_batches_switch_at_their_steps_and_resume_anywhere(rng):
    source = random_source(rng)

    def open_phase(k):
        return iter(make_train_dataset(source, ("sharp",), config(patch_size=(4, 8, 12)[k]), seed=k, global_batch=2,
                                       process_index=0, process_count=1))

    def phased():
        return PhasedBatches(open_phase, [0, 3, 5])

    whole, states = phased(), []
    batches = []
    for _ in range(8):
        batches.append(next(whole)["sharp"])
        states.append(json.loads(json.dumps(whole.get_state())))
    assert [b.shape[1] for b in batches] == [4, 4, 4, 8, 8, 12, 12, 12]
    np.testing.assert_array_equal(batches[5], next(open_phase(2))["sharp"])  # a phase starts afresh
    for at in (0, 2, 3, 4, 6):  # inside phases and at both boundaries
        resumed = phased()
        resumed.set_state(states[at])
        for expected in batches[at + 1:]:
            np.testing.assert_array_equal(next(resumed)["sharp"], expected)
    with pytest.raises(ValueError, match="saved without a patch schedule"):
        phased().set_state(open_phase(0).get_state())


def test_phased_batches_close_each_finished_phase_and_the_current_one(rng):
    source = random_source(rng)
    opened = []

    def open_phase(k):
        opened.append(iter(make_train_dataset(source, ("sharp",), config(patch_size=4), seed=k, global_batch=2,
                                              process_index=0, process_count=1)))
        return opened[-1]

    batches = PhasedBatches(open_phase, [0, 2, 3])
    for _ in range(4):  # phase 2 from the fourth batch
        next(batches)
    with pytest.raises(ValueError, match="closed"):  # grain refuses a closed iterator
        next(opened[0])
    with pytest.raises(ValueError, match="closed"):
        next(opened[1])
    mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    prefetched = DevicePrefetchIterator(batches, shard_over(mesh), 2)
    next(prefetched)
    prefetched.close()
    with pytest.raises(ValueError, match="closed"):
        next(opened[2])


def test_patch_schedule_is_read_and_checked():
    assert patch_phases(config(patch_size=32)) == [(0, 32)]
    assert patch_phases(config(patch_size=32, patch_schedule=((100, 64), (200, 96)))) == [(0, 32), (100, 64), (200, 96)]
    for bad, message in [(((0, 64),), "increasing steps > 0"), (((9, 64), (5, 8)), "increasing steps > 0"),
                         (((9, 64.0),), "pairs of integers"), ((9,), "pairs of integers"),
                         (((9, 0),), "patch size: expected a finite value > 0")]:
        with pytest.raises(ValueError, match=message):
            patch_phases(config(patch_schedule=bad))


def test_make_batches_follows_the_schedule(tmp_path, write_image):
    for i in range(3):
        write_image(tmp_path / "photos" / f"{i}.png", shape=(40, 44, 3))
    cfg = config(name="image_folder", data_dir=str(tmp_path / "data"), manual_dir=str(tmp_path / "photos"),
                 builder_config={"test_percent": 0}, patch_size=8, patch_schedule=((2, 16),))
    batches = make_batches(cfg, seed=0, global_batch=2, margin=1)
    assert [next(batches)["sharp"].shape[1] for _ in range(4)] == [10, 10, 18, 18]
