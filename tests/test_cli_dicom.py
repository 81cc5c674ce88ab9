"""`medconv info PATH` and `medconv convert SERIES OUT.npy` on series written by the fixtures."""
import json

import numpy as np
from medconv import cli
from medconv.dicom import read_series
from test_dicom_fixtures import write_series


def test_info_prints_the_tree(tmp_path, capsys):
    write_series(tmp_path / "a", n=4, seed=1)
    write_series(tmp_path / "b", n=3, seed=2)
    assert cli.main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("CT") >= 2  # both series listed with their modality
    assert "4" in out and "3" in out


def test_info_on_a_bad_path_is_an_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["info", str(empty)]) == 1
    assert "medconv info:" in capsys.readouterr().err


def test_convert_writes_volume_and_geometry(tmp_path, capsys):
    write_series(tmp_path / "s", n=6, spacing=2.5, seed=3)
    out = tmp_path / "vol.npy"
    assert cli.main(["convert", str(tmp_path / "s"), str(out)]) == 0
    volume = read_series(tmp_path / "s")
    np.testing.assert_array_equal(np.load(out), volume.array)
    geometry = json.loads((tmp_path / "vol.json").read_text())
    np.testing.assert_allclose(geometry["spacing_zyx"], volume.spacing)
    np.testing.assert_allclose(geometry["affine"], volume.affine)
    assert geometry["sop_instance_uids"] == list(volume.sop_instance_uids)
    assert "6 x" in capsys.readouterr().out


def test_convert_refuses_bad_series_and_names(tmp_path, capsys):
    write_series(tmp_path / "s", n=5, seed=4)
    assert cli.main(["convert", str(tmp_path / "s"), str(tmp_path / "vol.txt")]) == 2
    (tmp_path / "nothing").mkdir()
    assert cli.main(["convert", str(tmp_path / "nothing"), str(tmp_path / "v.npy")]) == 1
    err = capsys.readouterr().err
    assert "OUT must end with .npy" in err and "medconv convert:" in err


def test_convert_lenient_writes_a_series_with_a_gap(tmp_path):
    write_series(tmp_path / "s", n=6, seed=5)
    files = sorted((tmp_path / "s").iterdir())
    volume = read_series(tmp_path / "s")
    # drop one inner slice (by position): a strict read refuses the gap, a lenient one reports it
    middle = volume.sop_instance_uids[2]
    import pydicom

    removed = [f for f in files if pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID == middle]
    assert len(removed) == 1
    removed[0].unlink()
    assert cli.main(["convert", str(tmp_path / "s"), str(tmp_path / "v.npy")]) == 1
    assert cli.main(["convert", str(tmp_path / "s"), str(tmp_path / "v.npy"), "--lenient"]) == 0
    assert np.load(tmp_path / "v.npy").shape[0] == 5
