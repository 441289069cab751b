// The state table, exhaustively: every command in every stage of a case's life, issued by
// a person who holds the command's role, either accepted (naming the events it emits) or
// refused with the reason of the row. One row per (stage, command).
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "services/workflow/decider.h"
#include "services/workflow/workflow_testing.h"

namespace casework::workflow {
namespace {

namespace v1 = ::casework::v1;
using testing::Scenario;
using testing::Stage;

enum class Cmd {
  kCreate,
  kReview,
  kAmend,
  kAssign,
  kReplace,
  kVisit,
  kMeasure,
  kFunds,
  kInspect,
  kSignOff,
  kSendBack,
  kFollowUp,
  kAdmonish,
  kNotice,
};

const char* CmdName(Cmd cmd) {
  static const char* const kNames[] = {"CreateCase",
                                       "ReviewListing",
                                       "AmendListing",
                                       "AssignAssistance",
                                       "ReplaceAssignment",
                                       "RecordFieldVisit",
                                       "RecordMeasure",
                                       "RecordFunds",
                                       "RecordInspection",
                                       "SignOffClosure",
                                       "SendBack",
                                       "RecordFollowUpReview",
                                       "RecordAdmonishmentTalk",
                                       "IssueRectificationNotice"};
  return kNames[static_cast<int>(cmd)];
}

// The command of the row, valid in its fields, from the person whose role issues it.
struct Issued {
  Principal actor;
  v1::Command command;
};

Issued Issue(const Scenario& s, Cmd cmd) {
  const testing::Cast& c = s.cast();
  const int64_t v = s.version();
  switch (cmd) {
    case Cmd::kCreate:
      return {c.lister, testing::CreateCase(s.now())};
    case Cmd::kReview:
      return {c.reviewer, testing::ReviewListing(v)};
    case Cmd::kAmend:
      return {c.lister, testing::AmendListing(v, s.now())};
    case Cmd::kAssign:
      return {c.lister, testing::AssignAssistance(v)};
    case Cmd::kReplace:
      return {c.lister, testing::ReplaceAssignment(v)};
    case Cmd::kVisit:
      return {c.secretary, testing::RecordFieldVisit(v, s.now())};
    case Cmd::kMeasure:
      return {c.secretary, testing::RecordMeasure(v)};
    case Cmd::kFunds:
      return {c.secretary, testing::RecordFunds(v)};
    case Cmd::kInspect:
      return {c.inspector, testing::RecordInspection(v, "insp-new", true)};
    case Cmd::kSignOff:
      return {c.county_approver,
              testing::SignOffClosure(v, "insp-1", testing::KeyIdOf(c.county_approver))};
    case Cmd::kSendBack:
      return {c.county_approver, testing::SendBack(v)};
    case Cmd::kFollowUp:
      return {c.inspector, testing::RecordFollowUpReview(v, false, s.now())};
    case Cmd::kAdmonish:
      return {c.auditor, testing::RecordAdmonishmentTalk(v)};
    case Cmd::kNotice:
      return {c.admin, testing::IssueRectificationNotice(v)};
  }
  return {};
}

struct Row {
  Stage stage;
  Cmd cmd;
  // Accepted: the body of each event emitted, in order. Refused: empty.
  std::vector<v1::Event::BodyCase> events;
  std::optional<Reason> refusal;
};

Row Ok(Stage stage, Cmd cmd, std::vector<v1::Event::BodyCase> events) {
  return {stage, cmd, std::move(events), std::nullopt};
}
Row No(Stage stage, Cmd cmd, Reason reason) { return {stage, cmd, {}, reason}; }

using E = v1::Event;
using R = Reason;
using S = Stage;
using C = Cmd;
constexpr R kState = R::kCommandNotAllowedInState;

const std::vector<Row>& Table() {
  static const auto* const kTable = new std::vector<Row>{
      // No case yet: only CreateCase.
      Ok(S::kNone, C::kCreate, {E::kOrganisationListed}),
      No(S::kNone, C::kReview, R::kCaseNotFound),
      No(S::kNone, C::kAmend, R::kCaseNotFound),
      No(S::kNone, C::kAssign, R::kCaseNotFound),
      No(S::kNone, C::kReplace, R::kCaseNotFound),
      No(S::kNone, C::kVisit, R::kCaseNotFound),
      No(S::kNone, C::kMeasure, R::kCaseNotFound),
      No(S::kNone, C::kFunds, R::kCaseNotFound),
      No(S::kNone, C::kInspect, R::kCaseNotFound),
      No(S::kNone, C::kSignOff, R::kCaseNotFound),
      No(S::kNone, C::kSendBack, R::kCaseNotFound),
      No(S::kNone, C::kFollowUp, R::kCaseNotFound),
      No(S::kNone, C::kAdmonish, R::kCaseNotFound),
      No(S::kNone, C::kNotice, R::kCaseNotFound),
      // LISTED, awaiting review.
      No(S::kListed, C::kCreate, R::kCaseAlreadyExists),
      Ok(S::kListed, C::kReview, {E::kListingReviewed}),
      Ok(S::kListed, C::kAmend, {E::kListingAmended}),
      No(S::kListed, C::kAssign, R::kListingNotConfirmed),
      No(S::kListed, C::kReplace, kState),
      No(S::kListed, C::kVisit, kState),
      No(S::kListed, C::kMeasure, kState),
      No(S::kListed, C::kFunds, kState),
      No(S::kListed, C::kInspect, kState),
      No(S::kListed, C::kSignOff, kState),
      No(S::kListed, C::kSendBack, kState),
      No(S::kListed, C::kFollowUp, kState),
      Ok(S::kListed, C::kAdmonish, {E::kAdmonishmentTalkRecorded}),
      Ok(S::kListed, C::kNotice, {E::kRectificationNoticeIssued}),
      // LISTED, returned for correction.
      No(S::kListedReturned, C::kCreate, R::kCaseAlreadyExists),
      No(S::kListedReturned, C::kReview, R::kListingAwaitsAmendment),
      Ok(S::kListedReturned, C::kAmend, {E::kListingAmended}),
      No(S::kListedReturned, C::kAssign, R::kListingNotConfirmed),
      No(S::kListedReturned, C::kReplace, kState),
      No(S::kListedReturned, C::kVisit, kState),
      No(S::kListedReturned, C::kMeasure, kState),
      No(S::kListedReturned, C::kFunds, kState),
      No(S::kListedReturned, C::kInspect, kState),
      No(S::kListedReturned, C::kSignOff, kState),
      No(S::kListedReturned, C::kSendBack, kState),
      No(S::kListedReturned, C::kFollowUp, kState),
      Ok(S::kListedReturned, C::kAdmonish, {E::kAdmonishmentTalkRecorded}),
      Ok(S::kListedReturned, C::kNotice, {E::kRectificationNoticeIssued}),
      // LISTED, confirmed.
      No(S::kListedConfirmed, C::kCreate, R::kCaseAlreadyExists),
      No(S::kListedConfirmed, C::kReview, R::kListingAlreadyConfirmed),
      No(S::kListedConfirmed, C::kAmend, R::kListingAlreadyConfirmed),
      Ok(S::kListedConfirmed, C::kAssign, {E::kAssistanceAssigned}),
      No(S::kListedConfirmed, C::kReplace, kState),
      No(S::kListedConfirmed, C::kVisit, kState),
      No(S::kListedConfirmed, C::kMeasure, kState),
      No(S::kListedConfirmed, C::kFunds, kState),
      No(S::kListedConfirmed, C::kInspect, kState),
      No(S::kListedConfirmed, C::kSignOff, kState),
      No(S::kListedConfirmed, C::kSendBack, kState),
      No(S::kListedConfirmed, C::kFollowUp, kState),
      Ok(S::kListedConfirmed, C::kAdmonish, {E::kAdmonishmentTalkRecorded}),
      Ok(S::kListedConfirmed, C::kNotice, {E::kRectificationNoticeIssued}),
      // ASSISTED.
      No(S::kAssisted, C::kCreate, R::kCaseAlreadyExists),
      No(S::kAssisted, C::kReview, kState),
      No(S::kAssisted, C::kAmend, kState),
      No(S::kAssisted, C::kAssign, kState),
      Ok(S::kAssisted, C::kReplace, {E::kAssignmentReplaced}),
      Ok(S::kAssisted, C::kVisit, {E::kFieldVisitRecorded}),
      Ok(S::kAssisted, C::kMeasure, {E::kMeasureCompleted}),
      Ok(S::kAssisted, C::kFunds, {E::kFundsProvided}),
      Ok(S::kAssisted, C::kInspect, {E::kInspectionPassed}),
      No(S::kAssisted, C::kSignOff, kState),
      No(S::kAssisted, C::kSendBack, kState),
      No(S::kAssisted, C::kFollowUp, kState),
      Ok(S::kAssisted, C::kAdmonish, {E::kAdmonishmentTalkRecorded}),
      Ok(S::kAssisted, C::kNotice, {E::kRectificationNoticeIssued}),
      // VERIFIED.
      No(S::kVerified, C::kCreate, R::kCaseAlreadyExists),
      No(S::kVerified, C::kReview, kState),
      No(S::kVerified, C::kAmend, kState),
      No(S::kVerified, C::kAssign, kState),
      No(S::kVerified, C::kReplace, kState),
      No(S::kVerified, C::kVisit, kState),
      No(S::kVerified, C::kMeasure, kState),
      No(S::kVerified, C::kFunds, kState),
      No(S::kVerified, C::kInspect, kState),
      Ok(S::kVerified, C::kSignOff, {E::kClosureSignedOff}),
      Ok(S::kVerified, C::kSendBack, {E::kCaseSentBack}),
      No(S::kVerified, C::kFollowUp, kState),
      Ok(S::kVerified, C::kAdmonish, {E::kAdmonishmentTalkRecorded}),
      Ok(S::kVerified, C::kNotice, {E::kRectificationNoticeIssued}),
      // CLOSED.
      No(S::kClosed, C::kCreate, R::kCaseAlreadyExists),
      No(S::kClosed, C::kReview, kState),
      No(S::kClosed, C::kAmend, kState),
      No(S::kClosed, C::kAssign, kState),
      No(S::kClosed, C::kReplace, kState),
      No(S::kClosed, C::kVisit, kState),
      No(S::kClosed, C::kMeasure, kState),
      No(S::kClosed, C::kFunds, kState),
      No(S::kClosed, C::kInspect, kState),
      No(S::kClosed, C::kSignOff, kState),
      No(S::kClosed, C::kSendBack, kState),
      Ok(S::kClosed, C::kFollowUp, {E::kFollowUpReviewHeld}),
      Ok(S::kClosed, C::kAdmonish, {E::kAdmonishmentTalkRecorded}),
      Ok(S::kClosed, C::kNotice, {E::kRectificationNoticeIssued}),
      // REOPENED.
      No(S::kReopened, C::kCreate, R::kCaseAlreadyExists),
      No(S::kReopened, C::kReview, kState),
      No(S::kReopened, C::kAmend, kState),
      Ok(S::kReopened, C::kAssign, {E::kAssistanceAssigned}),
      No(S::kReopened, C::kReplace, kState),
      No(S::kReopened, C::kVisit, kState),
      No(S::kReopened, C::kMeasure, kState),
      No(S::kReopened, C::kFunds, kState),
      No(S::kReopened, C::kInspect, kState),
      No(S::kReopened, C::kSignOff, kState),
      No(S::kReopened, C::kSendBack, kState),
      No(S::kReopened, C::kFollowUp, kState),
      Ok(S::kReopened, C::kAdmonish, {E::kAdmonishmentTalkRecorded}),
      Ok(S::kReopened, C::kNotice, {E::kRectificationNoticeIssued}),
  };
  return *kTable;
}

TEST(StateTable, CoversEveryStageAndCommandOnce) {
  constexpr int kStages = 8;
  constexpr int kCommands = 14;
  bool seen[kStages][kCommands] = {};
  for (const Row& row : Table()) {
    bool& cell = seen[static_cast<int>(row.stage)][static_cast<int>(row.cmd)];
    EXPECT_FALSE(cell) << testing::StageName(row.stage) << " " << CmdName(row.cmd);
    cell = true;
  }
  EXPECT_EQ(Table().size(), size_t{kStages * kCommands});
}

TEST(StateTable, EveryRow) {
  for (const Row& row : Table()) {
    SCOPED_TRACE(std::string(testing::StageName(row.stage)) + " x " + CmdName(row.cmd));
    Scenario s(row.stage);
    const Issued issued = Issue(s, row.cmd);
    const v1::Case before = s.state();
    const Decision decision = s.Try(issued.actor, issued.command);
    if (row.refusal.has_value()) {
      const Refusal* refusal = std::get_if<Refusal>(&decision);
      ASSERT_NE(refusal, nullptr) << "accepted, expected " << ReasonCode(*row.refusal);
      EXPECT_EQ(ReasonCode(refusal->reason), ReasonCode(*row.refusal)) << refusal->message_en;
      EXPECT_EQ(refusal->category, CategoryOf(*row.refusal));
      EXPECT_FALSE(refusal->message_en.empty());
      EXPECT_FALSE(refusal->message_zh.empty());
      continue;
    }
    const Events* events = std::get_if<Events>(&decision);
    ASSERT_NE(events, nullptr) << "refused " << ReasonCode(std::get<Refusal>(decision).reason)
                               << ": " << std::get<Refusal>(decision).message_en;
    ASSERT_EQ(events->size(), row.events.size());
    v1::Case after = before;
    for (size_t i = 0; i < events->size(); ++i) {
      const v1::Event& event = (*events)[i];
      EXPECT_EQ(event.body_case(), row.events[i]);
      EXPECT_EQ(event.version(), before.version() + 1 + static_cast<int64_t>(i));
      EXPECT_EQ(event.stream(), testing::kCaseName);
      EXPECT_EQ(event.actor(), issued.actor.id);
      EXPECT_EQ(event.rules_version(), kRulesVersion);
      EXPECT_FALSE(event.request_id().empty());
      EXPECT_EQ(event.time().seconds() * 1'000'000 + event.time().nanos() / 1000, s.now());
      Evolve(after, event);
    }
    EXPECT_EQ(after.version(), before.version() + static_cast<int64_t>(row.events.size()));
  }
}

}  // namespace
}  // namespace casework::workflow
