"""``import_weights`` writes its workdir whole or not at all, and only where nothing is."""
import pytest

from jdeblur.errors import UserError
from jdeblur.train.checkpoint import Checkpointer
from jdeblur.train.defaults import base_config
from jdeblur.weights.importer import import_weights
from tests.weights.official_fixture import BLOCKS, OFFICIAL


def fixture_config():
    c = base_config()
    c.model.name, c.model.variant, c.model.kwargs = "nafnet", None, dict(BLOCKS)
    return c


def test_a_failed_import_leaves_nothing_and_a_retry_succeeds(tmp_path, monkeypatch):
    workdir = tmp_path / "official"
    workdir.mkdir()  # a new empty folder is accepted as well as a missing one

    def full_disk(self, *args, **kw):
        (self.directory / "partial").mkdir(parents=True)
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(Checkpointer, "save", full_disk)
        with pytest.raises(OSError, match="No space left"):
            import_weights(OFFICIAL, fixture_config(), workdir)
    assert [p.name for p in tmp_path.iterdir()] == ["official"] and not any(workdir.iterdir())

    import_weights(OFFICIAL, fixture_config(), workdir)
    assert sorted(p.name for p in workdir.iterdir()) == ["checkpoints", "config.json", "run.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["official"]


def test_a_folder_holding_files_is_refused_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=rf"--workdir {tmp_path}: exists and is not an empty folder"):
        import_weights(OFFICIAL, fixture_config(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
