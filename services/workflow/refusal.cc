#include "services/workflow/refusal.h"

#include <array>

#include "services/workflow/check.h"

namespace casework::workflow {
namespace {

struct ReasonInfo {
  Reason reason;
  std::string_view code;
  Category category;
};

// One row per reason, in the enum's order (checked at start-up of every test binary and
// by ReasonCode itself). The codes are part of the API: DO NOT CHANGE them.
constexpr std::array<ReasonInfo, kReasonCount> kReasons = {{
    {Reason::kCommandEmpty, "COMMAND_EMPTY", Category::kInvalidArgument},
    {Reason::kActorUnidentified, "ACTOR_UNIDENTIFIED", Category::kUnauthenticated},
    {Reason::kRequestIdInvalid, "REQUEST_ID_INVALID", Category::kInvalidArgument},
    {Reason::kCaseIdInvalid, "CASE_ID_INVALID", Category::kInvalidArgument},
    {Reason::kCaseNameInvalid, "CASE_NAME_INVALID", Category::kInvalidArgument},
    {Reason::kCaseAlreadyExists, "CASE_ALREADY_EXISTS", Category::kAlreadyExists},
    {Reason::kCaseNotFound, "CASE_NOT_FOUND", Category::kNotFound},
    {Reason::kStaleExpectedVersion, "STALE_EXPECTED_VERSION", Category::kAborted},
    {Reason::kActorLacksRole, "ACTOR_LACKS_ROLE", Category::kPermissionDenied},
    {Reason::kOrganisationJurisdictionInvalid, "ORGANISATION_JURISDICTION_INVALID",
     Category::kInvalidArgument},
    {Reason::kJurisdictionNotCovered, "JURISDICTION_NOT_COVERED", Category::kPermissionDenied},
    {Reason::kReviewerMustBeCityOrCountyDepartment, "REVIEWER_MUST_BE_CITY_OR_COUNTY_DEPARTMENT",
     Category::kPermissionDenied},
    {Reason::kListerMustNotReviewOwnListing, "LISTER_MUST_NOT_REVIEW_OWN_LISTING",
     Category::kPermissionDenied},
    {Reason::kOnlyListerMayAmendListing, "ONLY_LISTER_MAY_AMEND_LISTING",
     Category::kPermissionDenied},
    {Reason::kInspectorMustNotHaveAssisted, "INSPECTOR_MUST_NOT_HAVE_ASSISTED",
     Category::kPermissionDenied},
    {Reason::kCommandNotAllowedInState, "COMMAND_NOT_ALLOWED_IN_STATE",
     Category::kFailedPrecondition},
    {Reason::kListingAlreadyConfirmed, "LISTING_ALREADY_CONFIRMED", Category::kFailedPrecondition},
    {Reason::kListingAwaitsAmendment, "LISTING_AWAITS_AMENDMENT", Category::kFailedPrecondition},
    {Reason::kListingNotConfirmed, "LISTING_NOT_CONFIRMED", Category::kFailedPrecondition},
    {Reason::kSignOffSignatureNotVerified, "SIGN_OFF_SIGNATURE_NOT_VERIFIED",
     Category::kPermissionDenied},
    {Reason::kApproverLevelUnknown, "APPROVER_LEVEL_UNKNOWN", Category::kPermissionDenied},
    {Reason::kSignOffInspectionNotLatestPassed, "SIGN_OFF_INSPECTION_NOT_LATEST_PASSED",
     Category::kFailedPrecondition},
    {Reason::kApproverAlreadySignedOff, "APPROVER_ALREADY_SIGNED_OFF",
     Category::kFailedPrecondition},
    {Reason::kTextTooLong, "TEXT_TOO_LONG", Category::kInvalidArgument},
    {Reason::kTooManyItems, "TOO_MANY_ITEMS", Category::kInvalidArgument},
    {Reason::kOrganisationIdInvalid, "ORGANISATION_ID_INVALID", Category::kInvalidArgument},
    {Reason::kOrganisationNameRequired, "ORGANISATION_NAME_REQUIRED", Category::kInvalidArgument},
    {Reason::kOrganisationKindRequired, "ORGANISATION_KIND_REQUIRED", Category::kInvalidArgument},
    {Reason::kInspectionIdInvalid, "INSPECTION_ID_INVALID", Category::kInvalidArgument},
    {Reason::kCaseTypeRequired, "CASE_TYPE_REQUIRED", Category::kInvalidArgument},
    {Reason::kProblemCategoriesRequired, "PROBLEM_CATEGORIES_REQUIRED", Category::kInvalidArgument},
    {Reason::kProblemCategoryInvalid, "PROBLEM_CATEGORY_INVALID", Category::kInvalidArgument},
    {Reason::kProblemCategoryRepeated, "PROBLEM_CATEGORY_REPEATED", Category::kInvalidArgument},
    {Reason::kFindingsRequired, "FINDINGS_REQUIRED", Category::kInvalidArgument},
    {Reason::kNoticeIdRequired, "NOTICE_ID_REQUIRED", Category::kInvalidArgument},
    {Reason::kNoticeContentRequired, "NOTICE_CONTENT_REQUIRED", Category::kInvalidArgument},
    {Reason::kDeadlineNotAfterNow, "DEADLINE_NOT_AFTER_NOW", Category::kInvalidArgument},
    {Reason::kReviewCommentRequired, "REVIEW_COMMENT_REQUIRED", Category::kInvalidArgument},
    {Reason::kReplacementReasonRequired, "REPLACEMENT_REASON_REQUIRED", Category::kInvalidArgument},
    {Reason::kPairedDepartmentRequired, "PAIRED_DEPARTMENT_REQUIRED", Category::kInvalidArgument},
    {Reason::kPairedDepartmentKindMismatch, "PAIRED_DEPARTMENT_KIND_MISMATCH",
     Category::kInvalidArgument},
    {Reason::kFirstSecretaryRequired, "FIRST_SECRETARY_REQUIRED", Category::kInvalidArgument},
    {Reason::kStationedCadresRequired, "STATIONED_CADRES_REQUIRED", Category::kInvalidArgument},
    {Reason::kTalkedWithRequired, "TALKED_WITH_REQUIRED", Category::kInvalidArgument},
    {Reason::kPersonIdInvalid, "PERSON_ID_INVALID", Category::kInvalidArgument},
    {Reason::kAssignedPersonRepeated, "ASSIGNED_PERSON_REPEATED", Category::kInvalidArgument},
    {Reason::kPlanRequired, "PLAN_REQUIRED", Category::kInvalidArgument},
    {Reason::kTalkSubjectRequired, "TALK_SUBJECT_REQUIRED", Category::kInvalidArgument},
    {Reason::kVisitorsRequired, "VISITORS_REQUIRED", Category::kInvalidArgument},
    {Reason::kVisitorRepeated, "VISITOR_REPEATED", Category::kInvalidArgument},
    {Reason::kVisitorNotAssigned, "VISITOR_NOT_ASSIGNED", Category::kInvalidArgument},
    {Reason::kVisitTimeInvalid, "VISIT_TIME_INVALID", Category::kInvalidArgument},
    {Reason::kMeasureDescriptionRequired, "MEASURE_DESCRIPTION_REQUIRED",
     Category::kInvalidArgument},
    {Reason::kMeasureCategoryNotListed, "MEASURE_CATEGORY_NOT_LISTED", Category::kInvalidArgument},
    {Reason::kFundsAmountOutOfRange, "FUNDS_AMOUNT_OUT_OF_RANGE", Category::kInvalidArgument},
    {Reason::kFurtherMeasuresRequired, "FURTHER_MEASURES_REQUIRED", Category::kInvalidArgument},
    {Reason::kFurtherMeasuresOnlyWhenFailed, "FURTHER_MEASURES_ONLY_WHEN_FAILED",
     Category::kInvalidArgument},
    {Reason::kSendBackReasonRequired, "SEND_BACK_REASON_REQUIRED", Category::kInvalidArgument},
    {Reason::kRelapseFieldsOnlyWhenRelapsed, "RELAPSE_FIELDS_ONLY_WHEN_RELAPSED",
     Category::kInvalidArgument},
    {Reason::kInspectionIdReused, "INSPECTION_ID_REUSED", Category::kAlreadyExists},
}};

constexpr bool RowsInEnumOrder() {
  for (int i = 0; i < kReasonCount; ++i) {
    if (static_cast<int>(kReasons[i].reason) != i) return false;
  }
  return true;
}
static_assert(RowsInEnumOrder(), "kReasons must list every reason in the enum's order");

const ReasonInfo& Info(Reason reason) {
  const int index = static_cast<int>(reason);
  CW_CHECK_MSG(index >= 0 && index < kReasonCount, "reason out of range");
  return kReasons[index];
}

}  // namespace

std::string_view ReasonCode(Reason reason) { return Info(reason).code; }

Category CategoryOf(Reason reason) { return Info(reason).category; }

std::string_view CategoryName(Category category) {
  switch (category) {
    case Category::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case Category::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case Category::kPermissionDenied:
      return "PERMISSION_DENIED";
    case Category::kAborted:
      return "ABORTED";
    case Category::kNotFound:
      return "NOT_FOUND";
    case Category::kAlreadyExists:
      return "ALREADY_EXISTS";
    case Category::kUnauthenticated:
      return "UNAUTHENTICATED";
  }
  CW_CHECK_MSG(false, "category out of range");
}

}  // namespace casework::workflow
