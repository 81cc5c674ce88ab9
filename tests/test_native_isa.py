"""AVX-512 and NEON kernels on machines that cannot run them: compiled with their real flags
(warnings are errors), and checked against the reference kernels by tests/native/isa_check.cpp,

- NEON: cross-compiled for AArch64 (with dispatch.cpp, -DMEDCONV_ARM64=1) and run under
  qemu-aarch64, or natively on an arm64 host;
- AVX-512: run natively where the CPU has it; elsewhere the AVX-512 files are compiled against
  SIMDe's portable AVX-512 intrinsics (tests/native/avx512_on_avx2.h) and run on AVX2.

Each test is skipped when its tools are absent. On Debian they come from
`apt-get install g++-aarch64-linux-gnu qemu-user libsimde-dev`.
"""
import os
import platform
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import medconv

ROOT = Path(__file__).resolve().parents[1]
CPP = ROOT / "cpp"
NATIVE = ROOT / "tests" / "native"
BASE = ["-std=c++17", "-O2", "-fno-math-errno", "-Wall", "-Wextra", "-Wno-unused-parameter", f"-I{CPP}"]
X86 = platform.machine().lower() in ("x86_64", "amd64")
ARM64 = platform.machine().lower() in ("aarch64", "arm64")
TOL = "1e-5"


def cmake_avx512_flags():
    """The COMPILE_OPTIONS CMakeLists.txt gives the *_avx512.cpp files."""
    text = (ROOT / "CMakeLists.txt").read_text()
    m = re.search(r'MEDCONV_AVX512\}? PROPERTIES COMPILE_OPTIONS "([^"]+)"', text)
    assert m, "CMakeLists.txt no longer sets COMPILE_OPTIONS on the AVX-512 files"
    return m.group(1).split(";")


def files(pattern):
    return sorted(CPP.glob(pattern))


