#!/usr/bin/python3
"""A plain mod_auth_token helper in Python with pyotp, as a reader of the
token's README would write it: the baseline tokenauthd is compared with.

It frames correctly (binary reads of ejabberd's 2-byte length frames, or
one request per line when the first byte is a lowercase letter), splits a
request at most three times, and checks the token properly: 8-digit TOTP
within one step either way, HMAC-SHA256 over otp+nonce+user@host compared
in constant time. Like every such helper found, it has no replay
protection. Its hosts' secrets come from the tokenauthd configuration
named by $TOKENAUTHD_CONFIG. It is a benchmark baseline: never deploy it.
"""
import base64
import binascii
import hashlib
import hmac
import os
import struct
import sys
import tomllib

import pyotp

with open(os.environ.get("TOKENAUTHD_CONFIG", "/etc/tokenauthd/config.toml"), "rb") as f:
    config = tomllib.load(f)
HOSTS = {
    name: (pyotp.TOTP(h["otp_seed"], digits=8, interval=30), h["token_secret"].encode("utf-8"))
    for name, h in config["hosts"].items()
}


def verify(user, host, password):
    if host not in HOSTS:
        return False
    totp, secret = HOSTS[host]
    head, space, signature = password.partition(" ")
    if not space or len(head) < 8 or not (head.isascii() and head.isdigit()):
        return False
    if not totp.verify(head[:8], valid_window=1):
        return False
    try:
        signature = base64.b64decode("".join(signature.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(secret, (head + user + "@" + host).encode("utf-8"), hashlib.sha256).digest()
    return hmac.compare_digest(expected, signature)


def answer(body):
    try:
        fields = body.decode("utf-8").split(":", 3)
    except UnicodeDecodeError:
        return False
    if fields[0] == "auth" and len(fields) == 4:
        return verify(fields[1], fields[2], fields[3])
    if fields[0] == "isuser" and len(fields) == 3:
        return fields[2] in HOSTS
    return False


def main():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    first = stdin.peek(1)[:1]
    if not first:
        return
    if b"a" <= first <= b"z":  # generic: one request per line
        for line in stdin:
            stdout.write(b"1\n" if answer(line.rstrip(b"\r\n")) else b"0\n")
            stdout.flush()
        return
    while True:  # ejabberd: 2-byte big-endian length, then the body
        header = stdin.read(2)
        if len(header) < 2:
            return
        (length,) = struct.unpack(">H", header)
        body = stdin.read(length)
        if len(body) < length:
            return
        stdout.write(struct.pack(">HH", 2, 1 if answer(body) else 0))
        stdout.flush()


if __name__ == "__main__":
    main()
