"""Throw-away TLS material for tests, made with the openssl command line.

`make_pki(folder)` writes a CA, a server certificate (SAN IP:127.0.0.1, DNS:localhost) and a
client certificate signed by it, each with an unencrypted PKCS#8 private key, valid two days.
`encrypt_key` writes a copy of a key encrypted with a password (PKCS#8), the form of a client's
`ssl_keyfile` with `ssl_key_password`; `pem_keystore` writes such a key followed by its
certificate chain: a Kafka broker's `ssl.keystore.type=PEM` file, which Kafka reads only with a
key password, and only encrypted with a PBES1 scheme (Java has no SecretKeyFactory for PBES2).
Passwords reach openssl through its environment, not its command line.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

SAN = "subjectAltName=IP:127.0.0.1,DNS:localhost\n"


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path           # the CA certificate (PEM): what both sides trust
    ca_key: Path
    server_cert: Path  # CN 127.0.0.1, SAN IP:127.0.0.1 and DNS:localhost
    server_key: Path
    client_cert: Path  # CN kpi-worker
    client_key: Path


def openssl(*args: str, cwd: str | os.PathLike[str], password: str | None = None) -> None:
    """Run openssl; a password is available to it as `env:KPI_TLS_PASSWORD`."""
    env = {**os.environ, "KPI_TLS_PASSWORD": password} if password is not None else None
    proc = subprocess.run(["openssl", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def make_pki(folder: str | os.PathLike[str], *, client_cn: str = "kpi-worker", days: int = 2) -> Pki:
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", str(days), "-subj", "/CN=kpi-test-ca", cwd=d)
    (d / "san.cnf").write_text(SAN)
    for name, cn in (("server", "127.0.0.1"), ("client", client_cn)):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={cn}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", str(days), "-extfile", "san.cnf", cwd=d)
    return Pki(d, d / "ca.pem", d / "ca.key", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")


def encrypt_key(key: Path, out: Path, password: str, scheme: tuple[str, ...] = ("-v2", "aes-256-cbc")) -> Path:
    """``key`` encrypted with ``password`` into ``out`` (PKCS#8; PBES2 with AES-256-CBC by default)."""
    openssl("pkcs8", "-topk8", *scheme, "-in", str(key), "-out", str(out),
            "-passout", "env:KPI_TLS_PASSWORD", cwd=out.parent, password=password)
    return out


def pem_keystore(key: Path, cert: Path, out: Path, password: str, chain: tuple[Path, ...] = ()) -> Path:
    """One PEM file for Java: the key encrypted with ``password`` (PBES1, SHA-1 and 3DES), then the
    certificate and ``chain``."""
    encrypted = encrypt_key(key, out.with_suffix(".enc.key"), password, scheme=("-v1", "PBE-SHA1-3DES"))
    out.write_text("".join(p.read_text() for p in (encrypted, cert, *chain)))
    return out
