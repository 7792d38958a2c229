"""The README is the front page: its first commands, and links that lead somewhere.

These need the source tree (README.md beside tests/) and skip without it, e.g. where the
tests run against an installed wheel from a copy of tests/.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

pytestmark = pytest.mark.skipif(not README.is_file(), reason="no README.md beside tests/")

# The two commands a reader runs first: install and benchmark, install and test.
FIRST_COMMANDS = [
    'pip install "torch==2.13.0" ".[bench,torch]" && fastloss bench --quick',
    'pip install -e ".[test]" && python -m pytest',
]


def _code_blocks(text):
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)


def test_the_first_code_block_is_the_two_commands():
    blocks = _code_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no code block"
    commands = [line.split("   #")[0].rstrip() for line in blocks[0].splitlines() if line.strip()]
    assert commands == FIRST_COMMANDS


def test_relative_links_point_to_files_of_the_repository():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert local, "README.md links to no page of the documentation"
    missing = [t for t in local if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, missing
