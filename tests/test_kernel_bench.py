"""benchmarks/native/kernel_bench.py still builds against cpp/ and prints a timing for every case it
selects (it is a development tool: nothing here is timed or compared)."""
import importlib.util
import os
import platform
import shutil
from pathlib import Path

import pytest

import medconv as mc

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "benchmarks" / "native" / "kernel_bench.py"

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64") or shutil.which(os.environ.get("CXX", "g++")) is None
    or "avx2" not in mc.backend_info()["supported_isas"],
    reason="needs g++ on an x86-64 CPU with AVX2")


def load_tool():
    spec = importlib.util.spec_from_file_location("kernel_bench", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_flags_are_those_of_cmakelists():
    flags = load_tool().cmake_flags(ROOT / "cpp")
    assert "-mavx2" in flags["conv_rows_avx2.cpp"] and "-mfma" in flags["conv_rows_avx2.cpp"]
    assert "-mavx2" in flags["act_avx2.cpp"]
    assert "parallel.cpp" not in flags  # portable files get no ISA flags


def test_it_builds_and_times_each_selected_case(tmp_path):
    tool = load_tool()
    binary = tmp_path / "kernel_bench"
    tool.build(ROOT / "cpp", binary, os.environ.get("CXX", "g++"))
    rows = tool.run(binary, 1, "(L2)")
    assert set(rows) == {"conv dw 1x16x64x64 (L2)", "conv dw 1x4x64x256 (L2)", "softmax 48x1000 (L2)",
                         "log_softmax 48x1000 (L2)", "sigmoid 32768 (L2)", "tanh 32768 (L2)", "elu 32768 (L2)",
                         "gelu 32768 (L2)"}
    for name, (ms, cycles) in rows.items():
        assert ms > 0 and cycles > 0, name
