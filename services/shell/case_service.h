// casework.v1.CaseService on gRPC's callback API. Handlers never block: a command is
// decided on the calling thread and finished by the log's commit thread once durable.
#pragma once

#include "casework/v1/case_service.grpc.pb.h"
#include "services/shell/arena_messages.h"
#include "services/shell/auth.h"
#include "services/shell/command_processor.h"

namespace casework::shell {

// The commands other than CreateCase: X(Method, Request, field of casework.v1.Command).
#define CW_CASE_COMMANDS(X)                                                          \
  X(ReviewListing, ReviewListingRequest, review_listing)                             \
  X(AmendListing, AmendListingRequest, amend_listing)                                \
  X(AssignAssistance, AssignAssistanceRequest, assign_assistance)                    \
  X(ReplaceAssignment, ReplaceAssignmentRequest, replace_assignment)                 \
  X(RecordFieldVisit, RecordFieldVisitRequest, record_field_visit)                   \
  X(RecordMeasure, RecordMeasureRequest, record_measure)                             \
  X(RecordFunds, RecordFundsRequest, record_funds)                                   \
  X(RecordInspection, RecordInspectionRequest, record_inspection)                    \
  X(SignOffClosure, SignOffClosureRequest, sign_off_closure)                         \
  X(SendBack, SendBackRequest, send_back)                                            \
  X(RecordFollowUpReview, RecordFollowUpReviewRequest, record_follow_up_review)      \
  X(RecordAdmonishmentTalk, RecordAdmonishmentTalkRequest, record_admonishment_talk) \
  X(IssueRectificationNotice, IssueRectificationNoticeRequest, issue_rectification_notice)

class CaseServiceImpl final : public casework::v1::CaseService::CallbackService {
 public:
  // Every command's and GetCase's request and answer live on an arena of the call
  // (arena_messages.h).
  CaseServiceImpl(CommandProcessor* processor, const Authenticator* auth);

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

#define CW_COMMAND_RPC(Method, Request, field)                       \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* ctx, \
                                   const casework::v1::Request* req, \
                                   casework::v1::CaseCommandResponse* resp) override;
  CW_CASE_COMMANDS(CW_COMMAND_RPC)
#undef CW_COMMAND_RPC

 private:
  // Authenticates, resolves the case id and runs the command.
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* ctx, std::string case_id,
                                const casework::v1::Command& command,
                                casework::v1::CaseCommandResponse* resp);

  CommandProcessor* processor_;
  const Authenticator* auth_;
  ArenaMessages<casework::v1::CreateCaseRequest, casework::v1::CaseCommandResponse>
      create_case_messages_;
  ArenaMessages<casework::v1::GetCaseRequest, casework::v1::Case> get_case_messages_;
#define CW_COMMAND_MESSAGES(Method, Request, field) \
  ArenaMessages<casework::v1::Request, casework::v1::CaseCommandResponse> field##_messages_;
  CW_CASE_COMMANDS(CW_COMMAND_MESSAGES)
#undef CW_COMMAND_MESSAGES
};

}  // namespace casework::shell
