"""Every `docs/<page>.md#anchor` the code, tests, scripts and docs cite leads to a heading, and every
relative link of README.md and docs/*.md to a file: a renamed heading or a moved page fails here.

Anchors are GitHub's: the heading's text, lower-cased, punctuation dropped, spaces as '-', and
'-1', '-2', ... after repeats on a page."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The product contract lives beside the repository, not in it (README, docs/contract.md).
OUTSIDE_THE_REPOSITORY = {"shared/CONTRACT.md"}

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_CITATION = re.compile(r"(?<![\w/.-])docs/([\w.-]+\.md)#([\w-]+)")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of a page's headings (headings inside fenced code are not headings)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else _HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def _links(markdown: str) -> list[str]:
    out, fenced = [], False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            out += _LINK.findall(line)
    # a link's text may wrap onto the next line
    out += [t for t in _LINK.findall(re.sub(r"\n(?!\n)", " ", markdown)) if t not in out]
    return out


def _pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _cited_in(root: Path) -> list[Path]:
    files = [*_pages(root), root / "pyproject.toml"]
    for folder in ("processor", "scripts", "tests", "deploy", ".ci"):
        files += [p for p in sorted((root / folder).rglob("*")) if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix in ("", ".py", ".sh", ".md", ".yml", ".yaml", ".toml")]
    return [p for p in files if p.exists()]


def broken_links(root: Path) -> list[str]:
    """Every reference that leads nowhere, as 'file: target (why)'."""
    problems: list[str] = []
    cache: dict[Path, set[str]] = {}

    def check_anchor(source: Path, page: Path, anchor: str, target: str) -> None:
        if not page.exists():
            problems.append(f"{source.relative_to(root)}: {target} (no such file)")
            return
        if page.suffix == ".md" and anchor:
            if page not in cache:
                cache[page] = anchors(page.read_text(encoding="utf-8"))
            if anchor not in cache[page]:
                problems.append(f"{source.relative_to(root)}: {target} (no heading with that anchor)")

    for source in _cited_in(root):
        text = source.read_text(encoding="utf-8", errors="replace")
        for page, anchor in _CITATION.findall(text):
            check_anchor(source, root / "docs" / page, anchor, f"docs/{page}#{anchor}")
    for source in _pages(root):
        if not source.exists():
            continue
        for target in _links(source.read_text(encoding="utf-8")):
            if _SCHEME.match(target):
                continue
            path, _, anchor = target.partition("#")
            page = (source.parent / path).resolve() if path else source.resolve()
            if not page.is_relative_to(root.resolve()):
                if not any(page.as_posix().endswith("/" + name) for name in OUTSIDE_THE_REPOSITORY):
                    problems.append(f"{source.relative_to(root)}: {target} (outside the repository)")
                continue
            check_anchor(source, page, anchor, target)
    return sorted(set(problems))


def test_every_cited_anchor_and_relative_link_exists():
    problems = broken_links(ROOT)
    assert not problems, "\n".join(problems)


def test_the_check_finds_a_broken_anchor_a_missing_file_and_a_link_out_of_the_repository(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Tick timer\n\n```\n# not a heading\n```\n")
    cite = "docs/" + "page.md#"  # split, so that this file cites nothing itself
    (tmp_path / "README.md").write_text(
        f"[ok]({cite}tick-timer) [bad]({cite}tock-timer) [gone](docs/none.md) [img](docs/x.png)\n"
        "[contract](../shared/CONTRACT.md) [elsewhere](../other/file.md)\n")
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n[up](page.md#tick-timer) [here](#other) [no](#none)\n")
    (tmp_path / "processor").mkdir()
    (tmp_path / "processor" / "m.py").write_text(f"# ({cite}tick-timer) ({cite}not-a-heading)\n")
    assert broken_links(tmp_path) == sorted([
        "README.md: ../other/file.md (outside the repository)",
        "README.md: docs/none.md (no such file)",
        f"README.md: {cite}tock-timer (no heading with that anchor)",
        "README.md: docs/x.png (no such file)",
        "docs/other.md: #none (no heading with that anchor)",
        f"processor/m.py: {cite}not-a-heading (no heading with that anchor)",
    ])


def test_anchors_follow_github():
    page = "# A\n## `kpi run`: the whole floor\n## A contact's profile (mypyc)\n## 100,000 events\n## A\n"
    assert anchors(page) == {"a", "kpi-run-the-whole-floor", "a-contacts-profile-mypyc", "100000-events", "a-1"}
