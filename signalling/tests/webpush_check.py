#!/usr/bin/env python3
"""Independent Web Push checks for sotto-signalling's tests.

PyPI http_ece decrypts the RFC 8291 / RFC 8188 aes128gcm payload and
PyPI py_vapid verifies the RFC 8292 VAPID token, so our encryption and
signing are checked by implementations that share no code with ours.

  webpush_check.py keygen   -> {"private", "p256dh", "auth"} (user agent keys)
  webpush_check.py check    <- {"private", "auth", "body" (base64), "authorization"}
                            -> {"plaintext", "vapid_ok", "claims"}
  webpush_check.py encrypt  <- {"p256dh", "auth", "plaintext" (base64), "rs"}
                            -> {"body" (base64)}  (an application server's push)
"""
import base64
import json
import os
import sys

import http_ece
import py_vapid
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def keygen():
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    return {"private": b64u(scalar), "p256dh": b64u(public), "auth": b64u(os.urandom(16))}


def check(req):
    key = ec.derive_private_key(int.from_bytes(unb64u(req["private"]), "big"), ec.SECP256R1())
    body = base64.b64decode(req["body"])
    plaintext = http_ece.decrypt(
        body, private_key=key, auth_secret=unb64u(req["auth"]), version="aes128gcm"
    )
    authorization = req["authorization"]
    vapid_ok = py_vapid.Vapid02.verify(authorization)
    token = authorization.split("t=", 1)[1].split(",", 1)[0]
    claims = json.loads(unb64u(token.split(".")[1]))
    return {"plaintext": plaintext.decode(), "vapid_ok": bool(vapid_ok), "claims": claims}


def encrypt(req):
    key = ec.generate_private_key(ec.SECP256R1())
    body = http_ece.encrypt(
        base64.b64decode(req["plaintext"]),
        private_key=key,
        dh=unb64u(req["p256dh"]),
        auth_secret=unb64u(req["auth"]),
        rs=req["rs"],
        version="aes128gcm",
    )
    return {"body": base64.b64encode(body).decode()}


if __name__ == "__main__":
    if sys.argv[1] == "keygen":
        print(json.dumps(keygen()))
    elif sys.argv[1] == "encrypt":
        print(json.dumps(encrypt(json.load(sys.stdin))))
    else:
        print(json.dumps(check(json.load(sys.stdin))))
