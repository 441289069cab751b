"""An outside system integrates from the .proto files alone.

Generates Python stubs from proto/ with protoc and Debian's grpc_python_plugin, starts the
real caseworkd on 127.0.0.1, and drives it with the stock grpcio library: create a case,
read it back, page through the ledger, and decode a refusal's google.rpc.Status details.
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
        global grpc, case_pb2, svc_pb2, svc_grpc, status_pb2, details_pb2
        import grpc
        case_pb2 = importlib.import_module("casework.v1.case_pb2")
        svc_pb2 = importlib.import_module("casework.v1.case_service_pb2")
        svc_grpc = importlib.import_module("casework.v1.case_service_pb2_grpc")
        status_pb2 = importlib.import_module("google.rpc.status_pb2")
        details_pb2 = importlib.import_module("google.rpc.error_details_pb2")

        principals = os.path.join(cls.tmp, "principals.json")
        with open(principals, "w") as f:
            json.dump({"principals": [
                {"id": "py.lister", "roles": ["lister"], "jurisdiction": "jiangcheng"},
                {"id": "py.reviewer", "roles": ["reviewer"], "jurisdiction": "jiangcheng"},
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


if __name__ == "__main__":
    ARGS["caseworkd"], ARGS["proto"], ARGS["googleapis"] = sys.argv[1:4]
    unittest.main(argv=[sys.argv[0], "-v"])
