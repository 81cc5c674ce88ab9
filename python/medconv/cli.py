"""The `medconv` command."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _ct_slice():
    """The CT slice that pydicom ships, in Hounsfield units."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    from .dicom import read

    image = read(path)
    return path, image.pixels


def _timed(fn, *args, repeat=3, **kwargs):
    fn(*args, **kwargs)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return result, best * 1e3


def demo(args) -> int:
    import medconv as mc
    from . import filters
    from . import functional as F

    if args.threads:
        mc.set_num_threads(args.threads)
    info = mc.backend_info()
    print(f"medconv {mc.__version__}: {info['isa']} kernels, {info['num_threads']} threads "
          f"(CPU offers {', '.join(info['supported_isas'])})")
    path, hu = _ct_slice()
    print(f"\nCT slice {path.rsplit('/', 1)[-1]}: {hu.shape[0]}x{hu.shape[1]} pixels, "
          f"{hu.min():.0f} to {hu.max():.0f} HU, mean {hu.mean():.1f} HU")
    image = np.ascontiguousarray(hu, dtype=np.float32)

    print("\nClassic image kernels (medconv.filters, 'same' size, zero border):")
    print(f"  {'filter':<26}{'ms':>8}   {'output range (HU)':>24}")
    for name, fn in [
        ("edge_detect laplacian8", lambda im: filters.edge_detect(im)),
        ("edge_detect diagonal", lambda im: filters.edge_detect(im, "diagonal")),
        ("edge_detect vertical", lambda im: filters.edge_detect(im, "vertical")),
        ("edge_detect horizontal", lambda im: filters.edge_detect(im, "horizontal")),
        ("sharpen", filters.sharpen),
        ("box_blur", filters.box_blur),
        ("gaussian_blur 3x3", lambda im: filters.gaussian_blur(im, 3)),
        ("gaussian_blur 5x5", lambda im: filters.gaussian_blur(im, 5)),
        ("unsharp_mask 5x5", filters.unsharp_mask),
    ]:
        out, ms = _timed(fn, image)
        print(f"  {name:<26}{ms:>8.3f}   {out.min():>11.1f} .. {out.max():<11.1f}")

    names = [n for n in filters.KERNELS if n not in ("identity", "gaussian_blur5", "unsharp_mask5")]
    print(f"\nA convolution block: the {len(names)} classic 3x3 kernels as feature detectors, then ReLU and")
    print(f"2x2 max-pool, then a second seeded conv({len(names)} -> 16, 3x3) + ReLU + max-pool:")
    w1 = np.stack([filters.KERNELS[n] for n in names])[:, None].astype(np.float32)
    rng = np.random.default_rng(0)
    w2 = (rng.standard_normal((16, len(names), 3, 3)) / np.sqrt(9 * len(names))).astype(np.float32)
    x = ((image - image.mean()) / (image.std() + 1e-6))[None, None]

    def stack(x):
        h = F.conv2d(x, w1, padding=1, activation="relu")
        h = F.max_pool2d(h, 2)
        h = F.conv2d(h, w2, padding=1, activation="relu")
        return h, F.max_pool2d(h, 2)

    (h, y), ms = _timed(stack, x)
    print(f"  input {x.shape} -> conv+ReLU {(1, len(names)) + x.shape[2:]} -> max-pool -> conv+ReLU {h.shape} "
          f"-> max-pool {y.shape}")
    print(f"  {ms:.3f} ms for the stack; {np.count_nonzero(y) / y.size:.0%} of the final features are active")
    print("\nEverything above ran in medconv's C++ kernels; run `python benchmarks/compare.py` to compare with PyTorch.")
    _demo_predict()
    return 0


DEMO_FILES = ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "examples_overlay.dcm",
              "MR_truncated.dcm")


