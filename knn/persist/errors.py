"""What can go wrong with the project store; every message is written for the page to show."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot do this now; the message says why in a user's words."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, is locked, full or damaged."""


class SchemaTooNew(StoreError):
    """The database was written by a newer version of the app (its schema version is higher)."""


class QuotaExceeded(StoreError):
    """The server's storage for projects is full; refused before anything was written."""


class UnreadableProject(StoreError):
    """A stored project whose rows fail the checks a project file must pass."""


class LeaseLost(StoreError):
    """Another tab or process opened this project for editing after this one: it edits now."""

    def __init__(self) -> None:
        super().__init__("this project is open in another tab; this one stopped saving")


class ProjectGone(StoreError):
    """The project was forgotten or expired; nothing may bring it back."""

    def __init__(self) -> None:
        super().__init__("this project was forgotten or expired; this tab no longer saves it")
