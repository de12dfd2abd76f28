//! `UnitOfWork::commit`: lock, check every precondition, apply every change, write the
//! audit entries and the outbox, all in one transaction (see the crate docs).

use std::collections::BTreeMap;

use async_trait::async_trait;
use guildhall_domain::ids::{OrgId, UserId};
use guildhall_domain::membership::Membership;
use guildhall_domain::ports::{Change, ChangeSet, CommitError, Duplicate, Precondition, UnitOfWork};
use guildhall_domain::role::Role;
use sea_orm::sea_query::{Expr, ExprTrait, LockType, OnConflict};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait, IntoActiveModel,
    QueryFilter, QuerySelect, Statement,
};

use crate::Store;
use crate::convert::{self, AuditRow, PENDING, RESET_PASSWORD, bytes, hash_bytes, nanos, stored_version};
use crate::entities::{
    account_audit, audit, facilities, invitations, join_requests, membership_alerts, membership_facilities,
    memberships, one_time_tokens, organisations, outbox, roles, runs, sessions, users,
};
use crate::error::{bug, commit_error, from_store};

/// What the preconditions of one commit need of one organisation or account row.
#[derive(Debug, Clone, Copy, Default)]
struct RowLock {
    /// Lock it exclusively (`FOR NO KEY UPDATE`) rather than shared (`FOR SHARE`): the
    /// commit bumps the version, or counts the organisation's role holders
    /// (`RoleUnheld`), which must exclude every concurrent commit that may give someone a
    /// role, check-only ones (`OrgUnchanged`, holding `FOR SHARE`) included.
    exclusive: bool,
    /// Increment the version once the changes are applied.
    bump: bool,
    /// The version read under the lock; `None` when the row does not exist.
    version: Option<i64>,
}

#[async_trait]
impl UnitOfWork for Store {
    async fn commit(&self, changes: ChangeSet) -> Result<(), CommitError> {
        let tx = self.begin_write().await.map_err(from_store)?;
        match apply(&tx, &changes).await {
            Ok(()) => tx.commit().await.map_err(commit_error),
            Err(error) => {
                // Dropping the transaction rolls back too; rolling back explicitly returns
                // the connection at once. Its own failure would add nothing to `error`.
                let _ = tx.rollback().await;
                Err(error)
            }
        }
    }
}

async fn apply(tx: &DatabaseTransaction, changes: &ChangeSet) -> Result<(), CommitError> {
    let (orgs, users) = lock_rows(tx, &changes.preconditions).await?;
    for precondition in &changes.preconditions {
        if !holds(tx, precondition, &orgs, &users).await? {
            return Err(CommitError::Conflict);
        }
    }
    for change in &changes.changes {
        apply_change(tx, change).await?;
    }
    for (org, lock) in &orgs {
        if lock.bump {
            organisations::Entity::update_many()
                .col_expr(organisations::Column::Version, Expr::col(organisations::Column::Version).add(1))
                .filter(organisations::Column::Id.eq(bytes(org.as_uuid())))
                .exec(tx)
                .await
                .map_err(commit_error)?;
        }
    }
    for (user, lock) in &users {
        if lock.bump {
            users::Entity::update_many()
                .col_expr(users::Column::Version, Expr::col(users::Column::Version).add(1))
                .filter(users::Column::Id.eq(bytes(user.as_uuid())))
                .exec(tx)
                .await
                .map_err(commit_error)?;
        }
    }
    for entry in &changes.audit {
        match AuditRow::try_from(entry).map_err(from_store)? {
            AuditRow::Org(row) => insert::<audit::Entity, _>(tx, row.into_active_model()).await?,
            AuditRow::Account(row) => insert::<account_audit::Entity, _>(tx, row.into_active_model()).await?,
        }
    }
    for email in &changes.emails {
        let row = outbox::Model::try_from(email).map_err(from_store)?;
        insert::<outbox::Entity, _>(tx, row.into_active_model()).await?;
    }
    Ok(())
}

type Locked<K> = BTreeMap<K, RowLock>;

