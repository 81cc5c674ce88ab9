"""Every CUDA kernel family compiles with nvcc for sm_80 (A100) and sm_90 (H100), warnings as errors,
and exports exactly the extern "C" kernels that medconv._cuda looks up -- on machines without a GPU
too, so a kernel that does not compile, or is renamed, fails CI. Skipped only where nvcc is absent.

What is compiled is _cuda.source(family): the text CuPy hands to NVRTC (common.cuh inlined).
"""
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import medconv._cuda as _cuda

ARCHS = ("sm_80", "sm_90")
NVCC = shutil.which("nvcc") or (shutil.which("nvcc", path="/usr/local/cuda/bin"))


def _compile(tmp: Path, family: str, arch: str):
    src = tmp / f"{family}.cu"
    if not src.exists():
        src.write_text(_cuda.source(family))
    cmd = [NVCC, "-std=c++17", f"-arch={arch}", "-cubin", "-Xptxas", "-v", "-Werror", "all-warnings",
           "-o", str(tmp / f"{family}_{arch}.cubin"), str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    entries = set(re.findall(r"Compiling entry function '([^']+)' for '" + arch + "'", r.stderr))
    return r.returncode, r.stdout + r.stderr, entries


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """{(family, arch): (returncode, log, kernel names)}, compiled in parallel once."""
    if NVCC is None:
        pytest.skip("nvcc is not installed (the CUDA toolkit is needed to compile-check the kernels)")
    tmp = tmp_path_factory.mktemp("cuda")
    for family in _cuda.KERNELS:  # write the sources first, so the workers only read them
        (tmp / f"{family}.cu").write_text(_cuda.source(family))
    jobs = [(f, a) for f in _cuda.KERNELS for a in ARCHS]
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        results = pool.map(lambda job: _compile(tmp, *job), jobs)
    return dict(zip(jobs, results))


def test_every_cu_file_is_a_known_family():
    files = {p.stem for p in _cuda.cuda_dir().glob("*.cu")}
    assert files == set(_cuda.KERNELS), "cuda/*.cu and medconv._cuda.KERNELS list different families"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("family", sorted(_cuda.KERNELS))
def test_compiles_and_exports_the_kernels(compiled, family, arch):
    rc, log, entries = compiled[(family, arch)]
    assert rc == 0, f"nvcc failed on {family}.cu for {arch}:\n{log[-6000:]}"
    expected = set(_cuda.KERNELS[family])
    assert expected <= entries, f"{family}.cu lacks kernels {sorted(expected - entries)} for {arch}"
    assert entries <= expected, f"{family}.cu exports kernels medconv._cuda does not list: {sorted(entries - expected)}"
