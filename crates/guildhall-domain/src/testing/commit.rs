//! Applying a change set to a copy of the state: all of it, or an error and nothing.

use std::collections::BTreeSet;

use crate::ids::{OrgId, UserId};
use crate::invitation::InvitationState;
use crate::join_request::JoinRequest;
use crate::membership::Membership;
use crate::ports::{Change, ChangeSet, CommitError, Duplicate, Precondition};
use crate::role::Role;
use crate::token::{TokenHash, TokenPurpose};

use super::store::{OutboxRecord, StoreSnapshot, store_error};

/// A change the caller should never have made (a missing row, a reused id).
fn bug(message: impl Into<String>) -> CommitError {
    CommitError::Store(store_error(message))
}

/// Checks `changes`' preconditions against `state`, then applies its changes, audit
/// entries and emails to a copy, which it returns. `state` itself is never touched.
///
/// # Errors
/// [`CommitError::Conflict`] when a precondition fails (a missing row included),
/// [`CommitError::Duplicate`] when a uniqueness rule would break, and
/// [`CommitError::Store`] for a change that refers to a missing row or reuses an id.
pub(super) fn apply(state: &StoreSnapshot, changes: &ChangeSet) -> Result<StoreSnapshot, CommitError> {
    let (orgs_to_bump, users_to_bump) = check_preconditions(state, &changes.preconditions)?;
    let mut next = state.clone();
    for change in &changes.changes {
        apply_change(&mut next, change)?;
    }
    for org in orgs_to_bump {
        let org = next.organisations.get_mut(&org).ok_or_else(|| bug("an organisation vanished mid-commit"))?;
        org.version += 1;
    }
    for user in users_to_bump {
        let user = next.users.get_mut(&user).ok_or_else(|| bug("an account vanished mid-commit"))?;
        user.version += 1;
    }
    for entry in &changes.audit {
        if next.audit.iter().any(|existing| existing.id == entry.id) {
            return Err(bug(format!("audit entry {} already exists", entry.id)));
        }
        if let Some(org) = entry.org {
            require_org(&next, org)?;
        }
        next.audit.push(entry.clone());
    }
    for email in &changes.emails {
        if next.outbox.iter().any(|existing| existing.id == email.id) {
            return Err(bug(format!("message {} already exists", email.id)));
        }
        next.outbox.push(OutboxRecord::queued(email.clone()));
    }
    Ok(next)
}

/// The organisations and accounts whose version the commit increments (once each).
type Bumps = (BTreeSet<OrgId>, BTreeSet<UserId>);

fn check_preconditions(state: &StoreSnapshot, preconditions: &[Precondition]) -> Result<Bumps, CommitError> {
    let mut bumps: Bumps = (BTreeSet::new(), BTreeSet::new());
    for precondition in preconditions {
        let holds = match precondition {
            Precondition::OrgVersion { org, version } => {
                bumps.0.insert(*org);
                state.organisations.get(org).is_some_and(|o| o.version == *version)
            }
            Precondition::OrgUnchanged { org, version } => {
                state.organisations.get(org).is_some_and(|o| o.version == *version)
            }
            Precondition::UserVersion { user, version } => {
                bumps.1.insert(*user);
                state.users.get(user).is_some_and(|u| u.version == *version)
            }
            Precondition::InvitationPending { org, id, token_hash } => state.invitations.get(id).is_some_and(|i| {
                i.org == *org && matches!(i.state, InvitationState::Pending) && i.token_hash == *token_hash
            }),
            Precondition::JoinRequestPending { org, id } => {
                state.join_requests.get(id).is_some_and(|r| r.org == *org && r.is_pending())
            }
            Precondition::NoPendingInvitation { org, email, at } => !state.invitations.values().any(|i| {
                i.org == *org
                    && i.email.normalized() == email.normalized()
                    && matches!(i.state, InvitationState::Pending)
                    && i.expires_at > *at
            }),
            Precondition::TokenUnused { hash } => state.tokens.get(hash).is_some_and(|t| t.used_at.is_none()),
            Precondition::UserUnchanged { user, version } => {
                state.users.get(user).is_some_and(|u| u.version == *version)
            }
            Precondition::RoleUnheld { org, role } => {
                !state.memberships.values().any(|m| m.org == *org && m.role == *role)
            }
        };
        if !holds {
            return Err(CommitError::Conflict);
        }
    }
    Ok(bumps)
}

fn require_org(state: &StoreSnapshot, org: OrgId) -> Result<(), CommitError> {
    if state.organisations.contains_key(&org) { Ok(()) } else { Err(bug(format!("organisation {org} does not exist"))) }
}

