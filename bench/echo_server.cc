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
//
// `--async-threads N` serves the same answers on gRPC's completion-queue (async) API
// instead: N threads, each polling a queue of its own and answering on it, with no hand-off
// between gRPC's callback threads. It measures what the threading model alone costs.
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "casework/v1/case_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

// Every command method of CaseService (each answered with a CaseCommandResponse).
// clang-format off
#define CW_ECHO_COMMANDS(X) \
  X(ReviewListing) \
  X(AmendListing) \
  X(AssignAssistance) \
  X(ReplaceAssignment) \
  X(RecordFieldVisit) \
  X(RecordMeasure) \
  X(RecordFunds) \
  X(RecordInspection) \
  X(SignOffClosure) \
  X(SendBack) \
  X(RecordFollowUpReview) \
  X(RecordAdmonishmentTalk) \
  X(IssueRectificationNotice)
// clang-format on

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

  // The answers, for either API.
  void Fill(const casework::v1::GetCaseRequest& /*req*/, Case* resp) const { *resp = get_case_; }
  void Fill(const casework::v1::ListCasesRequest& /*req*/, ListCasesResponse* resp) const {
    *resp = list_cases_;
  }
  // Not implemented by the callback service (UNIMPLEMENTED there); on the async API, where
  // every method is served, an empty page.
  void Fill(const casework::v1::ListCaseEventsRequest& /*req*/,
            casework::v1::ListCaseEventsResponse* /*resp*/) const {}
  void Fill(const casework::v1::CreateCaseRequest& /*req*/, CaseCommandResponse* resp) const {
    *resp = create_case_;
    resp->mutable_case_()->set_version(1);
  }

  grpc::ServerUnaryReactor* GetCase(grpc::CallbackServerContext* ctx,
                                    const casework::v1::GetCaseRequest* req, Case* resp) override {
    Fill(*req, resp);
    return Done(ctx);
  }
  grpc::ServerUnaryReactor* ListCases(grpc::CallbackServerContext* ctx,
                                      const casework::v1::ListCasesRequest* req,
                                      ListCasesResponse* resp) override {
    Fill(*req, resp);
    return Done(ctx);
  }
  grpc::ServerUnaryReactor* CreateCase(grpc::CallbackServerContext* ctx,
                                       const casework::v1::CreateCaseRequest* req,
                                       CaseCommandResponse* resp) override {
    Fill(*req, resp);
    return Done(ctx);
  }

  // Each command: its recorded answer (loaded at construction), sent back with the
  // version the case would have after it.
#define CW_ECHO_COMMAND(Method)                                                          \
  void Fill(const casework::v1::Method##Request& req, CaseCommandResponse* resp) const { \
    *resp = Method##_;                                                                   \
    resp->mutable_case_()->set_version(req.expected_version() + 1);                      \
  }                                                                                      \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* ctx,                     \
                                   const casework::v1::Method##Request* req,             \
                                   CaseCommandResponse* resp) override {                 \
    Fill(*req, resp);                                                                    \
    return Done(ctx);                                                                    \
  }                                                                                      \
                                                                                         \
 private:                                                                                \
  const CaseCommandResponse Method##_ = Recorded<CaseCommandResponse>(dir_, #Method);    \
                                                                                         \
 public:
  CW_ECHO_COMMANDS(CW_ECHO_COMMAND)
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

using AsyncService = casework::v1::CaseService::AsyncService;

// One unary call on the async API: asked for, answered, finished. Each call asks for the
// next one of its method on its queue as soon as it arrives.
class AsyncCall {
 public:
  virtual ~AsyncCall() = default;
  virtual void Proceed(bool ok) = 0;
};

template <typename Request, typename Response>
class AsyncUnary final : public AsyncCall {
 public:
  using Ask =
      std::function<void(grpc::ServerContext*, Request*, grpc::ServerAsyncResponseWriter<Response>*,
                         grpc::ServerCompletionQueue*, void*)>;

  AsyncUnary(const EchoService* answers, const Ask* ask, grpc::ServerCompletionQueue* cq)
      : answers_(answers), ask_(ask), cq_(cq) {
    (*ask_)(&ctx_, &request_, &writer_, cq_, this);
  }

  void Proceed(bool ok) override {
    if (finishing_ || !ok) {
      delete this;
      return;
    }
    new AsyncUnary(answers_, ask_, cq_);
    answers_->Fill(request_, &response_);
    finishing_ = true;
    writer_.Finish(response_, grpc::Status::OK, this);
  }

