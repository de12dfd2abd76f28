//! Translating sea-orm's errors into the domain's.

use guildhall_domain::error::StoreError;
use guildhall_domain::ports::{CommitError, Duplicate};
use sea_orm::{DbErr, RuntimeErr, SqlErr};

pub(crate) fn store(error: DbErr) -> StoreError {
    StoreError::new(error)
}

/// A change the caller should never have made (a missing row): a bug, not a conflict.
pub(crate) fn bug(message: impl Into<String>) -> CommitError {
    CommitError::Store(StoreError::new(message.into()))
}

/// Each uniqueness rule a user's action can break: the PostgreSQL constraint name, the
/// columns SQLite names in its message, and the domain's [`Duplicate`]. Every other
/// unique violation (a reused id or token hash) is a caller bug.
const DUPLICATES: &[(&str, &str, Duplicate)] = &[
    ("\"users_email_key\"", "users.email_normalized", Duplicate::Email),
    ("\"organisations_slug_key\"", "organisations.slug", Duplicate::Slug),
    ("\"memberships_pkey\"", "memberships.org_id, memberships.user_id", Duplicate::Membership),
    ("\"join_requests_one_pending\"", "join_requests.org_id, join_requests.user_id", Duplicate::PendingJoinRequest),
    ("\"facilities_name_key\"", "facilities.org_id, facilities.name_key", Duplicate::FacilityName),
    ("\"roles_pkey\"", "roles.org_id, roles.key", Duplicate::RoleKey),
];

fn duplicate(message: &str) -> Option<Duplicate> {
    DUPLICATES.iter().find_map(|(constraint, columns, duplicate)| {
        let sqlite = message.ends_with(columns) || message.contains(&format!("{columns} "));
        (message.contains(constraint) || sqlite).then(|| duplicate.clone())
    })
}

/// PostgreSQL's SQLSTATE for a serialisation failure or a detected deadlock: the
/// transaction lost a race and may be retried, which is what `Conflict` tells the caller.
fn lost_race(error: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx))) = error else {
        return false;
    };
    sqlx.as_database_error().and_then(|db| db.code()).is_some_and(|code| code == "40001" || code == "40P01")
}

/// A failed statement of a commit as the domain sees it.
pub(crate) fn commit_error(error: DbErr) -> CommitError {
    if let Some(SqlErr::UniqueConstraintViolation(message)) = error.sql_err() {
        if let Some(duplicate) = duplicate(&message) {
            return CommitError::Duplicate(duplicate);
        }
    }
    if lost_race(&error) {
        return CommitError::Conflict;
    }
    CommitError::Store(store(error))
}

pub(crate) fn from_store(error: StoreError) -> CommitError {
    CommitError::Store(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_are_recognised_on_both_backends() {
        let pg = "duplicate key value violates unique constraint \"memberships_pkey\"";
        assert_eq!(duplicate(pg), Some(Duplicate::Membership));
        let sqlite = "UNIQUE constraint failed: join_requests.org_id, join_requests.user_id";
        assert_eq!(duplicate(sqlite), Some(Duplicate::PendingJoinRequest));
        assert_eq!(
            duplicate(
                "UNIQUE constraint failed: membership_facilities.org_id, membership_facilities.user_id, membership_facilities.facility_id"
            ),
            None
        );
        assert_eq!(duplicate("UNIQUE constraint failed: users.id"), None);
        assert_eq!(duplicate("duplicate key value violates unique constraint \"users_pkey\""), None);
    }
}
