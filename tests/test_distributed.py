"""medconv.distributed: the same predictions on a Dask LocalCluster of two workers as locally, the
model loaded once per worker, and one series' failure reported for that series only."""
from __future__ import annotations

import json
import os
import shutil

import pytest

import medconv.nn as nn
from medconv import cli
from medconv.pipeline import Predictor, Preprocess, find_inputs
from test_dicom_fixtures import write_series
from test_pipeline import CLASSES, slice_model, truncated_copy, volume_model

distributed = pytest.importorskip("distributed")
md = pytest.importorskip("medconv.distributed")


@pytest.fixture(scope="module")
def client():
    """Two single-threaded in-process workers (fast to start); closed after the module's tests."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0")
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    scans = root / "scans"
    written = [write_series(scans / f"s{k}", n=2 + k % 2, seed=10 + k) for k in range(4)]
    broken = truncated_copy(root / "broken")
    slice_path = root / "slice.safetensors"
    nn.save(slice_model(seed=3), slice_path, preprocess=Preprocess(window="lung", size=(32, 32), classes=CLASSES))
    volume_path = root / "volume.safetensors"
    nn.save(volume_model(seed=4), volume_path,
            preprocess=Preprocess(window=(40, 400), size=(2, 16, 16), input="volume"))
    return root, scans, written, broken, str(slice_path), str(volume_path)


def test_the_same_results_as_locally(client, data):
    root, scans, written, broken, slice_path, volume_path = data
    paths = [scans, broken, root / "missing", written[0].paths[0]]
    for model in (slice_path, volume_path):
        local = Predictor(model).predict(paths)
        remote = md.predict(model, paths, client)
        assert remote == local
        assert sum(r["error"] is None for r in remote) == (11 if model == slice_path else 5)
        assert [r["input"] for r in remote] == [r["input"] for r in local]
    # 7 tasks per model on 2 workers: each worker that ran one loaded the model once, not per task
    workers = set(client.scheduler_info()["workers"])
    loads = {(m["worker"], m["path"]): m["loads"] for per_worker in client.run(md.loaded_models).values()
             for m in per_worker if m["path"] in (slice_path, volume_path)}
    assert {w for w, _ in loads} <= workers and {p for _, p in loads} == {slice_path, volume_path}
    assert set(loads.values()) == {1} and len(loads) <= 2 * len(workers)
    assert nn.is_grad_enabled()  # two in-process workers did not leave no_grad() switched on


def test_a_changed_model_file_is_reloaded(client, data, tmp_path):
    root, scans, written, broken, slice_path, volume_path = data
    path = tmp_path / "changing.safetensors"
    pre = Preprocess(window="lung", size=(32, 32), classes=CLASSES)
    nn.save(slice_model(seed=5), path, preprocess=pre)
    first = md.predict(path, [written[0].folder], client)
    nn.save(slice_model(seed=6), path, preprocess=pre)
    second = md.predict(path, [written[0].folder], client)
    assert second == Predictor(path).predict([written[0].folder]) != first
    digests = {m["sha256"] for per_worker in client.run(md.loaded_models).values() for m in per_worker
               if m["path"] == str(path)}
    assert len(digests) == 2


def test_a_series_that_fails_on_a_worker_is_reported_for_that_series(client, data, tmp_path):
    root, scans, written, broken, slice_path, volume_path = data
    moved = tmp_path / "moved"
    shutil.copytree(written[1].folder, moved)
    units = find_inputs([scans, moved], "volume")
    shutil.rmtree(moved)  # vanishes between the scan on the client and the read on a worker
    results = md.predict(volume_path, units, client)
    assert len(results) == 5
    assert [r["error"] is None for r in results] == [True] * 4 + [False]
    assert "No such file" in results[4]["error"] or "cannot be opened" in results[4]["error"]
    assert results[4]["series_uid"] == written[1].series_uid


def test_a_failed_task_is_reported_for_its_series(client, data, monkeypatch):
    root, scans, written, broken, slice_path, volume_path = data
    run_group = md._run_group

    def flaky(model_path, digest, units, *args):
        if any(os.path.dirname(f) == written[2].folder for u in units for f in u.files):
            raise RuntimeError("worker lost")
        return run_group(model_path, digest, units, *args)

    monkeypatch.setattr(md, "_run_group", flaky)
    results = md.predict(slice_path, [scans], client)
    bad = [r for r in results if r["error"]]
    assert len(results) == 10 and len(bad) == 2
    assert all(os.path.dirname(r["path"]) == written[2].folder for r in bad)
    assert all(r["error"] == "the task failed on the cluster: RuntimeError: worker lost" for r in bad)
    assert all(r["label"] in CLASSES for r in results if not r["error"])


def test_cli_with_a_scheduler_address(capsys, client, data):
    root, scans, written, broken, slice_path, volume_path = data
    code = cli.main(["predict", "--model", slice_path, os.fspath(scans), "--scheduler", client.scheduler.address])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == Predictor(slice_path).predict([scans])


def test_a_local_cluster_when_no_client_is_given(data):
    root, scans, written, broken, slice_path, volume_path = data
    results = md.predict(volume_path, [scans, broken], n_workers=2, processes=False)
    assert results == Predictor(volume_path).predict([scans, broken])


def test_bad_models_are_refused_before_any_work(client, data, tmp_path):
    root, scans, written, broken, slice_path, volume_path = data
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        md.predict(garbage, [scans], client)
    with pytest.raises(FileNotFoundError):
        md.predict(tmp_path / "missing.safetensors", [scans], client)
    with pytest.raises(TypeError, match="client must be a dask.distributed Client"):
        md.predict(slice_path, [scans], client=42)
