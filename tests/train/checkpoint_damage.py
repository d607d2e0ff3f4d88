"""Damage done to a saved checkpoint on purpose: which file to hit, and a flipped byte."""


def largest_array_file(folder):
    """The largest array file of a checkpoint step's folder (orbax's ``d/`` data files)."""
    return max((p for p in (folder / "state").rglob("*") if p.is_file() and p.parent.name == "d"),
               key=lambda p: p.stat().st_size)


def flip_middle_byte(path):
    """Inverts the bits of the middle byte of a file, in place."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
