"""Start-up: seconds from the command to the first training step, compilation cache off, cold and warm.

    python benchmarks/startup.py [--repeats 3] [--config experiments/unet.py]
                                 [--min-compile-time 1.0]

Runs ``python launch.py train --config CONFIG --workdir FRESH --config.train.steps=1`` and stops it
when ``metrics.jsonl`` gets its first record: step 1 has run and its metrics were fetched. What it
times is everything a user waits for before training starts: imports, config validation, the data
pipeline, the evaluation set and its Wiener / Richardson-Lucy baselines, model initialisation, the
step's compilation and the step itself.

Three settings per round, interleaved over ``--repeats`` rounds (medians printed): ``off`` (no
persistent cache), ``cold`` (an empty cache directory, which the run fills) and ``warm`` (the same
directory, in a new process). The cache is set through the environment, as ``launch.py`` sets it
with ``jdeblur.compilation_cache.enable``: ``JDEBLUR_CACHE_DIR`` / ``JDEBLUR_COMPILATION_CACHE=0``,
and JAX's own ``JAX_COMPILATION_CACHE_DIR`` and ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``
(compilations faster than ``--min-compile-time`` seconds are not cached).
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from jdeblur import compilation_cache  # noqa: E402

SETTINGS = ("off", "cold", "warm")
POLL_S = 0.05


def environment(setting: str, cache_dir: pathlib.Path, min_compile_time: float) -> dict:
    jax_cache_vars = ("JAX_COMPILATION_CACHE", "JAX_PERSISTENT")
    env = {k: v for k, v in os.environ.items() if not k.startswith(jax_cache_vars)}
    env.pop("JAX_NUM_CPU_DEVICES", None)
    if setting == "off":
        env[compilation_cache.SWITCH_ENV] = "0"
        return env
    env.pop(compilation_cache.SWITCH_ENV, None)
    env.update({compilation_cache.DIR_ENV: str(cache_dir), "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
                "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": str(min_compile_time)})
    return env


def seconds_to_first_step(config: str, workdir: pathlib.Path, env: dict, timeout_s: float = 600.0) -> float:
    """Starts a training run and returns the seconds until its first metrics record, then stops it."""
    metrics = workdir / "metrics.jsonl"
    command = [sys.executable, str(REPO / "launch.py"), "train", "--config", config,
               "--workdir", str(workdir), "--config.train.steps=1"]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not (metrics.is_file() and metrics.read_text().strip()):
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(command)} exited with {process.returncode} before its "
                                   f"first step:\n{process.stderr.read().decode()[-2000:]}")
            if time.perf_counter() - start > timeout_s:
                raise TimeoutError(f"no first step after {timeout_s:.0f} s")
            time.sleep(POLL_S)
        return time.perf_counter() - start
    finally:
        process.kill()
        process.wait()


def directory_size(path: pathlib.Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/unet.py")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-compile-time", type=float, default=compilation_cache.MIN_COMPILE_TIME_S)
    args = parser.parse_args()
    times = {s: [] for s in SETTINGS}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        for round_ in range(args.repeats):
            cache_dir = scratch / f"cache{round_}"
            for setting in SETTINGS:
                env = environment(setting, cache_dir, args.min_compile_time)
                seconds = seconds_to_first_step(args.config, scratch / f"run{round_}_{setting}", env)
                times[setting].append(seconds)
                print(f"round {round_ + 1}: {setting:4s} {seconds:6.1f} s", flush=True)
                if setting == "cold":
                    count, size = directory_size(cache_dir)
                    print(f"         cache after the cold run: {count} files, {size / 2**20:.1f} MiB",
                          flush=True)
    medians = {s: statistics.median(t) for s, t in times.items()}
    print(f"\n{args.config}, command to first step, median of {args.repeats} rounds "
          f"(cache entries for compilations >= {args.min_compile_time} s):")
    for setting in SETTINGS:
        runs = ", ".join(f"{t:.1f}" for t in times[setting])
        print(f"  {setting:4s} {medians[setting]:6.1f} s  (runs: {runs})")
    print(f"cold / warm = {medians['cold'] / medians['warm']:.2f}x; "
          f"off / warm = {medians['off'] / medians['warm']:.2f}x")


if __name__ == "__main__":
    main()
