//! The domain's contract suite for the storage ports (`guildhall_domain::testing::contract`)
//! on each backend: one test per check and backend, each on a fresh database.

use guildhall_domain::testing::contract::{self, ContractFailure};

use crate::support::{on_postgres, on_sqlite};

/// Turns a check's result into a test result that names what differed.
fn passes(result: Result<(), ContractFailure>) {
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

macro_rules! contract_tests {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    on_sqlite(|fresh| async move { passes(contract::$check(&*fresh().await).await) }).await;
                }
            )*
        }

        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    on_postgres(|fresh| async move { passes(contract::$check(&*fresh().await).await) }).await;
                }
            )*
        }

        #[test]
        fn every_check_of_the_suite_runs_here() {
            let tested = [$(stringify!($check)),*];
            let missing: Vec<&str> = contract::CHECKS.iter().copied().filter(|c| !tested.contains(c)).collect();
            assert!(missing.is_empty(), "checks without a test: {missing:?}");
        }
    };
}

contract_tests!(
    rows_read_back_as_written,
    commit_is_atomic,
    org_version_is_checked_and_incremented_once,
    org_unchanged_is_checked_without_incrementing,
    user_version_is_checked_and_incremented,
    user_unchanged_is_checked_without_incrementing,
    invitation_pending_checks_org_state_and_token_hash,
    no_pending_invitation_checks_org_address_state_and_expiry,
    join_request_pending_checks_org_and_state,
    token_unused_checks_the_token_exists_and_is_unused,
    role_unheld_counts_only_the_organisations_members,
    email_uniqueness_ignores_case,
    slugs_are_unique,
    memberships_are_unique_per_org_and_user,
    one_pending_join_request_per_org_and_user,
    facility_names_are_unique_per_org_ignoring_case,
    role_keys_cannot_shadow_built_ins,
    caller_bugs_are_store_errors,
    reassign_role_moves_only_that_roles_holders,
    delete_facility_removes_it_from_memberships,
    delete_role_removes_only_that_role,
    revoke_sessions_of_keeps_the_exception,
    expire_tokens_marks_only_that_purpose,
    consume_token_marks_it_used,
    touch_and_unrestrict_change_only_their_field,
    users_are_found_by_email_ignoring_case_and_by_ids,
    organisations_are_found_by_current_slug,
    roles_and_facilities_are_listed_in_order,
    membership_lists_select_and_order,
    invitation_lists_and_lookups,
    join_request_lists_are_ordered_by_time,
    sessions_and_tokens_are_found_by_hash,
    member_search_filters,
    member_search_pages_every_member_once_in_order,
    member_search_clamps_the_limit,
    audit_entries_are_paged_newest_first,
    runs_are_paged_newest_first,
    unknown_page_cursors_are_store_errors,
    outbox_claims_oldest_first_under_a_lease,
    outbox_retry_is_due_at_its_time_with_one_more_attempt,
    outbox_release_frees_claimed_messages,
    outbox_giving_up_queues_its_reports_with_it,
    outbox_the_first_outcome_stands,
    undelivered_lists_an_organisations_dead_letters_newest_first,
    outbox_mark_sent_stops_delivery_and_erases_secrets,
    outbox_dead_letters_are_never_claimed_and_lose_their_secret,
);
