//! The border: entity models to domain types (`TryFrom`) and back.
//!
//! Reading a row that does not parse into a valid domain value (a hand-edited table, a
//! bug in an older version) is a [`StoreError`]: the domain only ever sees valid values.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use guildhall_domain::audit::{AuditAction, AuditEntry, AuditTarget, FieldChange};
use guildhall_domain::error::StoreError;
use guildhall_domain::ids::{
    AuditId, FacilityId, InvitationId, JoinRequestId, MessageId, OrgId, RunId, SessionId, UserId,
};
use guildhall_domain::invitation::{Invitation, InvitationState};
use guildhall_domain::join_request::{JoinRequest, JoinRequestState};
use guildhall_domain::membership::{AccessSettings, Membership, MembershipOrigin, MembershipStatus};
use guildhall_domain::notification::{Notification, OutboundEmail, SetPasswordLink};
use guildhall_domain::org::{Facility, OrgSettings, Organisation, RunOutcome, RunRecord};
use guildhall_domain::password::Password;
use guildhall_domain::ports::UndeliveredEmail;
use guildhall_domain::role::{Role, RoleGrant};
use guildhall_domain::token::{OneTimeToken, Session, Token, TokenHash, TokenPurpose};
use guildhall_domain::user::{PasswordHash, PasswordState, TemporaryPassword, User, UserStatus};
use guildhall_domain::values::{
    AlertKind, CapabilityKey, EmailAddress, FacilityName, Note, OrgName, OrgSlug, PersonName, PhoneNumber, Position,
    RoleKey, RoleName, Topic,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::entities::{
    account_audit, audit, facilities, invitations, join_requests, memberships, one_time_tokens, organisations, outbox,
    roles, runs, sessions, users,
};

/// A failure at the border, with what was being read or written.
pub(crate) fn corrupt(what: &str, problem: impl std::fmt::Display) -> StoreError {
    StoreError::new(format!("{what}: {problem}"))
}

// ---- scalars ----------------------------------------------------------------------------

/// An instant as stored: nanoseconds since the Unix epoch.
pub(crate) fn nanos(at: DateTime<Utc>) -> Result<i64, StoreError> {
    at.timestamp_nanos_opt().ok_or_else(|| corrupt("an instant", format!("{at} is outside 1677..2262")))
}

pub(crate) fn opt_nanos(at: Option<DateTime<Utc>>) -> Result<Option<i64>, StoreError> {
    at.map(nanos).transpose()
}

pub(crate) fn instant(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

pub(crate) fn bytes(uuid: Uuid) -> Vec<u8> {
    uuid.as_bytes().to_vec()
}

fn uuid(what: &str, bytes: &[u8]) -> Result<Uuid, StoreError> {
    Uuid::from_slice(bytes).map_err(|error| corrupt(what, error))
}

pub(crate) fn user_id(bytes: &[u8]) -> Result<UserId, StoreError> {
    uuid("a user id", bytes).map(UserId::from_uuid)
}

pub(crate) fn org_id(bytes: &[u8]) -> Result<OrgId, StoreError> {
    uuid("an organisation id", bytes).map(OrgId::from_uuid)
}

pub(crate) fn facility_id(bytes: &[u8]) -> Result<FacilityId, StoreError> {
    uuid("a facility id", bytes).map(FacilityId::from_uuid)
}

fn opt_user_id(bytes: Option<&Vec<u8>>) -> Result<Option<UserId>, StoreError> {
    bytes.map(|b| user_id(b)).transpose()
}

pub(crate) fn hash_bytes(hash: &TokenHash) -> Vec<u8> {
    hash.bytes().to_vec()
}

pub(crate) fn token_hash(bytes: &[u8]) -> Result<TokenHash, StoreError> {
    let array: [u8; 32] = bytes.try_into().map_err(|_| corrupt("a token hash", "is not 32 bytes"))?;
    Ok(TokenHash::from_bytes(array))
}

fn version(what: &str, stored: i64) -> Result<u64, StoreError> {
    u64::try_from(stored).map_err(|error| corrupt(what, error))
}

pub(crate) fn stored_version(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|error| corrupt("a version", error))
}

fn json<T: Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| corrupt(what, error))
}

fn from_json<T: for<'de> Deserialize<'de>>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|error| corrupt(what, error))
}

