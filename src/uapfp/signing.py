"""Ed25519 signatures of kits: an owner proves that a kit is the one they made.

A kit's manifest lists the SHA-256 of every file, so its own SHA-256 identifies the whole kit;
anyone can rewrite a file and rehash the manifest, though. ``uapfp protect --sign KEY`` signs
the manifest's bytes with the owner's private key and writes ``signature.json`` beside it;
``uapfp verify --trusted-key PUB`` refuses a kit whose signature does not verify under that
public key. Keys are PEM files (``uapfp keygen`` makes a pair; so does
``openssl genpkey -algorithm ed25519``). The cryptography is the ``cryptography`` package's.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from .errors import ConfigError, KitIntegrityError
from .storage import atomic_open, check_output_path, read_json, write_json

SIGNATURE_FILE = "signature.json"
SIGNATURE_FORMAT = "uapfp-kit-signature/1"


def _read_pem(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path} ({exc.strerror or exc})") from None
    if len(data) > 64 * 1024 or b"-----BEGIN" not in data:
        raise ConfigError(f"{path} is not a PEM {what}; make a key pair with uapfp keygen --out NAME")
    return data


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 private key from a PEM file (unencrypted PKCS#8)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(_read_pem(path, "private key"), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key; make one with uapfp keygen --out NAME")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 public key from a PEM file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(_read_pem(path, "public key"))
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key")
    return key


def _raw(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: Any) -> str:
    """A short, stable name of a public key: the first 16 hex digits of the SHA-256 of its raw bytes."""
    return hashlib.sha256(_raw(public_key)).hexdigest()[:16]


def generate_keys(out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a new key pair: ``OUT.pem`` (private, readable by the owner only) and ``OUT.pub``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    private_path, public_path = Path(f"{out}.pem"), Path(f"{out}.pub")
    for p in (private_path, public_path):
        if p.exists():
            raise ConfigError(f"{p} exists; uapfp keygen never overwrites a key, choose another --out")
        check_output_path(p, "key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    with atomic_open(private_path, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(pem)
    with atomic_open(public_path, "wb") as handle:
        handle.write(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def sign_kit(folder: str | os.PathLike[str], private_key_path: str | os.PathLike[str]) -> str:
    """Sign the kit in ``folder`` (its manifest's bytes); return the signer's key id."""
    key = load_private_key(private_key_path)
    manifest = (Path(folder) / "manifest.json").read_bytes()
    write_json(
        Path(folder) / SIGNATURE_FILE,
        {
            "format": SIGNATURE_FORMAT,
            "algorithm": "ed25519",
            "public_key": base64.b64encode(_raw(key.public_key())).decode(),
            "key_id": key_id(key.public_key()),
            "signature": base64.b64encode(key.sign(manifest)).decode(),
        },
    )
    return key_id(key.public_key())


def signer_of(folder: str | os.PathLike[str]) -> str | None:
    """The key id a kit claims to be signed by (unchecked), or None for an unsigned kit."""
    path = Path(folder) / SIGNATURE_FILE
    if not path.is_file():
        return None
    try:
        claimed = read_json(path).get("key_id")
    except (ConfigError, AttributeError):
        return None
    return claimed if isinstance(claimed, str) else None


def check_signature(folder: str | os.PathLike[str], manifest: bytes, trusted_key_path: str | os.PathLike[str]) -> str:
    """Verify that ``manifest`` (the kit's manifest bytes) is signed by the trusted key; return its key id."""
    from cryptography.exceptions import InvalidSignature

    key = load_public_key(trusted_key_path)
    path = Path(folder) / SIGNATURE_FILE
    if not path.is_file():
        raise KitIntegrityError(f"{folder} is not signed ({SIGNATURE_FILE} is missing), so it cannot be the kit "
                                f"{trusted_key_path} signed; ask its owner for the signed kit")  # fmt: skip
    try:
        record = read_json(path)
        signature = base64.b64decode(record["signature"], validate=True)
    except (ConfigError, KeyError, TypeError, ValueError):
        raise KitIntegrityError(f"{path} is damaged; ask the kit's owner for the signed kit") from None
    try:
        key.verify(signature, manifest)
    except InvalidSignature:
        raise KitIntegrityError(
            f"{folder} was not signed by the key in {trusted_key_path}, or was changed after signing: "
            "its manifest does not match the signature; do not use it as that owner's kit"
        ) from None
    return key_id(key)