def _demo_crops(image, n, rng, preprocess, scale=None):
    """n random crops of a modality-value image (flipped, with noise; MR intensities rescaled by a
    random factor, as MR has no absolute unit), windowed and resized as the Predictor will."""
    rows, cols = image.shape
    out = []
    for _ in range(n):
        h, w = (max(8, int(d * rng.uniform(0.5, 1.0))) for d in (rows, cols))
        i, j = int(rng.integers(0, rows - h + 1)), int(rng.integers(0, cols - w + 1))
        crop = image[i:i + h, j:j + w] * (rng.uniform(*scale) if scale else 1.0)
        crop = crop + rng.normal(0.0, 10.0, crop.shape)
        crop = crop[:, ::-1] if rng.random() < 0.5 else crop
        crop = crop[::-1] if rng.random() < 0.5 else crop
        out.append(preprocess.prepare_image(preprocess.apply_window(np.ascontiguousarray(crop, dtype=np.float32))))
    return out


def _demo_predict():
    """Train a small CT-or-MR classifier on DICOM files that pydicom ships, save it with its
    preprocessing, and predict on DICOM files with medconv.pipeline.Predictor."""
    import os
    import tempfile

    from pydicom.data import get_testdata_file

    from . import nn, optim
    from .dicom import read
    from .pipeline import Predictor, Preprocess

    t0 = time.perf_counter()
    pre = Preprocess(window="abdomen", size=(48, 48), classes=["CT", "MR"])
    ct = read(get_testdata_file("CT_small.dcm")).pixels
    mr = read(get_testdata_file("MR_small.dcm")).pixels
    rng = np.random.default_rng(0)
    n = 192
    x = np.stack(_demo_crops(ct, n, rng, pre) + _demo_crops(mr, n, rng, pre, scale=(0.3, 1.5)))
    y = np.repeat(np.arange(2), n)
    nn.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2),
    )
    print("\nFrom DICOM to a prediction (medconv.nn + medconv.pipeline): a CT-or-MR classifier trained on")
    print(f"{2 * n} random crops of CT_small.dcm and MR_small.dcm (windowed with {pre.window!r}, resized to "
          f"{pre.size[0]}x{pre.size[1]}):")
    history = model.fit(x, y, epochs=4, batch_size=32, optimizer=optim.Adam(model.parameters(), lr=1e-2), seed=0,
                        verbose=0)
    print(f"  {model.__class__.__name__} of {sum(p.size for p in model.parameters())} parameters, 4 epochs: "
          f"loss {history['loss'][-1]:.4f}, accuracy {history['accuracy'][-1]:.3f} "
          f"({time.perf_counter() - t0:.1f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ct_or_mr.safetensors")
        nn.save(model, path, preprocess=pre)
        print(f"  saved with its preprocessing: medconv.nn.save(model, {os.path.basename(path)!r}, preprocess={pre})")
        files = [f for f in (get_testdata_file(name, download=False) for name in DEMO_FILES) if f is not None]
        results = Predictor(path).predict(files)
    print(f"  Predictor({os.path.basename(path)!r}).predict(...) on DICOM files pydicom ships "
          "(examples_overlay.dcm is an MR it never saw):")
    for r in results:
        name = os.path.basename(r["path"] or r["input"])
        if r["error"]:
            print(f"    {name:<24} {r['modality'] or '?':<3} -> no prediction: {r['error'].split(' in ')[0]}")
            continue
        p = r["probability"][r["label"]]
        others = ", ".join(f"{c} {v:.3f}" for c, v in r["probability"].items())
        print(f"    {name:<24} {r['modality'] or '?':<3} -> {r['label']} with probability {p:.3f}   ({others})")
    print("  The same from the shell: medconv predict --model MODEL PATH... [--output results.jsonl] "
          "[--scheduler ADDRESS]")


# ------------------------------------------------------------------------ predict


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative int, got {text!r}")
    return value


def _fail(message: str, code: int) -> int:
    print(f"medconv predict: {message}", file=sys.stderr)
    return code


def _short(path, width: int) -> str:
    path = path or ""
    return path if len(path) <= width else "..." + path[-(width - 3):]


def _label_probability(r):
    if r.get("probability") and r.get("label") is not None:
        return r["probability"][r["label"]]
    return None


