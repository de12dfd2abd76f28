//! The read ports. Orders follow the reference `MemoryStore` exactly, so that every
//! adapter lists things the same way.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use guildhall_domain::audit::AuditEntry;
use guildhall_domain::error::StoreError;
use guildhall_domain::ids::{AuditId, FacilityId, InvitationId, JoinRequestId, MessageId, OrgId, RunId, UserId};
use guildhall_domain::invitation::Invitation;
use guildhall_domain::join_request::JoinRequest;
use guildhall_domain::membership::{MemberState, Membership};
use guildhall_domain::org::{Facility, Organisation, RunRecord};
use guildhall_domain::ports::{
    AuditLog, DeliveryLog, InvitationRepository, JoinRequestRepository, MembershipRepository, OrganisationRepository,
    TokenRepository, UndeliveredEmail, UserRepository,
};
use guildhall_domain::query::{MemberCursor, MemberPage, MemberQuery, MemberSummary, Page, PageRequest};
use guildhall_domain::role::Role;
use guildhall_domain::token::{OneTimeToken, Session, TokenHash};
use guildhall_domain::user::User;
use guildhall_domain::values::{AlertKind, EmailAddress, OrgSlug, RoleKey};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, Order, QueryFilter, QueryOrder, QuerySelect, RelationDef,
    Select,
};

use crate::convert::{self, PENDING, bytes, hash_bytes};
use crate::entities::{
    audit, facilities, invitations, join_requests, membership_alerts, membership_facilities, memberships,
    one_time_tokens, organisations, outbox, roles, runs, sessions, users,
};
use crate::error::store;
use crate::{Backend, Store};

fn all<T, M>(rows: Vec<M>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<M, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// The clamp every paginated read uses (as the reference store does).
fn clamp_limit(limit: u32) -> u64 {
    u64::from(limit.clamp(1, MemberQuery::MAX_LIMIT))
}

fn bad_cursor() -> StoreError {
    StoreError::new("the page cursor is not one this store issued")
}

impl Store {
    /// Memberships rows with their facilities and alerts, in the rows' order.
    pub(crate) async fn complete<C: ConnectionTrait>(
        &self,
        db: &C,
        rows: Vec<memberships::Model>,
    ) -> Result<Vec<Membership>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_org: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
        for row in &rows {
            by_org.entry(row.org_id.clone()).or_default().push(row.user_id.clone());
        }
        let mut facilities: BTreeMap<(Vec<u8>, Vec<u8>), BTreeSet<FacilityId>> = BTreeMap::new();
        let mut alerts: BTreeMap<(Vec<u8>, Vec<u8>), BTreeSet<AlertKind>> = BTreeMap::new();
        for (org, users) in by_org {
            // Bounded IN lists: a page is at most 201 members, but an org-wide read may be more.
            for chunk in users.chunks(500) {
                let found = membership_facilities::Entity::find()
                    .filter(membership_facilities::Column::OrgId.eq(org.clone()))
                    .filter(membership_facilities::Column::UserId.is_in(chunk.iter().cloned()))
                    .all(db)
                    .await
                    .map_err(store)?;
                for row in found {
                    facilities
                        .entry((row.org_id, row.user_id))
                        .or_default()
                        .insert(convert::facility_id(&row.facility_id)?);
                }
                let found = membership_alerts::Entity::find()
                    .filter(membership_alerts::Column::OrgId.eq(org.clone()))
                    .filter(membership_alerts::Column::UserId.is_in(chunk.iter().cloned()))
                    .all(db)
                    .await
                    .map_err(store)?;
                for row in found {
                    alerts.entry((row.org_id, row.user_id)).or_default().insert(convert::alert_kind(&row.alert)?);
                }
            }
        }
        rows.into_iter()
            .map(|row| {
                let key = (row.org_id.clone(), row.user_id.clone());
                let f = facilities.remove(&key).unwrap_or_default();
                let a = alerts.remove(&key).unwrap_or_default();
                convert::membership(row, f, a)
            })
            .collect()
    }
}

