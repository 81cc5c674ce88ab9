"""medconv.pipeline's prediction on a Dask cluster (``pip install "medconv[distributed]"``).

    from medconv.distributed import predict
    results = predict("model.safetensors", ["/data/scans"])                  # a LocalCluster
    results = predict("model.safetensors", paths, client="tcp://sched:8786")  # an existing cluster

The client finds the series (headers only) and sends one task per series; each worker loads the
model once (a cache keyed by worker, path and the file's SHA-256, so a changed file is reloaded)
and reads, preprocesses and predicts the series itself. The model file and the DICOM files must be
readable at the same paths on every worker (a shared file system). Results come back in input
order; a series that fails -- a bad file, or a worker lost while running it -- is reported in
its own results' `error`, and the others complete.
"""
from __future__ import annotations

import hashlib
import os
import threading
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from .pipeline import Predictor, Unit, _check_device, _check_positive, _reason, _result, find_inputs

__all__ = ["predict", "predict_iter", "loaded_models"]

_cache: Dict[tuple, Predictor] = {}
_loads: Dict[tuple, int] = {}
_cache_lock = threading.Lock()


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _worker_id() -> Optional[str]:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not on a worker (tests call the task function directly)
        return None


def _predictor(model_path: str, digest: str, device: str, prefetch: int) -> Predictor:
    """This worker's Predictor for the model file, loaded on first use and kept."""
    key = (_worker_id(), model_path, digest, device)
    with _cache_lock:
        predictor = _cache.get(key)
        if predictor is None:
            if file_sha256(model_path) != digest:
                raise ValueError(f"the model file {model_path!r} on worker {key[0]} differs from the client's "
                                 "(a different file at the same path)")
            predictor = Predictor(model_path, device=device, prefetch=prefetch)
            _cache[key] = predictor
            _loads[key] = _loads.get(key, 0) + 1
        return predictor


def loaded_models() -> List[Dict[str, Any]]:
    """The models loaded in this process (run it on the workers with client.run(loaded_models)):
    worker, path, sha256, device and how many times each was loaded (1 unless evicted)."""
    with _cache_lock:
        return [{"worker": k[0], "path": k[1], "sha256": k[2], "device": k[3], "loads": n} for k, n in _loads.items()]


def _run_group(model_path: str, digest: str, units: Sequence[Unit], device: str, batch_size: int,
               prefetch: int) -> List[Dict[str, Any]]:
    """The task: one series (its units) read, preprocessed and predicted on a worker."""
    try:
        predictor = _predictor(model_path, digest, device, prefetch)
    except Exception as exc:
        return [_result(u, error=f"the worker cannot use the model: {_reason(exc)}") for u in units]
    return list(predictor.run(units, batch_size=batch_size))


def _set_threads(n: int) -> None:
    import medconv

    medconv.set_num_threads(n)


def _failed(units: Sequence[Unit], exc: BaseException) -> List[Dict[str, Any]]:
    return [_result(u, error=f"the task failed on the cluster: {_reason(exc)}") for u in units]


def _groups(units: List[Unit]) -> List[List[Unit]]:
    out: List[List[Unit]] = []
    for u in units:
        if out and out[-1][0].group == u.group:
            out[-1].append(u)
        else:
            out.append([u])
    return out


class _Session:
    """A Client for `client`: itself, a new one for an address, or a new LocalCluster for None;
    what it started, it closes."""

    def __init__(self, client, n_workers: Optional[int], processes: bool):
        from distributed import Client, LocalCluster

        self._own = []
        if client is None:
            n = n_workers or max(1, min(4, os.cpu_count() or 1))
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=":0")
            self._own.append(cluster)
            client = Client(cluster)
            self._own.insert(0, client)
            if processes:  # the workers share this machine's cores: no oversubscription of kernel threads
                client.run(_set_threads, max(1, (os.cpu_count() or 1) // n))
        elif isinstance(client, str):
            client = Client(client)
            self._own.append(client)
        elif not (hasattr(client, "submit") and hasattr(client, "gather")):
            raise TypeError(f"client must be a dask.distributed Client, a scheduler address or None, "
                            f"got {type(client).__name__}")
        self.client = client

    def close(self):
        for obj in self._own:
            obj.close()
        self._own = []


def predict_iter(model_path, paths, client=None, *, device: str = "cpu", batch_size: int = 16, prefetch: int = 2,
                 n_workers: Optional[int] = None, processes: bool = True,
                 progress: Optional[Callable[[int], Any]] = None) -> Iterator[Dict[str, Any]]:
    """predict() one result at a time, in input order, as soon as it and those before it are done.
    paths may also be the Units that medconv.pipeline.find_inputs returned (no second scan);
    progress(n) is called (from another thread) as the tasks for n units finish."""
    model_path = os.path.abspath(os.fspath(model_path))
    batch_size = _check_positive(batch_size, "batch_size")
    if client is None:
        _check_device(device)  # a LocalCluster runs here: a clear error before it starts
    elif device not in ("cpu", "cuda"):
        raise ValueError(f"device must be one of ('cpu', 'cuda'), got {device!r}")
    digest = file_sha256(model_path)
    local = Predictor(model_path, prefetch=0)  # refuses a bad model file here, not on every worker
    if isinstance(paths, (list, tuple)) and paths and all(isinstance(u, Unit) for u in paths):
        units = list(paths)  # already found by medconv.pipeline.find_inputs
    else:
        units = find_inputs(paths, local.preprocess.input)
    token = uuid.uuid4().hex[:12]
    session = _Session(client, n_workers, processes)
    futures = []
    try:
        c = session.client
        groups = _groups(units)
        for i, group in enumerate(groups):
            f = c.submit(_run_group, model_path, digest, group, device, batch_size, prefetch,
                         key=f"medconv-predict-{token}-{i}",
                         pure=False)
            if progress is not None:
                f.add_done_callback(lambda _, n=len(group): progress(n))
            futures.append(f)
        for group, f in zip(groups, futures):
            try:
                results = f.result()
            except Exception as exc:  # the worker died (KilledWorker), a pickling error, ...
                results = _failed(group, exc)
            yield from results
    finally:
        for f in futures:
            f.release()
        session.close()


def predict(model_path, paths, client=None, *, device: str = "cpu", batch_size: int = 16, prefetch: int = 2,
            n_workers: Optional[int] = None, processes: bool = True) -> List[Dict[str, Any]]:
    """medconv.pipeline.Predictor(model_path).predict(paths), run on a Dask cluster.

    client: a dask.distributed Client, a scheduler address ("tcp://host:8786"), or None for a
    LocalCluster of n_workers (default min(4, CPUs)) single-threaded workers, processes or
    threads, closed on return. The same results as Predictor.predict, in the same order.
    """
    return list(predict_iter(model_path, paths, client, device=device, batch_size=batch_size, prefetch=prefetch,
                             n_workers=n_workers, processes=processes))