 private:
  const EchoService* answers_;
  const Ask* ask_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext ctx_;
  Request request_;
  Response response_;
  grpc::ServerAsyncResponseWriter<Response> writer_{&ctx_};
  bool finishing_ = false;
};

// Every unary method of the service on the async API, answered by `answers`.
class AsyncEcho {
 public:
  AsyncEcho(const EchoService* answers, AsyncService* service)
      : answers_(answers), service_(service) {}

  // Asks for the first call of every method on `cq`.
  void Start(grpc::ServerCompletionQueue* cq) {
    Spawn<casework::v1::GetCaseRequest, Case>(&GetCase_, cq);
    Spawn<casework::v1::ListCasesRequest, ListCasesResponse>(&ListCases_, cq);
    Spawn<casework::v1::CreateCaseRequest, CaseCommandResponse>(&CreateCase_, cq);
    Spawn<casework::v1::ListCaseEventsRequest, casework::v1::ListCaseEventsResponse>(
        &ListCaseEvents_, cq);
#define CW_ECHO_SPAWN(Method) \
  Spawn<casework::v1::Method##Request, CaseCommandResponse>(&Method##_, cq);
    CW_ECHO_COMMANDS(CW_ECHO_SPAWN)
#undef CW_ECHO_SPAWN
  }

 private:
  template <typename Request, typename Response>
  using Ask = typename AsyncUnary<Request, Response>::Ask;

  template <typename Request, typename Response>
  void Spawn(const Ask<Request, Response>* ask, grpc::ServerCompletionQueue* cq) {
    new AsyncUnary<Request, Response>(answers_, ask, cq);
  }

  const EchoService* answers_;
  AsyncService* service_;

#define CW_ECHO_ASK(Method, Req, Resp)                                                   \
  const Ask<Req, Resp> Method##_ = [this](grpc::ServerContext* ctx, Req* req,            \
                                          grpc::ServerAsyncResponseWriter<Resp>* writer, \
                                          grpc::ServerCompletionQueue* cq, void* tag) {  \
    service_->Request##Method(ctx, req, writer, cq, cq, tag);                            \
  };
  CW_ECHO_ASK(GetCase, casework::v1::GetCaseRequest, Case)
  CW_ECHO_ASK(ListCases, casework::v1::ListCasesRequest, ListCasesResponse)
  CW_ECHO_ASK(CreateCase, casework::v1::CreateCaseRequest, CaseCommandResponse)
  CW_ECHO_ASK(ListCaseEvents, casework::v1::ListCaseEventsRequest,
              casework::v1::ListCaseEventsResponse)

#define CW_ECHO_ASK_COMMAND(Method) \
  CW_ECHO_ASK(Method, casework::v1::Method##Request, CaseCommandResponse)
  CW_ECHO_COMMANDS(CW_ECHO_ASK_COMMAND)
#undef CW_ECHO_ASK_COMMAND
#undef CW_ECHO_ASK
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
  int async_threads = 0;
  app.add_option("--async-threads", async_threads,
                 "serve on the completion-queue API with this many threads, each polling its "
                 "own queue (0: the callback API)")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  CLI11_PARSE(app, argc, argv);

  EchoService service(responses);
  AsyncService async_service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues;
  if (async_threads > 0) {
    builder.RegisterService(&async_service);
    for (int i = 0; i < async_threads; ++i) queues.push_back(builder.AddCompletionQueue());
  } else {
    builder.RegisterService(&service);
  }
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
  if (async_threads > 0) {
    AsyncEcho echo(&service, &async_service);
    std::vector<std::thread> threads;
    for (auto& queue : queues) {
      // Enough calls asked for on each queue that a burst finds one waiting (as the
      // callback API keeps a few per method).
      for (int i = 0; i < 8; ++i) echo.Start(queue.get());
      threads.emplace_back([cq = queue.get()] {
        void* tag = nullptr;
        bool ok = false;
        while (cq->Next(&tag, &ok)) static_cast<AsyncCall*>(tag)->Proceed(ok);
      });
    }
    server->Wait();
    for (auto& queue : queues) queue->Shutdown();
    for (auto& thread : threads) thread.join();
    return 0;
  }
  server->Wait();
  return 0;
}
