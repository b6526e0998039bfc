"""Markdown escaping for everything a user typed or uploaded (class and file names).

Streamlit renders labels, captions and messages as Markdown: user text goes through `md()` first,
so it shows literally and never becomes a link, an image or markup.
"""

from __future__ import annotations

import re

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$=^&])")


def md(text: object) -> str:
    """Escape text so Markdown shows it literally (no links, images, colours or emphasis)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(text))