def format_table(results) -> str:
    """The results as a text table: one row per image or series."""
    import shutil

    width = max(60, shutil.get_terminal_size((120, 24)).columns)
    pw = max(20, min(60, width - 50))
    lines = [f"{'#':>4}  {'file or series':<{pw}}  {'modality':<8}  {'label':<14}  {'probability':>11}  note"]
    for k, r in enumerate(results, 1):
        where = r.get("path") or r.get("input")
        if r.get("frame") is not None:
            where = f"{where}[{r['frame']}]"
        p = _label_probability(r)
        note = f"error: {r['error']}" if r.get("error") else "; ".join(r.get("problems") or [])
        lines.append(f"{k:>4}  {_short(where, pw):<{pw}}  {(r.get('modality') or ''):<8}  "
                     f"{str(r.get('label') if r.get('label') is not None else '-'):<14}  "
                     f"{(f'{p:.4f}' if p is not None else '-'):>11}  {note}".rstrip())
    return "\n".join(lines)


def _csv_rows(results, classes):
    head = ["input", "path", "patient_id", "study_uid", "series_uid", "sop_instance_uid", "frame", "modality",
            "label", "probability"] + [f"p_{c}" for c in classes] + ["problems", "error"]
    yield head
    for r in results:
        probs = r.get("probability") or {}
        p = _label_probability(r)
        yield ([r.get(k) for k in head[:9]] + [p] + [probs.get(c) for c in classes] +
               ["; ".join(r.get("problems") or []), r.get("error")])


