"""A throwaway certificate authority, so the emulator answers over HTTPS as Amazon does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import certifi
import trustme

__all__ = ["TLSFiles", "make_tls_files"]


@dataclass(frozen=True)
class TLSFiles:
    """The PEM files one run uses."""

    #: What every client verifies against: certifi's roots plus the throwaway CA.
    ca_bundle: Path
    #: The emulator's certificate chain and private key (127.0.0.1 and localhost).
    server_chain: Path


def make_tls_files(directory: Path) -> TLSFiles:
    """Issue a CA and a server certificate into ``directory``.

    The bundle starts with certifi's roots on purpose: ``requests`` with
    ``verify=True`` loads that file for every new connection, which costs tens
    of milliseconds of CPU; a one-certificate bundle would make new connections
    cheaper here than they are in production.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    chain = directory / "emulator-chain.pem"
    server.private_key_and_cert_chain_pem.write_to_path(str(chain))
    bundle = directory / "ca-bundle.pem"
    roots = Path(certifi.where()).read_bytes()
    bundle.write_bytes(roots.rstrip(b"\n") + b"\n" + ca.cert_pem.bytes())
    return TLSFiles(ca_bundle=bundle, server_chain=chain)
