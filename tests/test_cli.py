"""The `ipg` command line: subcommands are listed, and `ipg attribute` runs end to end."""
import subprocess
import sys

import pandas as pd

from ipg.attribution.table import read_attribution
from ipg.cli import build_parser, main


def test_help_lists_the_study_commands():
    text = build_parser().format_help()
    for name in ("list", "prepare", "build", "sample", "attribute", "steer", "evaluate", "bench", "ui"):
        assert name in text


def test_attribute_on_a_built_tiny_model(tiny_qwen2_dir, tmp_path, capsys):
    out = tmp_path / "att.parquet"
    code = main(["attribute", "--model", str(tiny_qwen2_dir), "--task", "chain_sum",
                 "--granularity", "neurons", "--reward", "length", "-n", "2", "-G", "3",
                 "--max-new-tokens", "6", "--m", "8", "--out", str(out)])
    assert code == 0
    att = read_attribution(out)
    assert len(att.scores) > 0 and att.scores["unit"].str.startswith("L").all()
    assert "completeness_residual" in capsys.readouterr().out


def test_unknown_granularity_is_one_line(tiny_qwen2_dir):
    result = subprocess.run([sys.executable, "-m", "ipg", "attribute", "--model", str(tiny_qwen2_dir),
                             "--task", "chain_sum", "--granularity", "atoms", "-n", "1", "-G", "2",
                             "--max-new-tokens", "2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = [l for l in result.stderr.splitlines() if l.strip() and "it/s" not in l and "%|" not in l]
    assert lines and "atoms" in lines[-1] and "Traceback" not in result.stderr


def test_model_commands_take_a_device(tiny_qwen2_dir, monkeypatch, capsys):
    """--device reaches load_model: a bad one is one line (status 2), before any sampling."""
    monkeypatch.delenv("IPG_DEVICE", raising=False)
    parser = build_parser()
    for cmd in (["sample", "--model", "m", "--task", "t"], ["evaluate", "--model", "m", "--task", "t",
                "--attribution", "a"], ["attribute", "--model", "m", "--task", "t"],
                ["steer", "--model", "m", "--units", "u", "p"]):
        assert parser.parse_args(cmd).device is None  # auto: $IPG_DEVICE, else a GPU if any
        assert parser.parse_args([*cmd, "--device", "cpu"]).device == "cpu"
    code = main(["sample", "--model", str(tiny_qwen2_dir), "--task", "chain_sum", "-n", "1", "-G", "1",
                 "--max-new-tokens", "2", "--device", "tpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("ipg: error: device 'tpu' is not a known device (allowed: auto, cpu, "
                                 "cuda, cuda:N, mps); pass 'auto', 'cpu' or an available accelerator")