#[async_trait]
impl UserRepository for Store {
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = users::Entity::find_by_id(bytes(id.as_uuid())).one(&self.db).await.map_err(store)?;
        row.map(User::try_from).transpose()
    }

    /// In the order of `ids` (as the reference store).
    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        let mut found: BTreeMap<UserId, User> = BTreeMap::new();
        for chunk in ids.chunks(500) {
            let rows = users::Entity::find()
                .filter(users::Column::Id.is_in(chunk.iter().map(|id| bytes(id.as_uuid()))))
                .all(&self.db)
                .await
                .map_err(store)?;
            for user in all::<User, _>(rows)? {
                found.insert(user.id, user);
            }
        }
        Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
    }

    async fn user_by_email(&self, email: &EmailAddress) -> Result<Option<User>, StoreError> {
        let row = users::Entity::find()
            .filter(users::Column::EmailNormalized.eq(email.normalized()))
            .one(&self.db)
            .await
            .map_err(store)?;
        row.map(User::try_from).transpose()
    }
}

#[async_trait]
impl OrganisationRepository for Store {
    async fn organisation(&self, id: OrgId) -> Result<Option<Organisation>, StoreError> {
        let row = organisations::Entity::find_by_id(bytes(id.as_uuid())).one(&self.db).await.map_err(store)?;
        row.map(Organisation::try_from).transpose()
    }

    async fn organisation_by_slug(&self, slug: &OrgSlug) -> Result<Option<Organisation>, StoreError> {
        let row = organisations::Entity::find()
            .filter(organisations::Column::Slug.eq(slug.as_str()))
            .one(&self.db)
            .await
            .map_err(store)?;
        row.map(Organisation::try_from).transpose()
    }

    /// By key (byte-wise).
    async fn custom_roles(&self, org: OrgId) -> Result<Vec<Role>, StoreError> {
        let rows = roles::Entity::find()
            .filter(roles::Column::OrgId.eq(bytes(org.as_uuid())))
            .order_by_asc(roles::Column::Key)
            .all(&self.db)
            .await
            .map_err(store)?;
        all(rows)
    }

    /// By lower-cased name, then id.
    async fn facilities(&self, org: OrgId) -> Result<Vec<Facility>, StoreError> {
        let rows = facilities::Entity::find()
            .filter(facilities::Column::OrgId.eq(bytes(org.as_uuid())))
            .order_by_asc(facilities::Column::NameKey)
            .order_by_asc(facilities::Column::Id)
            .all(&self.db)
            .await
            .map_err(store)?;
        all(rows)
    }

    /// Newest first by id (then start time); the cursor is the last item's id.
    async fn runs(&self, org: OrgId, page: PageRequest) -> Result<Page<RunRecord>, StoreError> {
        let query = runs::Entity::find().filter(runs::Column::OrgId.eq(bytes(org.as_uuid())));
        let cursor = |text: &str| RunId::parse(text).ok().map(|id| bytes(id.as_uuid()));
        self.newest_first(query, (runs::Column::Id, Some(runs::Column::StartedAt)), &page, cursor, |run: &RunRecord| {
            run.id.to_string()
        })
        .await
    }
}

#[async_trait]
impl MembershipRepository for Store {
    async fn membership(&self, org: OrgId, user: UserId) -> Result<Option<Membership>, StoreError> {
        let row = memberships::Entity::find_by_id((bytes(org.as_uuid()), bytes(user.as_uuid())))
            .one(&self.db)
            .await
            .map_err(store)?;
        let Some(row) = row else { return Ok(None) };
        Ok(self.complete(&self.db, vec![row]).await?.pop())
    }

    /// By user id.
    async fn memberships_with_roles(&self, org: OrgId, roles: &[RoleKey]) -> Result<Vec<Membership>, StoreError> {
        if roles.is_empty() {
            return Ok(Vec::new());
        }
        let rows = memberships::Entity::find()
            .filter(memberships::Column::OrgId.eq(bytes(org.as_uuid())))
            .filter(memberships::Column::Role.is_in(roles.iter().map(|r| r.as_str().to_owned())))
            .order_by_asc(memberships::Column::UserId)
            .all(&self.db)
            .await
            .map_err(store)?;
        self.complete(&self.db, rows).await
    }

