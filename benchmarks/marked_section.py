"""Replace one generated section of a Markdown file, leaving the rest as it is.

Several benchmark scripts write into the same page (docs/results.md: the ranking tables, the
rating tables, the per-config notes), each between its own pair of HTML comment markers.
"""

from __future__ import annotations

import re
from pathlib import Path


def write_marked_section(section: str, path: Path, start: str, end: str) -> None:
    """Put ``section`` (which begins with ``start`` and ends with ``end``) in place of the text
    between those markers in ``path``, or append it when the markers are not there yet."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Results\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
