"""API keys: 256-bit random tokens, stored only as a SHA-256 digest."""

import hashlib
import hmac
import secrets

KEY_PREFIX = "gc_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def digests_match(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))
