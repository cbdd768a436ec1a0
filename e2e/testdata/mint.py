#!/usr/bin/python3
"""Mint mod_auth_token tokens with pyotp, independently of tokenauthd.

usage: mint.py SEED SECRET USER@HOST [UNIX_TIME [NONCE]]
Prints otp+nonce + " " + base64(HMAC-SHA256(secret, otp+nonce+jid)).
"""
import base64, hashlib, hmac, secrets, sys, time
import pyotp

seed, secret, jid = sys.argv[1], sys.argv[2], sys.argv[3]
at = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] else int(time.time())
nonce = sys.argv[5] if len(sys.argv) > 5 else "".join(secrets.choice("0123456789") for _ in range(32))
otp = pyotp.TOTP(seed, digits=8, interval=30).at(at)
sig = hmac.new(secret.encode("utf-8"), (otp + nonce + jid).encode("utf-8"), hashlib.sha256).digest()
print(otp + nonce + " " + base64.b64encode(sig).decode("ascii"))
