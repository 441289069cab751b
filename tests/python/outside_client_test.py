"""An outside system integrates from the .proto files alone.

Generates Python stubs from proto/ with protoc and Debian's grpc_python_plugin, starts the
real caseworkd on 127.0.0.1, and drives it with the stock grpcio library: create a case,
read it back, page through the ledger, decode a refusal's google.rpc.Status details, and
close a case with Ed25519 signatures (python3-cryptography) over the sign-off statement
as docs/rules.md writes it, and, as an approver, prove from two signed checkpoints that the
log only grew between them.
Run: python3 outside_client_test.py CASEWORKD PROTO_DIR GOOGLEAPIS_DIR
"""
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = {}


def generate_stubs(out_dir):
    protos = [os.path.join("casework", "v1", f) for f in sorted(os.listdir(
        os.path.join(ARGS["proto"], "casework", "v1"))) if f.endswith(".proto")]
    cmd = ["protoc", "-I", ARGS["proto"], "-I", ARGS["googleapis"],
           "--python_out", out_dir, "--grpc_python_out", out_dir,
           "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin"] + protos + [
           "google/rpc/status.proto", "google/rpc/error_details.proto"]
    subprocess.run(cmd, check=True)


class OutsideClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="casework-py-")
        stubs = os.path.join(cls.tmp, "stubs")
        os.makedirs(stubs)
        generate_stubs(stubs)
        sys.path.insert(0, stubs)
        global grpc, case_pb2, svc_pb2, svc_grpc, admin_pb2, admin_grpc, status_pb2
        global details_pb2
        import grpc
        case_pb2 = importlib.import_module("casework.v1.case_pb2")
        svc_pb2 = importlib.import_module("casework.v1.case_service_pb2")
        svc_grpc = importlib.import_module("casework.v1.case_service_pb2_grpc")
        admin_pb2 = importlib.import_module("casework.v1.admin_service_pb2")
        admin_grpc = importlib.import_module("casework.v1.admin_service_pb2_grpc")
        status_pb2 = importlib.import_module("google.rpc.status_pb2")
        details_pb2 = importlib.import_module("google.rpc.error_details_pb2")

        principals = os.path.join(cls.tmp, "principals.json")
        with open(principals, "w") as f:
            json.dump({"principals": [
                {"id": "py.lister", "roles": ["lister"], "jurisdiction": "jiangcheng"},
                {"id": "py.reviewer", "roles": ["reviewer"], "jurisdiction": "jiangcheng"},
                {"id": "py.inspector", "roles": ["inspector"], "jurisdiction": "jiangcheng"},
                {"id": "py.admin", "roles": ["admin"], "jurisdiction": "jiangcheng"},
                {"id": "py.county", "roles": ["approver"], "jurisdiction": "jiangcheng/xihe",
                 "approval_level": "county"},
                {"id": "py.city", "roles": ["approver"], "jurisdiction": "jiangcheng",
                 "approval_level": "city"},
            ]}, f)
        data = os.path.join(cls.tmp, "data")
        os.makedirs(data)
        port_file = os.path.join(data, "port")
        cls.log = open(os.path.join(cls.tmp, "caseworkd.log"), "w")
        cls.server = subprocess.Popen(
            [ARGS["caseworkd"], "--listen=127.0.0.1:0", "--insecure-plaintext",
             "--data-dir=" + data, "--principals=" + principals, "--port-file=" + port_file,
             "--metrics-listen=127.0.0.1:0"],
            stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        port = None
        while time.time() < deadline and port is None:
            if cls.server.poll() is not None:
                raise RuntimeError("caseworkd exited during start-up")
            try:
                with open(port_file) as f:
                    port = int(f.read().strip())
            except (OSError, ValueError):
                time.sleep(0.05)
        if port is None:
            raise RuntimeError("caseworkd did not start")
        cls.channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        cls.stub = svc_grpc.CaseServiceStub(cls.channel)
        cls.admin = admin_grpc.AdminServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.send_signal(signal.SIGTERM)
        try:
            cls.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cls.server.kill()
            cls.server.wait()
        cls.log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def call(self, method, request, identity="py.lister"):
        return method.with_call(request, metadata=[("x-casework-identity", identity)],
                                timeout=10)

    def listing(self, case_id, request_id):
        req = svc_pb2.CreateCaseRequest(case_id=case_id, request_id=request_id,
                                        case_type=case_pb2.CASE_TYPE_POOR,
                                        findings="no collective income")
        req.organisation.organisation_id = "org-" + case_id
        req.organisation.display_name = "西河村党支部"
        req.organisation.jurisdiction = "jiangcheng/xihe/t01/org-" + case_id
        req.organisation.kind = case_pb2.ORGANISATION_KIND_VILLAGE
        req.problem_categories.append(case_pb2.PROBLEM_CATEGORY_DEVELOPMENT)
        req.deadline.seconds = int(time.time()) + 90 * 86400
        return req

    def test_an_approver_keeps_a_checkpoint_and_proves_the_log_only_grew(self):
        # Any role gets signed checkpoints and consistency proofs, and checks them with code
        # of its own: tools/verify_export.py, written apart from the server, for RFC 9162
        # and C2SP signed notes.
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, "..", "..", "tools"))
        import verify_export
        audit_pb2 = importlib.import_module("casework.v1.audit_service_pb2")
        audit = importlib.import_module("casework.v1.audit_service_pb2_grpc").AuditServiceStub(
            self.channel)
        # The verifier key the operator hands out, from the server's key file.
        vkey = subprocess.check_output(
            [sys.executable, os.path.join(here, "..", "verifier_key.py"),
             os.path.join(self.tmp, "data", "log.key")], text=True).strip()

        def signed_past(size):  # the latest signed checkpoint, once it is past `size`
            deadline = time.time() + 10
            while True:
                head, _ = self.call(audit.GetCheckpoint, audit_pb2.GetCheckpointRequest(),
                                    identity="py.county")
                _, got, root = verify_export.open_checkpoint(head.checkpoint, vkey)
                if got > size or time.time() > deadline:
                    return got, root
                time.sleep(0.2)

        self.call(self.stub.CreateCase, self.listing("py-4", "py-r9"))
        size1, root1 = signed_past(0)
        self.call(self.stub.CreateCase, self.listing("py-5", "py-r10"))
        size2, root2 = signed_past(size1)
        self.assertGreater(size2, size1)
        proof, _ = self.call(audit.GetConsistencyProof, audit_pb2.GetConsistencyProofRequest(
            first_tree_size=size1, second_tree_size=size2), identity="py.county")
        self.assertEqual((proof.first_tree_size, proof.second_tree_size), (size1, size2))
        self.assertTrue(verify_export.verify_consistency(size1, size2, list(proof.proof),
                                                         root1, root2))
        # A kept root of another history does not lead to the new one.
        other = bytes([root1[0] ^ 1]) + root1[1:]
        self.assertFalse(verify_export.verify_consistency(size1, size2, list(proof.proof),
                                                          other, root2))

    def test_create_get_list_and_history(self):
        resp, call = self.call(self.stub.CreateCase, self.listing("py-1", "py-r1"))
        self.assertEqual(resp.case.state, case_pb2.CASE_STATE_LISTED)
        self.assertEqual(resp.case.version, 1)
        self.assertEqual(resp.events[0].event.actor, "py.lister")
        self.assertIn("plaintext", dict(call.initial_metadata())["x-casework-security"])

        got, _ = self.call(self.stub.GetCase, svc_pb2.GetCaseRequest(name="cases/py-1"))
        self.assertEqual(got.organisation.display_name, "西河村党支部")

        reviewed, _ = self.call(self.stub.ReviewListing, svc_pb2.ReviewListingRequest(
            name="cases/py-1", request_id="py-r2", expected_version=1, confirmed=True,
            comment="ok"), identity="py.reviewer")
        self.assertEqual(reviewed.case.version, 2)

        page, _ = self.call(self.stub.ListCases, svc_pb2.ListCasesRequest(
            filter='state = LISTED AND jurisdiction = "jiangcheng/xihe"', page_size=10))
        self.assertIn("py-1", [c.case_id for c in page.cases])

        history, _ = self.call(self.stub.ListCaseEvents,
                               svc_pb2.ListCaseEventsRequest(name="cases/py-1"))
        self.assertEqual([r.event.version for r in history.events], [1, 2])
        self.assertEqual(history.events[1].event.WhichOneof("body"), "listing_reviewed")

    def test_refusal_details_decode(self):
        self.call(self.stub.CreateCase, self.listing("py-2", "py-r3"))
        with self.assertRaises(grpc.RpcError) as caught:
            self.call(self.stub.ReviewListing, svc_pb2.ReviewListingRequest(
                name="cases/py-2", request_id="py-r4", expected_version=7, confirmed=True))
        err = caught.exception
        self.assertEqual(err.code(), grpc.StatusCode.ABORTED)
        trailers = dict(err.trailing_metadata())
        rich = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        info = details_pb2.ErrorInfo()
        self.assertTrue(any(d.Unpack(info) for d in rich.details))
        self.assertEqual(info.domain, "casework.gov")
        self.assertTrue(info.reason)
        self.assertEqual(info.metadata["field"], "expected_version")

    def test_signed_closure_from_the_documented_statement(self):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        def raw(key):
            return key.public_key().public_bytes(serialization.Encoding.Raw,
                                                 serialization.PublicFormat.Raw)

        keys = {}
        for person, level in (("py.county", case_pb2.APPROVAL_LEVEL_COUNTY),
                              ("py.city", case_pb2.APPROVAL_LEVEL_CITY)):
            key = Ed25519PrivateKey.generate()
            registered, _ = self.call(self.admin.RegisterApproverKey,
                                      admin_pb2.RegisterApproverKeyRequest(
                                          request_id="py-key-" + person, approver=person,
                                          public_key=raw(key), level=level),
                                      identity="py.admin")
            keys[person] = (registered.key_id, key)

        name = "cases/py-3"
        self.call(self.stub.CreateCase, self.listing("py-3", "py-r5"))
        self.call(self.stub.ReviewListing, svc_pb2.ReviewListingRequest(
            name=name, request_id="py-r6", expected_version=1, confirmed=True),
            identity="py.reviewer")
        assign = svc_pb2.AssignAssistanceRequest(name=name, request_id="py-r7",
                                                 expected_version=2)
        a = assign.assignment
        a.paired_department.department_id = "dept-finance"
        a.paired_department.display_name = "市财政局"
        a.paired_department.kind = case_pb2.DEPARTMENT_KIND_ECONOMIC
        a.first_secretary.person_id = "wang.fang"
        a.first_secretary.display_name = "王芳"
        cadre = a.stationed_cadres.add()
        cadre.person_id = "li.ming"
        cadre.display_name = "李明"
        a.plan = "build a cooperative"
        self.call(self.stub.AssignAssistance, assign)
        inspected, _ = self.call(self.stub.RecordInspection, svc_pb2.RecordInspectionRequest(
            name=name, request_id="py-r8", expected_version=3, inspection_id="py-insp-1",
            passed=True, findings="income established"), identity="py.inspector")
        self.assertEqual(inspected.case.state, case_pb2.CASE_STATE_VERIFIED)

        for i, person in enumerate(("py.county", "py.city")):
            # What the approver checked: the case's version and the leaf hash of its latest
            # event, which the statement names.
            case, _ = self.call(self.stub.GetCase, svc_pb2.GetCaseRequest(name=name),
                                identity=person)
            self.assertEqual(len(case.last_leaf_hash), 32)
            statement = ("casework/v1 closure sign-off v2\n"
                         "case: py-3\n"
                         "version: %d\n"
                         "decision: close\n"
                         "inspection: py-insp-1\n"
                         "latest: %s\n") % (case.version, case.last_leaf_hash.hex())
            key_id, key = keys[person]
            signed, _ = self.call(self.stub.SignOffClosure, svc_pb2.SignOffClosureRequest(
                name=name, request_id="py-sign-%d" % i, expected_version=case.version,
                inspection_id="py-insp-1", key_id=key_id,
                signature=key.sign(statement.encode())), identity=person)
            self.assertEqual(signed.events[0].event.closure_signed_off.sign_off.latest_leaf_hash,
                             case.last_leaf_hash)
        self.assertEqual(signed.case.state, case_pb2.CASE_STATE_CLOSED)

        # Each sign-off names the leaf hash of the event before it, as the log lists it.
        history, _ = self.call(self.stub.ListCaseEvents,
                               svc_pb2.ListCaseEventsRequest(name=name))
        signoffs = 0
        for before, record in zip(history.events, history.events[1:]):
            if record.event.WhichOneof("body") == "closure_signed_off":
                self.assertEqual(record.event.closure_signed_off.sign_off.latest_leaf_hash,
                                 before.leaf_hash)
                signoffs += 1
        self.assertEqual(signoffs, 2)


if __name__ == "__main__":
    ARGS["caseworkd"], ARGS["proto"], ARGS["googleapis"] = sys.argv[1:4]
    unittest.main(argv=[sys.argv[0], "-v"])
