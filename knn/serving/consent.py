"""An adaptation of aioice: the answer to a consent check may come late and still count.

aioice 0.13 sends each ICE consent check (RFC 7675) once, waits 0.5 s for the answer and ends the
connection after six checks in a row without one in time. On a busy server the answer waits in
the socket's queue, so streams that are still flowing get ended. `PATIENT_CONSENT` makes aioice's
connections send a consent check up to `1 + CONSENT_RETRANSMISSIONS` times on aioice's own
back-off and take its answer until 7.5 s after the first try (a peer that has gone is then given
up after ~75 s instead of 30). aioice's public constants cannot do this: allowing more failed
checks (`CONSENT_FAILURES`) did not help, the answers were late every time (docs/performance.md).
"""

from __future__ import annotations

from types import ModuleType

from .adapt import Adaptation, changed_signature, source_of, with_layer

CONSENT_RETRANSMISSIONS = 3
"""Tries after the first for a consent check: answers count until 0.5 * (2**4 - 1) = 7.5 s."""
REQUEST_PARAMETERS = ["self", "request", "addr", "integrity_key", "retransmissions"]
SINGLE_TRY = "retransmissions=0"


def _find() -> ModuleType:
    from aioice import ice

    return ice


def _check(ice: ModuleType) -> list[str]:
    problems = changed_signature(
        "aioice.ice.StunProtocol.request",
        getattr(getattr(ice, "StunProtocol", None), "request", None),
        REQUEST_PARAMETERS,
    )
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


def _change(ice: ModuleType, retransmissions: int | None) -> None:
    retries = CONSENT_RETRANSMISSIONS if retransmissions is None else retransmissions
    ice.StunProtocol = patient_protocol(ice.StunProtocol, retries)  # type: ignore[attr-defined]  # the adaptation's one change


PATIENT_CONSENT = Adaptation(
    name="consent",
    package="aioice",
    checked="0.13.0",
    reason="aioice ends a stream still flowing when a busy loop reads six consent answers later than 0.5 s",
    kept_by="16 peers: the slowest 7.3 fps without it, 10.1-10.5 with (docs/adaptations.md); tests/test_consent.py",
    lost="A late answer to a consent check still ends a stream",
    find=_find,
    check=_check,
    change=_change,
)
"""Applied with the tries after the first (`CONSENT_RETRANSMISSIONS` when None)."""


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