/// An enum's serde name (`member_suspended`), for columns that hold a unit variant.
fn unit_name<T: Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    match serde_json::to_value(value).map_err(|error| corrupt(what, error))? {
        serde_json::Value::String(name) => Ok(name),
        other => Err(corrupt(what, format!("expected a name, got {other}"))),
    }
}

fn from_unit_name<T: for<'de> Deserialize<'de>>(what: &str, name: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|error| corrupt(what, error))
}

fn parse<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> Result<T, StoreError> {
    result.map_err(|error| corrupt(what, error))
}

fn opt_parse<T, E: std::fmt::Display>(
    what: &str,
    text: Option<&String>,
    parse_fn: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, StoreError> {
    text.map(|t| parse(what, parse_fn(t))).transpose()
}

// ---- users ------------------------------------------------------------------------------

/// What `MemberQuery::matches_text` searches, lower-cased in Rust exactly as the domain
/// does, joined by U+001F (which no name or address can contain).
pub(crate) fn search_text(name: &PersonName, email: &EmailAddress) -> String {
    [name.first().to_lowercase(), name.last().to_lowercase(), name.full().to_lowercase(), email.normalized().to_owned()]
        .join("\u{1f}")
}

impl TryFrom<&User> for users::Model {
    type Error = StoreError;
    fn try_from(user: &User) -> Result<Self, StoreError> {
        let temporary = user.password.temporary.as_ref();
        Ok(Self {
            id: bytes(user.id.as_uuid()),
            email: user.email.as_str().to_owned(),
            email_normalized: user.email.normalized().to_owned(),
            first_name: user.name.first().to_owned(),
            last_name: user.name.last().to_owned(),
            sort_key: user.name.sort_key(),
            search_text: search_text(&user.name, &user.email),
            phone: user.phone.as_ref().map(|p| p.as_str().to_owned()),
            email_verified_at: opt_nanos(user.email_verified_at)?,
            disabled_at: match user.status {
                UserStatus::Active => None,
                UserStatus::Disabled { since } => Some(nanos(since)?),
            },
            password_hash: user.password.hash.as_ref().map(|h| h.as_str().to_owned()),
            temporary_password_hash: temporary.map(|t| t.hash.as_str().to_owned()),
            temporary_password_expires_at: temporary.map(|t| nanos(t.expires_at)).transpose()?,
            must_change_password: user.password.must_change,
            password_changed_at: opt_nanos(user.password.changed_at)?,
            created_at: nanos(user.created_at)?,
            version: stored_version(user.version)?,
        })
    }
}

impl TryFrom<users::Model> for User {
    type Error = StoreError;
    fn try_from(row: users::Model) -> Result<Self, StoreError> {
        let temporary = match (row.temporary_password_hash, row.temporary_password_expires_at) {
            (Some(hash), Some(expires_at)) => {
                Some(TemporaryPassword { hash: PasswordHash::new(hash), expires_at: instant(expires_at) })
            }
            (None, None) => None,
            _ => return Err(corrupt("a user's temporary password", "hash and expiry must be both set or both unset")),
        };
        Ok(Self {
            id: user_id(&row.id)?,
            email: parse("a user's email", EmailAddress::parse(&row.email))?,
            name: PersonName::parse(&row.first_name, &row.last_name).map_err(|errors| {
                corrupt("a user's name", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
            })?,
            phone: opt_parse("a user's phone", row.phone.as_ref(), PhoneNumber::parse)?,
            email_verified_at: row.email_verified_at.map(instant),
            status: match row.disabled_at {
                None => UserStatus::Active,
                Some(since) => UserStatus::Disabled { since: instant(since) },
            },
            password: PasswordState {
                hash: row.password_hash.map(PasswordHash::new),
                temporary,
                must_change: row.must_change_password,
                changed_at: row.password_changed_at.map(instant),
            },
            created_at: instant(row.created_at),
            version: version("a user's version", row.version)?,
        })
    }
}

// ---- organisations, roles, facilities, runs ----------------------------------------------

impl TryFrom<&Organisation> for organisations::Model {
    type Error = StoreError;
    fn try_from(org: &Organisation) -> Result<Self, StoreError> {
        Ok(Self {
            id: bytes(org.id.as_uuid()),
            slug: org.slug.as_str().to_owned(),
            name: org.name.as_str().to_owned(),
            settings: json("an organisation's settings", &org.settings)?,
            created_by: bytes(org.created_by.as_uuid()),
            created_at: nanos(org.created_at)?,
            version: stored_version(org.version)?,
        })
    }
}

impl TryFrom<organisations::Model> for Organisation {
    type Error = StoreError;
    fn try_from(row: organisations::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: org_id(&row.id)?,
            slug: parse("an organisation's slug", OrgSlug::parse(&row.slug))?,
            name: parse("an organisation's name", OrgName::parse(&row.name))?,
            settings: from_json::<OrgSettings>("an organisation's settings", &row.settings)?,
            created_by: user_id(&row.created_by)?,
            created_at: instant(row.created_at),
            version: version("an organisation's version", row.version)?,
        })
    }
}

