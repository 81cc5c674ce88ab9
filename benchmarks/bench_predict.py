"""Series per second for `medconv predict` on a folder of synthetic CT series: sequential (read a
series, then infer), overlapped (the next series is read while the model runs: the default), and
on a 2-worker Dask LocalCluster (`--scheduler`), in one run.

    python benchmarks/bench_predict.py [--series 24] [--slices 24] [--size 256] [--repeat 3] [--json out.json]

The series are written once, into a temporary folder, from the CT slice that pydicom ships (tiled
to SIZE x SIZE, shifted per slice). The model is a small 3D CNN saved with
Preprocess(window="abdomen", size=(24, 128, 128), input="volume"), so each series is one input;
inference takes about as long as reading a series, so the overlap has something to hide.
Each mode runs `medconv predict --model M FOLDER --output results.jsonl` in this process
(cli.main, so the model load and the scan are included, and Python's start-up is not); the
cluster is started once, before the timed runs (its start-up time is printed apart). Every mode's
labels and probabilities are checked against the first run's. The modes take turns, --repeat
rounds, and the best time of each is reported.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np


def write_series(root, n_series, n_slices, size):
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    reps = -(-size // base.Rows)
    tile = np.tile(base.pixel_array, (reps, reps))[:size, :size]
    for s in range(n_series):
        folder = os.path.join(root, f"series_{s:03d}")
        os.makedirs(folder)
        uid = generate_uid()
        for k in range(n_slices):
            ds = copy.deepcopy(base)
            arr = (np.roll(tile, 5 * k + 7 * s, axis=1) + k).astype(np.int16)
            ds.Rows, ds.Columns = arr.shape
            ds.PixelData = arr.tobytes()
            ds.ImagePositionPatient = ["-125", "-125", f"{-300 + 2.5 * k:g}"]
            ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
            ds.PixelSpacing = ["0.7", "0.7"]
            ds.InstanceNumber = k + 1
            ds.SeriesInstanceUID = uid
            ds.SeriesNumber = s + 1
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.save_as(os.path.join(folder, f"{k:04d}.dcm"), enforce_file_format=True)


def save_model(path):
    import medconv.nn as nn
    from medconv.pipeline import Preprocess

    nn.manual_seed(0)
    model = nn.Sequential(
        nn.Conv3d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
        nn.Conv3d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
        nn.Conv3d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
        nn.Flatten(), nn.Linear(64, 2),
    )
    nn.save(model, path, preprocess=Preprocess(window="abdomen", size=(24, 128, 128), input="volume",
                                               classes=["negative", "positive"]))


def run_cli(argv, out_path):
    from medconv import cli

    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err):
        code = cli.main(["predict", *argv, "--output", out_path])
    seconds = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"medconv predict {' '.join(argv)} failed ({code}): {err.getvalue()}")
    with open(out_path) as f:
        return seconds, [json.loads(line) for line in f]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=24)
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    import medconv

    info = medconv.backend_info()
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "scans")
        t0 = time.perf_counter()
        write_series(folder, args.series, args.slices, args.size)
        print(f"{args.series} CT series of {args.slices} slices {args.size}x{args.size} int16 written in "
              f"{time.perf_counter() - t0:.1f} s; {info['isa']} kernels, {info['num_threads']} threads, "
              f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")
        model = os.path.join(tmp, "model.safetensors")
        save_model(model)
        out = os.path.join(tmp, "results.jsonl")

        from distributed import Client, LocalCluster

        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)
        per_worker = max(1, (os.cpu_count() or 1) // args.workers)
        client.run(medconv.set_num_threads, per_worker)
        startup = time.perf_counter() - t0
        modes = [
            ("sequential (--prefetch 0)", ["--prefetch", "0"]),
            ("overlapped (default, --prefetch 2)", []),
            (f"LocalCluster, {args.workers} workers x {per_worker} thread(s)",
             ["--scheduler", cluster.scheduler_address]),
        ]
        times = {name: [] for name, _ in modes}
        try:
            run_cli(["--model", model, folder, *modes[2][1]], out)  # the workers load the model once
            reference = None
            for _ in range(args.repeat):  # the modes take turns, so a busy machine slows them alike
                for name, extra in modes:
                    seconds, results = run_cli(["--model", model, folder, *extra], out)
                    if reference is None:
                        reference = results
                    assert [r["label"] for r in results] == [r["label"] for r in reference], name
                    np.testing.assert_allclose([r["probability"]["positive"] for r in results],
                                               [r["probability"]["positive"] for r in reference], rtol=1e-5)
                    times[name].append(seconds)
        finally:
            client.close()
            cluster.close()
        rows = [(name, min(times[name])) for name, _ in modes]

    base = rows[0][1]
    print(f"\n{'mode':<40}{'seconds':>9}{'series/s':>10}{'speed-up':>10}")
    for name, seconds in rows:
        print(f"{name:<40}{seconds:>9.3f}{args.series / seconds:>10.2f}{base / seconds:>9.2f}x")
    print(f"(the cluster's start-up, {startup:.1f} s, is not included; best of {args.repeat} runs)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"series": args.series, "slices": args.slices, "size": args.size, "backend": info,
                       "cpus": os.cpu_count(), "cluster_startup_s": startup,
                       "rows": [{"mode": n, "seconds": s, "series_per_s": args.series / s} for n, s in rows]},
                      f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