    /// By user id.
    async fn memberships_with_alert(&self, org: OrgId, alert: &AlertKind) -> Result<Vec<Membership>, StoreError> {
        let org = bytes(org.as_uuid());
        let opted_in = Query::select()
            .column(membership_alerts::Column::UserId)
            .from(membership_alerts::Entity)
            .and_where(Expr::col(membership_alerts::Column::OrgId).eq(org.clone()))
            .and_where(Expr::col(membership_alerts::Column::Alert).eq(alert.as_str()))
            .to_owned();
        let rows = memberships::Entity::find()
            .filter(memberships::Column::OrgId.eq(org))
            .filter(memberships::Column::UserId.in_subquery(opted_in))
            .order_by_asc(memberships::Column::UserId)
            .all(&self.db)
            .await
            .map_err(store)?;
        self.complete(&self.db, rows).await
    }

    /// By organisation id.
    async fn memberships_of_user(&self, user: UserId) -> Result<Vec<Membership>, StoreError> {
        let rows = memberships::Entity::find()
            .filter(memberships::Column::UserId.eq(bytes(user.as_uuid())))
            .order_by_asc(memberships::Column::OrgId)
            .all(&self.db)
            .await
            .map_err(store)?;
        self.complete(&self.db, rows).await
    }

    async fn search_members(&self, query: &MemberQuery) -> Result<MemberPage, StoreError> {
        self.search(query).await
    }
}

impl Store {
    /// Keyset pagination over `(memberships.sort_key, memberships.user_id)`: both backends
    /// compare the key byte-wise (`COLLATE "C"` on PostgreSQL, SQLite's `BINARY`), as the
    /// domain does, and walk the `memberships_sort (org_id, sort_key, user_id)` index from
    /// the cursor, so every page costs the same. The text filter is an exact substring test over a
    /// column the store lower-cases in Rust (`convert::search_text`), so it matches
    /// `MemberQuery::matches_text` on both backends, non-ASCII letters included.
    async fn search(&self, query: &MemberQuery) -> Result<MemberPage, StoreError> {
        let limit = clamp_limit(query.limit);
        let org = bytes(query.org.as_uuid());
        let as_of = convert::nanos(query.as_of)?;
        let account: RelationDef = memberships::Entity::belongs_to(users::Entity)
            .from(memberships::Column::UserId)
            .to(users::Column::Id)
            .into();
        let mut select = memberships::Entity::find()
            .join(JoinType::InnerJoin, account)
            .filter(memberships::Column::OrgId.eq(org.clone()));
        if let Some(role) = &query.role {
            select = select.filter(memberships::Column::Role.eq(role.as_str()));
        }
        if let Some(facility) = query.facility {
            let holders = Query::select()
                .column(membership_facilities::Column::UserId)
                .from(membership_facilities::Entity)
                .and_where(Expr::col(membership_facilities::Column::OrgId).eq(org.clone()))
                .and_where(Expr::col(membership_facilities::Column::FacilityId).eq(bytes(facility.as_uuid())))
                .to_owned();
            select = select.filter(memberships::Column::UserId.in_subquery(holders));
        }
        let suspended = memberships::Column::SuspendedAt.is_not_null();
        let not_suspended = memberships::Column::SuspendedAt.is_null();
        let expired = memberships::Column::ExpiresAt.is_not_null().and(memberships::Column::ExpiresAt.lte(as_of));
        let unexpired = memberships::Column::ExpiresAt.is_null().or(memberships::Column::ExpiresAt.gt(as_of));
        select = match query.state {
            None => select,
            Some(MemberState::Suspended) => select.filter(suspended),
            Some(MemberState::Expired) => select.filter(not_suspended).filter(expired),
            Some(MemberState::Active) => select.filter(not_suspended).filter(unexpired),
        };
        if let Some(text) = query.text.as_deref().map(str::to_lowercase) {
            if text.contains('\u{1f}') {
                // No name or address contains the separator: nothing can match.
                return Ok(MemberPage { items: Vec::new(), next: None });
            }
            // Placeholders as sea-query writes them for each backend.
            let contains = match self.backend {
                Backend::Sqlite => "instr(?, ?) > 0",
                Backend::Postgres => "strpos($1, $2) > 0",
            };
            select = select.filter(Expr::cust_with_exprs(
                contains,
                [Expr::col((users::Entity, users::Column::SearchText)), Expr::val(text)],
            ));
        }
        if let Some(after) = &query.after {
            // A row-value comparison, which both planners turn into an index range that
            // starts at the cursor (an `a > x OR (a = x AND b > y)` would be a scan).
            let key = Expr::tuple([
                Expr::col((memberships::Entity, memberships::Column::SortKey)),
                Expr::col((memberships::Entity, memberships::Column::UserId)),
            ]);
            let cursor = Expr::tuple([Expr::val(after.sort_key.as_str()), Expr::val(bytes(after.user.as_uuid()))]);
            select = select.filter(key.gt(cursor));
        }
        let rows = select
            .order_by(Expr::col((memberships::Entity, memberships::Column::SortKey)), Order::Asc)
            .order_by(Expr::col((memberships::Entity, memberships::Column::UserId)), Order::Asc)
            .limit(limit + 1)
            .select_also(users::Entity)
            .all(&self.db)
            .await
            .map_err(store)?;
        let more = rows.len() as u64 > limit;
        let mut memberships_rows = Vec::new();
        let mut people = Vec::new();
        for (membership, user) in rows.into_iter().take(usize::try_from(limit).unwrap_or(usize::MAX)) {
            let user = user.ok_or_else(|| StoreError::new("a member's account is missing"))?;
            memberships_rows.push(membership);
            people.push(User::try_from(user)?);
        }
        let memberships = self.complete(&self.db, memberships_rows).await?;
        let items: Vec<MemberSummary> = memberships
            .into_iter()
            .zip(people)
            .map(|(membership, user)| MemberSummary { membership, name: user.name, email: user.email })
            .collect();
        let next = if more {
            items.last().map(|last| MemberCursor { sort_key: last.name.sort_key(), user: last.membership.user })
        } else {
            None
        };
        Ok(MemberPage { items, next })
    }
}

