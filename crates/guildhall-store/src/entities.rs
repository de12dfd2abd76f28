//! sea-orm entities, one module per table. Crate-private: the rest of the crate turns
//! their models into domain types (`TryFrom`, in `convert`) at the border.
//!
//! Columns mirror `migrations`; `Store::check_schema` (and a test) compares the two.

#![allow(missing_docs, missing_debug_implementations)]

use sea_orm::{EntityTrait, Iterable};

macro_rules! entity {
    ($module:ident, $table:literal, { $($(#[$attr:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        pub(crate) mod $module {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                $($(#[$attr])* pub $field: $ty,)*
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

entity!(users, "users", {
    #[sea_orm(primary_key, auto_increment = false)] id: Vec<u8>,
    email: String,
    email_normalized: String,
    first_name: String,
    last_name: String,
    sort_key: String,
    search_text: String,
    phone: Option<String>,
    email_verified_at: Option<i64>,
    disabled_at: Option<i64>,
    password_hash: Option<String>,
    temporary_password_hash: Option<String>,
    temporary_password_expires_at: Option<i64>,
    must_change_password: bool,
    password_changed_at: Option<i64>,
    created_at: i64,
    version: i64,
});

entity!(organisations, "organisations", {
    #[sea_orm(primary_key, auto_increment = false)] id: Vec<u8>,
    slug: String,
    name: String,
    settings: String,
    created_by: Vec<u8>,
    created_at: i64,
    version: i64,
});

entity!(roles, "roles", {
    #[sea_orm(primary_key, auto_increment = false)] org_id: Vec<u8>,
    #[sea_orm(primary_key, auto_increment = false)] key: String,
    name: String,
    grant_json: String,
    built_in: bool,
});

entity!(facilities, "facilities", {
    #[sea_orm(primary_key, auto_increment = false)] org_id: Vec<u8>,
    #[sea_orm(primary_key, auto_increment = false)] id: Vec<u8>,
    name: String,
    name_key: String,
    created_at: i64,
});

entity!(memberships, "memberships", {
    #[sea_orm(primary_key, auto_increment = false)] org_id: Vec<u8>,
    #[sea_orm(primary_key, auto_increment = false)] user_id: Vec<u8>,
    role: String,
    sort_key: String,
    position: Option<String>,
    aide: bool,
    access: String,
    suspended_at: Option<i64>,
    suspended_by: Option<Vec<u8>>,
    expires_at: Option<i64>,
    added_by: Option<Vec<u8>>,
    added_at: i64,
    origin: String,
});

entity!(membership_facilities, "membership_facilities", {
    #[sea_orm(primary_key, auto_increment = false)] org_id: Vec<u8>,
    #[sea_orm(primary_key, auto_increment = false)] user_id: Vec<u8>,
    #[sea_orm(primary_key, auto_increment = false)] facility_id: Vec<u8>,
});

entity!(membership_alerts, "membership_alerts", {
    #[sea_orm(primary_key, auto_increment = false)] org_id: Vec<u8>,
    #[sea_orm(primary_key, auto_increment = false)] user_id: Vec<u8>,
    #[sea_orm(primary_key, auto_increment = false)] alert: String,
});

entity!(invitations, "invitations", {
    #[sea_orm(primary_key, auto_increment = false)] org_id: Vec<u8>,
    #[sea_orm(primary_key, auto_increment = false)] id: Vec<u8>,
    email: String,
    email_normalized: String,
    role: String,
    token_hash: Vec<u8>,
    invited_by: Vec<u8>,
    created_at: i64,
    expires_at: i64,
    resent: i64,
    state: String,
    state_by: Option<Vec<u8>>,
    state_at: Option<i64>,
});

entity!(join_requests, "join_requests", {
    #[sea_orm(primary_key, auto_increment = false)] org_id: Vec<u8>,
    #[sea_orm(primary_key, auto_increment = false)] id: Vec<u8>,
    user_id: Vec<u8>,
    message: Option<String>,
    created_at: i64,
    state: String,
    decided_by: Option<Vec<u8>>,
    decided_at: Option<i64>,
    approved_role: Option<String>,
    reason: Option<String>,
});

entity!(one_time_tokens, "one_time_tokens", {
    #[sea_orm(primary_key, auto_increment = false)] hash: Vec<u8>,
    user_id: Vec<u8>,
    purpose: String,
    email: Option<String>,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
});

entity!(sessions, "sessions", {
    #[sea_orm(primary_key, auto_increment = false)] token_hash: Vec<u8>,
    id: Vec<u8>,
    user_id: Vec<u8>,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    password_change_required: bool,
    revoked_at: Option<i64>,
});

entity!(audit, "audit", {
    #[sea_orm(primary_key, auto_increment = false)] org_id: Vec<u8>,
    #[sea_orm(primary_key, auto_increment = false)] id: Vec<u8>,
    actor: Option<Vec<u8>>,
    action: String,
    target: String,
    at: i64,
    changes: String,
});

entity!(account_audit, "account_audit", {
    #[sea_orm(primary_key, auto_increment = false)] id: Vec<u8>,
    actor: Option<Vec<u8>>,
    action: String,
    target: String,
    at: i64,
    changes: String,
});

entity!(runs, "runs", {
    #[sea_orm(primary_key, auto_increment = false)] org_id: Vec<u8>,
    #[sea_orm(primary_key, auto_increment = false)] id: Vec<u8>,
    capability: String,
    started_at: i64,
    finished_at: i64,
    outcome: String,
    counts: String,
    recorded_by: Vec<u8>,
});

entity!(outbox, "outbox", {
    #[sea_orm(primary_key, auto_increment = false)] id: Vec<u8>,
    org_id: Option<Vec<u8>>,
    topic: Option<String>,
    to_email: String,
    template: String,
    queued_at: i64,
    payload: Option<String>,
    attempts: i64,
    next_attempt_at: Option<i64>,
    leased_until: Option<i64>,
    last_error: Option<String>,
    sent_at: Option<i64>,
    dead: bool,
    secret: bool,
});

entity!(sign_in_failures, "sign_in_failures", {
    #[sea_orm(primary_key, auto_increment = false)] key: Vec<u8>,
    failures: i64,
    last_failure: i64,
});

/// Every entity's table and column names, for comparing with the database.
pub(crate) fn tables() -> Vec<(String, Vec<String>)> {
    fn columns<E: EntityTrait>(entity: E) -> (String, Vec<String>) {
        use sea_orm::IdenStatic;
        let table = entity.table_name().to_owned();
        (table, E::Column::iter().map(|column| column.as_str().to_owned()).collect())
    }
    vec![
        columns(users::Entity),
        columns(organisations::Entity),
        columns(roles::Entity),
        columns(facilities::Entity),
        columns(memberships::Entity),
        columns(membership_facilities::Entity),
        columns(membership_alerts::Entity),
        columns(invitations::Entity),
        columns(join_requests::Entity),
        columns(one_time_tokens::Entity),
        columns(sessions::Entity),
        columns(audit::Entity),
        columns(account_audit::Entity),
        columns(runs::Entity),
        columns(outbox::Entity),
        columns(sign_in_failures::Entity),
    ]
}
