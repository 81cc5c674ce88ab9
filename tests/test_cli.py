"""The `medconv` command: demo and info."""
import subprocess
import sys

import pytest

from medconv import cli


def test_demo_runs_on_the_ct_slice(capsys):
    pytest.importorskip("pydicom")
    assert cli.main(["demo", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "CT_small.dcm" in out and "HU" in out
    for name in ("edge_detect", "sharpen", "box_blur", "gaussian_blur", "unsharp_mask", "max-pool"):
        assert name in out
    assert "(1, 16, 32, 32)" in out  # 128x128 slice, two conv+ReLU+pool stages


def test_info_lists_the_backend(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "isa:" in out and "num_threads:" in out


def test_console_script_entry_point():
    result = subprocess.run([sys.executable, "-m", "medconv.cli", "info"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "supported_isas" in result.stdout


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2
