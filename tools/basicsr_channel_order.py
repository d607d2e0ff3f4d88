#!/usr/bin/env python
"""How far BasicSR's Y-channel PSNR moves when it is given RGB arrays instead of the BGR its pipeline gives it.

BasicSR's ``to_y_channel`` calls ``bgr2ycbcr``: given RGB, red and blue swap weights. Measured
with NAFNet's fork of BasicSR (imported from a checkout by path, as tools/make_nafnet_fixture.py
does) on scikit-image's photographs, blurred and noised:

    /work/venv-torch/bin/python tools/basicsr_channel_order.py --nafnet /work/ext/NAFNet
"""
import argparse
import pathlib

import numpy as np
import scipy.ndimage
from make_nafnet_fixture import import_official
from skimage import data

IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field")
DEGRADATIONS = ((1.0, 2.0), (2.0, 5.0), (3.0, 0.0))  # Gaussian blur sigma, noise sigma (grey levels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nafnet", type=pathlib.Path, required=True, help="checkout of megvii-research/NAFNet")
    metrics = import_official(parser.parse_args().nafnet, "basicsr.metrics.psnr_ssim")
    rng = np.random.default_rng(0)
    gaps = []
    for name in IMAGES:
        sharp = getattr(data, name)().astype(np.float64)
        for blur, noise in DEGRADATIONS:
            degraded = scipy.ndimage.gaussian_filter(sharp, (blur, blur, 0)) + rng.normal(0, noise, sharp.shape)
            pred, target = np.round(np.clip(degraded, 0, 255)).astype(np.uint8), sharp.astype(np.uint8)
            bgr = metrics.calculate_psnr(pred[..., ::-1], target[..., ::-1], 0, test_y_channel=True)
            rgb = metrics.calculate_psnr(pred, target, 0, test_y_channel=True)
            gaps.append(rgb - bgr)
            print(f"{name:18s} blur {blur:.0f} noise {noise:.0f}: BGR {bgr:.3f} dB, RGB {rgb:.3f} dB "
                  f"({rgb - bgr:+.3f})")
    print(f"largest difference: {max(map(abs, gaps)):.3f} dB")


if __name__ == "__main__":
    main()