pub(crate) fn role_row(org: OrgId, role: &Role) -> Result<roles::Model, StoreError> {
    Ok(roles::Model {
        org_id: bytes(org.as_uuid()),
        key: role.key.as_str().to_owned(),
        name: role.name.as_str().to_owned(),
        grant_json: json("a role's grant", &role.grant)?,
        built_in: role.built_in,
    })
}

impl TryFrom<roles::Model> for Role {
    type Error = StoreError;
    fn try_from(row: roles::Model) -> Result<Self, StoreError> {
        Ok(Self {
            key: parse("a role's key", RoleKey::parse(&row.key))?,
            name: parse("a role's name", RoleName::parse(&row.name))?,
            grant: from_json::<RoleGrant>("a role's grant", &row.grant_json)?,
            built_in: row.built_in,
        })
    }
}

/// The key facility names are unique by within an organisation (the domain's rule:
/// ignoring case, as Rust lower-cases; SQL's `lower()` differs between backends).
pub(crate) fn facility_name_key(name: &FacilityName) -> String {
    name.as_str().to_lowercase()
}

impl TryFrom<&Facility> for facilities::Model {
    type Error = StoreError;
    fn try_from(facility: &Facility) -> Result<Self, StoreError> {
        Ok(Self {
            org_id: bytes(facility.org.as_uuid()),
            id: bytes(facility.id.as_uuid()),
            name: facility.name.as_str().to_owned(),
            name_key: facility_name_key(&facility.name),
            created_at: nanos(facility.created_at)?,
        })
    }
}

impl TryFrom<facilities::Model> for Facility {
    type Error = StoreError;
    fn try_from(row: facilities::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: facility_id(&row.id)?,
            org: org_id(&row.org_id)?,
            name: parse("a facility's name", FacilityName::parse(&row.name))?,
            created_at: instant(row.created_at),
        })
    }
}

impl TryFrom<&RunRecord> for runs::Model {
    type Error = StoreError;
    fn try_from(run: &RunRecord) -> Result<Self, StoreError> {
        Ok(Self {
            org_id: bytes(run.org.as_uuid()),
            id: bytes(run.id.as_uuid()),
            capability: run.capability.as_str().to_owned(),
            started_at: nanos(run.started_at)?,
            finished_at: nanos(run.finished_at)?,
            outcome: json("a run's outcome", &run.outcome)?,
            counts: json("a run's counts", &run.counts)?,
            recorded_by: bytes(run.recorded_by.as_uuid()),
        })
    }
}

impl TryFrom<runs::Model> for RunRecord {
    type Error = StoreError;
    fn try_from(row: runs::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: RunId::from_uuid(uuid("a run id", &row.id)?),
            org: org_id(&row.org_id)?,
            capability: parse("a run's capability", CapabilityKey::parse(&row.capability))?,
            started_at: instant(row.started_at),
            finished_at: instant(row.finished_at),
            outcome: from_json::<RunOutcome>("a run's outcome", &row.outcome)?,
            counts: from_json::<BTreeMap<String, u64>>("a run's counts", &row.counts)?,
            recorded_by: user_id(&row.recorded_by)?,
        })
    }
}

// ---- memberships --------------------------------------------------------------------------