/// Locks (PostgreSQL) and reads the versions of every organisation, then every account,
/// the preconditions name, in ascending id order so that concurrent commits cannot
/// deadlock on them. SQLite holds the database's write lock already (sea-query writes no
/// locking clause for SQLite).
///
/// Check-only preconditions take `FOR SHARE`, so self-service commits (accepting
/// invitations, signing in) do not queue behind each other, but do behind a version bump.
/// The exclusive mode is `FOR NO KEY UPDATE`, not `FOR UPDATE`: it conflicts with every
/// other precondition lock on the row but not with the `FOR KEY SHARE` locks that
/// foreign-key checks take, so inserting a membership never waits on an administrator's
/// organisation lock through its foreign key.
async fn lock_rows(
    tx: &DatabaseTransaction,
    preconditions: &[Precondition],
) -> Result<(Locked<OrgId>, Locked<UserId>), CommitError> {
    let mut orgs: Locked<OrgId> = BTreeMap::new();
    let mut users: Locked<UserId> = BTreeMap::new();
    for precondition in preconditions {
        match precondition {
            Precondition::OrgVersion { org, .. } => need(&mut orgs, *org, true, true),
            Precondition::OrgUnchanged { org, .. } => need(&mut orgs, *org, false, false),
            Precondition::RoleUnheld { org, .. } => need(&mut orgs, *org, true, false),
            Precondition::UserVersion { user, .. } => need(&mut users, *user, true, true),
            Precondition::UserUnchanged { user, .. } => need(&mut users, *user, false, false),
            Precondition::InvitationPending { .. }
            | Precondition::NoPendingInvitation { .. }
            | Precondition::JoinRequestPending { .. }
            | Precondition::TokenUnused { .. } => {}
        }
    }
    for (org, lock) in &mut orgs {
        let query = organisations::Entity::find_by_id(bytes(org.as_uuid()));
        let query = if lock.exclusive { query.lock(LockType::NoKeyUpdate) } else { query.lock_shared() };
        lock.version = query.one(tx).await.map_err(commit_error)?.map(|row| row.version);
    }
    for (user, lock) in &mut users {
        let query = users::Entity::find_by_id(bytes(user.as_uuid()));
        let query = if lock.exclusive { query.lock(LockType::NoKeyUpdate) } else { query.lock_shared() };
        lock.version = query.one(tx).await.map_err(commit_error)?.map(|row| row.version);
    }
    Ok((orgs, users))
}

/// Records what one precondition needs of a row; the strongest need wins.
fn need<K: Ord>(locks: &mut Locked<K>, key: K, exclusive: bool, bump: bool) {
    let lock = locks.entry(key).or_default();
    lock.exclusive |= exclusive;
    lock.bump |= bump;
}

fn version_is<K: Ord>(locked: &Locked<K>, key: &K, version: u64) -> Result<bool, CommitError> {
    let expected = stored_version(version).map_err(from_store)?;
    Ok(locked.get(key).and_then(|lock| lock.version) == Some(expected))
}

