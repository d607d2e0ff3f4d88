"""The training input pipeline: deterministic, checkpointable grain iterators of augmented patches.

Batches are dicts of uint8 NHWC arrays, ``{'sharp'}`` for synthetic blur or ``{'blurred', 'sharp'}``
for real pairs; the train step makes float32 in [0, 1] on the device (4x less host-to-device
traffic than float32).

Order and sharding. One global stream: the records, permuted anew each epoch from ``seed``, with
each element's augmentation drawn from ``seed`` and its position in the stream. Global batch
``b`` is elements ``[b * G, (b + 1) * G)`` of that stream, and process ``p`` of ``P`` reads the
``p``-th of its ``P`` equal blocks. So the global batch, augmentation included, is the same for
any number of processes (the project's global-batch invariance), the processes' shares are
disjoint, and together they cover each epoch. Each process reads only its own block.

Resume. The iterator's ``get_state()`` is a small JSON-serialisable dict; ``set_state`` on a fresh
iterator of the same config and seed continues with exactly the batches that would have come next.
"""
import collections
import copy
import functools
import sys

import grain
import jax
import ml_collections
import numpy as np
from absl import flags

from jdeblur.checks import check_positive
from jdeblur.data import datasets, dead_leaves
from jdeblur.data.augment import random_patch
from jdeblur.data.datasets import MemoryCache, image_keys, load_dataset
from jdeblur.errors import UserError


def default_data_config() -> ml_collections.ConfigDict:
    """The data section of an experiment config (plain values, so it can be locked and overridden)."""
    config = ml_collections.ConfigDict()
    config.name = "skimage_images"  # One of jdeblur.data.datasets.BUILDERS.
    config.data_dir = None  # Built datasets; None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
    config.manual_dir = None  # The source folder of image_folder, paired_folder, gopro.
    config.builder_config = None  # gopro: 'blur' | 'blur_gamma'; folders: {'test_percent': ..., ...}.
    config.train_split = "train"  # The split patches are cut from (a TFDS split spec, e.g. "train[:6]").
    config.eval_split = "test"  # The split scored during and after training.
    config.patch_size = 128  # Side of the delivered patch (after the margin is cut by a 'valid' blur).
    # Progressive patches: ((step, size), ...) switches to ``size`` from ``step`` on (PhasedBatches).
    config.patch_schedule = ()
    config.shuffle = True  # A new order of the records every epoch (False: their stored order).
    config.repeat = True  # False: one pass over the data (in whole global batches).
    config.augment = ml_collections.ConfigDict()
    config.augment.flips = True  # Random horizontal and vertical flips.
    config.augment.rotations = True  # Random rotations by multiples of 90 degrees.
    config.augment.scale_range = (1.0, 1.0)  # Random zoom factors; (1, 1) is off.
    config.augment.brightness = 0.0  # Max relative brightness change; 0 is off.
    config.augment.color = 0.0  # Max relative change of each channel's gain; 0 is off.
    # Dead-leaves images drawn on the device in place of a share of the training patches.
    config.dead_leaves = dead_leaves.default_config()
    config.cache_mb = 512  # Decoded records kept in memory per process (MemoryCache); 0 is off.
    config.read_threads = 2  # Threads making batches in each process (see benchmarks/input_pipeline.py).
    config.worker_processes = 0  # grain worker processes; 0 keeps everything in threads.
    config.host_prefetch = 4  # Batches made ahead on the host, per process.
    config.device_prefetch = 2  # Batches placed on the devices ahead of the step.
    return config