/// The row of a membership; `sort_key` is its account's `PersonName::sort_key` (the
/// listing order, copied from `users`).
pub(crate) fn membership_row(m: &Membership, sort_key: String) -> Result<memberships::Model, StoreError> {
    let (suspended_at, suspended_by) = match m.status {
        MembershipStatus::Active => (None, None),
        MembershipStatus::Suspended { since, by } => (Some(nanos(since)?), Some(bytes(by.as_uuid()))),
    };
    Ok(memberships::Model {
        org_id: bytes(m.org.as_uuid()),
        user_id: bytes(m.user.as_uuid()),
        role: m.role.as_str().to_owned(),
        sort_key,
        position: m.position.as_ref().map(|p| p.as_str().to_owned()),
        aide: m.aide,
        access: json("a membership's access", &m.access)?,
        suspended_at,
        suspended_by,
        expires_at: opt_nanos(m.expires_at)?,
        added_by: m.added_by.map(|u| bytes(u.as_uuid())),
        added_at: nanos(m.added_at)?,
        origin: unit_name("a membership's origin", &m.origin)?,
    })
}

/// A membership row with its facilities and alerts (child tables).
pub(crate) fn membership(
    row: memberships::Model,
    facilities: BTreeSet<FacilityId>,
    alerts: BTreeSet<AlertKind>,
) -> Result<Membership, StoreError> {
    let status = match (row.suspended_at, row.suspended_by.as_ref()) {
        (None, None) => MembershipStatus::Active,
        (Some(since), Some(by)) => MembershipStatus::Suspended { since: instant(since), by: user_id(by)? },
        _ => return Err(corrupt("a membership's suspension", "time and actor must be both set or both unset")),
    };
    Ok(Membership {
        org: org_id(&row.org_id)?,
        user: user_id(&row.user_id)?,
        role: parse("a membership's role", RoleKey::parse(&row.role))?,
        position: opt_parse("a membership's position", row.position.as_ref(), Position::parse)?,
        facilities,
        aide: row.aide,
        access: from_json::<AccessSettings>("a membership's access", &row.access)?,
        alerts,
        status,
        expires_at: row.expires_at.map(instant),
        added_by: opt_user_id(row.added_by.as_ref())?,
        added_at: instant(row.added_at),
        origin: from_unit_name::<MembershipOrigin>("a membership's origin", &row.origin)?,
    })
}

pub(crate) fn alert_kind(text: &str) -> Result<AlertKind, StoreError> {
    parse("a membership's alert", AlertKind::parse(text))
}

// ---- invitations and join requests ---------------------------------------------------------

pub(crate) const PENDING: &str = "pending";

impl TryFrom<&Invitation> for invitations::Model {
    type Error = StoreError;
    fn try_from(i: &Invitation) -> Result<Self, StoreError> {
        let (state, state_by, state_at) = match i.state {
            InvitationState::Pending => (PENDING, None, None),
            InvitationState::Accepted { by, at } => ("accepted", Some(bytes(by.as_uuid())), Some(nanos(at)?)),
            InvitationState::Revoked { by, at } => ("revoked", Some(bytes(by.as_uuid())), Some(nanos(at)?)),
            InvitationState::Declined { at } => ("declined", None, Some(nanos(at)?)),
        };
        Ok(Self {
            org_id: bytes(i.org.as_uuid()),
            id: bytes(i.id.as_uuid()),
            email: i.email.as_str().to_owned(),
            email_normalized: i.email.normalized().to_owned(),
            role: i.role.as_str().to_owned(),
            token_hash: hash_bytes(&i.token_hash),
            invited_by: bytes(i.invited_by.as_uuid()),
            created_at: nanos(i.created_at)?,
            expires_at: nanos(i.expires_at)?,
            resent: i64::from(i.resent),
            state: state.to_owned(),
            state_by,
            state_at,
        })
    }
}