async fn holds(
    tx: &DatabaseTransaction,
    precondition: &Precondition,
    orgs: &Locked<OrgId>,
    users: &Locked<UserId>,
) -> Result<bool, CommitError> {
    match precondition {
        Precondition::OrgVersion { org, version } | Precondition::OrgUnchanged { org, version } => {
            version_is(orgs, org, *version)
        }
        Precondition::UserVersion { user, version } | Precondition::UserUnchanged { user, version } => {
            version_is(users, user, *version)
        }
        Precondition::RoleUnheld { org, role } => {
            let holder = memberships::Entity::find()
                .filter(memberships::Column::OrgId.eq(bytes(org.as_uuid())))
                .filter(memberships::Column::Role.eq(role.as_str()))
                .one(tx)
                .await
                .map_err(commit_error)?;
            Ok(holder.is_none())
        }
        Precondition::InvitationPending { org, id, token_hash } => {
            let row = invitations::Entity::find_by_id((bytes(org.as_uuid()), bytes(id.as_uuid())))
                .lock(LockType::NoKeyUpdate)
                .one(tx)
                .await
                .map_err(commit_error)?;
            Ok(row.is_some_and(|row| row.state == PENDING && row.token_hash == hash_bytes(token_hash)))
        }
        Precondition::NoPendingInvitation { org, email, at } => {
            if tx.get_database_backend() == DatabaseBackend::Postgres {
                // Two transactions inviting the same address must not both see no pending
                // invitation: serialise them on the pair (SQLite's write lock already does).
                let key = advisory_key(org, email.normalized());
                tx.execute_raw(Statement::from_sql_and_values(
                    DatabaseBackend::Postgres,
                    "SELECT pg_advisory_xact_lock($1)",
                    [key.into()],
                ))
                .await
                .map_err(commit_error)?;
            }
            let open = invitations::Entity::find()
                .filter(invitations::Column::OrgId.eq(bytes(org.as_uuid())))
                .filter(invitations::Column::EmailNormalized.eq(email.normalized()))
                .filter(invitations::Column::State.eq(PENDING))
                .filter(invitations::Column::ExpiresAt.gt(nanos(*at).map_err(from_store)?))
                .one(tx)
                .await
                .map_err(commit_error)?;
            Ok(open.is_none())
        }
        Precondition::JoinRequestPending { org, id } => {
            let row = join_requests::Entity::find_by_id((bytes(org.as_uuid()), bytes(id.as_uuid())))
                .lock(LockType::NoKeyUpdate)
                .one(tx)
                .await
                .map_err(commit_error)?;
            Ok(row.is_some_and(|row| row.state == PENDING))
        }
        Precondition::TokenUnused { hash } => {
            let row = one_time_tokens::Entity::find_by_id(hash_bytes(hash))
                .lock(LockType::NoKeyUpdate)
                .one(tx)
                .await
                .map_err(commit_error)?;
            Ok(row.is_some_and(|row| row.used_at.is_none()))
        }
    }
}

