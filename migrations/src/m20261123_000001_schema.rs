//! The initial schema: every table the storage ports need.
//!
//! `ON DELETE` choices, deliberately:
//!
//! * Rows an organisation owns (roles, facilities, memberships, invitations, join
//!   requests, runs, audit entries) `CASCADE` when the organisation is deleted: purging an
//!   organisation is an operator's act that takes everything of it.
//! * Rows an account owns outright (memberships, join requests, one-time tokens,
//!   sessions) `CASCADE` when the account is deleted (erasure on request).
//! * References that record *who did something* (an organisation's creator, an
//!   invitation's sender) `RESTRICT`: history must not silently lose its actor; such an
//!   account is disabled, not deleted. Actor columns of state and history
//!   (`suspended_by`, `added_by`, `decided_by`, a run's `recorded_by`, audit `actor`)
//!   carry no foreign key, as in the reference `MemoryStore`, so that an erased account
//!   leaves the history readable.
//! * The outbox and account-level audit entries reference nothing: they outlive what
//!   they describe.
//! * Member search lists an organisation's members by `(sort_key, user_id)` with keyset
//!   pagination. The account's `PersonName::sort_key` is stored on `users` and copied to
//!   each of its memberships (kept in step by the store when the name changes), so that
//!   `memberships_sort (org_id, sort_key, user_id)` serves every page of one organisation
//!   with one index seek: page 2,000 costs what page 1 does, and `org_id` leads the index.
//!   Keys compare byte-wise (`COLLATE "C"`; SQLite's default `BINARY`), as the domain's.
//! * A membership's facilities are a child table whose rows `CASCADE` from both the
//!   membership and the facility: deleting a facility removes it from every member.
//!   Its alert opt-ins are a child table too (they are filtered on); its access scopes
//!   are JSON (never filtered on).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// Creates (up) or drops (down) every table.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

/// Tables in creation order; `down` drops them in reverse.
pub const TABLES: &[&str] = &[
    "users",
    "organisations",
    "roles",
    "facilities",
    "memberships",
    "membership_facilities",
    "membership_alerts",
    "invitations",
    "join_requests",
    "one_time_tokens",
    "sessions",
    "audit",
    "account_audit",
    "runs",
    "outbox",
];

const SCHEMA: &str = r#"
CREATE TABLE users (
    id BYTES PRIMARY KEY,
    email TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    sort_key CTEXT NOT NULL,
    search_text TEXT NOT NULL,
    phone TEXT,
    email_verified_at BIGINT,
    disabled_at BIGINT,
    password_hash TEXT,
    temporary_password_hash TEXT,
    temporary_password_expires_at BIGINT,
    must_change_password BOOLEAN NOT NULL,
    password_changed_at BIGINT,
    created_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email_normalized)
);

CREATE TABLE organisations (
    id BYTES PRIMARY KEY,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_by BYTES NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    created_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    CONSTRAINT organisations_slug_key UNIQUE (slug)
);

CREATE TABLE roles (
    org_id BYTES NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    key CTEXT NOT NULL,
    name TEXT NOT NULL,
    grant_json TEXT NOT NULL,
    built_in BOOLEAN NOT NULL,
    CONSTRAINT roles_pkey PRIMARY KEY (org_id, key)
);

CREATE TABLE facilities (
    org_id BYTES NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    id BYTES NOT NULL,
    name TEXT NOT NULL,
    name_key CTEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT facilities_pkey PRIMARY KEY (org_id, id),
    CONSTRAINT facilities_name_key UNIQUE (org_id, name_key)
);

CREATE TABLE memberships (
    org_id BYTES NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    user_id BYTES NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role CTEXT NOT NULL,
    sort_key CTEXT NOT NULL,
    position TEXT,
    aide BOOLEAN NOT NULL,
    access TEXT NOT NULL,
    suspended_at BIGINT,
    suspended_by BYTES,
    expires_at BIGINT,
    added_by BYTES,
    added_at BIGINT NOT NULL,
    origin TEXT NOT NULL,
    CONSTRAINT memberships_pkey PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_sort ON memberships (org_id, sort_key, user_id);
CREATE INDEX memberships_role ON memberships (org_id, role, user_id);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE membership_facilities (
    org_id BYTES NOT NULL,
    user_id BYTES NOT NULL,
    facility_id BYTES NOT NULL,
    CONSTRAINT membership_facilities_pkey PRIMARY KEY (org_id, user_id, facility_id),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, facility_id) REFERENCES facilities (org_id, id) ON DELETE CASCADE
);
CREATE INDEX membership_facilities_facility ON membership_facilities (org_id, facility_id, user_id);

