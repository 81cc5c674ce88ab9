"""Times medconv's AVX2 kernels from C++ (kernel_bench.cpp): no Python in the timed loop, the
fastest of 7 samples per run, and `--rounds` runs whose minimum is reported, so that an A/B of two
source trees can see 5-10% where the Python-level benchmarks, on this shared host, cannot.

    python benchmarks/native/kernel_bench.py                  # the working tree's cpp/
    python benchmarks/native/kernel_bench.py --base HEAD~1    # and a commit's, runs interleaved
    python benchmarks/native/kernel_bench.py --threads 2 --only softmax
    python benchmarks/native/kernel_bench.py --offset 16 --only S7   # arrays 16 bytes off, as numpy's

Each tree is compiled with the flags CMakeLists.txt gives its files (g++ on x86-64 with AVX2)."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SOURCES = ["conv_rows_avx2.cpp", "winograd_avx2.cpp", "gemm_avx2.cpp", "softmax_avx2.cpp", "act_avx2.cpp", "pool_avx2.cpp", "parallel.cpp", "memory.cpp",
           "filter_cache.cpp"]
BASE_FLAGS = ["-std=c++17", "-O3", "-fno-math-errno"]


def cmake_flags(cpp_dir):
    """{file name: its extra compile options} as CMakeLists.txt sets them (AVX2 files, and files named
    on their own)."""
    text = (cpp_dir.parent / "CMakeLists.txt").read_text()
    flags = {}
    m = re.search(r'set_source_files_properties\(\$\{MEDCONV_AVX2\} PROPERTIES COMPILE_OPTIONS "([^"]+)"\)', text)
    if m is None:
        sys.exit("CMakeLists.txt no longer sets COMPILE_OPTIONS on the AVX2 files")
    avx2 = m.group(1).split(";")
    for name in SOURCES:
        if name.endswith("_avx2.cpp"):
            flags[name] = avx2
    for name, opts in re.findall(r'set_source_files_properties\(cpp/(\w+\.cpp) PROPERTIES COMPILE_OPTIONS "([^"]+)"\)', text):
        flags[name] = opts.split(";")
    return flags


def build(cpp_dir, out, cxx):
    """Compiles kernel_bench.cpp against cpp_dir's kernels into the binary `out`."""
    objs = out.parent / (out.name + "_objs")
    objs.mkdir(parents=True, exist_ok=True)
    flags = cmake_flags(cpp_dir)

    # trees before the GEMM drivers became templates over the scalar call the SGEMM conv conv_gemm_f32
    older = ["-DKERNEL_BENCH_CONV_GEMM_F32"] if "void conv_gemm_f32(" in (cpp_dir / "conv_gemm.h").read_text() else []
    # and before Winograd took its GEMM as an argument (packed_gemm.h)
    older += [] if "PackedGemm" in (cpp_dir / "winograd_avx2.h").read_text() else ["-DKERNEL_BENCH_WINOGRAD_AVX2_GEMM"]

    def one(src):
        obj = objs / (Path(src).stem + ".o")
        extra = flags.get(Path(src).name, ["-mavx2", "-mfma"]) + (older if Path(src).name == "kernel_bench.cpp" else [])
        cmd = [cxx, *BASE_FLAGS, *extra, f"-I{cpp_dir}", "-c", str(src), "-o", str(obj)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"{src} failed to compile:\n{r.stderr[-3000:]}")
        return obj

    srcs = [cpp_dir / s for s in SOURCES] + [HERE / "kernel_bench.cpp"]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        objects = list(pool.map(one, srcs))
    r = subprocess.run([cxx, *map(str, objects), "-o", str(out), "-lpthread"], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"link failed:\n{r.stderr[-3000:]}")


def run(binary, threads, only, offset=0):
    env = dict(os.environ, KERNEL_BENCH_OFFSET=str(offset))
    r = subprocess.run([str(binary), str(threads), only], capture_output=True, text=True, check=True, env=env)
    rows = {}
    for line in r.stdout.splitlines():
        m = re.match(r"(.+?)\s+([\d.]+) ms\s+([\d.]+) ns/vec\s+([\d.]+) cycles/vec", line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), float(m.group(4)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", help="a git revision to compare with (its cpp/ and CMakeLists.txt)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="", help="cases whose name contains this")
    ap.add_argument("--offset", type=int, default=0, choices=range(0, 64, 4), metavar="BYTES",
                    help="inputs and outputs start this many bytes past 64 (numpy's large arrays: 16)")
    args = ap.parse_args()
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        sys.exit(f"{cxx} not found")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trees = {"work": ROOT / "cpp"}
        if args.base:
            base = tmp / "base"
            base.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base, "cpp", "CMakeLists.txt"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
            trees = {"base": base / "cpp", "work": ROOT / "cpp"}
        binaries = {}
        for label, cpp_dir in trees.items():
            binaries[label] = tmp / f"kernel_bench_{label}"
            build(cpp_dir, binaries[label], cxx)
        best = {}
        for rnd in range(args.rounds):
            order = list(binaries.items()) if rnd % 2 == 0 else list(binaries.items())[::-1]
            for label, binary in order:
                for name, (ms, cyc) in run(binary, args.threads, args.only, args.offset).items():
                    prev = best.get((name, label))
                    best[(name, label)] = (ms, cyc) if prev is None or ms < prev[0] else prev
    names = list(dict.fromkeys(name for name, _ in best))
    labels = list(binaries)
    print(f"kernel_bench: {args.threads} thread(s), fastest of {args.rounds} runs x 7 samples"
          + (f", base = {args.base}" if args.base else "") + (f", arrays {args.offset} bytes off" if args.offset else ""))
    head = " | ".join(f"{lb} ms | {lb} cycles/vec" for lb in labels)
    print(f"| case | {head} |" + (" base/work |" if args.base else ""))
    print("|---" * (1 + 2 * len(labels) + (1 if args.base else 0)) + "|")
    for name in names:
        cells = " | ".join(f"{best[(name, lb)][0]:.4f} | {best[(name, lb)][1]:.2f}" for lb in labels)
        ratio = f" {best[(name, 'base')][0] / best[(name, 'work')][0]:.2f} |" if args.base else ""
        print(f"| {name} | {cells} |{ratio}")


if __name__ == "__main__":
    main()