/// A membership may name only facilities of its own organisation (a foreign key in SQL).
fn require_facilities(state: &StoreSnapshot, membership: &Membership) -> Result<(), CommitError> {
    match membership.facilities.iter().find(|f| state.facilities.get(f).is_none_or(|found| found.org != membership.org))
    {
        Some(facility) => Err(bug(format!("facility {facility} is not a facility of organisation {}", membership.org))),
        None => Ok(()),
    }
}

fn require_user(state: &StoreSnapshot, user: UserId) -> Result<(), CommitError> {
    if state.users.contains_key(&user) { Ok(()) } else { Err(bug(format!("account {user} does not exist"))) }
}

fn missing(what: &str) -> CommitError {
    bug(format!("{what} does not exist (a change may only update or delete an existing row)"))
}

/// The partial unique index on pending join requests: at most one per (org, user).
fn check_one_pending_request(state: &StoreSnapshot, request: &JoinRequest) -> Result<(), CommitError> {
    let clash = request.is_pending()
        && state
            .join_requests
            .values()
            .any(|r| r.id != request.id && r.org == request.org && r.user == request.user && r.is_pending());
    if clash { Err(CommitError::Duplicate(Duplicate::PendingJoinRequest)) } else { Ok(()) }
}

fn check_facility_name(state: &StoreSnapshot, facility: &crate::org::Facility) -> Result<(), CommitError> {
    let name = facility.name.as_str().to_lowercase();
    let clash = state
        .facilities
        .values()
        .any(|f| f.id != facility.id && f.org == facility.org && f.name.as_str().to_lowercase() == name);
    if clash { Err(CommitError::Duplicate(Duplicate::FacilityName)) } else { Ok(()) }
}

fn session_mut<'a>(
    state: &'a mut StoreSnapshot,
    hash: &TokenHash,
) -> Result<&'a mut crate::token::Session, CommitError> {
    state.sessions.get_mut(hash).ok_or_else(|| missing("the session"))
}