impl TryFrom<invitations::Model> for Invitation {
    type Error = StoreError;
    fn try_from(row: invitations::Model) -> Result<Self, StoreError> {
        let by = opt_user_id(row.state_by.as_ref())?;
        let at = row.state_at.map(instant);
        let state = match (row.state.as_str(), by, at) {
            (PENDING, None, None) => InvitationState::Pending,
            ("accepted", Some(by), Some(at)) => InvitationState::Accepted { by, at },
            ("revoked", Some(by), Some(at)) => InvitationState::Revoked { by, at },
            ("declined", None, Some(at)) => InvitationState::Declined { at },
            (state, ..) => return Err(corrupt("an invitation's state", format!("{state} is inconsistent"))),
        };
        Ok(Self {
            id: InvitationId::from_uuid(uuid("an invitation id", &row.id)?),
            org: org_id(&row.org_id)?,
            email: parse("an invitation's email", EmailAddress::parse(&row.email))?,
            role: parse("an invitation's role", RoleKey::parse(&row.role))?,
            token_hash: token_hash(&row.token_hash)?,
            invited_by: user_id(&row.invited_by)?,
            created_at: instant(row.created_at),
            expires_at: instant(row.expires_at),
            resent: parse("an invitation's resend count", u32::try_from(row.resent))?,
            state,
        })
    }
}

impl TryFrom<&JoinRequest> for join_requests::Model {
    type Error = StoreError;
    fn try_from(r: &JoinRequest) -> Result<Self, StoreError> {
        let mut row = Self {
            org_id: bytes(r.org.as_uuid()),
            id: bytes(r.id.as_uuid()),
            user_id: bytes(r.user.as_uuid()),
            message: r.message.as_ref().map(|n| n.as_str().to_owned()),
            created_at: nanos(r.created_at)?,
            state: PENDING.to_owned(),
            decided_by: None,
            decided_at: None,
            approved_role: None,
            reason: None,
        };
        match &r.state {
            JoinRequestState::Pending => {}
            JoinRequestState::Approved { by, at, role } => {
                "approved".clone_into(&mut row.state);
                row.decided_by = by.map(|u| bytes(u.as_uuid()));
                row.decided_at = Some(nanos(*at)?);
                row.approved_role = Some(role.as_str().to_owned());
            }
            JoinRequestState::Rejected { by, at, reason } => {
                "rejected".clone_into(&mut row.state);
                row.decided_by = Some(bytes(by.as_uuid()));
                row.decided_at = Some(nanos(*at)?);
                row.reason = reason.as_ref().map(|n| n.as_str().to_owned());
            }
            JoinRequestState::Withdrawn { at } => {
                "withdrawn".clone_into(&mut row.state);
                row.decided_at = Some(nanos(*at)?);
            }
        }
        Ok(row)
    }
}

impl TryFrom<join_requests::Model> for JoinRequest {
    type Error = StoreError;
    fn try_from(row: join_requests::Model) -> Result<Self, StoreError> {
        let by = opt_user_id(row.decided_by.as_ref())?;
        let at = row.decided_at.map(instant);
        let reason = opt_parse("a join request's reason", row.reason.as_ref(), Note::parse)?;
        let state = match (row.state.as_str(), at) {
            (PENDING, None) => JoinRequestState::Pending,
            ("approved", Some(at)) => {
                let role = row.approved_role.as_deref().ok_or_else(|| corrupt("a join request", "no approved role"))?;
                JoinRequestState::Approved { by, at, role: parse("a join request's role", RoleKey::parse(role))? }
            }
            ("rejected", Some(at)) => JoinRequestState::Rejected {
                by: by.ok_or_else(|| corrupt("a join request", "rejected by nobody"))?,
                at,
                reason,
            },
            ("withdrawn", Some(at)) => JoinRequestState::Withdrawn { at },
            (state, _) => return Err(corrupt("a join request's state", format!("{state} is inconsistent"))),
        };
        Ok(Self {
            id: JoinRequestId::from_uuid(uuid("a join request id", &row.id)?),
            org: org_id(&row.org_id)?,
            user: user_id(&row.user_id)?,
            message: opt_parse("a join request's message", row.message.as_ref(), Note::parse)?,
            created_at: instant(row.created_at),
            state,
        })
    }
}

// ---- tokens and sessions ---------------------------------------------------------------------

pub(crate) const RESET_PASSWORD: &str = "reset_password";
const VERIFY_EMAIL: &str = "verify_email";