@functools.lru_cache(maxsize=4)
def epoch_permutation(num_records: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the records in ``epoch`` (cached: every element of an epoch asks for it)."""
    return np.random.default_rng([seed, epoch]).permutation(num_records)


class EpochPermutations:
    """The record index at each position of an endless stream: every epoch a permutation of all.

    Epoch ``e`` is ``np.random.default_rng([seed, e]).permutation(n)`` (or ``range(n)`` without
    shuffling). grain's own ``shuffle`` would do, but its index shuffle costs milliseconds per
    element on small datasets (4.5 ms at 11 records, 0.08 ms at 1000 on this machine, grain
    0.2.18), which would cap the embedded default at a few hundred patches per second.
    """

    def __init__(self, num_records: int, seed: int, *, shuffle: bool = True, epochs: int | None = None):
        self._n, self._seed, self._shuffle, self._epochs = num_records, seed, shuffle, epochs

    def __len__(self) -> int:
        return sys.maxsize if self._epochs is None else self._n * self._epochs

    def __getitem__(self, position: int) -> int:
        if not 0 <= position < len(self):
            raise IndexError(f"position {position} out of range 0..{len(self) - 1}")
        epoch, offset = divmod(position, self._n)
        return int(epoch_permutation(self._n, self._seed, epoch)[offset]) if self._shuffle else offset


class ReadRecord:
    """A grain ``map`` from a record index to the record (a picklable callable for worker processes)."""

    def __init__(self, source):
        self.source = source

    def __call__(self, index: int) -> dict:
        return self.source[index]


def augment_record(record: dict, rng, *, keys: tuple[str, ...], size: int, augment: dict) -> dict:
    """A grain ``random_map``: the record's images ``keys`` cut to one random augmented patch."""
    return random_patch({k: record[k] for k in keys}, rng, size=size, **augment)


def make_train_dataset(source, keys: tuple[str, ...], data_cfg, *, seed: int, global_batch: int,
                       margin: int = 0, process_index: int | None = None,
                       process_count: int | None = None) -> grain.IterDataset:
    """The grain dataset of one process's share of each global batch (see the module docstring).

    Args:
      source: a random-access source of records (``load_dataset``'s, or any sequence of dicts).
      keys: the image entries of a record to deliver.
      data_cfg: ``default_data_config()`` or an override of it.
      seed: the data seed, an integer in [0, 2**32).
      global_batch: images per step over all processes; ``process_count`` must divide it.
      margin: extra pixels on every side of each patch, so that a 'valid' blur with a kernel of
        side ``2 * margin + 1`` gives exactly ``patch_size``: patches are
        ``patch_size + 2 * margin`` wide. Use 0 for real pairs.
      process_index, process_count: this process and the number of processes; default JAX's.
    """
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    check_positive(global_batch, "global_batch")
    check_positive(margin, "margin", allow_zero=True)
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index: expected 0..{process_count - 1}, got {process_index}")
    if global_batch % process_count:
        raise ValueError(f"global_batch={global_batch} must be a multiple of process_count={process_count}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed: expected an integer in [0, 2**32), got {seed}")
    if len(source) == 0:
        raise UserError("source: the dataset split is empty")
    if data_cfg.cache_mb:
        source = MemoryCache(source, data_cfg.cache_mb * 2**20)
    order = EpochPermutations(len(source), seed, shuffle=data_cfg.shuffle, epochs=None if data_cfg.repeat else 1)
    dataset = grain.MapDataset.source(order)
    if not data_cfg.repeat:  # Whole global batches only, so that every process makes the same number of steps.
        dataset = dataset[:len(dataset) // global_batch * global_batch]
    dataset = dataset.map(ReadRecord(source)).seed(seed)
    augment = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in data_cfg.augment.items()}
    dataset = dataset.random_map(functools.partial(
        augment_record, keys=tuple(keys), size=data_cfg.patch_size + 2 * margin, augment=augment))
    local_batch = global_batch // process_count
    dataset = dataset.batch(local_batch, drop_remainder=True)[process_index::process_count]
    read_options = grain.ReadOptions(num_threads=data_cfg.read_threads,
                                     prefetch_buffer_size=max(data_cfg.host_prefetch, data_cfg.read_threads))
    iterable = dataset.to_iter_dataset(read_options)
    if data_cfg.worker_processes:
        # grain 0.2.18's workers read an absl flag and fail unless flags were parsed, which only
        # absl.app does (google/grain#1355, fixed after 0.2.18): let them read the defaults.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=data_cfg.worker_processes))
    return iterable


def make_train_loader(data_cfg, *, seed: int, global_batch: int, margin: int = 0,
                      process_index: int | None = None, process_count: int | None = None):
    """Builds the dataset if needed; returns an iterator of this process's batches.

    The iterator yields ``{'sharp': uint8 (B, S, S, 3)}`` (synthetic blur) or ``{'blurred', 'sharp'}``
    (pairs), with ``B = global_batch / process_count`` and ``S = patch_size + 2 * margin``, and has
    ``get_state()`` (a JSON-serialisable dict), ``set_state(state)`` and ``close()``. See
    ``make_train_dataset`` for the arguments.
    """
    source = load_dataset(data_cfg.name, split=data_cfg.train_split, data_dir=data_cfg.data_dir,
                          manual_dir=data_cfg.manual_dir, config=data_cfg.builder_config)
    dataset = make_train_dataset(source, image_keys(data_cfg.name), data_cfg, seed=seed,
                                 global_batch=global_batch, margin=margin, process_index=process_index,
                                 process_count=process_count)
    return iter(dataset)


class DevicePrefetchIterator:
    """Keeps ``size`` batches on the devices ahead of the consumer; its state is the consumer's.

    ``jax.device_put`` is asynchronous, so the copies of the next batches overlap the current step.
    ``get_state()`` is the wrapped iterator's state just after the last batch *returned* (not the
    ones in flight), so a checkpoint taken between steps resumes exactly.
    """

    def __init__(self, iterator, place, size: int):
        check_positive(size, "size")
        self._iterator, self._place, self._size = iterator, place, size
        self._queue = collections.deque()
        self._state = copy.deepcopy(iterator.get_state())

    def __iter__(self):
        return self

    def __next__(self):
        while len(self._queue) < self._size:
            try:
                batch = next(self._iterator)
            except StopIteration:
                break
            self._queue.append((self._place(batch), copy.deepcopy(self._iterator.get_state())))
        if not self._queue:
            raise StopIteration
        batch, self._state = self._queue.popleft()
        return batch

    def get_state(self) -> dict:
        """The state after the last batch returned (JSON-serialisable)."""
        return copy.deepcopy(self._state)

    def set_state(self, state: dict) -> None:
        """Drops the batches in flight and continues after the batch that ``state`` was taken at."""
        self._queue.clear()
        self._iterator.set_state(state)
        self._state = copy.deepcopy(state)

    def close(self) -> None:
        """Drops the batches in flight and stops the wrapped iterator's reader threads."""
        self._queue.clear()
        self._iterator.close()


def patch_phases(data_cfg) -> list[tuple[int, int]]:
    """``[(first step, patch size), ...]`` of the training phases: ``patch_size`` from step 0, then
    ``patch_schedule``'s sizes from their steps (which must increase)."""
    check_positive(data_cfg.patch_size, "config.data.patch_size")
    phases = [(0, data_cfg.patch_size)]
    for entry in data_cfg.get("patch_schedule", ()):
        if (not isinstance(entry, (tuple, list)) or len(entry) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in entry)):
            raise UserError(f"config.data.patch_schedule: expected (step, patch size) pairs of integers, "
                            f"got {entry!r}")
        step, size = entry
        check_positive(size, "config.data.patch_schedule's patch size")
        if step <= phases[-1][0]:
            raise UserError(f"config.data.patch_schedule: expected increasing steps > 0, "
                            f"got {tuple(data_cfg.patch_schedule)}")
        phases.append((step, size))
    return phases


