//! The storage ports' contract suite (`guildhall_domain::testing::contract`) against the
//! in-memory store: one test per check, each on a fresh store, so they run in parallel.

use std::sync::Arc;

use guildhall_domain::testing::MemoryStore;
use guildhall_domain::testing::contract::{self, ContractFailure};

fn fresh() -> MemoryStore {
    MemoryStore::new()
}

/// Turns a check's result into a test result that names what differed.
fn passes(result: Result<(), ContractFailure>) {
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

macro_rules! contract_tests {
    ($($test:ident => $check:ident;)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                passes(contract::$check(&fresh()).await);
            }
        )*

        #[test]
        fn every_check_of_the_suite_has_a_test_here() {
            let tested = [$(stringify!($check)),*];
            let missing: Vec<&str> = contract::CHECKS.iter().copied().filter(|c| !tested.contains(c)).collect();
            assert!(missing.is_empty(), "checks without a test: {missing:?}");
        }
    };
}

contract_tests! {
    every_row_reads_back_exactly_as_written => rows_read_back_as_written;
    a_commit_that_fails_writes_no_state_audit_entry_or_email => commit_is_atomic;
    org_version_is_checked_and_incremented_once_per_commit => org_version_is_checked_and_incremented_once;
    org_unchanged_is_checked_but_never_increments_the_version => org_unchanged_is_checked_without_incrementing;
    user_version_is_checked_and_incremented => user_version_is_checked_and_incremented;
    user_unchanged_is_checked_but_never_increments_the_version => user_unchanged_is_checked_without_incrementing;
    invitation_pending_requires_the_org_the_pending_state_and_the_token_hash => invitation_pending_checks_org_state_and_token_hash;
    no_pending_invitation_counts_only_unexpired_pending_invitations_of_the_address => no_pending_invitation_checks_org_address_state_and_expiry;
    join_request_pending_requires_the_org_and_the_pending_state => join_request_pending_checks_org_and_state;
    token_unused_requires_an_existing_unused_token => token_unused_checks_the_token_exists_and_is_unused;
    role_unheld_fails_while_any_member_of_the_org_holds_the_role => role_unheld_counts_only_the_organisations_members;
    two_accounts_cannot_share_an_address_in_any_letter_case => email_uniqueness_ignores_case;
    two_organisations_cannot_share_a_slug => slugs_are_unique;
    a_user_has_at_most_one_membership_per_organisation => memberships_are_unique_per_org_and_user;
    a_user_has_at_most_one_pending_join_request_per_organisation => one_pending_join_request_per_org_and_user;
    facility_names_are_unique_per_organisation_ignoring_case => facility_names_are_unique_per_org_ignoring_case;
    a_custom_role_cannot_take_a_built_in_key => role_keys_cannot_shadow_built_ins;
    caller_bugs_fail_as_store_errors_and_write_nothing => caller_bugs_are_store_errors;
    reassigning_a_role_moves_only_that_organisations_holders => reassign_role_moves_only_that_roles_holders;
    deleting_a_facility_removes_it_from_every_membership => delete_facility_removes_it_from_memberships;
    deleting_a_role_removes_only_that_organisations_role => delete_role_removes_only_that_role;
    revoking_a_users_sessions_keeps_the_excepted_one => revoke_sessions_of_keeps_the_exception;
    expiring_tokens_marks_only_unused_tokens_of_that_purpose => expire_tokens_marks_only_that_purpose;
    consuming_a_token_marks_it_used => consume_token_marks_it_used;
    touching_and_unrestricting_a_session_change_only_their_field => touch_and_unrestrict_change_only_their_field;
    users_are_found_by_email_ignoring_case_and_by_ids => users_are_found_by_email_ignoring_case_and_by_ids;
    organisations_are_found_by_their_current_slug => organisations_are_found_by_current_slug;
    custom_roles_are_listed_by_key_and_facilities_by_name => roles_and_facilities_are_listed_in_order;
    membership_lists_select_by_role_alert_and_user => membership_lists_select_and_order;
    open_invitations_are_pending_ones_newest_first_and_tokens_find_current_invitations => invitation_lists_and_lookups;
    pending_join_requests_are_oldest_first_and_a_users_newest_first => join_request_lists_are_ordered_by_time;
    a_users_sessions_are_unrevoked_ones_newest_first => sessions_and_tokens_are_found_by_hash;
    member_search_filters_by_text_role_facility_and_state => member_search_filters;
    member_search_pages_every_member_exactly_once_in_sort_order => member_search_pages_every_member_once_in_order;
    member_search_clamps_the_page_size => member_search_clamps_the_limit;
    audit_entries_are_paged_newest_first => audit_entries_are_paged_newest_first;
    runs_are_paged_newest_first => runs_are_paged_newest_first;
    a_page_cursor_the_store_never_issued_is_a_store_error => unknown_page_cursors_are_store_errors;
    the_outbox_hands_out_due_messages_oldest_first_under_a_lease => outbox_claims_oldest_first_under_a_lease;
    a_retried_message_is_due_again_at_its_time_with_one_more_attempt => outbox_retry_is_due_at_its_time_with_one_more_attempt;
    released_messages_can_be_claimed_again_at_once => outbox_release_frees_claimed_messages;
    giving_up_a_message_queues_its_failure_reports_in_the_same_write => outbox_giving_up_queues_its_reports_with_it;
    a_sent_or_given_up_message_keeps_its_first_outcome => outbox_the_first_outcome_stands;
    an_organisations_dead_letters_are_listed_newest_first_and_only_its_own => undelivered_lists_an_organisations_dead_letters_newest_first;
    a_sent_message_is_never_claimed_again_and_loses_its_secret => outbox_mark_sent_stops_delivery_and_erases_secrets;
    a_dead_letter_is_never_claimed_again_and_loses_its_secret => outbox_dead_letters_are_never_claimed_and_lose_their_secret;
}

#[tokio::test]
async fn run_all_passes_with_a_fresh_store_per_check() {
    passes(contract::run_all(|| async { Arc::new(fresh()) }).await);
}