def compile_all(jobs, out_dir):
    """jobs: (compiler argv without -c/-o, source); compiles in parallel, returns the objects.
    Fails the test with the compiler's message on the first error."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(job):
        argv, src = job
        obj = out_dir / (src.stem + ".o")
        r = subprocess.run([*argv, "-c", str(src), "-o", str(obj)], capture_output=True, text=True, timeout=600)
        return src, obj, r

    objs = []
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        for src, obj, r in pool.map(one, jobs):
            assert r.returncode == 0, f"{src.name} failed to compile:\n{r.stderr[-4000:]}"
            objs.append(obj)
    return objs


def run_check(argv):
    r = subprocess.run([*argv, TOL], capture_output=True, text=True, timeout=600)
    print(r.stdout)
    assert r.returncode == 0, f"isa_check failed:\n{r.stdout}\n{r.stderr}"
    assert r.stdout.strip().endswith("OK")
    return r.stdout


def max_errors(stdout):
    return [float(e) for e in re.findall(r"max rel error (\S+)", stdout)]


# --- AVX-512 ----------------------------------------------------------------------------------

@pytest.mark.skipif(not X86 or shutil.which(os.environ.get("CXX", "g++")) is None, reason="needs g++ on x86-64")
@pytest.mark.parametrize("src", files("*_avx512.cpp"), ids=lambda p: p.name)
def test_avx512_file_compiles_warning_free_with_the_cmake_flags(src, tmp_path):
    cxx = os.environ.get("CXX", "g++")
    compile_all([([cxx, *BASE, "-O3", "-DMEDCONV_X86=1", *cmake_avx512_flags(), "-Werror"], src)], tmp_path)


def test_dispatch_offers_avx512_only_where_the_cpu_has_it():
    info = medconv.backend_info()
    features = set(info["cpu_features"])
    has = {"avx512f", "avx512bw", "avx512vl", "avx512dq", "fma"} <= features
    if X86:
        assert "avx512" in info["compiled_isas"]
    assert ("avx512" in info["supported_isas"]) == (has and X86)
    if "avx512" not in info["supported_isas"]:
        assert info["isa"] != "avx512"
        with pytest.raises(ValueError, match="avx512"):
            medconv._core.select_isa("avx512")


def _cpu_features():
    return set(medconv.backend_info()["cpu_features"])


def _has_simde(cxx):
    r = subprocess.run([cxx, "-x", "c++", "-fsyntax-only", "-mavx2", "-mfma", "-"],
                       input="#include <simde/x86/avx512.h>\n", capture_output=True, text=True)
    return r.returncode == 0


@pytest.mark.parametrize("mode", ["native", "simde"])
def test_avx512_kernels_match_the_reference(mode, tmp_path):
    """native: the real instructions, where the CPU has AVX-512; simde: the same sources with the
    intrinsics emulated, so their indexing, tails and masks run on any AVX2 CPU."""
    cxx = os.environ.get("CXX", "g++")
    if not X86 or shutil.which(cxx) is None:
        pytest.skip("needs g++ on x86-64")
    features = _cpu_features()
    if not {"avx2", "fma"} <= features:
        pytest.skip("the harness runs the AVX2 Winograd plan check: needs AVX2+FMA")
    if mode == "native":
        if not {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= features:
            pytest.skip("this CPU has no AVX-512 (the simde mode runs these kernels)")
        isa_flags = cmake_avx512_flags()
    else:
        if not _has_simde(cxx):
            pytest.skip("SIMDe headers absent (Debian: libsimde-dev)")
        isa_flags = ["-mavx2", "-mfma", "-Wno-psabi", "-include", str(NATIVE / "avx512_on_avx2.h")]
    common = [cxx, *BASE, "-DMEDCONV_X86=1"]
    jobs = [([*common, *isa_flags], f) for f in files("*_avx512.cpp")]
    # the AVX2 plan (conv_avx2.cpp, with its Winograd and direct kernels, and its float64 DGEMM) that
    # the AVX-512 conv runs with its own GEMM; the reference kernels to compare with
    avx2_files = ("conv_avx2.cpp", "conv_direct_avx2.cpp", "conv_phase_rows_avx2.cpp", "conv_pointwise_avx2.cpp",
                  "conv_rows_avx2.cpp", "conv_tiles1d_avx2.cpp", "winograd_avx2.cpp", "winograd_s2_avx2.cpp",
                  "gemm_avx2.cpp", "dgemm_avx2.cpp")
    jobs += [([*common, "-mavx2", "-mfma"], CPP / f) for f in avx2_files]
    jobs += [(common, CPP / f) for f in ("conv_ref.cpp", "gemm_ref.cpp", "act_ref.cpp", "softmax_ref.cpp", "conv_plan.cpp",
                                         "parallel.cpp", "memory.cpp", "filter_cache.cpp")]
    jobs += [([*common, "-Werror", "-DISA_CHECK_AVX512"], NATIVE / "isa_check.cpp")]
    objs = compile_all(jobs, tmp_path / "obj")
    exe = tmp_path / "isa_check"
    r = subprocess.run([cxx, "-pthread", *map(str, objs), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = run_check([str(exe)])
    assert "isa: avx512" in out
    assert all(e <= float(TOL) for e in max_errors(out))


# --- NEON -------------------------------------------------------------------------------------

def _neon_toolchain():
    """(compiler, runner prefix) for AArch64 binaries, or None where this host cannot build them."""
    if ARM64:
        cxx = os.environ.get("CXX", "g++")
        return (cxx, []) if shutil.which(cxx) else None
    cross = shutil.which("aarch64-linux-gnu-g++")
    if cross is None:
        return None
    return cross, ["qemu-aarch64"] if shutil.which("qemu-aarch64") else None


@pytest.fixture(scope="module")
def neon_binary(tmp_path_factory):
    """isa_check built for AArch64: the reference kernels, dispatch.cpp, parallel.cpp, memory.cpp and
    every *_neon.cpp (as CMake builds them on arm64), NEON files and harness warning-free."""
    chain = _neon_toolchain()
    if chain is None:
        pytest.skip("no AArch64 compiler (Debian: g++-aarch64-linux-gnu)")
    cxx, runner = chain
    out = tmp_path_factory.mktemp("neon")
    common = [cxx, *BASE, "-DMEDCONV_ARM64=1"]
    strict = [*common, "-Werror"]
    jobs = [(strict, f) for f in files("*_neon.cpp")] + [(strict, NATIVE / "isa_check.cpp")]
    jobs += [(common, f) for f in [*files("*_ref.cpp"), *(CPP / n for n in ("dispatch.cpp", "parallel.cpp", "memory.cpp"))]]
    objs = compile_all(jobs, out / "obj")
    exe = out / "isa_check"
    link = [cxx, "-pthread", *map(str, objs), "-o", str(exe)] + ([] if ARM64 else ["-static"])
    r = subprocess.run(link, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return exe, runner


def test_neon_files_compile_warning_free(neon_binary):
    exe, _ = neon_binary
    assert exe.exists()


def test_neon_kernels_match_the_reference(neon_binary):
    exe, runner = neon_binary
    if runner is None:
        pytest.skip("cannot run AArch64 binaries here (Debian: qemu-user)")
    out = run_check([*runner, str(exe)])
    assert "isa: neon" in out
    assert all(e <= float(TOL) for e in max_errors(out))
