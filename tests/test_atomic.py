"""Tests for atomic writes: the final name holds the old content or the whole new one, never a part."""
import pytest

from jdeblur.atomic import replacing, write_json, write_text


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
        with replacing(path) as tmp, tmp.open("w") as f:
            f.write("half a ro")
            raise RuntimeError("disk full")
    assert path.read_text() == "good\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]