impl TryFrom<&OneTimeToken> for one_time_tokens::Model {
    type Error = StoreError;
    fn try_from(t: &OneTimeToken) -> Result<Self, StoreError> {
        let (purpose, email) = match &t.purpose {
            TokenPurpose::VerifyEmail { email } => (VERIFY_EMAIL, Some(email.as_str().to_owned())),
            TokenPurpose::ResetPassword => (RESET_PASSWORD, None),
        };
        Ok(Self {
            hash: hash_bytes(&t.hash),
            user_id: bytes(t.user.as_uuid()),
            purpose: purpose.to_owned(),
            email,
            created_at: nanos(t.created_at)?,
            expires_at: nanos(t.expires_at)?,
            used_at: opt_nanos(t.used_at)?,
        })
    }
}

impl TryFrom<one_time_tokens::Model> for OneTimeToken {
    type Error = StoreError;
    fn try_from(row: one_time_tokens::Model) -> Result<Self, StoreError> {
        let purpose = match (row.purpose.as_str(), row.email.as_deref()) {
            (VERIFY_EMAIL, Some(email)) => {
                TokenPurpose::VerifyEmail { email: parse("a token's email", EmailAddress::parse(email))? }
            }
            (RESET_PASSWORD, None) => TokenPurpose::ResetPassword,
            (purpose, _) => return Err(corrupt("a token's purpose", format!("{purpose} is inconsistent"))),
        };
        Ok(Self {
            hash: token_hash(&row.hash)?,
            user: user_id(&row.user_id)?,
            purpose,
            created_at: instant(row.created_at),
            expires_at: instant(row.expires_at),
            used_at: row.used_at.map(instant),
        })
    }
}

impl TryFrom<&Session> for sessions::Model {
    type Error = StoreError;
    fn try_from(s: &Session) -> Result<Self, StoreError> {
        Ok(Self {
            token_hash: hash_bytes(&s.token_hash),
            id: bytes(s.id.as_uuid()),
            user_id: bytes(s.user.as_uuid()),
            created_at: nanos(s.created_at)?,
            last_seen_at: nanos(s.last_seen_at)?,
            expires_at: nanos(s.expires_at)?,
            password_change_required: s.password_change_required,
            revoked_at: opt_nanos(s.revoked_at)?,
        })
    }
}

impl TryFrom<sessions::Model> for Session {
    type Error = StoreError;
    fn try_from(row: sessions::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: SessionId::from_uuid(uuid("a session id", &row.id)?),
            user: user_id(&row.user_id)?,
            token_hash: token_hash(&row.token_hash)?,
            created_at: instant(row.created_at),
            last_seen_at: instant(row.last_seen_at),
            expires_at: instant(row.expires_at),
            password_change_required: row.password_change_required,
            revoked_at: row.revoked_at.map(instant),
        })
    }
}

// ---- audit ------------------------------------------------------------------------------------

/// The audit row for an entry: organisation-scoped ones go to `audit`, the others to
/// `account_audit`.
pub(crate) enum AuditRow {
    Org(audit::Model),
    Account(account_audit::Model),
}

impl TryFrom<&AuditEntry> for AuditRow {
    type Error = StoreError;
    fn try_from(entry: &AuditEntry) -> Result<Self, StoreError> {
        let id = bytes(entry.id.as_uuid());
        let actor = entry.actor.map(|u| bytes(u.as_uuid()));
        let action = unit_name("an audit action", &entry.action)?;
        let target = json("an audit target", &entry.target)?;
        let at = nanos(entry.at)?;
        let changes = json("an audit entry's changes", &entry.changes)?;
        Ok(match entry.org {
            Some(org) => {
                Self::Org(audit::Model { org_id: bytes(org.as_uuid()), id, actor, action, target, at, changes })
            }
            None => Self::Account(account_audit::Model { id, actor, action, target, at, changes }),
        })
    }
}

impl TryFrom<audit::Model> for AuditEntry {
    type Error = StoreError;
    fn try_from(row: audit::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: AuditId::from_uuid(uuid("an audit id", &row.id)?),
            org: Some(org_id(&row.org_id)?),
            actor: opt_user_id(row.actor.as_ref())?,
            action: from_unit_name::<AuditAction>("an audit action", &row.action)?,
            target: from_json::<AuditTarget>("an audit target", &row.target)?,
            at: instant(row.at),
            changes: from_json::<Vec<FieldChange>>("an audit entry's changes", &row.changes)?,
        })
    }
}

// ---- the outbox -------------------------------------------------------------------------------

