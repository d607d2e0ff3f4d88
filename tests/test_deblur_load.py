"""``launch.py deblur`` over a folder of 200 photos: it finishes, and its memory stays that of 50.

Images of 40-120 pixels a side all pad to one 128x128 program (``photos.COMPILE_MULTIPLE``), so
what could grow with the count is what the loop keeps per image. The peak resident memory comes
from start-up (compiling and loading the model), before any image, so it cannot show a slow
leak; the test also samples the resident memory while the images are restored, and checks that
it does not grow from the 50th result to the last. Holding on to one padded float32 image per
photo would add 150 x 196 kB = 29 MB there (tried: it fails); the tolerance, 16 MB, catches that
with room for allocator noise (measured growth without a leak: under 1 MB).
"""
import os
import pathlib
import re
import subprocess
import sys
import time

import imageio.v3 as iio
import numpy as np
import pytest

from jdeblur.config import REPO

TOLERANCE_KB = 16 * 1024


def deblur_memory(env, workdir, folder, output) -> tuple[int, list[tuple[int, int]]]:
    """Runs ``launch.py deblur`` on ``folder``; returns its peak resident memory (kB) and samples
    ``(results written, resident memory in kB)`` taken every 10 ms while it ran."""
    with open(output.parent / f"{output.name}.log", "w+") as log:
        command = [sys.executable, "launch.py", "deblur", "--workdir", workdir, "--input", folder,
                   "--output", output]
        process = subprocess.Popen(list(map(str, command)), cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        samples = []
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)  # the usage of this child alone
            if pid:
                break
            try:
                rss = int(re.search(r"VmRSS:\s+(\d+) kB", pathlib.Path(f"/proc/{process.pid}/status")
                                    .read_text()).group(1))
                names = os.listdir(output) if output.is_dir() else []
                written = len([n for n in names if not n.startswith(".")])  # not the temporary files
            except (OSError, AttributeError):  # exiting
                continue
            samples.append((written, rss))
            time.sleep(0.01)
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        assert process.returncode == 0, log.read()[-3000:]
    return usage.ru_maxrss, samples  # kB on Linux


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path("/proc/self/status").is_file(), reason="reads /proc (Linux)")
def test_deblur_200_photos_in_the_memory_of_50(env, untrained_run, tmp_path, rng):
    peaks, samples = {}, {}
    for count in (50, 200):
        folder = tmp_path / f"in{count}"
        folder.mkdir()
        for i in range(count):
            height, width = rng.integers(40, 121, 2)
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            iio.imwrite(folder / f"photo{i:03d}.png", image)
        output = tmp_path / f"out{count}"
        peaks[count], samples[count] = deblur_memory(env, untrained_run, folder, output)
        assert sorted(p.name for p in output.iterdir()) == sorted(p.name for p in folder.iterdir())
    # The peak comes from start-up (compilation); the steady state after 50 results must stay flat.
    steady = [rss for written, rss in samples[200] if written >= 50]
    growth = max(steady) - steady[0]
    print(f"peak RSS {peaks[50] / 1024:.1f} MB for 50 photos, {peaks[200] / 1024:.1f} MB for 200; "
          f"resident memory from result 50 to the last {growth / 1024:.1f} MB higher")
    assert len(steady) > 10 and samples[200][-1][0] >= 150  # samples cover the loop
    assert peaks[200] - peaks[50] < TOLERANCE_KB and growth < TOLERANCE_KB, (peaks, growth)
