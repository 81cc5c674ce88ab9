#!/usr/bin/env bash
# medconv's GPU checks on a CUDA machine that already has CuPy, a CUDA build of torch, pybind11 and
# scikit-build-core: builds medconv in place, runs the GPU tests (pytest -m gpu), then bench_gpu.py.
#
#     benchmarks/run_gpu_checks.sh OUTDIR [extra pytest arguments]
#
# Writes OUTDIR/device.txt, build.log, gpu-tests.log, gpu-tests.xml, bench_gpu.md and bench_gpu.log;
# with BASELINE="VAR=value ..." also bench_baseline.md/.log: bench_gpu.py again under those variables
# (e.g. BASELINE=MEDCONV_GPU_GEMM=tiled), right after the first, for a before/after on one machine.
# Exits non-zero if the build, a GPU test or a benchmark check failed; each step runs even when an
# earlier one failed (except after a failed build).
set -u
cd "$(dirname "$0")/.."
out=${1:?usage: run_gpu_checks.sh OUTDIR [pytest args]}
shift
mkdir -p "$out"
python=${PYTHON:-python3}
status=0

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  "$python" - <<'PY'
import sys, numpy, cupy, torch
print("python", sys.version.split()[0], "| numpy", numpy.__version__, "| cupy", cupy.__version__,
      "| torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
PY
} 2>&1 | tee "$out/device.txt"

start=$(date +%s)
if ! CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$python" -m pip install --no-build-isolation --no-deps -e . \
    >"$out/build.log" 2>&1; then
  tail -40 "$out/build.log"
  echo "run_gpu_checks: the build failed"
  exit 1
fi
echo "build: $(( $(date +%s) - start )) s"

start=$(date +%s)
timeout "${TEST_TIMEOUT:-360}" "$python" -m pytest -m gpu tests/test_gpu.py tests/test_cuda.py -q -p no:cacheprovider \
    -rfE --tb=short --junitxml="$out/gpu-tests.xml" "$@" >"$out/gpu-tests.log" 2>&1 || status=1
tail -60 "$out/gpu-tests.log"
echo "gpu tests: $(( $(date +%s) - start )) s"

start=$(date +%s)
timeout "${BENCH_TIMEOUT:-240}" "$python" benchmarks/bench_gpu.py --out "$out/bench_gpu.md" \
    >"$out/bench_gpu.log" 2>&1 || status=1
cat "$out/bench_gpu.log"
if [ -n "${BASELINE:-}" ]; then
  echo "baseline ($BASELINE):"
  env $BASELINE timeout "${BENCH_TIMEOUT:-240}" "$python" benchmarks/bench_gpu.py --out "$out/bench_baseline.md" \
      >"$out/bench_baseline.log" 2>&1 || status=1
  cat "$out/bench_baseline.log"
fi
echo "bench: $(( $(date +%s) - start )) s"
exit $status
