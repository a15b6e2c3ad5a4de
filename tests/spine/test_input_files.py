"""facesynth.input_files: the checks every received file goes through, on real files of each kind."""
import json
import os

import pytest

from facesynth.input_files import InputFileError, check_regular, json_depth, read_bytes, read_json


def test_a_regular_file_within_its_limit_is_read(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"a": [1, {"b": "[[[{"}]}))
    assert read_json(p, max_bytes=100) == {"a": [1, {"b": "[[[{"}]}
    assert read_bytes(p, 100) == p.read_bytes()


def test_a_link_to_dev_zero_a_fifo_and_a_directory_are_refused_by_their_metadata(tmp_path):
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for path, kind in ((link, "a device"), (fifo, "a FIFO"), (tmp_path, "a directory")):
        with pytest.raises(InputFileError) as err:
            read_json(path)
        assert str(path) in str(err.value) and kind in str(err.value)


def test_a_sparse_file_larger_than_the_limit_is_refused_without_reading(tmp_path):
    p = tmp_path / "big.json"
    with open(p, "wb") as f:
        f.truncate(20 << 30)  # 20 GB, sparse: nothing on disk
    with pytest.raises(InputFileError, match=r"20\.0 GB, more than the limit of 4\.0 MB"):
        read_json(p, max_bytes=4 << 20)
    assert check_regular(tmp_path / "big.json").st_size == 20 << 30


def test_deep_nesting_is_refused_before_json_parses_it(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputFileError, match="nests 100000 levels deep"):
        read_json(p)
    # brackets inside strings, escaped quotes included, are not nesting
    assert json_depth(json.dumps({"s": '\\"[[[', "t": [[1]]})) == 3


def test_text_that_is_not_json_or_not_utf8_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe{")
    with pytest.raises(InputFileError, match="not UTF-8"):
        read_json(bad)
    bad.write_text("{nope")
    with pytest.raises(InputFileError, match="not valid JSON"):
        read_json(bad)


def test_a_missing_file_keeps_its_own_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "none.json")
