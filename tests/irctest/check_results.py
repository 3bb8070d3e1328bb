"""Compares an irctest JUnit report with the known failures the project keeps.

Usage: check_results.py REPORT.xml KNOWN_FAILURES.txt

KNOWN_FAILURES.txt has one test id per line, as `file.py::Class::test`, with `#`
comments; docs/irc.md gives each one's cause. Exits 1 when a test fails that is not
listed, and reports listed tests that now pass, so the list can shrink.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def test_id(case: ET.Element) -> str:
    """Returns `file.py::Class::test[params]` for a JUnit test case."""
    classname = case.get("classname", "")
    parts = classname.split(".")
    # classname is `irctest.server_tests.<file>.<Class>`.
    module = parts[2] if len(parts) > 2 else classname
    cls = ".".join(parts[3:])
    name = case.get("name", "")
    return f"{module}.py::{cls}::{name}" if cls else f"{module}.py::{name}"


def load_known(path: Path) -> set[str]:
    """Reads the known failure ids, without comments and blank lines."""
    known = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            known.add(entry)
    return known


def main() -> int:
    report, known_path = Path(sys.argv[1]), Path(sys.argv[2])
    if not report.exists() or report.stat().st_size == 0:
        print(f"error: irctest wrote no report to {report}", file=sys.stderr)
        return 1
    known = load_known(known_path)
    root = ET.parse(report).getroot()
    passed, failed, skipped = [], [], []
    for case in root.iter("testcase"):
        case_id = test_id(case)
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(case_id)
        elif case.find("skipped") is not None:
            skipped.append(case_id)
        else:
            passed.append(case_id)

    unexpected = sorted(set(failed) - known)
    fixed = sorted(known & set(passed))
    print(
        f"irctest: {len(passed)} passed, {len(failed)} failed "
        f"({len(failed) - len(unexpected)} known), {len(skipped)} skipped"
    )
    for case_id in fixed:
        print(f"now passing, remove from {known_path}: {case_id}")
    for case_id in unexpected:
        print(f"unexpected failure: {case_id}")
    if not passed and not failed:
        print("error: the report lists no test that ran", file=sys.stderr)
        return 1
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
