"""Prints a C2SP signed note of a checkpoint (origin, size, root) signed with an Ed25519
seed file (32 raw bytes, as a data folder's log.key): a checkpoint of any history, signed
with the server's key or another, for tests of what a client that keeps checkpoints does
with it. Usage: sign_note.py SEED_FILE SIZE ROOT_HEX [ORIGIN]"""
import base64
import hashlib
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

seed = open(sys.argv[1], "rb").read()
size = int(sys.argv[2])
root = bytes.fromhex(sys.argv[3])
origin = sys.argv[4] if len(sys.argv) > 4 else "casework/log"
key = Ed25519PrivateKey.from_private_bytes(seed)
pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
key_hash = hashlib.sha256(origin.encode() + b"\n" + b"\x01" + pub).digest()[:4]
body = "%s\n%d\n%s\n" % (origin, size, base64.b64encode(root).decode())
signature = key.sign(body.encode())
sys.stdout.write("%s\n\u2014 %s %s\n" % (body, origin, base64.b64encode(key_hash + signature).decode()))
