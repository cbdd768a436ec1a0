#!/usr/bin/python3
"""Check a mod_auth_token token with pyotp and hmac, independently of tokenauthd.

usage: check.py SEED SECRET USER@HOST UNIX_TIME TOKEN
Exit status 0 if TOKEN's OTP is pyotp's for UNIX_TIME and its signature is
HMAC-SHA256(SECRET, otp+nonce+jid); 1 (and why, on stderr) otherwise.
"""
import base64, binascii, hashlib, hmac, sys
import pyotp

seed, secret, jid, at, token = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
decimal, _, sig = token.partition(" ")
if not decimal.isdigit() or len(decimal) < 8:
    sys.exit("not otp+nonce digits")
otp, nonce = decimal[:8], decimal[8:]
if otp != pyotp.TOTP(seed, digits=8, interval=30).at(at):
    sys.exit("otp is not pyotp's")
try:
    got = base64.b64decode(sig, validate=True)
except binascii.Error:
    sys.exit("signature is not standard base64")
want = hmac.new(secret.encode("utf-8"), (otp + nonce + jid).encode("utf-8"), hashlib.sha256).digest()
if not hmac.compare_digest(got, want):
    sys.exit("signature does not match")
