"""From DICOM to a prediction with its probability: the preprocessing a model file carries, and a
Predictor that reads, preprocesses and classifies files, series folders and folder trees.

    p = Preprocess(window="lung", size=(64, 64), classes=["normal", "nodule"])
    medconv.nn.save(model, "model.safetensors", preprocess=p)   # p is stored in the same file
    for r in Predictor("model.safetensors").predict(["scans/"]):
        print(r["series_uid"], r["label"], r["probability"])

Each result is a dict of JSON-ready values (RESULT_FIELDS): the input it came from, the file or
series folder, patient/study/series (and, per image, SOP instance) UIDs, `label`, `probability`
(class name -> probability), the `problems` the reader reported, and `error` (None, or why this
input has no prediction; the other inputs still complete).
"""
from __future__ import annotations

import json
import math
import numbers
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Preprocess", "Predictor", "Unit", "find_inputs", "RESULT_FIELDS", "INPUT_KINDS"]

INPUT_KINDS = ("slice", "volume")
PREPROCESS_VERSION = 1
RESULT_FIELDS = ("input", "path", "patient_id", "study_uid", "series_uid", "sop_instance_uid", "frame", "modality",
                 "label", "probability", "problems", "error")
_DEVICES = ("cpu", "cuda")


# ------------------------------------------------------------------------ Preprocess


def _positive_ints(value, lengths, name):
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) not in lengths:
        raise ValueError(f"{name} must be a tuple of {' or '.join(map(str, lengths))} positive ints, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a tuple of positive ints, got {value!r}")
        out.append(int(v))
    return tuple(out)


def _positive_mm(value, lengths, name):
    values = [value] if isinstance(value, numbers.Real) and not isinstance(value, bool) else value
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) not in (1,) + lengths:
        raise ValueError(f"{name} must be a positive number of mm or a tuple of {' or '.join(map(str, lengths))}, "
                         f"got {value!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must hold positive finite numbers of mm, got {value!r}")
        out.append(float(v))
    return out[0] if len(out) == 1 else tuple(out)


