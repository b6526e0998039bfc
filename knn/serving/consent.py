"""An adaptation of aioice: the answer to a consent check may come late and still count.

aioice 0.13 sends each ICE consent check (RFC 7675) once, waits 0.5 s for the answer and ends the
connection after six checks in a row without one in time. On a busy server the answer waits in
the socket's queue, so streams that are still flowing get ended. `patient_consent` makes aioice's
connections send a consent check up to `1 + CONSENT_RETRANSMISSIONS` times on aioice's own
back-off and take its answer until 7.5 s after the first try (a peer that has gone is then given
up after ~75 s instead of 30), after checking that the installed aioice fits; otherwise it logs
one warning and aioice stays as it is. Numbers: docs/performance.md, "Serving adaptations".
"""

from __future__ import annotations

import logging
from types import ModuleType

from .adaptation_checks import changed_signature, source_of, unchecked_version, with_layer

_LOG = logging.getLogger(__name__)

CHECKED_AIOICE = ("0.13.0",)
"""aioice versions whose consent check this was read against."""
CONSENT_RETRANSMISSIONS = 3
"""Tries after the first for a consent check: answers count until 0.5 * (2**4 - 1) = 7.5 s."""
REQUEST_PARAMETERS = ["self", "request", "addr", "integrity_key", "retransmissions"]
SINGLE_TRY = "retransmissions=0"


def check_consent(version: str, ice: ModuleType) -> list[str]:
    """What keeps `patient_consent` from applying to this aioice; empty when it fits."""
    problems = [
        *unchecked_version("aioice", version, CHECKED_AIOICE),
        *changed_signature(
            "aioice.ice.StunProtocol.request",
            getattr(getattr(ice, "StunProtocol", None), "request", None),
            REQUEST_PARAMETERS,
        ),
    ]
    consent_source = source_of(getattr(getattr(ice, "Connection", None), "query_consent", None))
    module_source = source_of(ice)
    if consent_source is None or module_source is None:
        problems.append("the source of aioice.ice or of its Connection.query_consent is missing")
    if consent_source is not None and SINGLE_TRY not in consent_source:
        problems.append("aioice's consent check no longer asks for a single try")
    if module_source is not None:
        if module_source.count(SINGLE_TRY) > 1:
            problems.append("another aioice request than the consent check asks for a single try")
        if "StunProtocol(self)" not in module_source:
            problems.append("aioice's connections no longer build their sockets' protocol as StunProtocol")
    return problems


def patient_consent(
    retransmissions: int = CONSENT_RETRANSMISSIONS, *, version: str | None = None, ice: ModuleType | None = None
) -> bool:
    """Make the consent checks of aioice connections made from now on wait for late answers
    (idempotent; the last call's count wins). The keyword arguments name what to adapt (the
    installed aioice by default; tests pass others). Returns True if it applies, False (after one
    logged warning) if aioice is left stock."""
    if version is None or ice is None:
        import aioice
        from aioice import ice as aioice_ice

        version, ice = aioice.__version__, aioice_ice
    problems = check_consent(version, ice)
    if problems:
        _LOG.warning(
            "A late answer to a consent check still ends a stream (%s); aioice is left as it is.", "; ".join(problems)
        )
        return False
    ice.StunProtocol = patient_protocol(ice.StunProtocol, retransmissions)  # type: ignore[attr-defined]  # writing a ModuleType attribute: the adaptation's one change
    return True


def patient_protocol(protocol: type, retransmissions: int) -> type:
    """A subclass of aioice's `StunProtocol` whose single-try requests (the consent checks) get
    `retransmissions` more tries."""
    return with_layer(protocol, "consent_retransmissions", retransmissions, _patient)


def _patient(base: type) -> type:
    class PatientConsentStunProtocol(base):
        stock = getattr(base, "stock", base)  # aioice's own, under every adaptation's layer

        async def request(self, request, addr, integrity_key=None, retransmissions=None):
            if retransmissions == 0:
                retransmissions = self.consent_retransmissions
            return await super().request(request, addr, integrity_key, retransmissions)

    return PatientConsentStunProtocol