fn apply_change(state: &mut StoreSnapshot, change: &Change) -> Result<(), CommitError> {
    match change {
        Change::InsertUser(user) => {
            if state.users.contains_key(&user.id) {
                return Err(bug(format!("account {} already exists", user.id)));
            }
            if state.users.values().any(|u| u.email == user.email) {
                return Err(CommitError::Duplicate(Duplicate::Email));
            }
            state.users.insert(user.id, user.clone());
        }
        Change::UpdateUser(user) => {
            let version = state.users.get(&user.id).ok_or_else(|| missing("the account"))?.version;
            if state.users.values().any(|u| u.id != user.id && u.email == user.email) {
                return Err(CommitError::Duplicate(Duplicate::Email));
            }
            state.users.insert(user.id, crate::user::User { version, ..user.clone() });
        }
        Change::InsertOrganisation(org) => {
            if state.organisations.contains_key(&org.id) {
                return Err(bug(format!("organisation {} already exists", org.id)));
            }
            require_user(state, org.created_by)?;
            if state.organisations.values().any(|o| o.slug == org.slug) {
                return Err(CommitError::Duplicate(Duplicate::Slug));
            }
            state.organisations.insert(org.id, org.clone());
        }
        Change::UpdateOrganisation(org) => {
            if !state.organisations.contains_key(&org.id) {
                return Err(missing("the organisation"));
            }
            if state.organisations.values().any(|o| o.id != org.id && o.slug == org.slug) {
                return Err(CommitError::Duplicate(Duplicate::Slug));
            }
            let stored = state.organisations.get_mut(&org.id).ok_or_else(|| missing("the organisation"))?;
            stored.slug = org.slug.clone();
            stored.name = org.name.clone();
            stored.settings = org.settings.clone();
        }
        Change::PutRole { org, role } => {
            require_org(state, *org)?;
            if Role::builtins().iter().any(|builtin| builtin.key == role.key) {
                return Err(CommitError::Duplicate(Duplicate::RoleKey));
            }
            state.roles.insert((*org, role.key.clone()), role.clone());
        }
        Change::DeleteRole { org, key } => {
            if state.roles.remove(&(*org, key.clone())).is_none() {
                return Err(missing("the custom role"));
            }
            if state.memberships.values().any(|m| m.org == *org && &m.role == key) {
                return Err(bug(format!("role {key} is still held by members; reassign them first")));
            }
        }
        Change::InsertFacility(facility) => {
            require_org(state, facility.org)?;
            if state.facilities.contains_key(&facility.id) {
                return Err(bug(format!("facility {} already exists", facility.id)));
            }
            check_facility_name(state, facility)?;
            state.facilities.insert(facility.id, facility.clone());
        }
        Change::UpdateFacility(facility) => {
            if state.facilities.get(&facility.id).is_none_or(|f| f.org != facility.org) {
                return Err(missing("the facility"));
            }
            check_facility_name(state, facility)?;
            if let Some(stored) = state.facilities.get_mut(&facility.id) {
                stored.name = facility.name.clone();
            }
        }
        Change::DeleteFacility { org, id } => {
            if state.facilities.get(id).is_none_or(|f| f.org != *org) {
                return Err(missing("the facility"));
            }
            state.facilities.remove(id);
            for membership in state.memberships.values_mut().filter(|m| m.org == *org) {
                membership.facilities.remove(id);
            }
        }
        Change::InsertMembership(membership) => {
            require_org(state, membership.org)?;
            require_user(state, membership.user)?;
            if state.memberships.contains_key(&(membership.org, membership.user)) {
                return Err(CommitError::Duplicate(Duplicate::Membership));
            }
            require_facilities(state, membership)?;
            state.memberships.insert((membership.org, membership.user), membership.clone());
        }
        Change::UpdateMembership(membership) => {
            let stored = state
                .memberships
                .get_mut(&(membership.org, membership.user))
                .ok_or_else(|| missing("the membership"))?;
            *stored = membership.clone();
            require_facilities(state, membership)?;
        }
        Change::ReassignRole { org, from, to } => {
            for membership in state.memberships.values_mut().filter(|m| m.org == *org && &m.role == from) {
                membership.role = to.clone();
            }
        }
        Change::DeleteMembership { org, user } => {
            state.memberships.remove(&(*org, *user)).ok_or_else(|| missing("the membership"))?;
        }
        Change::InsertInvitation(invitation) => {
            require_org(state, invitation.org)?;
            require_user(state, invitation.invited_by)?;
            if state.invitations.contains_key(&invitation.id) {
                return Err(bug(format!("invitation {} already exists", invitation.id)));
            }
            state.invitations.insert(invitation.id, invitation.clone());
        }
        Change::UpdateInvitation(invitation) => {
            if state.invitations.get(&invitation.id).is_none_or(|i| i.org != invitation.org) {
                return Err(missing("the invitation"));
            }
            state.invitations.insert(invitation.id, invitation.clone());
        }
        Change::InsertJoinRequest(request) => {
            require_org(state, request.org)?;
            require_user(state, request.user)?;
            if state.join_requests.contains_key(&request.id) {
                return Err(bug(format!("join request {} already exists", request.id)));
            }
            check_one_pending_request(state, request)?;
            state.join_requests.insert(request.id, request.clone());
        }
        Change::UpdateJoinRequest(request) => {
            if state.join_requests.get(&request.id).is_none_or(|r| r.org != request.org || r.user != request.user) {
                return Err(missing("the join request"));
            }
            check_one_pending_request(state, request)?;
            state.join_requests.insert(request.id, request.clone());
        }
        Change::InsertToken(token) => {
            require_user(state, token.user)?;
            if state.tokens.contains_key(&token.hash) {
                return Err(bug("a one-time token with this hash already exists"));
            }
            state.tokens.insert(token.hash, token.clone());
        }
        Change::ConsumeToken { hash, at } => {
            let token = state.tokens.get_mut(hash).ok_or_else(|| missing("the one-time token"))?;
            token.used_at = Some(*at);
        }
        Change::ExpireTokens { user, reset, at } => {
            for token in state.tokens.values_mut().filter(|t| t.user == *user && t.used_at.is_none()) {
                if matches!(token.purpose, TokenPurpose::ResetPassword) == *reset {
                    token.used_at = Some(*at);
                }
            }
        }
        Change::InsertSession(session) => {
            require_user(state, session.user)?;
            if state.sessions.contains_key(&session.token_hash) {
                return Err(bug("a session with this token hash already exists"));
            }
            if state.sessions.values().any(|s| s.id == session.id) {
                return Err(bug(format!("session {} already exists", session.id)));
            }
            state.sessions.insert(session.token_hash, session.clone());
        }
        Change::TouchSession { hash, at } => session_mut(state, hash)?.last_seen_at = *at,
        Change::UnrestrictSession { hash } => session_mut(state, hash)?.password_change_required = false,
        Change::RevokeSession { hash, at } => {
            // Revoking twice keeps the first time.
            let session = session_mut(state, hash)?;
            session.revoked_at = session.revoked_at.or(Some(*at));
        }
        Change::RevokeSessionsOf { user, except, at } => {
            for session in state.sessions.values_mut().filter(|s| s.user == *user && s.revoked_at.is_none()) {
                if except.as_ref() != Some(&session.token_hash) {
                    session.revoked_at = Some(*at);
                }
            }
        }
        Change::InsertRun(run) => {
            require_org(state, run.org)?;
            if state.runs.iter().any(|r| r.id == run.id) {
                return Err(bug(format!("run {} already exists", run.id)));
            }
            state.runs.push(run.clone());
        }
    }
    Ok(())
}
