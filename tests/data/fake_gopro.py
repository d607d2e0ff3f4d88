"""A fake GOPRO_Large folder tree of random frames, as the GoPro builder expects it."""


def make_gopro(root, write_image, scenes=(("train", "GOPR0372_07_00", 2), ("test", "GOPR0384_11_00", 1))):
    """A fake GOPRO_Large tree; returns {(split, 'scene/frame'): {side: array}}."""
    tree = {}
    for split, scene, frames in scenes:
        for i in range(frames):
            frame = f"{i:06d}.png"
            tree[(split, f"{scene}/{i:06d}")] = {
                side: write_image(root / "GOPRO_Large" / split / scene / side / frame)
                for side in ("blur", "blur_gamma", "sharp")}
    return tree
