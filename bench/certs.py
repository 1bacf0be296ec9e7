"""How long `certs audit` takes over a large `reg export`, against only reading the file.

Measured in this run, side by side on one generated export (UTF-16 "Windows Registry Editor
Version 5.00", as regedit writes it): certifi's public roots in Root and AuthRoot, plus N
generated certificates (self-signed roots, leaves of an unknown CA, forged Microsoft roots) in
Root, CA and My stores of the machine, Group Policy and user locations.

1. *read*: ``read_reg`` (decode, parse every line) - the floor any audit pays;
2. *stores*: 1 + ``find_store_certificates`` (Blob decoding, thumbprint checks);
3. *audit*: ``trustwatch certs audit FILE --format json`` in this process (2 + loading the
   reference lists + classifying every certificate + the JSON).

Prints the times, certificates per second and the ratios to *read*. Usage::

    .venv/bin/python bench/certs.py [--certs 2000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import certifi
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from trustwatch.certs.blob import encode_blob, sha1_thumbprint
from trustwatch.certs.regfile import (
    REG_BINARY,
    RegEntry,
    RegistryValue,
    RegKey,
    encode_reg,
    read_reg,
    write_reg,
)
from trustwatch.certs.stores import find_store_certificates
from trustwatch.cli.main import cli

LOCATIONS = (
    "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\SystemCertificates",
    "HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\SystemCertificates",
    "HKEY_USERS\\S-1-5-21-1004336348-1177238915-682003330-1001\\Software\\Microsoft\\"
    "SystemCertificates",
)
NAMES = (
    "Contoso Inspection Root {n}",
    "Microsoft Root Certificate Authority 2010",
    "host{n}.corp.example",
)


def generated(count: int) -> list[bytes]:
    """``count`` DER certificates signed by three keys (key generation is not what we measure)."""
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    out = []
    for n in range(count):
        kind = n % 3
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, NAMES[kind].format(n=n)),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Microsoft Corporation"),
            ]
        )
        issuer = subject if kind != 2 else x509.Name.from_rfc4514_string("CN=Contoso Issuing CA")
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(keys[kind].public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=3650 if kind != 2 else 365))
            .add_extension(x509.BasicConstraints(ca=kind != 2, path_length=None), critical=True)
            .sign(keys[kind], hashes.SHA256())
        )
        out.append(cert.public_bytes(Encoding.DER))
    return out


def export(path: Path, count: int) -> int:
    """Write the export; the number of certificates in it."""
    with Path(certifi.where()).open("rb") as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        public = [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(fh.read())]
    entries: list[RegEntry] = []
    placed = [(LOCATIONS[0], "ROOT" if n % 2 else "AuthRoot", d) for n, d in enumerate(public)]
    stores = ("ROOT", "CA", "My")
    placed += [(LOCATIONS[n % 3], stores[n % 3], d) for n, d in enumerate(generated(count))]
    for location, store, der in placed:
        key = f"{location}\\{store}\\Certificates\\{sha1_thumbprint(der)}"
        entries += [RegKey(key), RegistryValue(key, "Blob", REG_BINARY, encode_blob(der))]
    path.write_bytes(encode_reg(write_reg(entries)))
    return len(placed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certs", type=int, default=2000, help="generated certificates")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "certs.reg"
        total = export(path, args.certs)
        size = path.stat().st_size

        started = time.perf_counter()
        snapshot = read_reg(path)
        read = time.perf_counter() - started

        started = time.perf_counter()
        found = find_store_certificates(read_reg(path).entries)
        stores = time.perf_counter() - started

        started = time.perf_counter()
        result = CliRunner().invoke(cli, ["certs", "audit", str(path), "--all", "--format", "json"])
        audit = time.perf_counter() - started
    rows = json.loads(result.stdout)
    assert len(found) == total and len(rows) == total, (len(found), len(rows), total)
    assert len(snapshot.entries) == 2 * total
    flagged = sum(r["flagged"] for r in rows)
    print(f"export: {total} certificates, {size / 2**20:.1f} MiB (UTF-16), {flagged} flagged")
    print(f"{'step':<8} {'seconds':>8} {'certs/s':>9} {'x read':>7}")
    for name, seconds in (("read", read), ("stores", stores), ("audit", audit)):
        print(f"{name:<8} {seconds:8.2f} {total / seconds:9.0f} {seconds / read:7.1f}")


if __name__ == "__main__":
    main()