/// A PostgreSQL advisory lock key for an (organisation, address) pair, the same in
/// every instance: the first 8 bytes of SHA-256 over both.
fn advisory_key(org: &OrgId, email: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(org.as_uuid().as_bytes()).chain_update(email.as_bytes()).finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

async fn insert<E, A>(tx: &DatabaseTransaction, row: A) -> Result<(), CommitError>
where
    E: EntityTrait,
    A: sea_orm::ActiveModelTrait<Entity = E> + Send,
{
    E::insert(row).exec_without_returning(tx).await.map_err(commit_error)?;
    Ok(())
}

/// Fails the commit when an insert would reuse an existing row's id: a caller bug
/// ([`CommitError::Store`]), reported as such even when the row would also break a
/// uniqueness rule, as the reference store does. (Checked before the insert: after a
/// failed statement PostgreSQL accepts no further query in the transaction.)
async fn reused<E: EntityTrait>(
    tx: &DatabaseTransaction,
    existing: sea_orm::Select<E>,
    what: &str,
) -> Result<(), CommitError> {
    if existing.one(tx).await.map_err(commit_error)?.is_some() {
        Err(bug(format!("this {what} already exists (ids are never reused)")))
    } else {
        Ok(())
    }
}

/// Fails the commit when an update or delete touched no row: the caller referred to a
/// row that does not exist (a bug, as in the reference store).
fn touched(rows: u64, what: &str) -> Result<(), CommitError> {
    if rows == 0 {
        Err(bug(format!("{what} does not exist (a change may only update or delete an existing row)")))
    } else {
        Ok(())
    }
}

/// Sets every column of `model` except the primary key and `keep` (columns an update
/// must not overwrite).
fn for_update<A: sea_orm::ActiveModelTrait>(model: A, keep: &[<A::Entity as EntityTrait>::Column]) -> A {
    use sea_orm::{IdenStatic, Iterable, PrimaryKeyToColumn};
    // `into_active_model` marks every value `Unchanged`; an update writes only `Set` ones.
    let mut model = model.reset_all();
    let mut fixed: Vec<&str> =
        <A::Entity as EntityTrait>::PrimaryKey::iter().map(|key| key.into_column().as_str()).collect();
    fixed.extend(keep.iter().map(IdenStatic::as_str));
    for column in <A::Entity as EntityTrait>::Column::iter() {
        if fixed.contains(&column.as_str()) {
            model.not_set(column);
        }
    }
    model
}

async fn apply_change(tx: &DatabaseTransaction, change: &Change) -> Result<(), CommitError> {
    match change {
        Change::InsertUser(user) => {
            reused(tx, users::Entity::find_by_id(bytes(user.id.as_uuid())), "account").await?;
            let row = users::Model::try_from(user).map_err(from_store)?;
            insert::<users::Entity, _>(tx, row.into_active_model()).await
        }
        Change::UpdateUser(user) => {
            let row = users::Model::try_from(user).map_err(from_store)?;
            let sort_key = row.sort_key.clone();
            let model = for_update(row.into_active_model(), &[users::Column::Version]);
            let result = users::Entity::update_many()
                .set(model)
                .filter(users::Column::Id.eq(bytes(user.id.as_uuid())))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            touched(result.rows_affected, "the account")?;
            // Keep the listing key of every membership in step with the name.
            memberships::Entity::update_many()
                .col_expr(memberships::Column::SortKey, Expr::val(sort_key))
                .filter(memberships::Column::UserId.eq(bytes(user.id.as_uuid())))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            Ok(())
        }
        Change::InsertOrganisation(org) => {
            reused(tx, organisations::Entity::find_by_id(bytes(org.id.as_uuid())), "organisation").await?;
            let row = organisations::Model::try_from(org).map_err(from_store)?;
            insert::<organisations::Entity, _>(tx, row.into_active_model()).await
        }
        Change::UpdateOrganisation(org) => {
            let row = organisations::Model::try_from(org).map_err(from_store)?;
            let model = for_update(
                row.into_active_model(),
                &[organisations::Column::Version, organisations::Column::CreatedBy, organisations::Column::CreatedAt],
            );
            let result = organisations::Entity::update_many()
                .set(model)
                .filter(organisations::Column::Id.eq(bytes(org.id.as_uuid())))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            touched(result.rows_affected, "the organisation")
        }
        Change::PutRole { org, role } => {
            if Role::builtins().iter().any(|builtin| builtin.key == role.key) {
                return Err(CommitError::Duplicate(Duplicate::RoleKey));
            }
            let row = convert::role_row(*org, role).map_err(from_store)?;
            roles::Entity::insert(row.into_active_model())
                .on_conflict(
                    OnConflict::columns([roles::Column::OrgId, roles::Column::Key])
                        .update_columns([roles::Column::Name, roles::Column::GrantJson, roles::Column::BuiltIn])
                        .to_owned(),
                )
                .exec_without_returning(tx)
                .await
                .map_err(commit_error)?;
            Ok(())
        }
        Change::DeleteRole { org, key } => {
            let held = memberships::Entity::find()
                .filter(memberships::Column::OrgId.eq(bytes(org.as_uuid())))
                .filter(memberships::Column::Role.eq(key.as_str()))
                .one(tx)
                .await
                .map_err(commit_error)?;
            if held.is_some() {
                return Err(bug(format!("role {key} is still held by members; reassign them first")));
            }
            let result = roles::Entity::delete_many()
                .filter(roles::Column::OrgId.eq(bytes(org.as_uuid())))
                .filter(roles::Column::Key.eq(key.as_str()))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            touched(result.rows_affected, "the custom role")
        }
        Change::InsertFacility(facility) => {
            let key = (bytes(facility.org.as_uuid()), bytes(facility.id.as_uuid()));
            reused(tx, facilities::Entity::find_by_id(key), "facility").await?;
            let row = facilities::Model::try_from(facility).map_err(from_store)?;
            insert::<facilities::Entity, _>(tx, row.into_active_model()).await
        }
        Change::UpdateFacility(facility) => {
            let result = facilities::Entity::update_many()
                .col_expr(facilities::Column::Name, Expr::val(facility.name.as_str()))
                .col_expr(facilities::Column::NameKey, Expr::val(convert::facility_name_key(&facility.name)))
                .filter(facilities::Column::OrgId.eq(bytes(facility.org.as_uuid())))
                .filter(facilities::Column::Id.eq(bytes(facility.id.as_uuid())))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            touched(result.rows_affected, "the facility")
        }
        Change::DeleteFacility { org, id } => {
            // membership_facilities rows go with it (ON DELETE CASCADE).
            let result = facilities::Entity::delete_many()
                .filter(facilities::Column::OrgId.eq(bytes(org.as_uuid())))
                .filter(facilities::Column::Id.eq(bytes(id.as_uuid())))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            touched(result.rows_affected, "the facility")
        }
        Change::InsertMembership(membership) => {
            let sort_key = users::Entity::find_by_id(bytes(membership.user.as_uuid()))
                .select_only()
                .column(users::Column::SortKey)
                .into_tuple::<String>()
                .one(tx)
                .await
                .map_err(commit_error)?
                .ok_or_else(|| bug(format!("account {} does not exist", membership.user)))?;
            let row = convert::membership_row(membership, sort_key).map_err(from_store)?;
            insert::<memberships::Entity, _>(tx, row.into_active_model()).await?;
            insert_children(tx, membership).await
        }
        Change::UpdateMembership(membership) => {
            // The listing key is the account's: an update of the membership keeps it.
            let row = convert::membership_row(membership, String::new()).map_err(from_store)?;
            let (org, user) = (bytes(membership.org.as_uuid()), bytes(membership.user.as_uuid()));
            let result = memberships::Entity::update_many()
                .set(for_update(row.into_active_model(), &[memberships::Column::SortKey]))
                .filter(memberships::Column::OrgId.eq(org.clone()))
                .filter(memberships::Column::UserId.eq(user.clone()))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            touched(result.rows_affected, "the membership")?;
            membership_facilities::Entity::delete_many()
                .filter(membership_facilities::Column::OrgId.eq(org.clone()))
                .filter(membership_facilities::Column::UserId.eq(user.clone()))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            membership_alerts::Entity::delete_many()
                .filter(membership_alerts::Column::OrgId.eq(org))
                .filter(membership_alerts::Column::UserId.eq(user))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            insert_children(tx, membership).await
        }
        Change::ReassignRole { org, from, to } => {
            memberships::Entity::update_many()
                .col_expr(memberships::Column::Role, Expr::val(to.as_str()))
                .filter(memberships::Column::OrgId.eq(bytes(org.as_uuid())))
                .filter(memberships::Column::Role.eq(from.as_str()))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            Ok(())
        }
        Change::DeleteMembership { org, user } => {
            let result = memberships::Entity::delete_many()
                .filter(memberships::Column::OrgId.eq(bytes(org.as_uuid())))
                .filter(memberships::Column::UserId.eq(bytes(user.as_uuid())))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            touched(result.rows_affected, "the membership")
        }
        Change::InsertInvitation(invitation) => {
            let row = invitations::Model::try_from(invitation).map_err(from_store)?;
            insert::<invitations::Entity, _>(tx, row.into_active_model()).await
        }
        Change::UpdateInvitation(invitation) => {
            let row = invitations::Model::try_from(invitation).map_err(from_store)?;
            let result = invitations::Entity::update_many()
                .set(for_update(row.into_active_model(), &[]))
                .filter(invitations::Column::OrgId.eq(bytes(invitation.org.as_uuid())))
                .filter(invitations::Column::Id.eq(bytes(invitation.id.as_uuid())))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            touched(result.rows_affected, "the invitation")
        }
        Change::InsertJoinRequest(request) => {
            let key = (bytes(request.org.as_uuid()), bytes(request.id.as_uuid()));
            reused(tx, join_requests::Entity::find_by_id(key), "join request").await?;
            let row = join_requests::Model::try_from(request).map_err(from_store)?;
            insert::<join_requests::Entity, _>(tx, row.into_active_model()).await
        }
        Change::UpdateJoinRequest(request) => {
            let row = join_requests::Model::try_from(request).map_err(from_store)?;
            let result = join_requests::Entity::update_many()
                .set(for_update(row.into_active_model(), &[join_requests::Column::UserId]))
                .filter(join_requests::Column::OrgId.eq(bytes(request.org.as_uuid())))
                .filter(join_requests::Column::Id.eq(bytes(request.id.as_uuid())))
                .filter(join_requests::Column::UserId.eq(bytes(request.user.as_uuid())))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            touched(result.rows_affected, "the join request")
        }
        Change::InsertToken(token) => {
            let row = one_time_tokens::Model::try_from(token).map_err(from_store)?;
            insert::<one_time_tokens::Entity, _>(tx, row.into_active_model()).await
        }
        Change::ConsumeToken { hash, at } => {
            let result = one_time_tokens::Entity::update_many()
                .col_expr(one_time_tokens::Column::UsedAt, Expr::val(nanos(*at).map_err(from_store)?))
                .filter(one_time_tokens::Column::Hash.eq(hash_bytes(hash)))
                .exec(tx)
                .await
                .map_err(commit_error)?;
            touched(result.rows_affected, "the one-time token")
        }
        Change::ExpireTokens { user, reset, at } => {
            let purpose = one_time_tokens::Column::Purpose;
            one_time_tokens::Entity::update_many()
                .col_expr(one_time_tokens::Column::UsedAt, Expr::val(nanos(*at).map_err(from_store)?))
                .filter(one_time_tokens::Column::UserId.eq(bytes(user.as_uuid())))
                .filter(one_time_tokens::Column::UsedAt.is_null())
                .filter(if *reset { purpose.eq(RESET_PASSWORD) } else { purpose.ne(RESET_PASSWORD) })
                .exec(tx)
                .await
                .map_err(commit_error)?;
            Ok(())
        }
        Change::InsertSession(session) => {
            let row = sessions::Model::try_from(session).map_err(from_store)?;
            insert::<sessions::Entity, _>(tx, row.into_active_model()).await
        }
        Change::TouchSession { hash, at } => {
            let at = nanos(*at).map_err(from_store)?;
            update_session(tx, hash, sessions::Column::LastSeenAt, Expr::val(at)).await
        }
        Change::UnrestrictSession { hash } => {
            update_session(tx, hash, sessions::Column::PasswordChangeRequired, Expr::val(false)).await
        }
        Change::RevokeSession { hash, at } => {
            // Revoking twice keeps the first time.
            let at = nanos(*at).map_err(from_store)?;
            let first = Expr::col(sessions::Column::RevokedAt).if_null(at);
            update_session(tx, hash, sessions::Column::RevokedAt, first).await
        }
        Change::RevokeSessionsOf { user, except, at } => {
            let mut update = sessions::Entity::update_many()
                .col_expr(sessions::Column::RevokedAt, Expr::val(nanos(*at).map_err(from_store)?))
                .filter(sessions::Column::UserId.eq(bytes(user.as_uuid())))
                .filter(sessions::Column::RevokedAt.is_null());
            if let Some(keep) = except {
                update = update.filter(sessions::Column::TokenHash.ne(hash_bytes(keep)));
            }
            update.exec(tx).await.map_err(commit_error)?;
            Ok(())
        }
        Change::InsertRun(run) => {
            let row = runs::Model::try_from(run).map_err(from_store)?;
            insert::<runs::Entity, _>(tx, row.into_active_model()).await
        }
    }
}

async fn update_session(
    tx: &DatabaseTransaction,
    hash: &guildhall_domain::token::TokenHash,
    column: sessions::Column,
    value: sea_orm::sea_query::SimpleExpr,
) -> Result<(), CommitError> {
    let result = sessions::Entity::update_many()
        .col_expr(column, value)
        .filter(sessions::Column::TokenHash.eq(hash_bytes(hash)))
        .exec(tx)
        .await
        .map_err(commit_error)?;
    touched(result.rows_affected, "the session")
}

async fn insert_children(tx: &DatabaseTransaction, membership: &Membership) -> Result<(), CommitError> {
    let (org, user) = (bytes(membership.org.as_uuid()), bytes(membership.user.as_uuid()));
    if !membership.facilities.is_empty() {
        let rows = membership.facilities.iter().map(|facility| membership_facilities::ActiveModel {
            org_id: ActiveValue::Set(org.clone()),
            user_id: ActiveValue::Set(user.clone()),
            facility_id: ActiveValue::Set(bytes(facility.as_uuid())),
        });
        membership_facilities::Entity::insert_many(rows).exec_without_returning(tx).await.map_err(commit_error)?;
    }
    if !membership.alerts.is_empty() {
        let rows = membership.alerts.iter().map(|alert| membership_alerts::ActiveModel {
            org_id: ActiveValue::Set(org.clone()),
            user_id: ActiveValue::Set(user.clone()),
            alert: ActiveValue::Set(alert.as_str().to_owned()),
        });
        membership_alerts::Entity::insert_many(rows).exec_without_returning(tx).await.map_err(commit_error)?;
    }
    Ok(())
}