@dataclass(frozen=True, repr=False)
class Preprocess:
    """What turns DICOM pixels into a model input, stored with the model by
    ``medconv.nn.save(model, path, preprocess=p)`` and applied unchanged by Predictor.

    window: a preset of medconv.dicom.WINDOW_PRESETS ("lung", "brain", ...), a (center, width)
        pair in modality units, "file" (each file's own window), or None (modality units as read).
        With a window the input is in [0, 1] (MONOCHROME1 inverted).
    size: (H, W) -- or (D, H, W) for input="volume" -- to resample to (bilinear / trilinear,
        medconv's interpolate kernels, align_corners=False).
    spacing: a target spacing in mm instead of a size: one number, (row, column) mm for slices or
        (z, y, x) mm for volumes; the output size is round(size * spacing / target).
    input: "slice" (each image, or each frame of a multi-frame file, is one input (C, H, W)) or
        "volume" (each series is one input (C, D, H, W)). C is 1, or 3 for colour images.
    classes: the class names, in the order of the model's outputs (default "0", "1", ...).
    """
    window: Any = None
    size: Optional[Tuple[int, ...]] = None
    spacing: Any = None
    input: str = "slice"
    classes: Optional[Tuple[str, ...]] = None

    def __post_init__(self):
        from .dicom.window import resolve_window

        if not (isinstance(self.input, str) and self.input in INPUT_KINDS):
            raise ValueError(f"input must be one of {INPUT_KINDS}, got {self.input!r}")
        lengths = (2,) if self.input == "slice" else (3, 2)
        window = self.window
        if isinstance(window, str):
            if window != "file":
                resolve_window(window)  # ValueError naming the presets
        elif window is not None:
            window = tuple(resolve_window(window))  # ValueError: "window must be ..."
        size = None if self.size is None else _positive_ints(self.size, lengths, "size")
        spacing = None if self.spacing is None else _positive_mm(self.spacing, lengths[:1], "spacing")
        if size is not None and spacing is not None:
            raise ValueError(f"give size or spacing, not both: got size={self.size!r}, spacing={self.spacing!r}")
        classes = self.classes
        if classes is not None:
            if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
                raise ValueError(f"classes must be a list of class names, got {classes!r}")
            classes = tuple(classes)
            if not classes or not all(isinstance(c, str) and c for c in classes):
                raise ValueError(f"classes must be a non-empty list of non-empty strings, got {list(classes)!r}")
            if len(set(classes)) != len(classes):
                raise ValueError(f"classes must be unique, got {list(classes)!r}")
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "classes", classes)

    def __repr__(self) -> str:
        defaults = {"window": None, "size": None, "spacing": None, "input": "slice", "classes": None}
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k, d in defaults.items() if getattr(self, k) != d)
        return f"Preprocess({args})"

    # -- JSON
    def to_dict(self) -> Dict[str, Any]:
        as_list = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
        return {"version": PREPROCESS_VERSION, "window": as_list(self.window), "size": as_list(self.size),
                "spacing": as_list(self.spacing), "input": self.input, "classes": as_list(self.classes)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text) -> "Preprocess":
        """The Preprocess that to_json wrote (a JSON string, bytes or an already parsed dict)."""
        if isinstance(text, (str, bytes, bytearray)):
            try:
                data = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise ValueError(f"the preprocess is not valid JSON: {exc}") from None
        else:
            data = text
        if not isinstance(data, dict):
            raise ValueError(f"the preprocess must be a JSON object, got {type(data).__name__}")
        fields = {"version", "window", "size", "spacing", "input", "classes"}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)} in the preprocess (known: {sorted(fields)})")
        if data.get("version", PREPROCESS_VERSION) != PREPROCESS_VERSION:
            raise ValueError(f"the preprocess has version {data.get('version')!r}; this medconv reads "
                             f"{PREPROCESS_VERSION}")
        tup = lambda v: tuple(v) if isinstance(v, list) else v  # noqa: E731
        return cls(window=tup(data.get("window")), size=tup(data.get("size")), spacing=tup(data.get("spacing")),
                   input=data.get("input", "slice"), classes=tup(data.get("classes")))

    @classmethod
    def from_model(cls, path) -> "Preprocess":
        """The Preprocess stored in a model file; ValueError when it has none."""
        from .nn.serialization import load_preprocess

        text = load_preprocess(path)
        if text is None:
            raise ValueError(f"{os.fspath(path)!r} holds no preprocess: save it with "
                             "medconv.nn.save(model, path, preprocess=medconv.pipeline.Preprocess(...))")
        return cls.from_json(text)

    # -- applying it
    def output_size(self, shape, spacing) -> Tuple[int, ...]:
        """The spatial size an input of `shape` with `spacing` (mm per axis, or None) resamples to."""
        shape = tuple(int(s) for s in shape)
        if self.size is not None:
            return shape[:len(shape) - len(self.size)] + self.size
        if self.spacing is None:
            return shape
        target = (self.spacing,) * len(shape) if isinstance(self.spacing, float) else self.spacing
        if len(target) != len(shape):
            raise ValueError(f"spacing {self.spacing} has {len(target)} values for an input of {len(shape)} axes")
        if spacing is None or len(spacing) != len(shape) or not all(s and s > 0 for s in spacing):
            raise ValueError("the image has no usable pixel spacing ((0028,0030) Pixel Spacing or slice positions); "
                             f"it cannot be resampled to spacing={self.spacing}")
        return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target))

    def resample(self, x: np.ndarray, spacing=None) -> np.ndarray:
        """(C, H, W) or (C, D, H, W) float32 -> the same resampled to `size` or `spacing`
        (spacing: mm per spatial axis of x, as (row, column) or (z, y, x))."""
        from .functional import interpolate

        spatial = x.shape[1:]
        out = self.output_size(spatial, spacing)
        if tuple(out) == tuple(spatial):
            return x
        mode = "bilinear" if len(spatial) == 2 else "trilinear"
        return np.asarray(interpolate(np.ascontiguousarray(x)[None], size=out, mode=mode, align_corners=False))[0]

    def apply_window(self, values: np.ndarray) -> np.ndarray:
        """Modality values (HU for CT) -> what read(path, window=self.window) returns: the window
        applied with medconv's kernel (float32 in [0, 1]), or the values as float32 without one.
        For training on arrays that are not read from files; window="file" needs the files."""
        from .dicom import window

        values = np.asarray(values)
        if self.window is None:
            return values.astype(np.float32)
        if isinstance(self.window, str) and self.window == "file":
            raise ValueError("window='file' takes each file's own window: read the files with "
                             "medconv.dicom.read(path, window='file')")
        if isinstance(self.window, str):
            return window(values, self.window)
        return window(values, *self.window)

    def prepare_image(self, pixels: np.ndarray, pixel_spacing=None) -> np.ndarray:
        """One image as read by medconv.dicom.read (already windowed): (H, W) or (H, W, 3) ->
        (C, H', W') float32. Training code calls this to see exactly what the Predictor sees."""
        x = _channels_first(np.asarray(pixels, dtype=np.float32), 2)
        return self.resample(x, None if pixel_spacing is None else tuple(pixel_spacing)[:2])

    def prepare_volume(self, array: np.ndarray, spacing=None) -> np.ndarray:
        """A series as read by read_series (already windowed): (D, H, W) or (D, H, W, 3) ->
        (C, D', H', W') float32 (a (H, W) size keeps the depth)."""
        x = _channels_first(np.asarray(array, dtype=np.float32), 3)
        if self.size is not None and len(self.size) == 2:
            c, d = x.shape[:2]
            planes = x.transpose(1, 0, 2, 3)  # (D, C, H, W): each slice resampled on its own
            out = np.stack([self.resample(p, None) for p in planes])
            return np.ascontiguousarray(out.transpose(1, 0, 2, 3))
        return self.resample(x, None if spacing is None else tuple(spacing))


