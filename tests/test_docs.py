"""The user documentation: a README a newcomer reads in minutes, no issue numbers or history in
README or docs/ (history lives in CHANGELOG.md), and no broken relative link."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_is_short_and_names_the_two_setup_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 160
    assert "make demo" in text and "make test" in text


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_no_issue_numbers_or_history(path):
    text = path.read_text(encoding="utf-8")
    found = re.findall(r"(?i)\bissues? #?\d+|\b(?:since|before) issue\b", text)
    assert found == [], f"{path.name}: {found}"


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_relative_links_resolve(path):
    text = path.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (path.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert broken == [], f"{path.name}: {broken}"
