"""The repository explains itself: no citation of documents outside it, and no broken doc links.

Comments, docstrings and docs give the reason for a decision or cite ``docs/decisions.md §Dn``; a
reference to a design file, a work item or an owner outside the repository means nothing to a reader
who has only the checkout. Markdown links must resolve to files in the repository, and anchors to
headings that exist (GitHub's heading slugs).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THIS = Path(__file__).resolve()
SCANNED_DIRS = ("src", "tests", "bench", "docs")
SCANNED_FILES = ("README.md", "CONTRIBUTING.md")
SKIPPED_DIRS = {".venv", "__pycache__", ".git", "node_modules"}
TEXT_SUFFIXES = {
    ".py", ".md", ".txt", ".toml", ".ini", ".cfg", ".yml", ".yaml", ".json", ".sql", ".j2",
    ".html", ".css", ".js", ".mako", ".sh", ".csv",
}  # fmt: skip

# Built from pieces so that this file does not match its own patterns when other tools grep for them.
FORBIDDEN = re.compile(
    "|".join(
        (
            re.escape("../shared/" + "DESIGN"),
            re.escape("DESIGN" + ".md"),
            re.escape("owner" + ": M"),
            "done" + r"-when",
            r"\bissue" + r"\s+#?\d",
        )
    ),
    re.IGNORECASE,
)
# Case-sensitive: the design document's name as a word ("design" is an ordinary word), work items
# named "Task A/B/C", and the folders outside the repository that held the specification.
FORBIDDEN_EXACT = re.compile(
    "|".join(
        (
            r"\b" + "DES" + r"IGN\b",
            r"\bTask" + r" [A-Z]\b",
            r"\bseeds" + r"/",
            r"\bSP" + r"EC\b",
        )
    )
)

# [text](target) and [text]: target, not images' alt text alone; inline code is stripped first.
INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def tracked_files() -> list[Path]:
    """Files git tracks (plus untracked, not ignored ones: a new file is checked before its commit);
    without git, a walk that skips virtual environments and caches."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
        paths = {REPO / p for p in out.decode("utf-8").split("\0") if p}
        return sorted(p for p in paths if p.is_file())
    except (OSError, subprocess.CalledProcessError):
        found = []
        for root, dirs, files in os.walk(REPO):
            dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
            found.extend(Path(root) / f for f in files)
        return sorted(found)


def scanned_files() -> list[Path]:
    out = []
    for path in tracked_files():
        rel = path.relative_to(REPO)
        if path.resolve() == THIS or path.suffix.lower() not in TEXT_SUFFIXES:
            continue
        if rel.parts[0] in SCANNED_DIRS or rel.as_posix() in SCANNED_FILES:
            out.append(path)
    return out


def markdown_files() -> list[Path]:
    docs = sorted((REPO / "docs").glob("*.md"))
    return [p for p in (REPO / "README.md", REPO / "CONTRIBUTING.md", *docs) if p.is_file()]


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to '-'."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[*_]{1,3}([^*_]+)[*_]{1,3}", r"\1", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    """Every heading anchor of a markdown file, with GitHub's -1, -2 … suffixes for repeats."""
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(FENCE.sub("", md.read_text(encoding="utf-8"))):
        slug = github_slug(m.group(1))
        n = seen.get(slug, 0)
        out.add(slug if n == 0 else f"{slug}-{n}")
        seen[slug] = n + 1
    return out


def links(md: Path) -> list[str]:
    text = INLINE_CODE.sub("", FENCE.sub("", md.read_text(encoding="utf-8")))
    return [m.group(1) for m in INLINE_LINK.finditer(text)] + [
        m.group(1) for m in REFERENCE_LINK.finditer(text)
    ]


def test_no_reference_to_documents_outside_the_repository() -> None:
    files = scanned_files()
    assert any(p.name == "README.md" for p in files)
    hits = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for no, line in enumerate(text.splitlines(), 1):
            if FORBIDDEN.search(line) or FORBIDDEN_EXACT.search(line):
                hits.append(f"{path.relative_to(REPO)}:{no}: {line.strip()[:120]}")
    assert not hits, (
        "cite docs/decisions.md §Dn or state the reason instead of documents, work items or owners "
        "outside the repository:\n" + "\n".join(hits)
    )


@pytest.mark.parametrize("md", markdown_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_markdown_links_resolve_inside_the_repository(md: Path) -> None:
    problems = []
    for target in links(md):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (md.parent / path_part).resolve() if path_part else md.resolve()
        try:
            dest.relative_to(REPO)
        except ValueError:
            problems.append(f"{target}: outside the repository")
            continue
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not problems, f"{md.relative_to(REPO)}:\n" + "\n".join(problems)


def test_decision_citations_name_existing_decisions() -> None:
    """Every ``decisions.md §Dn`` cited anywhere names a heading ``## Dn.`` of docs/decisions.md."""
    decisions = REPO / "docs" / "decisions.md"
    numbers = set(re.findall(r"^## (D\d+)\.", decisions.read_text(encoding="utf-8"), re.M))
    assert numbers, "docs/decisions.md has no '## Dn.' headings"
    cited = {}
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for m in re.finditer(r"decisions\.md\s*§\s*(D\d+)", text):
            cited.setdefault(m.group(1), path.relative_to(REPO).as_posix())
    missing = {d: where for d, where in cited.items() if d not in numbers}
    assert not missing, f"cited decisions that docs/decisions.md does not have: {missing}"


@pytest.mark.parametrize(
    "line",
    [
        "Phase 4 (" + "Task B): the forward pass",
        "# thresholds (" + 'DESIGN "Physics")',
        "see ../shared/" + "seeds/spec.md",
        "as the " + "SPEC says",
    ],
)
def test_the_scan_catches_references_outside_the_repository(line: str) -> None:
    assert FORBIDDEN.search(line) or FORBIDDEN_EXACT.search(line)


@pytest.mark.parametrize(
    "line", ["the design of the report", "a task and its seed", "task_id", "Tasks are queued"]
)
def test_the_scan_leaves_ordinary_words_alone(line: str) -> None:
    assert not (FORBIDDEN.search(line) or FORBIDDEN_EXACT.search(line))


def test_slugs_follow_github() -> None:
    assert github_slug("D1. Consumer groups read from id 0") == "d1-consumer-groups-read-from-id-0"
    assert github_slug("The exit simulator (`markets.exits`) — one") == (
        "the-exit-simulator-marketsexits--one"
    )
    assert github_slug("D16. Physics over each timeframe's continuous series") == (
        "d16-physics-over-each-timeframes-continuous-series"
    )