#[async_trait]
impl InvitationRepository for Store {
    async fn invitation(&self, org: OrgId, id: InvitationId) -> Result<Option<Invitation>, StoreError> {
        let row = invitations::Entity::find_by_id((bytes(org.as_uuid()), bytes(id.as_uuid())))
            .one(&self.db)
            .await
            .map_err(store)?;
        row.map(Invitation::try_from).transpose()
    }

    /// In any state.
    async fn invitation_by_token(&self, hash: &TokenHash) -> Result<Option<Invitation>, StoreError> {
        let row = invitations::Entity::find()
            .filter(invitations::Column::TokenHash.eq(hash_bytes(hash)))
            .one(&self.db)
            .await
            .map_err(store)?;
        row.map(Invitation::try_from).transpose()
    }

    async fn open_invitations(&self, org: OrgId) -> Result<Vec<Invitation>, StoreError> {
        let rows = invitations::Entity::find()
            .filter(invitations::Column::OrgId.eq(bytes(org.as_uuid())))
            .filter(invitations::Column::State.eq(PENDING))
            .order_by_desc(invitations::Column::CreatedAt)
            .order_by_desc(invitations::Column::Id)
            .all(&self.db)
            .await
            .map_err(store)?;
        all(rows)
    }

    /// Newest first.
    async fn open_invitations_for(&self, email: &EmailAddress) -> Result<Vec<Invitation>, StoreError> {
        let rows = invitations::Entity::find()
            .filter(invitations::Column::EmailNormalized.eq(email.normalized()))
            .filter(invitations::Column::State.eq(PENDING))
            .order_by_desc(invitations::Column::CreatedAt)
            .order_by_desc(invitations::Column::Id)
            .all(&self.db)
            .await
            .map_err(store)?;
        all(rows)
    }
}

#[async_trait]
impl JoinRequestRepository for Store {
    async fn join_request(&self, org: OrgId, id: JoinRequestId) -> Result<Option<JoinRequest>, StoreError> {
        let row = join_requests::Entity::find_by_id((bytes(org.as_uuid()), bytes(id.as_uuid())))
            .one(&self.db)
            .await
            .map_err(store)?;
        row.map(JoinRequest::try_from).transpose()
    }

    async fn pending_join_requests(&self, org: OrgId) -> Result<Vec<JoinRequest>, StoreError> {
        let rows = join_requests::Entity::find()
            .filter(join_requests::Column::OrgId.eq(bytes(org.as_uuid())))
            .filter(join_requests::Column::State.eq(PENDING))
            .order_by_asc(join_requests::Column::CreatedAt)
            .order_by_asc(join_requests::Column::Id)
            .all(&self.db)
            .await
            .map_err(store)?;
        all(rows)
    }

