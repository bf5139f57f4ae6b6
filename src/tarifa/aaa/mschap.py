"""MS-CHAPv2 (RFC 2759) and its MPPE keys (RFC 3079), for the RADIUS attributes of RFC 2548.

The algorithms of the RFCs, no ORM. MD4 (for the NT password hash) is written out here because
OpenSSL 3 no longer offers it by default; DES comes from `cryptography` (single DES as TripleDES with
one key). Checked against the RFCs' worked examples in tests/test_mschap.py.
"""

import hashlib
import hmac
import struct

MAGIC_SERVER = (b"Magic server to client signing constant")
MAGIC_PAD = (b"Pad to make it do more than one iteration")
MAGIC1 = b"This is the MPPE Master Key"
MAGIC2 = (b"On the client side, this is the send key; on the server side, it is the receive key.")
MAGIC3 = (b"On the client side, this is the receive key; on the server side, it is the send key.")
SHS_PAD1 = b"\x00" * 40
SHS_PAD2 = b"\xf2" * 40


def md4(data: bytes) -> bytes:
    """MD4 (RFC 1320)."""
    def rotl(x, n):
        x &= 0xFFFFFFFF
        return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF

    message = bytearray(data)
    bit_length = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    message.append(0x80)
    while len(message) % 64 != 56:
        message.append(0)
    message += struct.pack("<Q", bit_length)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for offset in range(0, len(message), 64):
        x = struct.unpack("<16I", bytes(message[offset:offset + 64]))
        aa, bb, cc, dd = a, b, c, d
        for i in range(16):  # round 1: F(x, y, z) = xy | ~xz
            k, s = i, (3, 7, 11, 19)[i % 4]
            f = (b & c) | (~b & d)
            a, b, c, d = d, rotl(a + f + x[k], s), b, c
        for i in range(16):  # round 2: G(x, y, z) = xy | xz | yz, + 0x5A827999
            k, s = (i % 4) * 4 + i // 4, (3, 5, 9, 13)[i % 4]
            g = (b & c) | (b & d) | (c & d)
            a, b, c, d = d, rotl(a + g + x[k] + 0x5A827999, s), b, c
        for i in range(16):  # round 3: H(x, y, z) = x ^ y ^ z, + 0x6ED9EBA1
            k, s = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i], (3, 9, 11, 15)[i % 4]
            h = b ^ c ^ d
            a, b, c, d = d, rotl(a + h + x[k] + 0x6ED9EBA1, s), b, c
        a, b, c, d = (a + aa) & 0xFFFFFFFF, (b + bb) & 0xFFFFFFFF, (c + cc) & 0xFFFFFFFF, (d + dd) & 0xFFFFFFFF
    return struct.pack("<4I", a, b, c, d)


def nt_password_hash(password: str) -> bytes:
    return md4(password.encode("utf-16-le"))


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: str) -> bytes:
    # The user name without a domain ("DOMAIN\\user" → "user"), as RFC 2759 §8.2 says.
    name = username.split("\\")[-1].encode()
    return hashlib.sha1(peer_challenge + authenticator_challenge + name).digest()[:8]


def _des_key(seven: bytes) -> bytes:
    bits = int.from_bytes(seven, "big")
    key = bytearray()
    for i in range(8):
        byte = ((bits >> (56 - 7 * (i + 1))) & 0x7F) << 1
        key.append(byte | (bin(byte).count("1") % 2 == 0))  # odd parity
    return bytes(key)


def _des(key7: bytes, block: bytes) -> bytes:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    key = _des_key(key7)
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()  # K1 = K2 = K3: single DES
    return encryptor.update(block) + encryptor.finalize()


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    z = password_hash + b"\x00" * 5
    return _des(z[0:7], challenge) + _des(z[7:14], challenge) + _des(z[14:21], challenge)


def nt_response(authenticator_challenge: bytes, peer_challenge: bytes, username: str, password: str) -> bytes:
    return challenge_response(challenge_hash(peer_challenge, authenticator_challenge, username),
                              nt_password_hash(password))


def authenticator_response(password: str, nt_resp: bytes, peer_challenge: bytes, authenticator_challenge: bytes,
                           username: str) -> str:
    """The "S=<40 hex digits>" the server sends back (RFC 2759 §8.7)."""
    hash_hash = md4(nt_password_hash(password))
    digest = hashlib.sha1(hash_hash + nt_resp + MAGIC_SERVER).digest()
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    digest = hashlib.sha1(digest + challenge + MAGIC_PAD).digest()
    return "S=" + digest.hex().upper()


def verify(*, username: str, password: str, authenticator_challenge: bytes, response: bytes):
    """The MS-CHAP2-Response attribute (ident, flags, peer challenge, reserved, NT-Response) checked
    against `password`: (ok, MS-CHAP2-Success value or None)."""
    if len(response) != 50 or len(authenticator_challenge) != 16:
        return False, None
    ident, peer_challenge, nt_resp = response[0:1], response[2:18], response[26:50]
    expected = nt_response(authenticator_challenge, peer_challenge, username, password)
    if not hmac.compare_digest(expected, nt_resp):
        return False, None
    success = authenticator_response(password, nt_resp, peer_challenge, authenticator_challenge, username)
    return True, ident + success.encode()


def mppe_keys(password: str, nt_resp: bytes) -> tuple[bytes, bytes]:
    """(MS-MPPE-Send-Key, MS-MPPE-Recv-Key) of the server, 128-bit (RFC 3079 §3.3, 3.4)."""
    hash_hash = md4(nt_password_hash(password))
    master = hashlib.sha1(hash_hash + nt_resp + MAGIC1).digest()[:16]

    def start_key(magic):
        return hashlib.sha1(master + SHS_PAD1 + magic + SHS_PAD2).digest()[:16]

    return start_key(MAGIC3), start_key(MAGIC2)
