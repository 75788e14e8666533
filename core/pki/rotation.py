"""CA rotation with overlap, over the data of the one Secret that holds a CA.

The Secret holds ``ca.crt``/``ca.key`` (the signing CA), during a rotation ``next.crt``/``next.key``
(the staged CA) and ``bundle.crt`` (every CA to trust). A next CA is staged into the bundle at 2/3
of the current CA's life, so peers learn to trust it first; it takes over signing at 5/6; a CA stays
in the bundle until it expires, so certificates it signed keep working. Used for the pools' tenant
and worker CAs and for the API's identity CA.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from buildkit_controller.core.pki._values import CertificateAuthority
from buildkit_controller.core.pki.issue import create_ca, load_ca
from buildkit_controller.core.pki.verify import merge_trust_bundle

__all__ = ["plan_ca_rotation"]


def _load(data: Mapping[str, str], cert_key: str, key_key: str) -> CertificateAuthority | None:
    if cert_key not in data or key_key not in data:
        return None
    return load_ca(data[cert_key], data[key_key])


def _advance(current: CertificateAuthority, upcoming: CertificateAuthority | None, common_name: str,
             now: dt.datetime, lifetime: dt.timedelta) -> tuple[CertificateAuthority, CertificateAuthority | None,
                                                                str | None]:
    """Stage a next CA at 2/3 of the current one's life, switch to it at 5/6."""
    begin, end = current.certificate.not_valid_before_utc, current.certificate.not_valid_after_utc
    reason = None
    if upcoming is None and now >= begin + (end - begin) * 2 / 3:
        upcoming, reason = create_ca(common_name, lifetime=lifetime, now=now), "next CA staged"
    if upcoming is not None and now >= begin + (end - begin) * 5 / 6:
        return upcoming, None, "rotated to the next CA"
    return current, upcoming, reason


def plan_ca_rotation(existing: Mapping[str, str], common_name: str, now: dt.datetime,
                     lifetime: dt.timedelta) -> tuple[dict[str, str], str | None]:
    """The CA Secret's data now and why it changed (``None``: unchanged).

    Raises PKIError when ``existing`` holds a CA that cannot be read: the caller must not replace
    it silently, that would cut off every certificate it signed.
    """
    current, upcoming = _load(existing, "ca.crt", "ca.key"), _load(existing, "next.crt", "next.key")
    created = current is None
    if current is None:
        current = create_ca(common_name, lifetime=lifetime, now=now)
    current, upcoming, reason = _advance(current, upcoming, common_name, now, lifetime)
    data = {"ca.crt": current.certificate_pem.decode(), "ca.key": current.private_key_pem.decode()}
    parts = [existing.get("bundle.crt", ""), data["ca.crt"]]
    if upcoming is not None:
        data |= {"next.crt": upcoming.certificate_pem.decode(), "next.key": upcoming.private_key_pem.decode()}
        parts.append(data["next.crt"])
    data["bundle.crt"] = merge_trust_bundle(*parts, now=now).decode()
    if created:
        reason = "created"
    elif reason is None and data["bundle.crt"] != existing.get("bundle.crt"):
        reason = "expired CAs dropped"
    return data, reason
