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

#include "CLI/CLI.hpp"
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
 public:
  explicit EchoService(const std::string& dir)
      : get_case_(Recorded<Case>(dir, "GetCase")),
        list_cases_(Recorded<ListCasesResponse>(dir, "ListCases")),
        create_case_(Recorded<CaseCommandResponse>(dir, "CreateCase")),
        review_listing_(Recorded<CaseCommandResponse>(dir, "ReviewListing")),
        amend_listing_(Recorded<CaseCommandResponse>(dir, "AmendListing")),
        assign_assistance_(Recorded<CaseCommandResponse>(dir, "AssignAssistance")),
        replace_assignment_(Recorded<CaseCommandResponse>(dir, "ReplaceAssignment")),
        record_field_visit_(Recorded<CaseCommandResponse>(dir, "RecordFieldVisit")),
        record_measure_(Recorded<CaseCommandResponse>(dir, "RecordMeasure")),
        record_funds_(Recorded<CaseCommandResponse>(dir, "RecordFunds")),
        record_inspection_(Recorded<CaseCommandResponse>(dir, "RecordInspection")),
        sign_off_closure_(Recorded<CaseCommandResponse>(dir, "SignOffClosure")),
        send_back_(Recorded<CaseCommandResponse>(dir, "SendBack")),
        record_follow_up_review_(Recorded<CaseCommandResponse>(dir, "RecordFollowUpReview")),
        record_admonishment_talk_(Recorded<CaseCommandResponse>(dir, "RecordAdmonishmentTalk")),
        issue_rectification_notice_(
            Recorded<CaseCommandResponse>(dir, "IssueRectificationNotice")) {}

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

#define CW_ECHO_COMMAND(Method, Request, recorded)                                              \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* ctx,                            \
                                   const casework::v1::Request* req, CaseCommandResponse* resp) \
      override {                                                                                \
    *resp = recorded;                                                                           \
    resp->mutable_case_()->set_version(req->expected_version() + 1);                            \
    return Done(ctx);                                                                           \
  }
  CW_ECHO_COMMAND(ReviewListing, ReviewListingRequest, review_listing_)
  CW_ECHO_COMMAND(AmendListing, AmendListingRequest, amend_listing_)
  CW_ECHO_COMMAND(AssignAssistance, AssignAssistanceRequest, assign_assistance_)
  CW_ECHO_COMMAND(ReplaceAssignment, ReplaceAssignmentRequest, replace_assignment_)
  CW_ECHO_COMMAND(RecordFieldVisit, RecordFieldVisitRequest, record_field_visit_)
  CW_ECHO_COMMAND(RecordMeasure, RecordMeasureRequest, record_measure_)
  CW_ECHO_COMMAND(RecordFunds, RecordFundsRequest, record_funds_)
  CW_ECHO_COMMAND(RecordInspection, RecordInspectionRequest, record_inspection_)
  CW_ECHO_COMMAND(SignOffClosure, SignOffClosureRequest, sign_off_closure_)
  CW_ECHO_COMMAND(SendBack, SendBackRequest, send_back_)
  CW_ECHO_COMMAND(RecordFollowUpReview, RecordFollowUpReviewRequest, record_follow_up_review_)
  CW_ECHO_COMMAND(RecordAdmonishmentTalk, RecordAdmonishmentTalkRequest, record_admonishment_talk_)
  CW_ECHO_COMMAND(IssueRectificationNotice, IssueRectificationNoticeRequest,
                  issue_rectification_notice_)
#undef CW_ECHO_COMMAND

 private:
  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  const Case get_case_;
  const ListCasesResponse list_cases_;
  const CaseCommandResponse create_case_;
  const CaseCommandResponse review_listing_;
  const CaseCommandResponse amend_listing_;
  const CaseCommandResponse assign_assistance_;
  const CaseCommandResponse replace_assignment_;
  const CaseCommandResponse record_field_visit_;
  const CaseCommandResponse record_measure_;
  const CaseCommandResponse record_funds_;
  const CaseCommandResponse record_inspection_;
  const CaseCommandResponse sign_off_closure_;
  const CaseCommandResponse send_back_;
  const CaseCommandResponse record_follow_up_review_;
  const CaseCommandResponse record_admonishment_talk_;
  const CaseCommandResponse issue_rectification_notice_;
};

}  // namespace

int main(int argc, char** argv) {
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
