#!/usr/bin/python3
"""An independent verifier of casework exports, checkpoints and proofs (docs/audit.md).

Written from docs/audit.md alone, with Python 3's hashlib and Debian's python3-cryptography
(Ed25519); it shares no code with the server. Subcommands:

  export FILE --key VKEY        verify an export: the checkpoint's signature, every record's
                                position and leaf hash, the tree root (or consistency with
                                the checkpoint), every sign-off signature in it, and every
                                inspection draw (docs/oversight.md): its checkpoint's
                                signature, its seed and its sample, redone from the log
  checkpoint FILE --key VKEY    verify a signed checkpoint note; print size and root
  inclusion --index I --size N --leaf-hash HEX --root HEX [--proof HEX ...]
  consistency --size1 M --size2 N --root1 HEX --root2 HEX [--proof HEX ...]

VKEY is the server's note verifier key "name+hash+base64", obtained from the operator (do
not trust the copy inside an export). Exit status: 0 verified, 1 not verified, 2 usage or
malformed input.
"""
import argparse
import base64
import hashlib
import json
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MAGIC = b"casework-export/1\n"
END = b"end\n"
HEADER_KEYS = ["origin", "from", "to", "tree-size", "verifier-key", "left-edge",
               "consistency-proof", "checkpoint-length"]
RECORD_FORMAT_V1 = 0x01
# The sign-off statement (docs/rules.md): rules/2026.3 and later name the leaf hash of the
# case's latest event; rules/2026.1 and 2026.2 signed the first form, without it.
SIGN_OFF_CONTEXT = "casework/v1 closure sign-off v2\n"
SIGN_OFF_CONTEXT_V1 = "casework/v1 closure sign-off\n"
RULES_WITHOUT_LATEST_LEAF = ("rules/2026.1", "rules/2026.2")


class Malformed(Exception):
    pass


# --- RFC 9162 hashing ----------------------------------------------------------------

def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def range_sizes(size):
    """Sizes of the perfect subtrees that make up [0, size), largest first."""
    return [1 << bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]


class CompactRange:
    """The right edge of a growing tree: hashes of the perfect subtrees of [0, size)."""

    def __init__(self, size=0, hashes=()):
        if len(hashes) != len(range_sizes(size)):
            raise Malformed("left edge has %d hashes, a tree of %d needs %d"
                            % (len(hashes), size, len(range_sizes(size))))
        self.size = size
        self.nodes = list(zip(range_sizes(size), hashes))

    def append(self, h):
        self.nodes.append((1, h))
        self.size += 1
        while len(self.nodes) >= 2 and self.nodes[-1][0] == self.nodes[-2][0]:
            (n, right), (_, left) = self.nodes.pop(), self.nodes.pop()
            self.nodes.append((2 * n, node_hash(left, right)))

    def root(self):
        if not self.nodes:
            return hashlib.sha256(b"").digest()
        h = self.nodes[-1][1]
        for _, left in reversed(self.nodes[:-1]):
            h = node_hash(left, h)
        return h


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while (fn & 1) == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(size1, size2, proof, root1, root2):
    """RFC 9162 section 2.1.4.2."""
    if size1 <= 0 or size1 > size2:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if not proof:
        return False
    if (size1 & (size1 - 1)) == 0:  # a power of two: first_hash is root1
        proof = [root1] + list(proof)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while (fn & 1) == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2


# --- Signed notes (C2SP signed-note, tlog-checkpoint) --------------------------------

def parse_verifier_key(vkey):
    name, key_hash_hex, key_b64 = vkey.split("+", 2)
    key = base64.b64decode(key_b64, validate=True)
    if len(key) != 33 or key[0] != 0x01:
        raise Malformed("verifier key is not an Ed25519 key")
    key_hash = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    if key_hash.hex() != key_hash_hex:
        raise Malformed("verifier key hash does not match its key")
    return name, key_hash, key[1:]


def open_checkpoint(note, vkey):
    """Returns (origin, size, root) of a checkpoint signed by `vkey`; raises otherwise."""
    name, key_hash, public_key = parse_verifier_key(vkey)
    text, sep, signatures = note.partition("\n\n")
    if not sep:
        raise Malformed("note has no blank line before its signatures")
    text += "\n"
    verified = False
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            raise Malformed("signature line does not start with an em dash")
        signer, _, sig_b64 = line[2:].rpartition(" ")
        sig = base64.b64decode(sig_b64, validate=True)
        if signer != name or sig[:4] != key_hash:
            continue  # another key's signature
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(sig[4:], text.encode())
        except InvalidSignature:
            raise Malformed("the checkpoint's signature by %s does not verify" % name)
        verified = True
    if not verified:
        raise Malformed("the checkpoint carries no signature by %s" % name)
    lines = text.split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
    if str(size) != lines[1] or len(root) != 32:
        raise Malformed("checkpoint body is malformed")
    return origin, size, root


