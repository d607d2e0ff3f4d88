"""Tests for the workdir's record of its config: a resume under another config is refused, with
the differing fields named, but a field added to jdeblur since the run started is accepted when
the resumed run holds its default."""
import json

import pytest

from jdeblur.train import provenance
from jdeblur.train.defaults import base_config


def test_resume_checks_the_config_and_accepts_fields_added_at_their_default(tmp_path):
    config = base_config()
    provenance.record_run(config, tmp_path)
    run = json.loads((tmp_path / "run.json").read_text())
    assert {"git_commit", "packages", "devices", "command"} <= run.keys()
    provenance.record_run(config, tmp_path)  # the same config resumes

    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["train"]["nonfinite"]  # as written before the field existed
    (tmp_path / "config.json").write_text(json.dumps(saved))
    provenance.record_run(config, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["train"]["nonfinite"] == config.train.nonfinite

    (tmp_path / "config.json").write_text(json.dumps(saved))  # still without the field
    other = base_config()
    other.train.nonfinite = "skip" if config.train.nonfinite == "stop" else "stop"
    other.train.steps = config.train.steps + 1
    with pytest.raises(provenance.ConfigMismatchError, match="train.nonfinite, train.steps differ"):
        provenance.record_run(other, tmp_path)
    assert "nonfinite" not in json.loads((tmp_path / "config.json").read_text())["train"]


def test_a_run_from_before_the_eval_seed_resumes_only_with_its_own_seed(tmp_path):
    config = base_config()
    config.seed = 3
    config.eval.seed = 3  # what runs saved before eval.seed did: the eval set from the run's seed
    provenance.record_run(config, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["eval"]["seed"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    provenance.record_run(config, tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config.eval.seed = 0  # the default now, another eval set for this run
    with pytest.raises(provenance.ConfigMismatchError, match="eval.seed differ"):
        provenance.record_run(config, tmp_path)
