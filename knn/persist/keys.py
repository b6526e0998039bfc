"""A project's key and a share link's key: random tokens in the URL, of which the store keeps only a hash.

A token is 24 random bytes (192 bits) from `secrets`, URL-safe base64 without padding (32
characters). Guessing one is hopeless, so a fast hash is enough: SHA-256 of the token. A copy of
the database therefore opens no project: it lacks the tokens.
"""

from __future__ import annotations

import hashlib
import re
import secrets

TOKEN_BYTES = 24
"""Random bytes per token: 192 bits, above the 128 the issue asks for."""
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")


def new_token() -> str:
    """A new random token for a project or a share link."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def key_hash(token: object) -> bytes | None:
    """The stored form of `token`; None when it cannot be a token at all (so it opens nothing)."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    return hashlib.sha256(token.encode("ascii")).digest()
