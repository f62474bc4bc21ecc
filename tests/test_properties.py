"""kgen.properties writes what java.util.Properties reads back, checked with Java itself: the
file is loaded as Connect and MirrorMaker load theirs (`Properties.load` over a byte stream,
ISO-8859-1), and every key and value must come back exactly."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kgen import properties

READER = """
import java.io.FileInputStream;
import java.util.Properties;

public class Reader {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        try (FileInputStream in = new FileInputStream(args[0])) { props.load(in); }
        for (String key : new java.util.TreeSet<>(props.stringPropertyNames())) {
            System.out.println(hex(key) + " " + hex(props.getProperty(key)));
        }
    }

    static String hex(String s) {
        StringBuilder out = new StringBuilder("x");
        for (char c : s.toCharArray()) out.append(String.format("%04x", (int) c));
        return out.toString();
    }
}
"""

AWKWARD = {
    "plain.key": "plain value",
    "a key with spaces": " leading blank and trailing ",
    "k=e:y#!": "C:\\Users\\kgen\\x=1",
    "multi.line": "first\nsecond\r\nthird\ttab\fform",
    "unicode.é": "café € 😀 Ünïcödé",
    "#starts.with.hash": "!starts with bang",
    "empty": "",
    "jaas": 'org.apache.kafka.common.security.scram.ScramLoginModule required password="p\\w";',
}


def _hex(text: str) -> str:
    units = text.encode("utf-16-be")
    return "x" + "".join(f"{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))


def test_java_reads_back_every_key_and_value(tmp_path: Path) -> None:
    file = tmp_path / "test.properties"
    text = "".join(f"{properties.key(k)}={properties.value(v)}\n" for k, v in AWKWARD.items())
    assert text.isascii()
    file.write_text(text, encoding="ascii")
    (tmp_path / "Reader.java").write_text(READER, encoding="utf-8")
    result = subprocess.run(
        ["java", str(tmp_path / "Reader.java"), str(file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = sorted(f"{_hex(k)} {_hex(v)}" for k, v in AWKWARD.items())
    assert sorted(result.stdout.splitlines()) == expected
