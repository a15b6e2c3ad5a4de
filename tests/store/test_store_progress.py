"""Issue 13 item 7: a torn line in the progress log (a crash mid-write) never swallows the next record."""
import json

from facesynth.store.progress import Progress


def test_an_append_after_a_torn_tail_keeps_the_new_record(tmp_path):
    pr = Progress(tmp_path)
    pr.mark("fill", "crop:0-8", [{"port": "filled", "chunk": {"group": "fill", "start": 0, "stop": 8}}])
    with open(tmp_path / "_progress" / "fill.jsonl", "a") as fh:
        fh.write('{"key":"crop:8-16","outp')  # the crash: half a line, no newline
    assert set(pr.load("fill")) == {"crop:0-8"}  # the torn tail is ignored
    pr.mark("fill", "crop:16-24", [])
    assert set(pr.load("fill")) == {"crop:0-8", "crop:16-24"}
    lines = (tmp_path / "_progress" / "fill.jsonl").read_text().splitlines()
    assert json.loads(lines[-1]) == {"key": "crop:16-24", "outputs": []}


def test_damaged_bytes_lose_only_their_own_line(tmp_path):
    pr = Progress(tmp_path)
    for k in ("a:0-4", "a:4-8"):
        pr.mark("n", k, [])
    f = tmp_path / "_progress" / "n.jsonl"
    f.write_bytes(f.read_bytes() + b"\xff\xfe\x00 not json\n")
    pr.mark("n", "a:8-12", [])
    scan = pr.scan("n")
    assert [r["key"] for r in scan.records] == ["a:0-4", "a:4-8", "a:8-12"]
    assert scan.damaged_lines == [3] and not scan.torn_tail
    assert pr.rewrite("n") == 0 and pr.scan("n").damaged_lines == []
    assert set(pr.load("n")) == {"a:0-4", "a:4-8", "a:8-12"}