def write_results(results, path, classes) -> None:
    """JSON lines (.jsonl, .json, .ndjson) or CSV (.csv), by the extension of path."""
    import csv
    import json

    if path.lower().endswith(".csv"):
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(_csv_rows(results, classes))
    else:
        with open(path, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


def _predict_results(args, predictor, units, bar):
    progress = bar.update if bar is not None else None
    if args.scheduler:
        from . import distributed

        client = None if args.scheduler == "local" else args.scheduler
        return list(distributed.predict_iter(args.model, units, client, device=args.device,
                                             batch_size=args.batch_size, prefetch=args.prefetch, progress=progress))
    return list(predictor.run(units, batch_size=args.batch_size, progress=progress))


def predict(args) -> int:
    import json
    import os

    import medconv as mc
    from .pipeline import Predictor, find_inputs

    if args.threads:
        mc.set_num_threads(args.threads)
    if args.output and not args.output.lower().endswith((".jsonl", ".json", ".ndjson", ".csv")):
        return _fail(f"--output must name a .jsonl or .csv file, got {args.output!r}", 2)
    if args.scheduler:
        try:
            import distributed  # noqa: F401
        except ImportError:
            return _fail("--scheduler needs dask.distributed: pip install 'medconv[distributed]'", 2)
    try:  # with --scheduler the workers run the model: its device is theirs to check
        predictor = Predictor(args.model, device="cpu" if args.scheduler else args.device,
                              batch_size=args.batch_size, prefetch=args.prefetch)
    except FileNotFoundError as exc:
        return _fail(f"cannot read the model: {exc}", 2)
    except (ValueError, TypeError) as exc:
        return _fail(f"cannot use the model {args.model!r}: {exc}", 2)
    except RuntimeError as exc:  # --device cuda without a GPU
        return _fail(str(exc), 2)
    units = find_inputs(args.paths, predictor.preprocess.input)
    if all(u.error for u in units):
        for u in units:
            print(f"medconv predict: {u.source}: {u.error}", file=sys.stderr)
        return _fail(f"no DICOM found in {' '.join(args.paths)}", 1)
    bar = None
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        bar = tqdm(total=len(units), unit="series" if predictor.preprocess.input == "volume" else "file",
                   desc="predict", file=sys.stderr, dynamic_ncols=True)
    try:
        results = _predict_results(args, predictor, units, bar)
    finally:
        if bar is not None:
            bar.close()
    classes = list(predictor.classes) or next((list(r["probability"]) for r in results if r.get("probability")), [])
    if args.output:
        write_results(results, args.output, classes)
    elif sys.stdout.isatty():
        print(format_table(results))
    else:
        for r in results:
            print(json.dumps(r))
    bad = [r for r in results if r.get("error")]
    if args.output:
        print(f"medconv predict: {len(results) - len(bad)} prediction(s) written to {os.fspath(args.output)}",
              file=sys.stderr)
    if bad:
        print(f"medconv predict: {len(bad)} of {len(results)} input(s) failed:", file=sys.stderr)
        for r in bad:
            print(f"  {r.get('path') or r.get('input')}: {r['error']}", file=sys.stderr)
        return 1
    return 0


def info(args) -> int:
    """Without a path: the kernels in use. With one: the patient/study/series tree of the DICOM there."""
    if args.path is None:
        import medconv as mc

        for k, v in mc.backend_info().items():
            print(f"{k}: {v}")
        return 0
    from .dicom import DicomError, info as dicom_info

    try:
        print(dicom_info(args.path))
    except (DicomError, OSError) as exc:
        print(f"medconv info: {exc}", file=sys.stderr)
        return 1
    return 0


def convert(args) -> int:
    """A series (folder, DICOMDIR, multi-frame file) to OUT.npy plus OUT.json with its geometry."""
    from .dicom import DicomError, read_series

    if not args.output.endswith(".npy"):
        print(f"medconv convert: OUT must end with .npy, got {args.output!r}", file=sys.stderr)
        return 2
    try:
        volume = read_series(args.series, series_uid=args.series_uid, strict=not args.lenient)
        volume.save(args.output)
    except (DicomError, OSError) as exc:
        print(f"medconv convert: {exc}", file=sys.stderr)
        return 1
    z, y, x = volume.spacing
    print(f"{args.output}: {volume.array.shape[0]} x {volume.array.shape[1]} x {volume.array.shape[2]} float32, "
          f"spacing {z:.3g} x {y:.3g} x {x:.3g} mm; geometry in {args.output[:-4]}.json")
    for problem in getattr(volume.report, "problems", []) or []:
        print(f"  note: {problem}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="medconv", description="Fast, exact CNN primitives for medical images.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the primitives on a real CT slice; train, save and predict on DICOM")
    p.add_argument("--threads", type=int, default=None, help="kernel threads (default: all cores)")
    p.set_defaults(func=demo)
    p = sub.add_parser("info", help="show the kernels in use, or the patient/study/series tree under PATH")
    p.add_argument("path", nargs="?", default=None, metavar="PATH", help="a DICOM file or folder")
    p.set_defaults(func=info)
    p = sub.add_parser("convert", help="write a DICOM series as OUT.npy (float32, modality units) + OUT.json")
    p.add_argument("series", metavar="SERIES", help="a series folder, a DICOMDIR or a multi-frame file")
    p.add_argument("output", metavar="OUT.npy")
    p.add_argument("--series-uid", default=None, help="which series, when SERIES holds several")
    p.add_argument("--lenient", action="store_true",
                   help="write the volume even if the series has gaps, duplicates or uneven spacing (reported)")
    p.set_defaults(func=convert)
    p = sub.add_parser(
        "predict", help="classify DICOM files, series folders or folder trees with a saved model",
        description="Reads every DICOM image or series under PATH..., preprocesses it as the model file says "
                    "and prints the predicted label with its probability: a table on a terminal, JSON lines "
                    "otherwise, or JSON lines / CSV (by extension) with --output. Exit status: 0 when every "
                    "input has a prediction, 1 when some failed (the others are still reported), 2 when the "
                    "model cannot be used.")
    p.add_argument("--model", required=True, help="a .safetensors file written by medconv.nn.save(..., preprocess=p)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files, series folders or folder trees")
    p.add_argument("--output", "-o", metavar="FILE", help="write the results to FILE.jsonl or FILE.csv")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the model runs (default cpu)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask cluster: a scheduler address (tcp://host:8786), or 'local' for a "
                        "LocalCluster on this machine (needs medconv[distributed])")
    p.add_argument("--batch-size", type=_positive_int, default=16, metavar="N", help="inputs per forward pass")
    p.add_argument("--prefetch", type=_non_negative_int, default=2, metavar="N",
                   help="series (or files) read ahead while the model runs (default 2; 0: read, then infer)")
    p.add_argument("--threads", type=_positive_int, default=None, help="kernel threads (default: all cores)")
    p.set_defaults(func=predict)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
