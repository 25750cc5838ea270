"""``/.well-known/dockyard/ca.crt``: the Dockyard CA's certificate, which browsers and clients
install to trust the platform's HTTPS (no authentication: it is public). Compare its SHA-256
fingerprint with the one ``dockyard up`` printed before trusting it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from dockyard.api.deps import platform
from dockyard.control.certificates import platform_ca_certificate
from dockyard.control.context import Platform
from dockyard.errors import NotFoundError

router = APIRouter(tags=["well-known"])
PlatformDep = Annotated[Platform, Depends(platform)]
CA_PATH = "/.well-known/dockyard/ca.crt"


@router.get(CA_PATH, include_in_schema=False)
def dockyard_ca(plat: PlatformDep) -> Response:
    pem = platform_ca_certificate(plat.settings)
    if pem is None:
        raise NotFoundError(
            "This Dockyard has no CA of its own: its HTTPS certificate comes from the operator "
            "(router.tls_cert_file), which clients trust already, or HTTPS is not set up yet"
        )
    return Response(
        pem,
        media_type="application/x-x509-ca-cert",
        headers={"Content-Disposition": 'attachment; filename="dockyard-ca.crt"'},
    )
