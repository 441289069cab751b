"""Prints the C2SP signed-note verifier key (name+hash+base64(0x01||key)) of a server's
Ed25519 seed file (32 raw bytes, the log.key of a data folder): what an operator hands to
auditors. Usage: verifier_key.py SEED_FILE [NAME]"""
import base64
import hashlib
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

seed = open(sys.argv[1], "rb").read()
name = (sys.argv[2] if len(sys.argv) > 2 else "casework/log").encode()
pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw)
key_hash = hashlib.sha256(name + b"\n" + b"\x01" + pub).digest()[:4]
print("%s+%s+%s" % (name.decode(), key_hash.hex(), base64.b64encode(b"\x01" + pub).decode()))
