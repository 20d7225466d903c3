#!/usr/bin/env python3
"""The SASL listener's rules, byte by byte over a plain socket (no client
library, so each rule is seen exactly as a client would meet it).

Usage: sasl_raw.py BOOTSTRAP USER PASSWORD REAUTH_MS

  * ApiVersions is answered before authentication and lists SaslHandshake
    0..1 and SaslAuthenticate 0..2;
  * any other request before authentication closes the connection;
  * an unknown mechanism is UNSUPPORTED_SASL_MECHANISM (33) with the enabled
    mechanisms, then the connection closes;
  * SaslAuthenticate before SaslHandshake is ILLEGAL_SASL_STATE (34);
  * a frame over 512 KiB before authentication closes the connection;
  * PLAIN with a wrong password is SASL_AUTHENTICATION_FAILED (58) with a
    message that does not echo the password, then the connection closes;
  * PLAIN after a v0 SaslHandshake, as a bare token (KIP-152), authenticates;
  * garbage SCRAM tokens are SASL_AUTHENTICATION_FAILED, never a dead broker;
  * SaslAuthenticate v1 gives the session lifetime (REAUTH_MS), Metadata is
    served within it, and a request after it closes the connection (KIP-368).
"""

import socket
import struct
import sys
import time

BOOTSTRAP, USER, PASSWORD, REAUTH_MS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
HOST, PORT = BOOTSTRAP.rsplit(":", 1)
API_VERSIONS, METADATA, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 3, 17, 36


def fail(why):
    print(f"FAIL sasl_raw: {why}", file=sys.stderr)
    sys.exit(1)


def connect():
    return socket.create_connection((HOST, int(PORT)), timeout=10)


def string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def send(sock, key, version, body, correlation=1):
    payload = struct.pack(">hhi", key, version, correlation) + string("sasl-raw") + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def recv(sock):
    """A response body (after the correlation id), or None when the broker closed."""
    head = recv_exact(sock, 4)
    if head is None:
        return None
    (length,) = struct.unpack(">i", head)
    frame = recv_exact(sock, length)
    return None if frame is None else frame[4:]


def closed(sock):
    try:
        return recv(sock) is None
    except (ConnectionResetError, socket.timeout):
        return True


def handshake(sock, mechanism, version=1):
    send(sock, SASL_HANDSHAKE, version, string(mechanism))
    body = recv(sock)
    (error,) = struct.unpack(">h", body[:2])
    (count,) = struct.unpack(">i", body[2:6])
    mechanisms, at = [], 6
    for _ in range(count):
        (n,) = struct.unpack(">h", body[at:at + 2])
        mechanisms.append(body[at + 2:at + 2 + n].decode())
        at += 2 + n
    return error, mechanisms


def authenticate(sock, token):
    """SaslAuthenticate v1: (error, message, token, session lifetime ms), or None if closed."""
    send(sock, SASL_AUTHENTICATE, 1, struct.pack(">i", len(token)) + token)
    body = recv(sock)
    if body is None:
        return None
    (error, n) = struct.unpack(">hh", body[:4])
    message = body[4:4 + n].decode() if n >= 0 else None
    at = 4 + max(n, 0)
    (tlen,) = struct.unpack(">i", body[at:at + 4])
    server_token = body[at + 4:at + 4 + tlen]
    (lifetime,) = struct.unpack(">q", body[at + 4 + tlen:at + 12 + tlen])
    return error, message, server_token, lifetime


def metadata(sock):
    send(sock, METADATA, 1, struct.pack(">i", -1), correlation=7)
    return recv(sock)


plain = f"\0{USER}\0{PASSWORD}".encode()

# ApiVersions before authentication.
with connect() as s:
    send(s, API_VERSIONS, 0, b"")
    body = recv(s)
    (error, count) = struct.unpack(">hi", body[:6])
    ranges = {k: (lo, hi) for k, lo, hi in struct.iter_unpack(">hhh", body[6:6 + 6 * count])}
    if error or ranges.get(SASL_HANDSHAKE) != (0, 1) or ranges.get(SASL_AUTHENTICATE) != (0, 2):
        fail(f"ApiVersions: error {error}, SASL ranges {ranges.get(SASL_HANDSHAKE)} {ranges.get(SASL_AUTHENTICATE)}")
    if metadata(s) is not None:
        fail("Metadata before authentication was answered")
print("ok sasl_raw: ApiVersions answered before authentication, Metadata closes the connection")

with connect() as s:
    error, mechanisms = handshake(s, "GSSAPI")
    if error != 33 or sorted(mechanisms) != ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]:
        fail(f"unknown mechanism: error {error}, mechanisms {mechanisms}")
    if not closed(s):
        fail("the connection stayed open after an unsupported mechanism")
with connect() as s:
    answer = authenticate(s, plain)
    if answer is None or answer[0] != 34:
        fail(f"SaslAuthenticate before SaslHandshake: {answer}")
with connect() as s:
    s.sendall(struct.pack(">i", 600 * 1024) + b"\0" * 1024)
    if not closed(s):
        fail("a 600 KiB frame before authentication was taken")
print("ok sasl_raw: unknown mechanism 33 and closed, out of order 34, oversized frame closed")

with connect() as s:
    handshake(s, "PLAIN")
    answer = authenticate(s, f"\0{USER}\0wrong-{PASSWORD}".encode())
    if answer is None or answer[0] != 58 or PASSWORD in (answer[1] or ""):
        fail(f"wrong password: {answer}")
    if not closed(s):
        fail("the connection stayed open after a failed authentication")
for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
    for garbage in (b"", b"n,,", b"\xff" * 100, b"n,,n=" + b"x" * 5000 + b",r=abc", b"y,,n=a,r=b"):
        with connect() as s:
            handshake(s, mechanism)
            answer = authenticate(s, garbage)
            if answer is None or answer[0] != 58:
                fail(f"{mechanism} garbage {garbage[:20]!r}: {answer}")
print("ok sasl_raw: wrong password 58 without the password in the message, garbage SCRAM tokens 58")

# A v0 handshake: the PLAIN token goes bare, and the answer is a bare empty token.
with connect() as s:
    error, _ = handshake(s, "PLAIN", version=0)
    if error:
        fail(f"v0 handshake: error {error}")
    s.sendall(struct.pack(">i", len(plain)) + plain)
    if recv_exact(s, 4) != b"\0\0\0\0":
        fail("no empty bare token after a v0 PLAIN exchange")
    if metadata(s) is None:
        fail("Metadata after a v0 PLAIN exchange was refused")
print("ok sasl_raw: v0 handshake with a bare PLAIN token authenticates")

with connect() as s:
    handshake(s, "PLAIN")
    answer = authenticate(s, plain)
    if answer is None or answer[0] != 0 or answer[3] != REAUTH_MS:
        fail(f"PLAIN v1: {answer} (session lifetime wanted {REAUTH_MS})")
    if metadata(s) is None:
        fail("Metadata within the session was refused")
    time.sleep(REAUTH_MS / 1000 + 0.5)
    if metadata(s) is not None:
        fail("Metadata after the session expired was answered")
print(f"ok sasl_raw: session lifetime {REAUTH_MS} ms, Metadata within it, connection closed after it")
