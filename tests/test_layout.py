"""ipg.workflow.layout: templates fill to the study's paths; only the default study writes reports/."""
from __future__ import annotations

from pathlib import Path

from ipg.workflow import layout as L


def test_templates_fill_to_the_study_paths() -> None:
    assert L.path(L.ATTRIBUTION, "results", model="m", task="t", granularity="neurons",
                  method="ipg") == "results/attribution/m/t/neurons/ipg"
    assert L.wild(L.TRANSFER, "out") == "out/transfer/{source}__to__{target}/{task}/{granularity}/{method}"
    assert L.path(L.TRAJECTORIES, "r", model="m", task="t", seed=0) + ".parquet" == "r/trajectories/m/t/0.parquet"
    assert L.PREPARED.format(task="t") == "data/prepared/t.parquet"


def test_only_the_default_config_writes_the_tracked_reports(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    default = tmp_path / "config" / "default.yaml"
    assert L.study_name([], tmp_path) == "default"
    assert L.study_name([str(default)], tmp_path) == "default"
    assert L.study_name([str(tmp_path / "config" / "test.yaml")], tmp_path) == "test"
    assert L.reports_dir("results", "default") == "reports"
    assert L.reports_dir("results", "test") == "results/reports/test"
    assert (L.experiment("default"), L.experiment("test")) == ("ipg-study", "ipg-study-test")