# --- Protocol Buffers wire format, just what sign-offs need --------------------------

def read_varint(data, i):
    value = shift = 0
    while True:
        if i >= len(data):
            raise Malformed("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def fields(data):
    """Yields (field number, wire type, value) of a serialized message."""
    i = 0
    while i < len(data):
        tag, i = read_varint(data, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = read_varint(data, i)
        elif wire == 2:
            n, i = read_varint(data, i)
            value, i = data[i:i + n], i + n
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise Malformed("unsupported wire type %d" % wire)
        yield number, wire, value


def message(data):
    out = {}
    for number, _, value in fields(data):
        out[number] = value
    return out


# Field numbers of casework.v1 (proto/casework/v1/events.proto, case.proto).
EVENT_STREAM, EVENT_VERSION, EVENT_ACTOR, EVENT_RULES_VERSION = 1, 2, 3, 6
EVENT_CLOSURE_SIGNED_OFF, EVENT_KEY_REGISTERED, EVENT_KEY_REVOKED = 30, 40, 41


class SignOffChecker:
    """Tracks approver keys registered on approvers/{id} and checks every sign-off."""

    def __init__(self):
        self.keys = {}  # key id -> (person, public key, revoked)
        self.latest = {}  # case stream -> leaf hash of its latest event
        self.first_naming_leaf = None  # position of the first event under rules naming it
        self.checked = 0

    def visit(self, position, stream, version, event, leaf):
        e = message(event)
        rules = e.get(EVENT_RULES_VERSION, b"").decode()
        if (self.first_naming_leaf is None and rules.startswith("rules/")
                and rules not in RULES_WITHOUT_LATEST_LEAF):
            self.first_naming_leaf = position
        before = None
        if stream.startswith("cases/"):
            before = self.latest.get(stream, b"")
            self.latest[stream] = leaf
        if EVENT_KEY_REGISTERED in e and stream.startswith("approvers/"):
            k = message(e[EVENT_KEY_REGISTERED])
            self.keys[k.get(1, b"").decode()] = (stream[len("approvers/"):], k.get(2, b""), False)
        elif EVENT_KEY_REVOKED in e and stream.startswith("approvers/"):
            key_id = message(e[EVENT_KEY_REVOKED]).get(1, b"").decode()
            if key_id in self.keys and self.keys[key_id][0] == stream[len("approvers/"):]:
                person, public_key, _ = self.keys[key_id]
                self.keys[key_id] = (person, public_key, True)
        elif EVENT_CLOSURE_SIGNED_OFF in e and stream.startswith("cases/"):
            s = message(message(e[EVENT_CLOSURE_SIGNED_OFF]).get(1, b""))
            approver = s.get(1, b"").decode()
            key_id = s.get(3, b"").decode()
            signature = s.get(4, b"")
            inspection = s.get(5, b"").decode()
            latest = s.get(7, b"")
            actor = e.get(EVENT_ACTOR, b"").decode()
            known = self.keys.get(key_id)
            if known is None or known[0] != actor or approver != actor:
                return "sign-off by %s names key %r, not registered by them before it" % (
                    actor, key_id)
            if known[2]:
                return "sign-off by %s uses key %r, revoked before it" % (actor, key_id)
            body = "case: %s\nversion: %d\ndecision: close\ninspection: %s\n" % (
                stream[len("cases/"):], version - 1, inspection)
            if rules in RULES_WITHOUT_LATEST_LEAF:
                if self.first_naming_leaf is not None and self.first_naming_leaf < position:
                    return ("sign-off by %s was admitted under %s, whose statement names no leaf "
                            "hash, after position %d was admitted under rules that require one"
                            ) % (actor, rules, self.first_naming_leaf)
                statement = SIGN_OFF_CONTEXT_V1 + body
            else:
                if latest != before:
                    return ("sign-off by %s names the latest leaf %s, but event %d of %s has "
                            "leaf %s") % (actor, latest.hex(), version - 1, stream, before.hex())
                statement = SIGN_OFF_CONTEXT + body + "latest: %s\n" % latest.hex()
            try:
                Ed25519PublicKey.from_public_bytes(known[1]).verify(signature, statement.encode())
            except (InvalidSignature, ValueError):
                return "sign-off signature of %s with key %r does not verify" % (actor, key_id)
            self.checked += 1
        return None


SAMPLE_SEED_CONTEXT = b"casework/v1 inspection-sample\n"
EVENT_TIME, EVENT_REQUEST_ID = 4, 5
EVENT_ORGANISATION_LISTED, EVENT_SAMPLE_DRAWN = 20, 43


def in_subtree(root, path):
    root = root.rstrip("/")
    return root == "" or path == root or path.startswith(root + "/")


def sample_seed(note, scope, size, request_id, micros):
    field = lambda b: struct.pack(">I", len(b)) + b
    return hashlib.sha256(SAMPLE_SEED_CONTEXT + field(note.encode()) + field(scope.encode()) +
                          field(str(size).encode()) + field(request_id.encode()) +
                          field(str(micros).encode())).digest()


def draw_sample(seed, population, k):
    population = sorted(population)
    n = len(population)

    def words():
        counter = 0
        while True:
            block = hashlib.sha256(seed + struct.pack(">Q", counter)).digest()
            counter += 1
            for i in range(4):
                yield struct.unpack(">Q", block[8 * i:8 * i + 8])[0]

    w = words()
    for i in range(min(k, n)):
        m = n - i
        while True:
            v = next(w)
            if v < 2**64 - (2**64 % m):
                break
        j = i + v % m
        population[i], population[j] = population[j], population[i]
    return population[:min(k, n)]


class DrawChecker:
    """Redoes every inspection draw from the cases listed before its checkpoint."""

    def __init__(self, vkey):
        self.vkey = vkey
        self.listed = []  # (position, case id, organisation jurisdiction)
        self.checked = 0

    def visit(self, position, stream, event):
        e = message(event)
        if EVENT_ORGANISATION_LISTED in e and stream.startswith("cases/"):
            org = message(message(e[EVENT_ORGANISATION_LISTED]).get(1, b""))
            self.listed.append((position, stream[len("cases/"):], org.get(3, b"").decode()))
            return None
        if EVENT_SAMPLE_DRAWN not in e or not stream.startswith("samples/"):
            return None
        scope = checkpoint = seed = b""
        size = population = 0
        drawn = []
        for number, _, value in fields(e[EVENT_SAMPLE_DRAWN]):
            if number == 1:
                scope = value
            elif number == 2:
                checkpoint = value
            elif number == 3:
                seed = value
            elif number == 4:
                size = value
            elif number == 5:
                drawn.append(value.decode())
            elif number == 6:
                population = value
        try:
            _, tree_size, _ = open_checkpoint(checkpoint.decode(), self.vkey)
        except Malformed as err:
            return "the draw on %s rests on a checkpoint that does not verify: %s" % (stream, err)
        t = message(e.get(EVENT_TIME, b""))
        micros = t.get(1, 0) * 1000000 + t.get(2, 0) // 1000
        request_id = e.get(EVENT_REQUEST_ID, b"").decode()
        scope = scope.decode()
        if sample_seed(checkpoint.decode(), scope, size, request_id, micros) != seed:
            return "the seed of the draw on %s is not the one its inputs give" % stream
        cases = [case for (p, case, where) in self.listed
                 if p < tree_size and in_subtree(scope, where)]
        if len(cases) != population:
            return "the draw on %s counts %d cases in %s; the log has %d" % (
                stream, population, scope, len(cases))
        if draw_sample(seed, cases, size) != drawn:
            return "the cases drawn on %s are not the ones the seed gives" % stream
        self.checked += 1
        return None


# --- Exports -------------------------------------------------------------------------

def read_exact(f, n):
    data = f.read(n)
    if len(data) != n:
        raise Malformed("the export is cut short")
    return data


def verify_export(f, vkey, progress=None):
    """Returns a dict verdict; raises Malformed when the bytes are not an export."""
    if f.readline() != MAGIC:
        raise Malformed("not a casework export")
    header = {}
    for key in HEADER_KEYS:
        line = f.readline().decode()
        if not line.startswith(key + ": ") or not line.endswith("\n"):
            raise Malformed("export header: expected %r" % key)
        header[key] = line[len(key) + 2:-1]
    if f.readline() != b"\n":
        raise Malformed("export header: no blank line")
    first, end, tree_size = int(header["from"]), int(header["to"]), int(header["tree-size"])
    left = base64.b64decode(header["left-edge"], validate=True)
    proof = base64.b64decode(header["consistency-proof"], validate=True)
    if proof and end in (0, tree_size):
        # One form only: the root is compared directly there, and a proof would go unread.
        raise Malformed("export header: a consistency-proof where to is 0 or tree-size")
    note = read_exact(f, int(header["checkpoint-length"])).decode()
    verdict = {"ok": False, "from": first, "to": end, "records": 0, "sign_offs_checked": 0,
               "draws_checked": 0}

    def fail(position, problem):
        verdict.update(first_bad_position=position, problem=problem)
        return verdict

    try:
        origin, size, root = open_checkpoint(note, vkey)
    except Malformed as e:
        return fail(None, str(e))
    verdict["tree_size"] = size
    if origin != header["origin"] or size != tree_size or not 0 <= first <= end <= size:
        return fail(None, "the header disagrees with the checkpoint")
    tree = CompactRange(first, [left[i:i + 32] for i in range(0, len(left), 32)])
    signoffs = SignOffChecker() if first == 0 else None
    draws = DrawChecker(vkey) if first == 0 else None
    for expected in range(first, end):
        position, length = struct.unpack(">QI", read_exact(f, 12))
        if position != expected:
            return fail(expected, "record for position %d holds position %d" % (expected, position))
        record = read_exact(f, length)
        # event_record := 0x01 version:uint64be stream_length:uint32be stream event
        if len(record) < 13 or record[0] != RECORD_FORMAT_V1:
            return fail(expected, "not a well-formed event record")
        version, stream_length = struct.unpack(">QI", record[1:13])
        stream = record[13:13 + stream_length].decode()
        event = record[13 + stream_length:]
        leaf = leaf_hash(record)
        tree.append(leaf)
        verdict["records"] += 1
        if signoffs is not None:
            problem = (signoffs.visit(expected, stream, version, event, leaf)
                       or draws.visit(expected, stream, event))
            if problem:
                return fail(expected, problem)
        if progress and verdict["records"] % 65536 == 0:
            progress(verdict["records"], end - first)
    if f.read(len(END) + 1) != END:
        return fail(end, "the export does not end with \"end\" right after the last record")
    computed = tree.root()
    if end == 0:
        pass
    elif end == size:
        if computed != root:
            return fail(None, "the root of the exported events differs from the checkpoint")
    else:
        nodes = [proof[i:i + 32] for i in range(0, len(proof), 32)]
        if not verify_consistency(end, size, nodes, computed, root):
            return fail(None, "the exported events are not consistent with the checkpoint")
    if signoffs is not None:
        verdict["sign_offs_checked"] = signoffs.checked
        verdict["draws_checked"] = draws.checked
    verdict["ok"] = True
    # The checkpoint verified against, to compare with one kept elsewhere; and the root of
    # the exported range at `to` (the same when to = tree-size).
    verdict["origin"] = origin
    verdict["tree_size"] = size
    verdict["root_hash"] = root.hex()
    verdict["range_root"] = computed.hex()
    return verdict


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("export")
    p.add_argument("file")
    p.add_argument("--key", required=True)
    p = sub.add_parser("checkpoint")
    p.add_argument("file")
    p.add_argument("--key", required=True)
    p = sub.add_parser("inclusion")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--leaf-hash", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--proof", nargs="*", default=[])
    p = sub.add_parser("consistency")
    p.add_argument("--size1", type=int, required=True)
    p.add_argument("--size2", type=int, required=True)
    p.add_argument("--root1", required=True)
    p.add_argument("--root2", required=True)
    p.add_argument("--proof", nargs="*", default=[])
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            with open(args.file, "rb") as f:
                verdict = verify_export(f, args.key)
        elif args.command == "checkpoint":
            with open(args.file, encoding="utf-8") as f:
                note = f.read()
            try:
                origin, size, root = open_checkpoint(note, args.key)
                verdict = {"ok": True, "origin": origin, "tree_size": size, "root": root.hex()}
            except Malformed as e:
                verdict = {"ok": False, "problem": str(e)}
        elif args.command == "inclusion":
            ok = verify_inclusion(args.index, args.size, bytes.fromhex(args.leaf_hash),
                                  [bytes.fromhex(p) for p in args.proof], bytes.fromhex(args.root))
            verdict = {"ok": ok}
        else:
            ok = verify_consistency(args.size1, args.size2, [bytes.fromhex(p) for p in args.proof],
                                    bytes.fromhex(args.root1), bytes.fromhex(args.root2))
            verdict = {"ok": ok}
    except (Malformed, ValueError, UnicodeDecodeError, OSError, struct.error) as e:
        print(json.dumps({"ok": False, "error": str(e)}))
        return 2
    print(json.dumps(verdict, sort_keys=True))
    return 0 if verdict["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
