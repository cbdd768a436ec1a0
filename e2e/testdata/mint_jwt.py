#!/usr/bin/python3
"""Mint a single-use JWT with PyJWT, as an application in Python would.

usage: mint_jwt.py KEY.pem KID USER@HOST
Prints an EdDSA JWT signed with the PKCS #8 private key, kid in its header,
and the claims tokenauthd needs: jid, iat, exp (60 s later) and a random jti.
"""
import secrets, sys, time
import jwt

key, kid, jid = sys.argv[1], sys.argv[2], sys.argv[3]
now = int(time.time())
claims = {"jid": jid, "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(16)}
with open(key, "rb") as f:
    print(jwt.encode(claims, f.read(), algorithm="EdDSA", headers={"kid": kid}))
