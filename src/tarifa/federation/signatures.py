"""Signed requests between nodes: a subset of HTTP Message Signatures (RFC 9421) with
Content-Digest (RFC 9530). Pure functions, no ORM.

What a node signs (one signature, label `tarifa`):
    Content-Digest: sha-256=:<base64 of SHA-256 of the body>:
    Signature-Input: tarifa=("@method" "@path" "content-digest");created=<unix>;keyid="<key id>";alg="ed25519"
    Signature: tarifa=:<base64 of the Ed25519 signature of the signature base>:

The signature base (RFC 9421 §2.5) is one line per covered component, `"<name>": <value>`, then
`"@signature-params": <the inner list as in Signature-Input>`, joined by LF without a final LF.
The verifier rebuilds it from the request it received, so a changed method, path or body (the
digest), a changed key id or created time, all fail. It also refuses a `created` more than
`max_skew` seconds away from its clock, an unknown key and a digest that does not match the body.

Only what Tarifa needs is parsed: an inner list of quoted component names with the parameters
created (integer), keyid, alg, nonce and expires (strings/integers); derived components @method,
@path, @authority, @target-uri, @query, and header fields by lower-case name. Enough to check the
RFC's own Ed25519 example (tests), not a general Structured Fields parser.
"""

import base64
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

LABEL = "tarifa"
COMPONENTS = ("@method", "@path", "content-digest")
MAX_SKEW = 300  # seconds


class SignatureError(Exception):
    """A request whose signature cannot be accepted; `code` says why (stable, for answers and logs)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# --- keys: raw 32-byte Ed25519 keys, written as base64 (no padding issues: 44 characters) ---

def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_to_text(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return base64.b64encode(raw).decode()


def private_from_text(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(text))


def public_to_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def public_from_text(text: str) -> Ed25519PublicKey:
    """A public key from its base64 raw form (44 characters) or a PEM SubjectPublicKeyInfo."""
    text = (text or "").strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
            return key
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"Not an Ed25519 public key (base64 of 32 bytes or PEM): {exc}") from None


# --- Content-Digest (RFC 9530) ---

def content_digest(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def digest_matches(header: str, body: bytes) -> bool:
    """True when the header carries a sha-256 digest and it is the body's; other algorithms are ignored."""
    for member in _split_top(header or ""):
        name, _, value = member.partition("=")
        if name.strip() == "sha-256":
            return value.strip() == content_digest(body)[len("sha-256="):]
    return False


# --- signature base ---

def _split_top(value: str) -> list[str]:
    """Dictionary members separated by commas outside quotes, parentheses and byte sequences."""
    members, current, depth, quoted, colon = [], [], 0, False, False
    for ch in value:
        if ch == '"' and not colon:
            quoted = not quoted
        elif ch == ":" and not quoted:
            colon = not colon
        elif not quoted and not colon and ch == "(":
            depth += 1
        elif not quoted and not colon and ch == ")":
            depth -= 1
        if ch == "," and not quoted and not colon and depth == 0:
            members.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if "".join(current).strip():
        members.append("".join(current).strip())
    return members


def _dictionary(value: str) -> dict[str, str]:
    out = {}
    for member in _split_top(value):
        name, sep, rest = member.partition("=")
        if sep:
            out[name.strip()] = rest.strip()
    return out


_INNER = re.compile(r'^\((?P<items>(?:\s*"[^"]*")*)\s*\)(?P<params>.*)$')
_PARAM = re.compile(r';\s*([a-z*][a-z0-9_.*-]*)=("(?:[^"\\]|\\.)*"|-?\d+)')


@dataclass(frozen=True)
class SignatureParams:
    components: tuple[str, ...]
    params: dict  # created, keyid, alg, …: ints for integers, str for strings
    serialized: str  # exactly as received: it is part of the signature base


def parse_signature_input(value: str) -> SignatureParams:
    match = _INNER.match(value.strip())
    if not match:
        raise SignatureError("bad_signature_input", "Signature-Input is not an inner list of component names.")
    components = tuple(re.findall(r'"([^"]*)"', match["items"]))
    params = {}
    rest = match["params"]
    consumed = "".join(m.group(0) for m in _PARAM.finditer(rest))
    if consumed.replace(" ", "") != rest.replace(" ", ""):
        raise SignatureError("bad_signature_input", "Signature-Input has parameters Tarifa cannot read.")
    for name, raw in _PARAM.findall(rest):
        params[name] = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw.startswith('"') else int(raw)
    return SignatureParams(components, params, value.strip())


