// casework.v1.CaseService on gRPC's callback API. Handlers never block: a command is
// decided on the calling thread and finished by the log's commit thread once durable.
#pragma once

#include "casework/v1/case_service.grpc.pb.h"
#include "services/shell/auth.h"
#include "services/shell/command_processor.h"

namespace casework::shell {

class CaseServiceImpl final : public casework::v1::CaseService::CallbackService {
 public:
  CaseServiceImpl(CommandProcessor* processor, const Authenticator* auth)
      : processor_(processor), auth_(auth) {}

  grpc::ServerUnaryReactor* CreateCase(grpc::CallbackServerContext* ctx,
                                       const casework::v1::CreateCaseRequest* req,
                                       casework::v1::CaseCommandResponse* resp) override;
  grpc::ServerUnaryReactor* GetCase(grpc::CallbackServerContext* ctx,
                                    const casework::v1::GetCaseRequest* req,
                                    casework::v1::Case* resp) override;
  grpc::ServerUnaryReactor* ListCases(grpc::CallbackServerContext* ctx,
                                      const casework::v1::ListCasesRequest* req,
                                      casework::v1::ListCasesResponse* resp) override;
  grpc::ServerUnaryReactor* ListCaseEvents(grpc::CallbackServerContext* ctx,
                                           const casework::v1::ListCaseEventsRequest* req,
                                           casework::v1::ListCaseEventsResponse* resp) override;

#define CW_COMMAND_RPC(Method, Request)                              \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* ctx, \
                                   const casework::v1::Request* req, \
                                   casework::v1::CaseCommandResponse* resp) override;
  CW_COMMAND_RPC(ReviewListing, ReviewListingRequest)
  CW_COMMAND_RPC(AmendListing, AmendListingRequest)
  CW_COMMAND_RPC(AssignAssistance, AssignAssistanceRequest)
  CW_COMMAND_RPC(ReplaceAssignment, ReplaceAssignmentRequest)
  CW_COMMAND_RPC(RecordFieldVisit, RecordFieldVisitRequest)
  CW_COMMAND_RPC(RecordMeasure, RecordMeasureRequest)
  CW_COMMAND_RPC(RecordFunds, RecordFundsRequest)
  CW_COMMAND_RPC(RecordInspection, RecordInspectionRequest)
  CW_COMMAND_RPC(SignOffClosure, SignOffClosureRequest)
  CW_COMMAND_RPC(SendBack, SendBackRequest)
  CW_COMMAND_RPC(RecordFollowUpReview, RecordFollowUpReviewRequest)
  CW_COMMAND_RPC(RecordAdmonishmentTalk, RecordAdmonishmentTalkRequest)
  CW_COMMAND_RPC(IssueRectificationNotice, IssueRectificationNoticeRequest)
#undef CW_COMMAND_RPC

 private:
  // Authenticates, resolves the case id and runs the command.
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* ctx, std::string case_id,
                                casework::v1::Command command,
                                casework::v1::CaseCommandResponse* resp);

  CommandProcessor* processor_;
  const Authenticator* auth_;
};

}  // namespace casework::shell