    async fn join_requests_of_user(&self, user: UserId) -> Result<Vec<JoinRequest>, StoreError> {
        let rows = join_requests::Entity::find()
            .filter(join_requests::Column::UserId.eq(bytes(user.as_uuid())))
            .order_by_desc(join_requests::Column::CreatedAt)
            .order_by_desc(join_requests::Column::Id)
            .all(&self.db)
            .await
            .map_err(store)?;
        all(rows)
    }
}

#[async_trait]
impl TokenRepository for Store {
    async fn one_time_token(&self, hash: &TokenHash) -> Result<Option<OneTimeToken>, StoreError> {
        let row = one_time_tokens::Entity::find_by_id(hash_bytes(hash)).one(&self.db).await.map_err(store)?;
        row.map(OneTimeToken::try_from).transpose()
    }

    async fn session(&self, hash: &TokenHash) -> Result<Option<Session>, StoreError> {
        let row = sessions::Entity::find_by_id(hash_bytes(hash)).one(&self.db).await.map_err(store)?;
        row.map(Session::try_from).transpose()
    }

    /// Expired but unrevoked sessions included.
    async fn sessions_of_user(&self, user: UserId) -> Result<Vec<Session>, StoreError> {
        let rows = sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(bytes(user.as_uuid())))
            .filter(sessions::Column::RevokedAt.is_null())
            .order_by_desc(sessions::Column::CreatedAt)
            .order_by_desc(sessions::Column::Id)
            .all(&self.db)
            .await
            .map_err(store)?;
        all(rows)
    }
}

#[async_trait]
impl AuditLog for Store {
    /// Newest first by id (then time); the cursor is the last item's id.
    async fn audit_entries(&self, org: OrgId, page: PageRequest) -> Result<Page<AuditEntry>, StoreError> {
        let query = audit::Entity::find().filter(audit::Column::OrgId.eq(bytes(org.as_uuid())));
        let cursor = |text: &str| AuditId::parse(text).ok().map(|id| bytes(id.as_uuid()));
        self.newest_first(query, (audit::Column::Id, Some(audit::Column::At)), &page, cursor, |entry: &AuditEntry| {
            entry.id.to_string()
        })
        .await
    }
}

#[async_trait]
impl DeliveryLog for Store {
    /// Newest first by message id; the cursor is the last item's id. Served by the
    /// index `outbox_dead_by_org (org_id, dead, id)`.
    async fn undelivered(&self, org: OrgId, page: PageRequest) -> Result<Page<UndeliveredEmail>, StoreError> {
        let query = outbox::Entity::find()
            .filter(outbox::Column::OrgId.eq(bytes(org.as_uuid())))
            .filter(outbox::Column::Dead.eq(true));
        let cursor = |text: &str| MessageId::parse(text).ok().map(|id| bytes(id.as_uuid()));
        self.newest_first(query, (outbox::Column::Id, None), &page, cursor, |item: &UndeliveredEmail| {
            item.id.to_string()
        })
        .await
    }
}

impl Store {
    /// One page of `query`'s rows, newest first by `order.0` (an id column; ties, which
    /// unique ids never have, by `order.1`), after the row whose id the page's cursor
    /// names (`parse` reads a cursor back into that column's value). Reads `limit + 1`
    /// rows: the extra one only says that another page follows, whose cursor is the last
    /// kept item's `cursor`.
    async fn newest_first<E, T>(
        &self,
        query: Select<E>,
        order: (E::Column, Option<E::Column>),
        page: &PageRequest,
        parse: impl Fn(&str) -> Option<Vec<u8>>,
        cursor: impl Fn(&T) -> String,
    ) -> Result<Page<T>, StoreError>
    where
        E: EntityTrait,
        T: TryFrom<E::Model, Error = StoreError>,
    {
        let (id, then) = order;
        let mut query = query;
        if let Some(after) = page.after.as_deref() {
            query = query.filter(id.lt(parse(after).ok_or_else(bad_cursor)?));
        }
        query = query.order_by_desc(id);
        if let Some(then) = then {
            query = query.order_by_desc(then);
        }
        let limit = clamp_limit(page.limit);
        let rows = query.limit(limit + 1).all(&self.db).await.map_err(store)?;
        let mut items: Vec<T> = all(rows)?;
        let more = items.len() as u64 > limit;
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = if more { items.last().map(cursor) } else { None };
        Ok(Page { items, next })
    }
}
