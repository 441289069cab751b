// casework-echo: the ceiling of bench/compare.sh. A casework.v1.CaseService on the plain
// gRPC callback API that does no work: each call is answered at once, on the thread that
// received it, with a response of the size caseworkd gives. So casework-load against it
// measures what the load tool, gRPC and loopback TCP cost on this machine, and nothing of
// the engine: the most any server on it could do with these messages.
//
// The responses are the ones caseworkd gave in the same run: `casework-load
// --record-responses DIR` keeps the first answer of each method as DIR/<Method>.pb, and
// `casework-echo --responses DIR` sends that back (a command's answer with the case's
// version set to expected_version + 1, so the load tool walks its cases as against
// caseworkd). Without a recorded answer a method is answered with an empty message.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "casework/v1/case_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

using casework::v1::Case;
using casework::v1::CaseCommandResponse;
using casework::v1::ListCasesResponse;

// The recorded answer of `method` in `dir`, or an empty message when there is none.
template <typename Message>
Message Recorded(const std::string& dir, const char* method) {
  Message message;
  if (dir.empty()) return message;
  std::ifstream in(dir + "/" + method + ".pb", std::ios::binary);
  if (!in) return message;
  std::stringstream bytes;
  bytes << in.rdbuf();
  if (!message.ParseFromString(bytes.str())) {
    std::fprintf(stderr, "casework-echo: %s/%s.pb does not parse; answering it empty\n",
                 dir.c_str(), method);
    message.Clear();
  }
  return message;
}

class EchoService final : public casework::v1::CaseService::CallbackService {
  // Declared first: every recorded answer below is read from it as the members are
  // initialised, in declaration order.
  const std::string dir_;

 public:
  explicit EchoService(std::string dir) : dir_(std::move(dir)) {}

  grpc::ServerUnaryReactor* GetCase(grpc::CallbackServerContext* ctx,
                                    const casework::v1::GetCaseRequest* /*req*/,
                                    Case* resp) override {
    *resp = get_case_;
    return Done(ctx);
  }
  grpc::ServerUnaryReactor* ListCases(grpc::CallbackServerContext* ctx,
                                      const casework::v1::ListCasesRequest* /*req*/,
                                      ListCasesResponse* resp) override {
    *resp = list_cases_;
    return Done(ctx);
  }
  grpc::ServerUnaryReactor* CreateCase(grpc::CallbackServerContext* ctx,
                                       const casework::v1::CreateCaseRequest* /*req*/,
                                       CaseCommandResponse* resp) override {
    *resp = create_case_;
    resp->mutable_case_()->set_version(1);
    return Done(ctx);
  }

  // Each command: its recorded answer (loaded at construction), sent back with the
  // version the case would have after it.
#define CW_ECHO_COMMAND(Method)                                                       \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* ctx,                  \
                                   const casework::v1::Method##Request* req,          \
                                   CaseCommandResponse* resp) override {              \
    *resp = Method##_;                                                                \
    resp->mutable_case_()->set_version(req->expected_version() + 1);                  \
    return Done(ctx);                                                                 \
  }                                                                                   \
                                                                                      \
 private:                                                                             \
  const CaseCommandResponse Method##_ = Recorded<CaseCommandResponse>(dir_, #Method); \
                                                                                      \
 public:
  CW_ECHO_COMMAND(ReviewListing)
  CW_ECHO_COMMAND(AmendListing)
  CW_ECHO_COMMAND(AssignAssistance)
  CW_ECHO_COMMAND(ReplaceAssignment)
  CW_ECHO_COMMAND(RecordFieldVisit)
  CW_ECHO_COMMAND(RecordMeasure)
  CW_ECHO_COMMAND(RecordFunds)
  CW_ECHO_COMMAND(RecordInspection)
  CW_ECHO_COMMAND(SignOffClosure)
  CW_ECHO_COMMAND(SendBack)
  CW_ECHO_COMMAND(RecordFollowUpReview)
  CW_ECHO_COMMAND(RecordAdmonishmentTalk)
  CW_ECHO_COMMAND(IssueRectificationNotice)
#undef CW_ECHO_COMMAND

 private:
  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  const Case get_case_ = Recorded<Case>(dir_, "GetCase");
  const ListCasesResponse list_cases_ = Recorded<ListCasesResponse>(dir_, "ListCases");
  const CaseCommandResponse create_case_ = Recorded<CaseCommandResponse>(dir_, "CreateCase");
};

}  // namespace

int main(int argc, char** argv) {
  // Without Abseil's deadlock detection, as caseworkd runs (see there).
#ifdef NDEBUG
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  std::string listen = "127.0.0.1:0";
  std::string port_file;
  std::string responses;
  CLI::App app{
      "casework-echo: a CaseService that answers every call at once with a recorded "
      "response (the ceiling of bench/compare.sh)."};
  app.add_option("--listen", listen, "host:port (port 0: any free port)")->capture_default_str();
  app.add_option("--port-file", port_file, "write the bound port here once serving");
  app.add_option("--responses", responses,
                 "directory of recorded answers (casework-load --record-responses)");
  CLI11_PARSE(app, argc, argv);

  EchoService service(responses);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "casework-echo: cannot listen on %s\n", listen.c_str());
    return 4;
  }
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
      std::fprintf(f, "%d\n", port);
      std::fclose(f);
      std::rename(tmp.c_str(), port_file.c_str());
    }
  }
  server->Wait();
  return 0;
}