def _channels_first(x: np.ndarray, nd: int) -> np.ndarray:
    if x.ndim == nd:
        return np.ascontiguousarray(x[None])
    if x.ndim == nd + 1 and x.shape[-1] == 3:  # colour: (..., 3) -> (3, ...)
        return np.ascontiguousarray(np.moveaxis(x, -1, 0))
    raise ValueError(f"expected {nd}D pixels (or {nd}D x 3 colour), got shape {x.shape}")


# ------------------------------------------------------------------------ what to predict


@dataclass(frozen=True)
class Unit:
    """One piece of reading work: a series (input="volume") or one file of a series ("slice").
    `group` is shared by the units of one series (a distributed task runs a whole group).
    `error` is set for an input where nothing could be found."""
    index: int
    source: str
    files: Tuple[str, ...]
    group: int
    ids: Dict[str, Optional[str]] = field(default_factory=dict)
    error: Optional[str] = None


def _series_ids(s) -> Dict[str, Optional[str]]:
    return {"patient_id": s.patient_id, "study_uid": s.study_uid, "series_uid": s.series_uid or None,
            "modality": s.modality}


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {text}"


def find_inputs(paths: Iterable, input: str = "slice") -> List[Unit]:
    """The units of work for `paths` (DICOM files, series folders, folder trees), found with
    medconv.dicom.scan from headers only, in the order of `paths` and, within one path, scan's
    patient -> study -> series order (files by name within a series). A path where no DICOM image is
    found gives one Unit carrying the reason in `error`."""
    from .dicom import scan

    if input not in INPUT_KINDS:
        raise ValueError(f"input must be one of {INPUT_KINDS}, got {input!r}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    units: List[Unit] = []
    group = 0
    for p in paths:
        source = os.fspath(p)
        try:
            found = scan(source)
        except Exception as exc:  # FileNotFoundError, DicomError (not DICOM, empty folder), OSError
            units.append(Unit(len(units), source, (), group, {}, f"no DICOM found: {_reason(exc)}"))
            group += 1
            continue
        series = [s for s in found if s.is_image]
        if not series:
            why = f"; {len(found.skipped)} file(s) skipped, e.g. '{found.skipped[0][0]}': {found.skipped[0][1]}" \
                if found.skipped else ""
            nonimage = f"; {len(found)} series without pixel data" if len(found) else ""
            units.append(Unit(len(units), source, (), group, {}, f"no DICOM images found in '{source}'{nonimage}{why}"))
            group += 1
            continue
        for s in series:
            ids = _series_ids(s)
            if input == "volume":
                units.append(Unit(len(units), source, tuple(s.files), group, ids))
            else:
                for f in s.files:
                    units.append(Unit(len(units), source, (f,), group, ids))
            group += 1
    return units


def _result(unit: Unit, **values) -> Dict[str, Any]:
    r = dict.fromkeys(RESULT_FIELDS)
    r.update(input=unit.source, problems=[], **{k: v for k, v in unit.ids.items() if k in RESULT_FIELDS})
    if unit.files:
        r["path"] = unit.files[0] if len(unit.files) == 1 else os.path.commonpath(unit.files)
    r.update(values)
    return r


def load_unit(unit: Unit, preprocess: Preprocess) -> List[Tuple[Dict[str, Any], Optional[np.ndarray]]]:
    """Reads and preprocesses one unit: [(result without prediction, model input or None)]. Never
    raises: a failure gives a result with `error` set and no input."""
    from .dicom import read, read_series

    if unit.error is not None:
        return [(_result(unit, error=unit.error), None)]
    try:
        if preprocess.input == "volume":
            vol = read_series(list(unit.files), strict=False, window=preprocess.window)
            ids = {k: vol.meta.get(k) for k in ("patient_id", "study_uid", "series_uid", "modality")}
            r = _result(unit, **{k: v for k, v in ids.items() if v is not None},
                        problems=list(vol.report.problems))
            return [(r, preprocess.prepare_volume(vol.array, vol.spacing))]
        image = read(unit.files[0], window=preprocess.window)
        m = image.meta
        base = dict(sop_instance_uid=m.get("sop_instance_uid"),
                    **{k: m.get(k) for k in ("patient_id", "study_uid", "series_uid", "modality") if m.get(k)})
        frames = m.get("frames") or 1
        pixels = image.pixels if frames > 1 else image.pixels[None]
        return [(_result(unit, frame=(k if frames > 1 else None), **base),
                 preprocess.prepare_image(pixels[k], m.get("pixel_spacing"))) for k in range(len(pixels))]
    except Exception as exc:  # a DicomError names the file and the tag; anything else is reported as is
        return [(_result(unit, error=_reason(exc)), None)]


# ------------------------------------------------------------------------ prediction


_END = object()
_INFERENCE_LOCK = threading.Lock()


def _prefetched(units: Sequence[Unit], load: Callable, depth: int) -> Iterator:
    """(unit, load(unit)) in order, loaded on a background thread at most `depth` units ahead of
    the consumer, so that reading the next series overlaps inference on this one."""
    q: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def work():
        try:
            for u in units:
                if not put((u, load(u))):
                    return
        except BaseException as exc:  # load() catches per-unit failures; this is a bug: hand it over
            put((None, exc))
            return
        put(_END)

    thread = threading.Thread(target=work, name="medconv-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if item[0] is None:
                raise item[1]
            yield item
    finally:
        stop.set()
        thread.join()


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_device(device):
    if device not in _DEVICES:
        raise ValueError(f"device must be one of {_DEVICES}, got {device!r}")
    if device == "cuda":
        import medconv

        if not medconv.backend_info().get("gpu"):
            raise RuntimeError("device='cuda' needs a CUDA GPU and CuPy (pip install 'medconv[cuda]'), but "
                               "medconv.backend_info()['gpu'] is None here; use device='cpu'")
    return device


class Predictor:
    """A model file written by ``medconv.nn.save(model, path, preprocess=p)``, ready to predict.

    Loading refuses a missing, corrupted or tampered file and one without a preprocess (ValueError,
    FileNotFoundError). device: "cpu", or "cuda" (the model is moved with model.to("cuda"); a
    RuntimeError where no GPU is available). batch_size: inputs per forward pass (a batch never
    mixes series, so results do not depend on how the series are spread over machines).
    prefetch: series/files read ahead on a background thread (0: read and infer in turn).
    """

    def __init__(self, path, *, device: str = "cpu", batch_size: int = 16, prefetch: int = 2):
        from . import nn

        self.path = os.fspath(path)
        self.batch_size = _check_positive(batch_size, "batch_size")
        if isinstance(prefetch, bool) or not isinstance(prefetch, numbers.Integral) or prefetch < 0:
            raise ValueError(f"prefetch must be a non-negative int, got {prefetch!r}")
        self.prefetch = int(prefetch)
        self.device = _check_device(device)
        self.model = nn.load(self.path)
        self.preprocess = Preprocess.from_model(self.path)
        self.model.eval()
        if self.device == "cuda":
            try:
                self.model.to("cuda")
            except Exception as exc:
                raise RuntimeError(f"this medconv cannot move the model to the GPU ({_reason(exc)}); "
                                   "use device='cpu'") from None
        # One forward at a time in this process: a model keeps per-call state, and no_grad() is a
        # process-wide switch, so two threads in predict_proba could leave it off for everyone.
        self._lock = _INFERENCE_LOCK
        self._n_out = None
        if self.preprocess.size is not None and (self.preprocess.input == "slice" or len(self.preprocess.size) == 3):
            # a dry run refuses a model whose outputs do not match the class names now, not per input
            channels = self._first_in_channels()
            if channels is not None:
                dummy = np.zeros((1, channels) + self.preprocess.size, dtype=np.float32)
                try:
                    self.probabilities(dummy)
                except ValueError as exc:
                    raise ValueError(f"{self.path!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"Predictor({self.path!r}, {self.preprocess}, device={self.device!r})"

    @property
    def classes(self) -> Tuple[str, ...]:
        if self.preprocess.classes is not None:
            return self.preprocess.classes
        return tuple(str(k) for k in range(self._n_out or 0))

    def _first_in_channels(self):
        for m in self.model.modules():
            c = getattr(m, "in_channels", None)
            if isinstance(c, int):
                return c
        return None

    # -- inference
    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(N, classes) probabilities for a batch of prepared inputs, with predict_proba's rules
        (softmax over the outputs; a single logit gives [1 - sigmoid, sigmoid])."""
        from .nn.training import predict_proba

        with self._lock:
            if self.device == "cuda":
                import cupy

                p = _proba_from_outputs(self.model, cupy.asnumpy(self.model(cupy.asarray(x, dtype=self.model.dtype))))
            else:
                p = predict_proba(self.model, x, batch_size=max(1, len(x)))
        p = np.asarray(p, dtype=np.float64)
        if p.ndim != 2:
            raise ValueError(f"the model gives outputs of shape {p.shape[:1] + p.shape[1:]}; a Predictor needs a "
                             "classifier with (N, classes) outputs")
        if self.preprocess.classes is not None and p.shape[1] != len(self.preprocess.classes):
            raise ValueError(f"the model gives {p.shape[1]} probabilities but the preprocess names "
                             f"{len(self.preprocess.classes)} classes {list(self.preprocess.classes)}")
        self._n_out = p.shape[1]
        return p

    def _fill(self, pending: List[list]) -> None:
        """Runs the model on the pending inputs (one shape, one series) and writes label/probability."""
        todo = [e for e in pending if e[1] is not None]
        if not todo:
            return
        try:
            p = self.probabilities(np.stack([e[1] for e in todo]))
        except Exception as exc:
            for r, _ in todo:
                r["error"] = f"inference failed: {_reason(exc)}"
            return
        names = self.classes
        for (r, _), row in zip(todo, p):
            k = int(np.argmax(row))
            r["label"] = names[k]
            r["probability"] = {name: float(v) for name, v in zip(names, row)}

    def run(self, units: Sequence[Unit], *, batch_size: Optional[int] = None,
            progress: Optional[Callable[[int], Any]] = None) -> Iterator[Dict[str, Any]]:
        """Results for `units` (from find_inputs), in order, as they are ready. progress(n) is called
        with the number of units finished since its last call."""
        bs = self.batch_size if batch_size is None else _check_positive(batch_size, "batch_size")
        units = list(units)
        ends = {k for k, (u, after) in enumerate(zip(units, units[1:] + [None]))
                if after is None or after.group != u.group}
        load = lambda u: load_unit(u, self.preprocess)  # noqa: E731
        loaded = _prefetched(units, load, self.prefetch) if self.prefetch else ((u, load(u)) for u in units)
        pending: List[list] = []
        shape = None
        finished = reported = 0
        try:
            for position, (unit, entries) in enumerate(loaded):
                for r, x in entries:
                    if x is not None:
                        n = sum(e[1] is not None for e in pending)
                        if n and (n >= bs or x.shape != shape):
                            self._fill(pending)
                            yield from (r_ for r_, _ in pending)
                            pending.clear()
                            if progress is not None and finished > reported:
                                progress(finished - reported)
                                reported = finished
                        shape = x.shape
                    pending.append([r, x])
                finished += 1
                if position in ends:  # a batch never spans two series
                    self._fill(pending)
                    yield from (r_ for r_, _ in pending)
                    pending.clear()
                    if progress is not None:
                        progress(finished - reported)
                        reported = finished
        finally:
            close = getattr(loaded, "close", None)
            if close is not None:
                close()

    def predict_iter(self, paths, *, batch_size: Optional[int] = None,
                     progress: Optional[Callable[[int], Any]] = None) -> Iterator[Dict[str, Any]]:
        """predict() one result at a time."""
        return self.run(find_inputs(paths, self.preprocess.input), batch_size=batch_size, progress=progress)

    def predict(self, paths, *, batch_size: Optional[int] = None) -> List[Dict[str, Any]]:
        """One result per image (input="slice") or series ("volume") found under `paths` -- DICOM
        files, series folders or folder trees -- in input order. Reading and preprocessing of
        the next series runs on a background thread while the model runs on this one."""
        return list(self.predict_iter(paths, batch_size=batch_size))


def _proba_from_outputs(model, out: np.ndarray) -> np.ndarray:
    """predict_proba's rules on outputs computed elsewhere (the GPU)."""
    from . import functional as F
    from .nn.activation import LogSoftmax, Sigmoid, Softmax
    from .nn.training import _last_layer

    last = _last_layer(model)
    if isinstance(last, Softmax):
        return out
    if isinstance(last, LogSoftmax):
        return np.exp(out)
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        p = out.reshape(-1) if isinstance(last, Sigmoid) else np.asarray(F.sigmoid(out.reshape(-1)))
        return np.stack([1 - p, p], axis=1)
    return np.asarray(F.softmax(np.ascontiguousarray(out), dim=1))


def failed(results: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The results that carry an error."""
    return [r for r in results if r.get("error")]