CREATE TABLE membership_alerts (
    org_id BYTES NOT NULL,
    user_id BYTES NOT NULL,
    alert CTEXT NOT NULL,
    CONSTRAINT membership_alerts_pkey PRIMARY KEY (org_id, user_id, alert),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX membership_alerts_alert ON membership_alerts (org_id, alert, user_id);

CREATE TABLE invitations (
    org_id BYTES NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    id BYTES NOT NULL,
    email TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    role CTEXT NOT NULL,
    token_hash BYTES NOT NULL,
    invited_by BYTES NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    resent BIGINT NOT NULL,
    state TEXT NOT NULL,
    state_by BYTES,
    state_at BIGINT,
    CONSTRAINT invitations_pkey PRIMARY KEY (org_id, id),
    CONSTRAINT invitations_token_key UNIQUE (org_id, token_hash)
);
CREATE INDEX invitations_token_hash ON invitations (token_hash);
CREATE INDEX invitations_open ON invitations (org_id, created_at) WHERE state = 'pending';
CREATE INDEX invitations_open_for ON invitations (email_normalized) WHERE state = 'pending';

CREATE TABLE join_requests (
    org_id BYTES NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    id BYTES NOT NULL,
    user_id BYTES NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message TEXT,
    created_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    decided_by BYTES,
    decided_at BIGINT,
    approved_role TEXT,
    reason TEXT,
    CONSTRAINT join_requests_pkey PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX join_requests_one_pending ON join_requests (org_id, user_id) WHERE state = 'pending';
CREATE INDEX join_requests_user ON join_requests (user_id);

CREATE TABLE one_time_tokens (
    hash BYTES PRIMARY KEY,
    user_id BYTES NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    email TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX one_time_tokens_user ON one_time_tokens (user_id);

CREATE TABLE sessions (
    token_hash BYTES PRIMARY KEY,
    id BYTES NOT NULL,
    user_id BYTES NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    password_change_required BOOLEAN NOT NULL,
    revoked_at BIGINT,
    CONSTRAINT sessions_id_key UNIQUE (id)
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE audit (
    org_id BYTES NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    id BYTES NOT NULL,
    actor BYTES,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    at BIGINT NOT NULL,
    changes TEXT NOT NULL,
    CONSTRAINT audit_pkey PRIMARY KEY (org_id, id)
);

CREATE TABLE account_audit (
    id BYTES PRIMARY KEY,
    actor BYTES,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    at BIGINT NOT NULL,
    changes TEXT NOT NULL
);

CREATE TABLE runs (
    org_id BYTES NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    id BYTES NOT NULL,
    capability TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    counts TEXT NOT NULL,
    recorded_by BYTES NOT NULL,
    CONSTRAINT runs_pkey PRIMARY KEY (org_id, id)
);

CREATE TABLE outbox (
    id BYTES PRIMARY KEY,
    org_id BYTES,
    topic TEXT,
    to_email TEXT NOT NULL,
    template TEXT NOT NULL,
    queued_at BIGINT NOT NULL,
    payload TEXT,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT,
    leased_until BIGINT,
    last_error TEXT,
    sent_at BIGINT,
    dead BOOLEAN NOT NULL,
    secret BOOLEAN NOT NULL
);
CREATE INDEX outbox_due ON outbox (queued_at, id) WHERE sent_at IS NULL AND NOT dead;
"#;

/// The schema's statements for `backend`: `BYTES` becomes `BLOB`/`BYTEA`, and `CTEXT`
/// (text compared byte-wise, as the domain orders keys) becomes `TEXT` (SQLite's default
/// collation is already `BINARY`) or `TEXT COLLATE "C"`.
#[must_use]
pub fn statements(backend: DatabaseBackend) -> Vec<String> {
    let (bytes, ctext) = match backend {
        DatabaseBackend::Postgres => ("BYTEA", "TEXT COLLATE \"C\""),
        _ => ("BLOB", "TEXT"),
    };
    SCHEMA
        .split(';')
        .map(str::trim)
        .filter(|statement| !statement.is_empty())
        .map(|statement| statement.replace("CTEXT", ctext).replace("BYTES", bytes))
        .collect()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        for statement in statements(manager.get_database_backend()) {
            connection.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        for table in TABLES.iter().rev() {
            connection.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}")).await?;
        }
        Ok(())
    }
}