def serialize_params(components, *, created: int, keyid: str, alg: str | None = "ed25519") -> str:
    items = " ".join(f'"{c}"' for c in components)
    text = f"({items});created={int(created)};keyid=\"{keyid}\""
    if alg:
        text += f';alg="{alg}"'
    return text


def _component(name: str, *, method: str, path: str, query: str, authority: str, headers: Mapping[str, str]) -> str:
    if name == "@method":
        return method.upper()
    if name == "@path":
        return path or "/"
    if name == "@query":
        return "?" + (query or "")
    if name == "@authority":
        return authority.lower()
    if name.startswith("@"):
        raise SignatureError("unsupported_component", f"Tarifa does not verify the component {name}.")
    value = headers.get(name)
    if value is None:
        raise SignatureError("missing_component", f"The signed header {name} is not in the request.")
    return " ".join(value.strip().split()) if "\n" in value else value.strip()


def signature_base(params: SignatureParams, *, method: str, path: str, headers: Mapping[str, str],
                   query: str = "", authority: str = "") -> bytes:
    lines = [f'"{name}": ' + _component(name, method=method, path=path, query=query, authority=authority,
                                       headers=headers) for name in params.components]
    lines.append(f'"@signature-params": {params.serialized}')
    return "\n".join(lines).encode()


# --- signing and verifying a Tarifa request ---

def sign_request(*, method: str, path: str, body: bytes, key_id: str, private_key: Ed25519PrivateKey,
                 created: int | None = None) -> dict[str, str]:
    """The headers to add: Content-Digest, Signature-Input, Signature."""
    digest = content_digest(body)
    params = SignatureParams(COMPONENTS, {}, serialize_params(COMPONENTS, created=created or int(time.time()),
                                                              keyid=key_id))
    base = signature_base(params, method=method, path=path, headers={"content-digest": digest})
    signature = base64.b64encode(private_key.sign(base)).decode()
    return {"Content-Digest": digest, "Signature-Input": f"{LABEL}={params.serialized}",
            "Signature": f"{LABEL}=:{signature}:"}


@dataclass(frozen=True)
class Verified:
    key_id: str
    created: int


def verify_request(*, method: str, path: str, headers: Mapping[str, str], body: bytes,
                   public_keys: Callable[[str, int], list[Ed25519PublicKey]], now: float | None = None,
                   max_skew: int = MAX_SKEW, label: str = LABEL) -> Verified:
    """Check a request signed by `sign_request`. `headers`: lower-case names. `public_keys(keyid,
    created)` gives the keys valid for that key id at that time (empty: unknown key). Raises
    SignatureError; returns the key id and created time."""
    sig_input = _dictionary(headers.get("signature-input", "")).get(label)
    sig_value = _dictionary(headers.get("signature", "")).get(label)
    if not sig_input or not sig_value:
        raise SignatureError("unsigned", f"The request carries no signature labelled {label!r}.")
    params = parse_signature_input(sig_input)
    missing = [c for c in COMPONENTS if c not in params.components]
    if missing:
        raise SignatureError("incomplete_signature", f"The signature does not cover {', '.join(missing)}.")
    created, keyid = params.params.get("created"), params.params.get("keyid")
    if not isinstance(created, int) or not isinstance(keyid, str) or not keyid:
        raise SignatureError("bad_signature_input", "The signature needs integer created and a keyid.")
    if params.params.get("alg", "ed25519") != "ed25519":
        raise SignatureError("unsupported_algorithm", "Only ed25519 signatures are accepted.")
    now = time.time() if now is None else now
    if abs(now - created) > max_skew:
        raise SignatureError("stale_signature",
                             f"The signature was created {int(now - created)} s from this node's clock "
                             f"(at most {max_skew} s either way).")
    if "expires" in params.params and isinstance(params.params["expires"], int) and now > params.params["expires"]:
        raise SignatureError("stale_signature", "The signature has expired.")
    if not digest_matches(headers.get("content-digest", ""), body):
        raise SignatureError("bad_digest", "Content-Digest is missing or is not the SHA-256 of the body.")
    if not (sig_value.startswith(":") and sig_value.endswith(":")):
        raise SignatureError("bad_signature", "Signature is not a byte sequence.")
    try:
        signature = base64.b64decode(sig_value[1:-1], validate=True)
    except ValueError:
        raise SignatureError("bad_signature", "Signature is not base64.") from None
    keys = public_keys(keyid, created)
    if not keys:
        raise SignatureError("unknown_key", f"No valid key {keyid!r} is registered for a node.")
    base = signature_base(params, method=method, path=path, headers=headers)
    for key in keys:
        try:
            key.verify(signature, base)
            return Verified(keyid, created)
        except InvalidSignature:
            continue
    raise SignatureError("bad_signature", "The signature does not verify with the sender's key.")