def check_data_config(data_cfg, *, size_multiple: int) -> None:
    """Raises UserError, naming the field, unless ``config.data`` can feed a model whose inputs
    must be multiples of ``size_multiple``: the dataset (``datasets.check_dataset_config``), the
    patch sizes, the loader's settings and the dead-leaves images. Reads no image."""
    datasets.check_dataset_config(data_cfg)
    for phase, (_, size) in enumerate(patch_phases(data_cfg)):
        if size % size_multiple:
            field = "patch_size" if phase == 0 else "patch_schedule"
            raise UserError(f"config.data.{field}: patch size {size}: expected a multiple of {size_multiple}, "
                            f"the size multiple of config.model")
    for field in ("read_threads", "device_prefetch"):
        check_positive(data_cfg[field], f"config.data.{field}")
    for field in ("cache_mb", "worker_processes", "host_prefetch"):
        check_positive(data_cfg[field], f"config.data.{field}", allow_zero=True)
    dead_leaves.check_dead_leaves_config(data_cfg.dead_leaves, side=data_cfg.patch_size)


class PhasedBatches:
    """Batches of one loader per phase, switching at the phases' first steps (progressive patches).

    Small patches first and larger ones later (Restormer's progressive learning, Zamir et al. 2022)
    buy many cheap steps early and context late. Phase ``k`` reads with seed ``seed + k`` (mod
    2**32) from its first step. The state is ``{'phase', 'step', 'iterator'}``: the batches
    delivered so far and the state of the current phase's loader.
    """

    def __init__(self, open_phase, starts: list[int]):
        self._open, self._starts = open_phase, starts
        self._phase, self._step = 0, 0
        self._iterator = open_phase(0)

    def __iter__(self):
        return self

    def __next__(self):
        if self._phase + 1 < len(self._starts) and self._step >= self._starts[self._phase + 1]:
            self._switch(self._phase + 1)
        batch = next(self._iterator)
        self._step += 1
        return batch

    def get_state(self) -> dict:
        return {"phase": self._phase, "step": self._step, "iterator": self._iterator.get_state()}

    def set_state(self, state: dict) -> None:
        if state.get("phase") is None or "iterator" not in state:
            raise UserError("data state: expected the state of phased batches (config.data.patch_schedule); "
                             "the checkpoint was saved without a patch schedule")
        if state["phase"] != self._phase:
            self._switch(state["phase"])
        self._iterator.set_state(state["iterator"])
        self._step = state["step"]

    def close(self) -> None:
        self._iterator.close()

    def _switch(self, phase: int) -> None:
        # Closed, not dropped: a dropped loader's reader threads run on until it is collected.
        self._iterator.close()
        self._phase, self._iterator = phase, self._open(phase)


def make_batches(data_cfg, *, seed: int, global_batch: int, margin: int = 0):
    """The training batches: ``make_train_loader``'s, or with ``patch_schedule`` a ``PhasedBatches``."""
    phases = patch_phases(data_cfg)
    if len(phases) == 1:
        return make_train_loader(data_cfg, seed=seed, global_batch=global_batch, margin=margin)

    def open_phase(k):
        phase_cfg = ml_collections.ConfigDict(data_cfg.to_dict())
        phase_cfg.patch_size = phases[k][1]
        return make_train_loader(phase_cfg, seed=(seed + k) % 2**32, global_batch=global_batch, margin=margin)

    return PhasedBatches(open_phase, [start for start, _ in phases])