/// A [`Notification`] as stored in the outbox's `payload` column. The domain does not
/// serialise notifications (they carry secrets: a `Password` has no `Serialize`), so the
/// store owns this representation; the secret stays only until the message is sent.
#[derive(Serialize, Deserialize)]
#[serde(tag = "template", rename_all = "snake_case")]
enum StoredNotification {
    Invitation {
        invitation: InvitationId,
        org_name: String,
        invited_by: String,
        role_name: String,
        token: String,
        expires_at: DateTime<Utc>,
    },
    AccountCreated {
        org_name: String,
        created_by: String,
        temporary_password: String,
        expires_at: DateTime<Utc>,
    },
    AdministratorAppointed {
        org_name: String,
        set_password: Option<StoredSetPasswordLink>,
    },
    SignUpAttemptWithExistingAccount,
    EmailChangeRequested {
        new_email: EmailAddress,
    },
    EmailChanged {
        new_email: EmailAddress,
    },
    VerifyEmail {
        token: String,
        expires_at: DateTime<Utc>,
    },
    PasswordReset {
        token: String,
        expires_at: DateTime<Utc>,
    },
    PasswordChanged {
        at: DateTime<Utc>,
    },
    JoinRequestReceived {
        request: JoinRequestId,
        org_name: String,
        requester_name: String,
        requester_email: EmailAddress,
        message: Option<Note>,
    },
    JoinRequestApproved {
        org_name: String,
        role_name: String,
    },
    JoinRequestRejected {
        org_name: String,
        reason: Option<Note>,
    },
    DeliveryFailed {
        original_recipient: EmailAddress,
        what: String,
        error: String,
    },
}

/// A [`SetPasswordLink`] in a stored notification.
#[derive(Serialize, Deserialize)]
struct StoredSetPasswordLink {
    token: String,
    expires_at: DateTime<Utc>,
}

impl From<&Notification> for StoredNotification {
    fn from(n: &Notification) -> Self {
        match n.clone() {
            Notification::Invitation { invitation, org_name, invited_by, role_name, token, expires_at } => {
                Self::Invitation {
                    invitation,
                    org_name,
                    invited_by,
                    role_name,
                    token: token.expose().to_owned(),
                    expires_at,
                }
            }
            Notification::AccountCreated { org_name, created_by, temporary_password, expires_at } => {
                Self::AccountCreated {
                    org_name,
                    created_by,
                    temporary_password: temporary_password.expose().to_owned(),
                    expires_at,
                }
            }
            Notification::AdministratorAppointed { org_name, set_password } => Self::AdministratorAppointed {
                org_name,
                set_password: set_password.map(|link| StoredSetPasswordLink {
                    token: link.token.expose().to_owned(),
                    expires_at: link.expires_at,
                }),
            },
            Notification::SignUpAttemptWithExistingAccount => Self::SignUpAttemptWithExistingAccount,
            Notification::EmailChangeRequested { new_email } => Self::EmailChangeRequested { new_email },
            Notification::EmailChanged { new_email } => Self::EmailChanged { new_email },
            Notification::VerifyEmail { token, expires_at } => {
                Self::VerifyEmail { token: token.expose().to_owned(), expires_at }
            }
            Notification::PasswordReset { token, expires_at } => {
                Self::PasswordReset { token: token.expose().to_owned(), expires_at }
            }
            Notification::PasswordChanged { at } => Self::PasswordChanged { at },
            Notification::JoinRequestReceived { request, org_name, requester_name, requester_email, message } => {
                Self::JoinRequestReceived { request, org_name, requester_name, requester_email, message }
            }
            Notification::JoinRequestApproved { org_name, role_name } => {
                Self::JoinRequestApproved { org_name, role_name }
            }
            Notification::JoinRequestRejected { org_name, reason } => Self::JoinRequestRejected { org_name, reason },
            Notification::DeliveryFailed { original_recipient, what, error } => {
                Self::DeliveryFailed { original_recipient, what, error }
            }
        }
    }
}

fn token(text: &str) -> Result<Token, StoreError> {
    Token::parse(text).ok_or_else(|| corrupt("an outbox token", "is not a token"))
}

