"""`medconv predict` end to end on DICOM series written by the fixtures, and the demo's prediction."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

import medconv
import medconv.nn as nn
from medconv import cli
from medconv.pipeline import Predictor, Preprocess
from test_dicom_fixtures import write_series
from test_pipeline import CLASSES, slice_model, truncated_copy, volume_model


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.safetensors"
    nn.save(slice_model(), path, preprocess=Preprocess(window="lung", size=(32, 32), classes=CLASSES))
    return str(path)


@pytest.fixture
def series(tmp_path):
    root = tmp_path / "scans"
    return root, [write_series(root / f"s{k}", n=3, seed=k) for k in range(2)]


def run(capsys, *argv):
    code = cli.main(["predict", *map(os.fspath, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_lines_on_stdout_match_the_predictor(capsys, model, series):
    root, _ = series
    code, out, err = run(capsys, "--model", model, root)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines == Predictor(model).predict([root])
    assert len(lines) == 6 and all(r["label"] in CLASSES and r["error"] is None for r in lines)
    assert err == ""


def test_output_jsonl_and_csv(capsys, tmp_path, model, series):
    root, written = series
    expected = Predictor(model).predict([root])
    code, out, err = run(capsys, "--model", model, root, "--output", tmp_path / "r.jsonl", "--batch-size", "2")
    assert code == 0 and out == ""
    assert "6 prediction(s) written to" in err
    assert [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()] == expected

    code, out, err = run(capsys, "--model", model, root, "-o", tmp_path / "r.csv")
    assert code == 0
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    assert list(rows[0])[:10] == ["input", "path", "patient_id", "study_uid", "series_uid", "sop_instance_uid",
                                  "frame", "modality", "label", "probability"]
    for row, r in zip(rows, expected):
        assert row["path"] == r["path"] and row["series_uid"] == r["series_uid"] and row["label"] == r["label"]
        assert float(row["probability"]) == pytest.approx(r["probability"][r["label"]])
        assert float(row["p_abnormal"]) == pytest.approx(r["probability"]["abnormal"])
        assert row["error"] == "" and row["problems"] == ""


def test_volumes_from_the_command_line(capsys, tmp_path, series):
    root, written = series
    path = tmp_path / "volume.safetensors"
    nn.save(volume_model(), path, preprocess=Preprocess(window="lung", size=(3, 16, 16), input="volume"))
    code, out, err = run(capsys, "--model", path, root, written[0].folder)
    assert code == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == 3 and results[2]["series_uid"] == written[0].series_uid
    assert all(list(r["probability"]) == ["0", "1", "2"] and r["sop_instance_uid"] is None for r in results)


def test_a_failing_series_gives_exit_1_and_the_others_complete(capsys, tmp_path, model, series):
    root, written = series
    broken = truncated_copy(root / "broken")
    code, out, err = run(capsys, "--model", model, root, tmp_path / "nowhere", "-o", tmp_path / "r.jsonl")
    assert code == 1
    results = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(results) == 8
    failed = [r for r in results if r["error"]]
    assert [r["path"] or r["input"] for r in failed] == [broken, os.fspath(tmp_path / "nowhere")]
    assert sum(1 for r in results if r["label"] in CLASSES) == 6
    assert "2 of 8 input(s) failed" in err and "truncated file" in err and "No such file or folder" in err


def test_no_dicom_found(capsys, tmp_path, model):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no images here")
    code, out, err = run(capsys, "--model", model, tmp_path / "docs", tmp_path / "missing")
    assert code == 1 and out == ""
    assert "no DICOM found in" in err and "not a DICOM file" in err and "No such file or folder" in err


def test_unusable_models_are_refused(capsys, tmp_path, model, series):
    root, _ = series
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a model")
    plain = tmp_path / "plain.safetensors"
    nn.save(slice_model(), plain)
    tampered = tmp_path / "tampered.safetensors"
    with open(model, "rb") as f:
        blob = bytearray(f.read())
    blob[-1] ^= 0x40
    tampered.write_bytes(bytes(blob))
    for path, message in [(garbage, "not a readable safetensors file"), (plain, "holds no preprocess"),
                          (tampered, "fails its checksum"), (tmp_path / "missing.safetensors", "no such file")]:
        code, out, err = run(capsys, "--model", path, root)
        assert code == 2 and out == ""
        assert err.startswith("medconv predict: cannot ") and message in err


def test_bad_arguments(capsys, model, series):
    root, _ = series
    code, out, err = run(capsys, "--model", model, root, "--output", "results.txt")
    assert code == 2 and "--output must name a .jsonl or .csv file" in err
    for bad in (["--batch-size", "0"], ["--device", "tpu"], ["--prefetch", "-1"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(["predict", "--model", model, os.fspath(root), *bad])
        assert exc.value.code == 2
    if not medconv.backend_info()["gpu"]:
        code, out, err = run(capsys, "--model", model, root, "--device", "cuda")
        assert code == 2 and "needs a CUDA GPU" in err and out == ""


def test_the_table(model, series):
    root, written = series
    results = Predictor(model).predict([root])
    results[1] = {**results[1], "label": None, "probability": None, "error": "boom"}
    table = cli.format_table(results).splitlines()
    assert table[0].split()[:5] == ["#", "file", "or", "series", "modality"]
    assert len(table) == 7
    label = results[0]["label"]
    assert f"{results[0]['probability'][label]:.4f}" in table[1] and label in table[1]
    assert table[2].rstrip().endswith("error: boom")


def test_console_script_exit_code(tmp_path, model, series):
    root, _ = series
    result = subprocess.run([sys.executable, "-m", "medconv.cli", "predict", "--model", model, os.fspath(root),
                             os.fspath(tmp_path / "missing")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 7 and "1 of 7 input(s) failed" in result.stderr


def test_demo_trains_saves_and_predicts_on_shipped_dicom(capsys):
    assert cli.main(["demo", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "From DICOM to a prediction" in out and "preprocess=Preprocess(window='abdomen'" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ") and "->" in line}
    assert "-> CT with probability" in lines["CT_small.dcm"]
    for name in ("MR_small.dcm", "MR_small_RLE.dcm", "examples_overlay.dcm"):
        assert "-> MR with probability" in lines[name]
    assert "no prediction" in lines["MR_truncated.dcm"] and "truncated file" in lines["MR_truncated.dcm"]
