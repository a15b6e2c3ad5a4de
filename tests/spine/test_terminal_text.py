"""Control characters from files and arguments never reach the terminal raw (issue 23): the one
escaping helper, and the places that print such text (CLI errors, graph problems, the console)."""
from __future__ import annotations

import io
import unicodedata
from pathlib import Path

from facesynth.cli import main
from facesynth.runtime.console import ConsoleProgress
from facesynth.terminal_text import shown, terminal_safe

TITLE_AND_CLEAR = "\x1b]0;pwned\x07\x1b[2J"  # sets the window title, then clears the screen
PASSTHROUGH = Path(__file__).parents[1] / "graphs" / "passthrough.yaml"


def raw_controls(text: str, keep: str = "\n") -> list[str]:
    """Characters Unicode calls controls (category Cc) or bidi formatting/separators, left raw."""
    return [c for c in text if c not in keep and (unicodedata.category(c) in ("Cc", "Zl", "Zp")
                                                   or unicodedata.bidirectional(c) in
                                                   ("LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"))]


def test_every_control_character_is_escaped_and_nothing_else():
    every = "".join(chr(i) for i in range(0x3000) if unicodedata.category(chr(i)) != "Cs")
    out = terminal_safe(every, newlines=False)
    assert raw_controls(out, keep="") == []
    printable = "".join(c for c in every if not raw_controls(c, keep="") and c not in "\u200e\u200f\u061c")
    assert terminal_safe(printable) == printable  # text without controls is left as it is
    assert terminal_safe("a\nb\tc\rd\x1be\x9bf\u202eg") == "a\nb\\tc\\rd\\x1be\\x9bf\\u202eg"
    assert terminal_safe("a\nb", newlines=False) == "a\\nb"
    assert shown("x" * 300, limit=10) == "x" * 10 + "..."
    assert terminal_safe(terminal_safe(TITLE_AND_CLEAR)) == terminal_safe(TITLE_AND_CLEAR)  # idempotent


def test_graph_value_with_escape_sequence_is_shown_escaped(tmp_path, capsys):
    """YAML's own "\\e" and "\\a" escapes put ESC and BEL in a value of a pure-ASCII file."""
    path = tmp_path / "esc.yaml"
    path.write_text(f'version: 1\nname: t\nstore: {{path: "{tmp_path / "s.zarr"}"}}\n'
                    'nodes:\n  - id: src\n    kind: "bench.\\e]0;pwned\\a\\e[2J"\n')
    code = main(["graph", "validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert raw_controls(err) == [], repr(err)
    assert f"{path}:6:11: unknown node kind 'bench.\\x1b]0;pwned\\x07\\x1b[2J'" in err, err


def test_set_value_with_escape_sequence_is_shown_escaped(capsys):
    for arg in (f"name={TITLE_AND_CLEAR}", f"{TITLE_AND_CLEAR}", f"nodes.{TITLE_AND_CLEAR}.params.x=1",
                'nodes.src.kind="bench.\\e]0;x\\a\\rb"'):  # the last: YAML's escapes, valid YAML
        code = main(["graph", "validate", str(PASSTHROUGH), "--set", arg])
        cap = capsys.readouterr()
        out = cap.out + cap.err
        assert code == 2 and "\\x1b]0;" in out, out
        assert raw_controls(out) == [], (arg, repr(out))


def test_console_escapes_what_records_carry():
    out = io.StringIO()
    console = ConsoleProgress(out)
    console({"type": "error", "node": "cam\x1b[2J", "chunk": "c0", "error": f"bad {TITLE_AND_CLEAR}\rX",
             "fatal": True})
    console({"type": "event", "name": "capture.damaged", "tally": "jpeg", "error": f"frame 3 {TITLE_AND_CLEAR}"})
    console({"type": "event", "name": "live.stats", "source": TITLE_AND_CLEAR})
    text = out.getvalue()
    assert raw_controls(text) == [], repr(text)
    assert "error in cam\\x1b[2J on c0: bad \\x1b]0;pwned\\x07\\x1b[2J\\rX (fatal)" in text, text
    assert text.count("\\x1b]0;pwned\\x07") == 3, text
