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


def _subcommands():
    import argparse

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_option_has_help_and_shows_its_default():
    """Walk the parser: each argument of each subcommand has help text, and each option with a
    default (not None / False / []) shows it in `ipg COMMAND --help`."""
    import argparse

    for name, sub in _subcommands().items():
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"ipg {name}: {action.dest} has no help text"
            shown = action.default is not None and action.default is not False and action.default != []
            if action.option_strings and shown:
                assert f"(default: {action.default})" in text or "default" in action.help, (
                    f"ipg {name} --help does not show the default of {action.option_strings[0]}")


def test_list_says_what_each_model_and_task_is_and_whether_it_is_built(tmp_path):
    from ipg.cli import list_lines
    from ipg.models import MODELS
    from ipg.tasks import TASKS

    (tmp_path / "results/models/organism").mkdir(parents=True)
    (tmp_path / "results/models/organism/config.json").write_text("{}")
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared/chain_sum.parquet").write_bytes(b"")
    lines = list_lines(tmp_path / "results", tmp_path / "prepared")
    by_name = {line.split()[0]: line for line in lines if line.startswith("  ")}
    assert set(by_name) == set(MODELS.names()) | set(TASKS.names())
    assert " built " in by_name["organism"] and MODELS.get("organism").description in by_name["organism"]
    assert "not built" in by_name["organism-distilled"]
    assert " prepared " in by_name["chain_sum"] and TASKS.get("chain_sum").description in by_name["chain_sum"]
    assert "not prepared" in by_name["aime2024"]
