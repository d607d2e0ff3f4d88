"""Tests for atomic writes: the final name holds the old content or the whole new one, never a part,
and no symlink planted in the folder redirects a write."""
import os
import stat

import numpy as np
import pytest

from jdeblur import atomic, photos
from jdeblur.atomic import append_line, replacing, write_json, write_text


def test_write_text_and_json_replace_whole_files(tmp_path):
    path = tmp_path / "table.md"
    write_text(path, "old\n")
    write_text(path, "new\n")
    assert path.read_text() == "new\n"
    write_json(tmp_path / "final.json", {"psnr": 27.5}, indent=1)
    assert (tmp_path / "final.json").read_text() == '{\n "psnr": 27.5\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.json", "table.md"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "report.csv"
    path.write_text("good\n")
    with pytest.raises(RuntimeError, match="disk full"):
        with replacing(path, newline="") as f:
            f.write("half a ro")
            raise RuntimeError("disk full")
    assert path.read_text() == "good\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]


def test_a_symlink_at_the_old_temporary_name_is_left_alone(tmp_path, rng):
    """Defect: the old writer wrote through ``NAME.tmp``, so a symlink there redirected the write."""
    victim = tmp_path / "elsewhere" / "precious.txt"
    victim.parent.mkdir()
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.png", "final.json"):
        (out / f"{name}.tmp").symlink_to(victim)
    photos.write_png_atomic(out / "a.png", rng.integers(0, 256, (4, 5, 3), dtype=np.uint8))
    write_json(out / "final.json", {"step": 4})
    assert victim.read_text() == "keep me"
    for name in ("a.png", "final.json"):
        assert (out / f"{name}.tmp").is_symlink() and os.readlink(out / f"{name}.tmp") == str(victim)
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a.png.tmp", "final.json", "final.json.tmp"]


def test_a_symlink_at_the_target_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    (tmp_path / "table.md").symlink_to(victim)
    write_text(tmp_path / "table.md", "results\n")
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "table.md").is_symlink() and (tmp_path / "table.md").read_text() == "results\n"


def test_append_line_refuses_to_follow_a_symlink(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    append_line(tmp_path / "metrics.jsonl", '{"step": 1}')
    append_line(tmp_path / "metrics.jsonl", '{"step": 2}')
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n'
    (tmp_path / "eval.jsonl").symlink_to(victim)
    with pytest.raises(OSError):
        append_line(tmp_path / "eval.jsonl", '{"step": 1}')
    assert victim.read_text() == "keep me"


def test_new_files_get_the_umask_and_replaced_files_keep_their_permissions(tmp_path):
    mask = os.umask(0o027)
    try:
        assert atomic._umask() == 0o027
        write_text(tmp_path / "new.txt", "x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640  # not mkstemp's 0o600
    (tmp_path / "kept.txt").write_text("old")
    (tmp_path / "kept.txt").chmod(0o604)
    write_text(tmp_path / "kept.txt", "new")
    assert stat.S_IMODE((tmp_path / "kept.txt").stat().st_mode) == 0o604


def test_new_folder_appears_whole_keeps_a_folder_made_first_and_cleans_up(tmp_path):
    with atomic.new_folder(tmp_path / "draws") as scratch:
        (scratch / "a.npy").write_bytes(b"1")
        assert not (tmp_path / "draws").exists()  # not before the block ends
    assert sorted(p.name for p in tmp_path.iterdir()) == ["draws"]
    assert stat.S_IMODE((tmp_path / "draws").stat().st_mode) == 0o777 & ~atomic._umask()
    with atomic.new_folder(tmp_path / "draws") as scratch:  # another process saved the same first: keep it
        (scratch / "b.npy").write_bytes(b"2")
    assert sorted(p.name for p in (tmp_path / "draws").iterdir()) == ["a.npy"]
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic.new_folder(tmp_path / "other") as scratch:
            (scratch / "c.npy").write_bytes(b"3")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["draws"]