impl TryFrom<StoredNotification> for Notification {
    type Error = StoreError;
    fn try_from(n: StoredNotification) -> Result<Self, StoreError> {
        Ok(match n {
            StoredNotification::Invitation { invitation, org_name, invited_by, role_name, token: t, expires_at } => {
                Self::Invitation { invitation, org_name, invited_by, role_name, token: token(&t)?, expires_at }
            }
            StoredNotification::AccountCreated { org_name, created_by, temporary_password, expires_at } => {
                Self::AccountCreated {
                    org_name,
                    created_by,
                    temporary_password: Password::new(temporary_password),
                    expires_at,
                }
            }
            StoredNotification::AdministratorAppointed { org_name, set_password } => Self::AdministratorAppointed {
                org_name,
                set_password: set_password
                    .map(|link| {
                        Ok::<_, StoreError>(SetPasswordLink { token: token(&link.token)?, expires_at: link.expires_at })
                    })
                    .transpose()?,
            },
            StoredNotification::SignUpAttemptWithExistingAccount => Self::SignUpAttemptWithExistingAccount,
            StoredNotification::EmailChangeRequested { new_email } => Self::EmailChangeRequested { new_email },
            StoredNotification::EmailChanged { new_email } => Self::EmailChanged { new_email },
            StoredNotification::VerifyEmail { token: t, expires_at } => {
                Self::VerifyEmail { token: token(&t)?, expires_at }
            }
            StoredNotification::PasswordReset { token: t, expires_at } => {
                Self::PasswordReset { token: token(&t)?, expires_at }
            }
            StoredNotification::PasswordChanged { at } => Self::PasswordChanged { at },
            StoredNotification::JoinRequestReceived { request, org_name, requester_name, requester_email, message } => {
                Self::JoinRequestReceived { request, org_name, requester_name, requester_email, message }
            }
            StoredNotification::JoinRequestApproved { org_name, role_name } => {
                Self::JoinRequestApproved { org_name, role_name }
            }
            StoredNotification::JoinRequestRejected { org_name, reason } => {
                Self::JoinRequestRejected { org_name, reason }
            }
            StoredNotification::DeliveryFailed { original_recipient, what, error } => {
                Self::DeliveryFailed { original_recipient, what, error }
            }
        })
    }
}

impl TryFrom<&OutboundEmail> for outbox::Model {
    type Error = StoreError;
    fn try_from(email: &OutboundEmail) -> Result<Self, StoreError> {
        Ok(Self {
            id: bytes(email.id.as_uuid()),
            org_id: email.org.map(|o| bytes(o.as_uuid())),
            topic: email.topic.as_ref().map(|t| t.as_str().to_owned()),
            to_email: email.to.as_str().to_owned(),
            template: email.notification.template().to_owned(),
            queued_at: nanos(email.queued_at)?,
            payload: Some(json("an outbox payload", &StoredNotification::from(&email.notification))?),
            attempts: 0,
            next_attempt_at: None,
            leased_until: None,
            last_error: None,
            sent_at: None,
            dead: false,
            secret: email.notification.carries_secret(),
        })
    }
}

impl TryFrom<outbox::Model> for UndeliveredEmail {
    type Error = StoreError;
    fn try_from(row: outbox::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: MessageId::from_uuid(uuid("a message id", &row.id)?),
            to: parse("an outbox recipient", EmailAddress::parse(&row.to_email))?,
            template: row.template,
            queued_at: instant(row.queued_at),
            attempts: u32::try_from(row.attempts).map_err(|error| corrupt("attempts", error))?,
            last_error: row.last_error,
        })
    }
}

/// The message in an outbox row, if its payload is still there.
pub(crate) fn outbound_email(row: &outbox::Model) -> Result<Option<OutboundEmail>, StoreError> {
    let Some(payload) = row.payload.as_deref() else { return Ok(None) };
    let notification = Notification::try_from(from_json::<StoredNotification>("an outbox payload", payload)?)?;
    Ok(Some(OutboundEmail {
        id: MessageId::from_uuid(uuid("a message id", &row.id)?),
        org: row.org_id.as_deref().map(org_id).transpose()?,
        topic: opt_parse("an outbox topic", row.topic.as_ref(), Topic::parse)?,
        to: parse("an outbox recipient", EmailAddress::parse(&row.to_email))?,
        notification,
        queued_at: instant(row.queued_at),
    }))
}
