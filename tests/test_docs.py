"""The README is a landing page, and every link in it and in docs/ leads somewhere."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings (code blocks skipped)."""
    found, in_code = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (heading := re.match(r"#+ (.*)", line)):
            found.add(re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-"))
    return found


def broken_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not fetched (no network in CI)
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(f"{page.name}: {target} (no such heading)")
    return broken


def test_every_relative_link_and_anchor_exists():
    assert [problem for page in PAGES for problem in broken_links(page)] == []


def test_the_check_sees_a_broken_link_and_a_missing_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A part\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-part) [gone](missing.md) [bad](other.md#no-part) [self](#nowhere)\n")
    assert broken_links(page) == [
        "page.md: missing.md (no such file)",
        "page.md: other.md#no-part (no such heading)",
        "page.md: #nowhere (no such heading)",
    ]


def test_readme_is_a_landing_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    assert re.search(r"!\[[^\]]+\]\(docs/images/demo\.gif\)", readme)  # a picture the project made


def test_no_page_speaks_of_how_the_project_is_run():
    """Readers get the tool and its research log, not the notes of the people who build it."""
    for page in PAGES:
        text = page.read_text().lower()
        for words in (r"\bsessions?\b", "workplace", r"facts\.md", r"\bthe bar\b", r"\.\./shared"):
            assert not re.search(words, text), f"{page.name}: {words}"
