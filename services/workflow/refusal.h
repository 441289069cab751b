// Refusals: a command the rules do not admit, as a value with a stable reason.
#pragma once

#include <string>
#include <string_view>

namespace casework::workflow {

// The category a refusal maps to in the shell (one gRPC status each, docs/rules.md).
enum class Category {
  kInvalidArgument,     // a bad field: INVALID_ARGUMENT
  kFailedPrecondition,  // not in this state: FAILED_PRECONDITION
  kPermissionDenied,    // role, jurisdiction, separation of duties: PERMISSION_DENIED
  kAborted,             // stale expected version: ABORTED
  kNotFound,            // no such case: NOT_FOUND
  kAlreadyExists,       // the case exists: ALREADY_EXISTS
  kUnauthenticated,     // no actor at all: UNAUTHENTICATED
};

// Why a command is refused, in order of precedence (checked first = listed first): who
// may call at all, which case, which version, who may act on it, in which state, then
// the fields of the request, then conflicts with what the case already holds.
// docs/rules.md explains each. DO NOT CHANGE the codes ReasonCode returns: clients match
// on them. New reasons may be inserted anywhere (the enum's values are not persisted).
enum class Reason {
  // Identity and addressing.
  kCommandEmpty,          // COMMAND_EMPTY: no request in the command.
  kActorUnidentified,     // ACTOR_UNIDENTIFIED: the context names no actor.
  kRequestIdInvalid,      // REQUEST_ID_INVALID: 1-128 printable ASCII characters.
  kCaseIdInvalid,         // CASE_ID_INVALID: 1-64 of [a-z0-9-], not starting with '-'.
  kCaseNameInvalid,       // CASE_NAME_INVALID: "cases/{case_id}" naming the loaded case.
  kCaseAlreadyExists,     // CASE_ALREADY_EXISTS: CreateCase on an existing case.
  kCaseNotFound,          // CASE_NOT_FOUND: any other command on a case that does not exist.
  kStaleExpectedVersion,  // STALE_EXPECTED_VERSION: expected_version != the case's version.
  // Who may act.
  kActorLacksRole,                        // ACTOR_LACKS_ROLE
  kOrganisationJurisdictionInvalid,       // ORGANISATION_JURISDICTION_INVALID
  kJurisdictionNotCovered,                // JURISDICTION_NOT_COVERED
  kReviewerMustBeCityOrCountyDepartment,  // REVIEWER_MUST_BE_CITY_OR_COUNTY_DEPARTMENT
  kListerMustNotReviewOwnListing,         // LISTER_MUST_NOT_REVIEW_OWN_LISTING
  kOnlyListerMayAmendListing,             // ONLY_LISTER_MAY_AMEND_LISTING
  kInspectorMustNotHaveAssisted,          // INSPECTOR_MUST_NOT_HAVE_ASSISTED
  // In which state.
  kCommandNotAllowedInState,  // COMMAND_NOT_ALLOWED_IN_STATE: the state table.
  kListingAlreadyConfirmed,   // LISTING_ALREADY_CONFIRMED
  kListingAwaitsAmendment,    // LISTING_AWAITS_AMENDMENT
  kListingNotConfirmed,       // LISTING_NOT_CONFIRMED
  // Sign-off: the signature and the signer.
  kSignOffSignatureNotVerified,       // SIGN_OFF_SIGNATURE_NOT_VERIFIED
  kApproverLevelUnknown,              // APPROVER_LEVEL_UNKNOWN
  kSignOffInspectionNotLatestPassed,  // SIGN_OFF_INSPECTION_NOT_LATEST_PASSED
  kApproverAlreadySignedOff,          // APPROVER_ALREADY_SIGNED_OFF
  // The fields of the request (within one command, checked in this order too).
  kTextTooLong,                    // TEXT_TOO_LONG: a text or id longer than its bound.
  kTooManyItems,                   // TOO_MANY_ITEMS: a list longer than its bound.
  kOrganisationIdInvalid,          // ORGANISATION_ID_INVALID
  kOrganisationNameRequired,       // ORGANISATION_NAME_REQUIRED
  kOrganisationKindRequired,       // ORGANISATION_KIND_REQUIRED
  kInspectionIdInvalid,            // INSPECTION_ID_INVALID
  kCaseTypeRequired,               // CASE_TYPE_REQUIRED
  kProblemCategoriesRequired,      // PROBLEM_CATEGORIES_REQUIRED
  kProblemCategoryInvalid,         // PROBLEM_CATEGORY_INVALID
  kProblemCategoryRepeated,        // PROBLEM_CATEGORY_REPEATED
  kFindingsRequired,               // FINDINGS_REQUIRED
  kNoticeIdRequired,               // NOTICE_ID_REQUIRED
  kNoticeContentRequired,          // NOTICE_CONTENT_REQUIRED
  kDeadlineNotAfterNow,            // DEADLINE_NOT_AFTER_NOW
  kReviewCommentRequired,          // REVIEW_COMMENT_REQUIRED
  kReplacementReasonRequired,      // REPLACEMENT_REASON_REQUIRED
  kPairedDepartmentRequired,       // PAIRED_DEPARTMENT_REQUIRED
  kPairedDepartmentKindMismatch,   // PAIRED_DEPARTMENT_KIND_MISMATCH
  kFirstSecretaryRequired,         // FIRST_SECRETARY_REQUIRED
  kStationedCadresRequired,        // STATIONED_CADRES_REQUIRED
  kTalkedWithRequired,             // TALKED_WITH_REQUIRED
  kPersonIdInvalid,                // PERSON_ID_INVALID
  kAssignedPersonRepeated,         // ASSIGNED_PERSON_REPEATED
  kPlanRequired,                   // PLAN_REQUIRED
  kTalkSubjectRequired,            // TALK_SUBJECT_REQUIRED
  kVisitorsRequired,               // VISITORS_REQUIRED
  kVisitorRepeated,                // VISITOR_REPEATED
  kVisitorNotAssigned,             // VISITOR_NOT_ASSIGNED
  kVisitTimeInvalid,               // VISIT_TIME_INVALID: unset or after now.
  kMeasureDescriptionRequired,     // MEASURE_DESCRIPTION_REQUIRED
  kMeasureCategoryNotListed,       // MEASURE_CATEGORY_NOT_LISTED
  kFundsAmountOutOfRange,          // FUNDS_AMOUNT_OUT_OF_RANGE
  kFurtherMeasuresRequired,        // FURTHER_MEASURES_REQUIRED
  kFurtherMeasuresOnlyWhenFailed,  // FURTHER_MEASURES_ONLY_WHEN_FAILED
  kSendBackReasonRequired,         // SEND_BACK_REASON_REQUIRED
  kRelapseFieldsOnlyWhenRelapsed,  // RELAPSE_FIELDS_ONLY_WHEN_RELAPSED
  // Conflicts with what the case holds.
  kInspectionIdReused,  // INSPECTION_ID_REUSED
};

// The number of reasons (for tables and tests).
inline constexpr int kReasonCount = static_cast<int>(Reason::kInspectionIdReused) + 1;

// The stable code of a reason: google.rpc.ErrorInfo.reason, UPPER_SNAKE_CASE, e.g.
// "INSPECTOR_MUST_NOT_HAVE_ASSISTED".
[[nodiscard]] std::string_view ReasonCode(Reason reason);

// The category every refusal with this reason carries.
[[nodiscard]] Category CategoryOf(Reason reason);

// The name of a category, e.g. "FAILED_PRECONDITION" (the gRPC status it maps to).
[[nodiscard]] std::string_view CategoryName(Category category);

// A refusal. `field` names the offending request field where there is one; the messages
// say what would make the call succeed, in English and Chinese.
struct Refusal {
  Reason reason;
  Category category = Category::kFailedPrecondition;
  std::string field;
  std::string message_en;
  std::string message_zh;
};

}  // namespace casework::workflow
