"""The README and the docs link to each other's sections by anchor; every such link must resolve."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: links and code marks dropped, lower case, punctuation other than
    ``-`` and ``_`` removed, spaces made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def prose(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(page: Path) -> set[str]:
    """Every anchor the page's headings make (a repeated heading gets ``-1``, ``-2``, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose(page):
        m = re.match(r"#{1,6} (.*)", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_slug_matches_github_on_a_hand_made_case():
    assert slug("The significance level (default: alpha 0.01 since 2026-12-07; it was 0.05)") == (
        "the-significance-level-default-alpha-001-since-2026-12-07-it-was-005"
    )
    assert slug("Fingerprint methods (`--method`)") == "fingerprint-methods---method"
    assert slug("A [link](x.md) and `code`") == "a-link-and-code"


def test_every_relative_link_and_anchor_resolves():
    assert len(PAGES) > 3
    known = {page: anchors(page) for page in PAGES}
    broken = []
    for page in PAGES:
        for line in prose(page):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if target.startswith(("http://", "https://", "mailto:")):
                    continue
                path, _, fragment = target.partition("#")
                dest = (page.parent / path).resolve() if path else page
                if not dest.exists():
                    broken.append(f"{page.name}: {target} (no such file)")
                elif fragment and dest in known and fragment not in known[dest]:
                    broken.append(f"{page.name}: {target} (no such section)")
    assert not broken, "\n".join(broken)
