//! The store semantics the SQL stores must share, and the fakes' own promises.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::audit::{AuditAction, AuditEntry, AuditTarget};
use crate::error::StoreError;
use crate::ids::{AuditId, FacilityId, InvitationId, JoinRequestId, MessageId, OrgId, RunId, SessionId, UserId};
use crate::invitation::{Invitation, InvitationState};
use crate::join_request::{JoinRequest, JoinRequestState};
use crate::membership::{MemberState, Membership, MembershipStatus};
use crate::notification::{Notification, OutboundEmail};
use crate::org::{Facility, Organisation, RunOutcome, RunRecord};
use crate::password::{Password, PasswordPolicy};
use crate::ports::{
    AuditLog, Change, ChangeSet, Clock, CommitError, DeliveryFailure, Duplicate, IdGenerator, InvitationRepository,
    JoinRequestRepository, MembershipRepository, OrganisationRepository, Outbox, PasswordHasher, Precondition,
    TokenGenerator, TokenRepository, UnitOfWork, UserRepository,
};
use crate::query::{MemberQuery, PageRequest};
use crate::role::{Role, RoleGrant, builtin};
use crate::token::{OneTimeToken, Session, Token, TokenHash, TokenPurpose};
use crate::user::User;
use crate::values::{CapabilityKey, EmailAddress, FacilityName, OrgName, RoleKey, RoleName};

struct World {
    kit: TestKit,
    ann: User,
    org: Organisation,
}

async fn world() -> World {
    let kit = TestKit::new();
    let ann = kit.seed_user("ann@example.com", true).await.unwrap();
    let org = kit.seed_org("acme-physio", ann.id).await.unwrap();
    World { kit, ann, org }
}

fn address(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

impl World {
    fn now(&self) -> DateTime<Utc> {
        self.kit.clock.now()
    }

    fn id(&self) -> uuid::Uuid {
        self.kit.ids.generate()
    }

    fn token_hash(&self) -> TokenHash {
        Token::from_secret(&self.kit.tokens.generate()).hash()
    }

    fn audit_entry(&self, org: OrgId) -> AuditEntry {
        AuditEntry {
            id: AuditId::from_uuid(self.id()),
            org: Some(org),
            actor: Some(self.ann.id),
            action: AuditAction::MemberUpdated,
            target: AuditTarget::User(self.ann.id),
            at: self.now(),
            changes: Vec::new(),
        }
    }

    fn email(&self, to: &EmailAddress, notification: Notification) -> OutboundEmail {
        OutboundEmail {
            id: MessageId::from_uuid(self.id()),
            org: None,
            topic: None,
            to: to.clone(),
            notification,
            queued_at: self.now(),
        }
    }

    fn reset_email(&self, to: &EmailAddress) -> OutboundEmail {
        let token = Token::from_secret(&self.kit.tokens.generate());
        self.email(to, Notification::PasswordReset { token, expires_at: self.now() + Duration::hours(1) })
    }

    fn notice_email(&self, to: &EmailAddress) -> OutboundEmail {
        self.email(to, Notification::PasswordChanged { at: self.now() })
    }

    fn new_user(&self, email: &str) -> User {
        User { id: UserId::from_uuid(self.id()), email: address(email), version: 0, ..self.ann.clone() }
    }

    fn session(&self, user: UserId) -> Session {
        Session {
            id: SessionId::from_uuid(self.id()),
            user,
            token_hash: self.token_hash(),
            created_at: self.now(),
            last_seen_at: self.now(),
            expires_at: self.now() + Duration::days(14),
            password_change_required: false,
            revoked_at: None,
        }
    }

    fn one_time_token(&self, user: UserId, purpose: TokenPurpose) -> OneTimeToken {
        OneTimeToken {
            hash: self.token_hash(),
            user,
            purpose,
            created_at: self.now(),
            expires_at: self.now() + Duration::hours(1),
            used_at: None,
        }
    }

    fn facility(&self, org: OrgId, name: &str) -> Facility {
        Facility {
            id: FacilityId::from_uuid(self.id()),
            org,
            name: FacilityName::parse(name).unwrap(),
            created_at: self.now(),
        }
    }

    fn join_request(&self, user: UserId) -> JoinRequest {
        JoinRequest {
            id: JoinRequestId::from_uuid(self.id()),
            org: self.org.id,
            user,
            message: None,
            created_at: self.now(),
            state: JoinRequestState::Pending,
        }
    }

    async fn commit(&self, changes: ChangeSet) -> Result<(), CommitError> {
        self.kit.store.commit(changes).await
    }

    async fn commit_changes(&self, changes: Vec<Change>) -> Result<(), CommitError> {
        self.commit(ChangeSet { changes, ..ChangeSet::new() }).await
    }

    async fn org_version(&self) -> u64 {
        self.kit.store.organisation(self.org.id).await.unwrap().unwrap().version
    }

    async fn membership(&self, user: UserId) -> Membership {
        self.kit.store.membership(self.org.id, user).await.unwrap().unwrap()
    }
}

fn custom_role(key: &str) -> Role {
    Role {
        key: RoleKey::parse(key).unwrap(),
        name: RoleName::parse("Front desk").unwrap(),
        grant: RoleGrant::Only(BTreeSet::new()),
        built_in: false,
    }
}

// ---- atomicity -------------------------------------------------------------------------

#[tokio::test]
async fn a_change_set_whose_precondition_fails_writes_nothing_not_even_audit_or_email() {
    let w = world().await;
    let (before, emails_before, commits_before) =
        (w.kit.store.snapshot(), w.kit.store.emails(), w.kit.store.commit_count());
    let mut demoted = w.membership(w.ann.id).await;
    demoted.role = builtin::USER;
    let mut changes = ChangeSet::new();
    changes
        .require(Precondition::OrgVersion { org: w.org.id, version: 7 })
        .push(Change::InsertUser(w.new_user("carol@example.com")))
        .push(Change::UpdateMembership(demoted))
        .audit(w.audit_entry(w.org.id))
        .send(w.reset_email(&w.ann.email));

    assert!(matches!(w.commit(changes).await, Err(CommitError::Conflict)));
    assert_eq!(w.kit.store.snapshot(), before);
    assert_eq!(w.kit.store.emails(), emails_before);
    assert!(w.kit.store.audit().is_empty());
    assert_eq!(w.kit.store.commit_count(), commits_before);
    assert_eq!(w.kit.store.commit_attempts(), commits_before + 1);
}

#[tokio::test]
async fn a_duplicate_anywhere_in_the_change_set_undoes_the_changes_before_it() {
    let w = world().await;
    let before = w.kit.store.snapshot();
    let mut changes = ChangeSet::new();
    changes
        .require(Precondition::OrgVersion { org: w.org.id, version: 0 })
        .push(Change::InsertUser(w.new_user("carol@example.com")))
        .push(Change::InsertFacility(w.facility(w.org.id, "North Clinic")))
        .push(Change::InsertUser(w.new_user("ANN@example.com")))
        .audit(w.audit_entry(w.org.id))
        .send(w.notice_email(&w.ann.email));

    assert!(matches!(w.commit(changes).await, Err(CommitError::Duplicate(Duplicate::Email))));
    assert_eq!(w.kit.store.snapshot(), before, "no user, facility, version bump, audit entry or email");
    assert!(w.kit.store.emails().is_empty());
}

#[tokio::test]
async fn an_injected_failure_is_a_store_error_that_writes_nothing_and_only_once() {
    let w = world().await;
    let before = w.kit.store.snapshot();
    w.kit.store.fail_next_commit();
    let insert =
        || ChangeSet { changes: vec![Change::InsertUser(w.new_user("carol@example.com"))], ..ChangeSet::new() };

    assert!(matches!(w.commit(insert()).await, Err(CommitError::Store(_))));
    assert_eq!(w.kit.store.snapshot(), before);
    w.commit(insert()).await.unwrap();
    assert_eq!(w.kit.store.users().len(), 2);
}

#[tokio::test]
async fn a_change_landed_before_the_next_commit_makes_its_decision_conflict() {
    let w = world().await;
    let mut admins_change = ChangeSet::new();
    admins_change.require(Precondition::OrgVersion { org: w.org.id, version: 0 });
    w.kit.store.land_before_next_commit(admins_change.clone());

    assert!(matches!(w.commit(admins_change).await, Err(CommitError::Conflict)));
    assert_eq!(w.org_version().await, 1, "the landed change was committed");
}

// ---- versions ----------------------------------------------------------------------------

#[tokio::test]
async fn org_version_increments_once_per_commit_however_many_changes_touch_the_org() {
    let w = world().await;
    let mut renamed = w.org.clone();
    renamed.name = OrgName::parse("Acme Physio Leeds").unwrap();
    renamed.version = 42; // ignored: versions move only through preconditions
    let mut changes = ChangeSet::new();
    changes
        .require(Precondition::OrgVersion { org: w.org.id, version: 0 })
        .require(Precondition::OrgVersion { org: w.org.id, version: 0 })
        .push(Change::UpdateOrganisation(renamed))
        .push(Change::InsertFacility(w.facility(w.org.id, "North Clinic")))
        .push(Change::PutRole { org: w.org.id, role: custom_role("front_desk") });
    w.commit(changes).await.unwrap();

    let stored = w.kit.store.organisation(w.org.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.name.as_str(), "Acme Physio Leeds");
}

#[tokio::test]
async fn org_unchanged_checks_the_version_without_incrementing_it() {
    let w = world().await;
    let unchanged = || {
        let mut changes = ChangeSet::new();
        changes.require(Precondition::OrgUnchanged { org: w.org.id, version: 0 });
        changes
    };
    w.commit(unchanged()).await.unwrap();
    w.commit(unchanged()).await.unwrap();
    assert_eq!(w.org_version().await, 0, "self-service changes do not conflict with each other");

    let mut admin = ChangeSet::new();
    admin.require(Precondition::OrgVersion { org: w.org.id, version: 0 });
    w.commit(admin).await.unwrap();
    assert!(matches!(w.commit(unchanged()).await, Err(CommitError::Conflict)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_decisions_on_the_same_org_version_only_one_lands() {
    let w = world().await;
    let bob = w.kit.seed_user("bob@example.com", true).await.unwrap();
    w.kit.seed_member(w.org.id, bob.id, builtin::ADMINISTRATOR).await.unwrap();
    // Each administrator demotes the other, both having read version 0.
    let demote = |user: UserId| {
        let mut membership = Membership::new(
            w.org.id,
            user,
            builtin::USER,
            crate::membership::MembershipOrigin::Invitation,
            None,
            w.now(),
        );
        membership.status = MembershipStatus::Active;
        let mut changes = ChangeSet::new();
        changes
            .require(Precondition::OrgVersion { org: w.org.id, version: 0 })
            .push(Change::UpdateMembership(membership));
        changes
    };
    let store = Arc::clone(&w.kit.store);
    let (first, second) = (demote(w.ann.id), demote(bob.id));
    let a = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.commit(first).await }
    });
    let b = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.commit(second).await }
    });
    let results = [a.await.unwrap(), b.await.unwrap()];

    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(results.iter().filter(|r| matches!(r, Err(CommitError::Conflict))).count(), 1);
    let administrators =
        w.kit.store.memberships(w.org.id).into_iter().filter(|m| m.role == builtin::ADMINISTRATOR).count();
    assert_eq!(administrators, 1, "one administrator is left");
    assert_eq!(w.org_version().await, 1);
}

#[tokio::test]
async fn user_version_increments_and_an_update_keeps_the_stored_version() {
    let w = world().await;
    let mut renamed = w.ann.clone();
    renamed.name = crate::values::PersonName::parse("Ann", "Lee").unwrap();
    renamed.version = 9;
    let mut changes = ChangeSet::new();
    changes.require(Precondition::UserVersion { user: w.ann.id, version: 0 }).push(Change::UpdateUser(renamed));
    w.commit(changes.clone()).await.unwrap();

    let stored = w.kit.store.user(w.ann.id).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.name.last()), (1, "Lee"));
    assert!(matches!(w.commit(changes).await, Err(CommitError::Conflict)));
}

#[tokio::test]
async fn a_precondition_on_a_missing_row_is_a_conflict() {
    let w = world().await;
    let missing = [
        Precondition::OrgVersion { org: OrgId::from_uuid(w.id()), version: 0 },
        Precondition::OrgUnchanged { org: OrgId::from_uuid(w.id()), version: 0 },
        Precondition::UserVersion { user: UserId::from_uuid(w.id()), version: 0 },
        Precondition::InvitationPending {
            org: w.org.id,
            id: InvitationId::from_uuid(w.id()),
            token_hash: w.token_hash(),
        },
        Precondition::JoinRequestPending { org: w.org.id, id: JoinRequestId::from_uuid(w.id()) },
        Precondition::TokenUnused { hash: w.token_hash() },
    ];
    for precondition in missing {
        let changes = ChangeSet { preconditions: vec![precondition.clone()], ..ChangeSet::new() };
        assert!(matches!(w.commit(changes).await, Err(CommitError::Conflict)), "{precondition:?}");
    }
}

// ---- uniqueness and foreign keys ------------------------------------------------------

#[tokio::test]
async fn email_uniqueness_ignores_letter_case_on_insert_and_update() {
    let w = world().await;
    let result = w.commit_changes(vec![Change::InsertUser(w.new_user("Ann@EXAMPLE.com"))]).await;
    assert!(matches!(result, Err(CommitError::Duplicate(Duplicate::Email))));

    let bob = w.kit.seed_user("bob@example.com", false).await.unwrap();
    let took_anns = User { email: address("ANN@example.com"), ..bob };
    let result = w.commit_changes(vec![Change::UpdateUser(took_anns)]).await;
    assert!(matches!(result, Err(CommitError::Duplicate(Duplicate::Email))));
    assert_eq!(w.kit.store.user_by_email(&address("aNN@Example.Com")).await.unwrap().map(|u| u.id), Some(w.ann.id));
}

#[tokio::test]
async fn slugs_are_unique_on_insert_and_on_rename() {
    let w = world().await;
    let other = w.kit.seed_org("other-clinic", w.ann.id).await.unwrap();
    let taken = Organisation { slug: w.org.slug.clone(), ..other.clone() };
    let result = w.commit_changes(vec![Change::UpdateOrganisation(taken)]).await;
    assert!(matches!(result, Err(CommitError::Duplicate(Duplicate::Slug))));
    assert!(matches!(
        w.kit.seed_org("acme-physio", w.ann.id).await,
        Err(FixtureError::Commit(CommitError::Duplicate(Duplicate::Slug)))
    ));
}

#[tokio::test]
async fn a_second_join_request_is_refused_while_one_is_pending_and_allowed_once_it_is_rejected() {
    let w = world().await;
    let bob = w.kit.seed_user("bob@example.com", true).await.unwrap();
    let first = w.join_request(bob.id);
    w.commit_changes(vec![Change::InsertJoinRequest(first.clone())]).await.unwrap();
    let second = w.join_request(bob.id);
    let result = w.commit_changes(vec![Change::InsertJoinRequest(second.clone())]).await;
    assert!(matches!(result, Err(CommitError::Duplicate(Duplicate::PendingJoinRequest))));

    let rejected =
        JoinRequest { state: JoinRequestState::Rejected { by: w.ann.id, at: w.now(), reason: None }, ..first.clone() };
    let mut decision = ChangeSet::new();
    decision
        .require(Precondition::JoinRequestPending { org: w.org.id, id: first.id })
        .push(Change::UpdateJoinRequest(rejected));
    w.commit(decision.clone()).await.unwrap();
    assert!(matches!(w.commit(decision).await, Err(CommitError::Conflict)), "decided once only");

    w.commit_changes(vec![Change::InsertJoinRequest(second.clone())]).await.unwrap();
    assert_eq!(w.kit.store.pending_join_requests(w.org.id).await.unwrap(), vec![second.clone()]);
    let reopened = JoinRequest { state: JoinRequestState::Pending, ..first };
    let result = w.commit_changes(vec![Change::UpdateJoinRequest(reopened)]).await;
    assert!(matches!(result, Err(CommitError::Duplicate(Duplicate::PendingJoinRequest))));
    assert_eq!(w.kit.store.join_requests_of_user(bob.id).await.unwrap()[0], second, "newest first");
}

#[tokio::test]
async fn role_keys_may_not_shadow_built_ins_and_facility_names_are_unique_per_org_ignoring_case() {
    let w = world().await;
    let mut shadow = custom_role("front_desk");
    shadow.key = builtin::MANAGER;
    let result = w.commit_changes(vec![Change::PutRole { org: w.org.id, role: shadow }]).await;
    assert!(matches!(result, Err(CommitError::Duplicate(Duplicate::RoleKey))));

    let north = w.facility(w.org.id, "North Clinic");
    w.commit_changes(vec![Change::InsertFacility(north.clone())]).await.unwrap();
    let result = w.commit_changes(vec![Change::InsertFacility(w.facility(w.org.id, "north CLINIC"))]).await;
    assert!(matches!(result, Err(CommitError::Duplicate(Duplicate::FacilityName))));
    let other = w.kit.seed_org("other-clinic", w.ann.id).await.unwrap();
    w.commit_changes(vec![Change::InsertFacility(w.facility(other.id, "North Clinic"))]).await.unwrap();
    let recased = Facility { name: FacilityName::parse("NORTH clinic").unwrap(), ..north };
    w.commit_changes(vec![Change::UpdateFacility(recased)]).await.unwrap();
}

#[tokio::test]
async fn a_membership_is_unique_per_org_and_user_and_needs_both_to_exist() {
    let w = world().await;
    let again = Membership::new(
        w.org.id,
        w.ann.id,
        builtin::USER,
        crate::membership::MembershipOrigin::Invitation,
        None,
        w.now(),
    );
    let result = w.commit_changes(vec![Change::InsertMembership(again.clone())]).await;
    assert!(matches!(result, Err(CommitError::Duplicate(Duplicate::Membership))));
    let stranger = Membership { user: UserId::from_uuid(w.id()), ..again };
    assert!(matches!(w.commit_changes(vec![Change::InsertMembership(stranger)]).await, Err(CommitError::Store(_))));
}

#[tokio::test]
async fn changing_or_deleting_a_missing_row_or_reusing_an_id_is_a_store_error() {
    let w = world().await;
    let nobody = UserId::from_uuid(w.id());
    let bugs = [
        Change::UpdateUser(User { id: nobody, ..w.ann.clone() }),
        Change::InsertUser(User { email: address("other@example.com"), ..w.ann.clone() }),
        Change::UpdateMembership(Membership { user: nobody, ..w.membership(w.ann.id).await }),
        Change::DeleteMembership { org: w.org.id, user: nobody },
        Change::DeleteRole { org: w.org.id, key: RoleKey::parse("front_desk").unwrap() },
        Change::DeleteFacility { org: w.org.id, id: FacilityId::from_uuid(w.id()) },
        Change::TouchSession { hash: w.token_hash(), at: w.now() },
        Change::ConsumeToken { hash: w.token_hash(), at: w.now() },
        Change::UpdateOrganisation(Organisation { id: OrgId::from_uuid(w.id()), ..w.org.clone() }),
    ];
    for change in bugs {
        let result = w.commit_changes(vec![change.clone()]).await;
        assert!(matches!(result, Err(CommitError::Store(_))), "{change:?}");
    }
}

// ---- bulk changes ------------------------------------------------------------------------

#[tokio::test]
async fn reassigning_a_role_moves_every_member_of_that_org_who_has_it_and_no_one_else() {
    let w = world().await;
    let other = w.kit.seed_org("other-clinic", w.ann.id).await.unwrap();
    let desk = custom_role("front_desk");
    w.commit_changes(vec![
        Change::PutRole { org: w.org.id, role: desk.clone() },
        Change::PutRole { org: other.id, role: desk.clone() },
    ])
    .await
    .unwrap();
    let mut desk_members = Vec::new();
    for name in ["bob", "cy"] {
        let user = w.kit.seed_user(&format!("{name}@example.com"), true).await.unwrap();
        w.kit.seed_member(w.org.id, user.id, desk.key.clone()).await.unwrap();
        desk_members.push(user.id);
    }
    let dee = w.kit.seed_user("dee@example.com", true).await.unwrap();
    w.kit.seed_member(other.id, dee.id, desk.key.clone()).await.unwrap();

    let result = w.commit_changes(vec![Change::DeleteRole { org: w.org.id, key: desk.key.clone() }]).await;
    assert!(matches!(result, Err(CommitError::Store(_))), "a role still held cannot be deleted");
    w.commit_changes(vec![
        Change::ReassignRole { org: w.org.id, from: desk.key.clone(), to: builtin::USER },
        Change::DeleteRole { org: w.org.id, key: desk.key.clone() },
    ])
    .await
    .unwrap();

    for user in desk_members {
        assert_eq!(w.membership(user).await.role, builtin::USER);
    }
    assert_eq!(w.membership(w.ann.id).await.role, builtin::ADMINISTRATOR);
    assert_eq!(w.kit.store.membership(other.id, dee.id).await.unwrap().unwrap().role, desk.key);
    assert!(w.kit.store.custom_roles(w.org.id).await.unwrap().is_empty());
    assert_eq!(w.kit.store.custom_roles(other.id).await.unwrap(), vec![desk]);
}

#[tokio::test]
async fn deleting_a_facility_removes_it_from_every_membership_of_the_org() {
    let w = world().await;
    let (north, south) = (w.facility(w.org.id, "North"), w.facility(w.org.id, "South"));
    w.commit_changes(vec![Change::InsertFacility(north.clone()), Change::InsertFacility(south.clone())]).await.unwrap();
    let bob = w.kit.seed_user("bob@example.com", true).await.unwrap();
    w.kit.seed_member(w.org.id, bob.id, builtin::USER).await.unwrap();
    let mut ann = w.membership(w.ann.id).await;
    ann.facilities = [north.id, south.id].into();
    let mut bob_m = w.membership(bob.id).await;
    bob_m.facilities = [north.id].into();
    w.commit_changes(vec![Change::UpdateMembership(ann), Change::UpdateMembership(bob_m)]).await.unwrap();

    w.commit_changes(vec![Change::DeleteFacility { org: w.org.id, id: north.id }]).await.unwrap();

    assert_eq!(w.membership(w.ann.id).await.facilities, [south.id].into());
    assert!(w.membership(bob.id).await.facilities.is_empty());
    assert_eq!(w.kit.store.facilities(w.org.id).await.unwrap(), vec![south]);
}

#[tokio::test]
async fn revoking_a_users_sessions_keeps_the_excepted_one_and_earlier_revocations() {
    let w = world().await;
    let bob = w.kit.seed_user("bob@example.com", true).await.unwrap();
    let (s1, s2, s3, bobs) = (w.session(w.ann.id), w.session(w.ann.id), w.session(w.ann.id), w.session(bob.id));
    let earlier = w.now() - Duration::hours(1);
    w.commit_changes(vec![
        Change::InsertSession(s1.clone()),
        Change::InsertSession(s2.clone()),
        Change::InsertSession(s3.clone()),
        Change::InsertSession(bobs.clone()),
        Change::RevokeSession { hash: s3.token_hash, at: earlier },
    ])
    .await
    .unwrap();
    w.kit.clock.advance(Duration::minutes(5));
    let at = w.now();

    w.commit_changes(vec![Change::RevokeSessionsOf { user: w.ann.id, except: Some(s2.token_hash), at }]).await.unwrap();

    let store = &w.kit.store;
    let read = |hash: TokenHash| async move { store.session(&hash).await.unwrap().unwrap().revoked_at };
    assert_eq!(read(s1.token_hash).await, Some(at));
    assert_eq!(read(s2.token_hash).await, None);
    assert_eq!(read(s3.token_hash).await, Some(earlier));
    assert_eq!(read(bobs.token_hash).await, None);
    assert_eq!(w.kit.store.sessions_of_user(w.ann.id).await.unwrap(), vec![s2]);
}

#[tokio::test]
async fn session_touch_and_unrestrict_update_only_their_session() {
    let w = world().await;
    let restricted = Session { password_change_required: true, ..w.session(w.ann.id) };
    w.commit_changes(vec![Change::InsertSession(restricted.clone())]).await.unwrap();
    let later = w.now() + Duration::minutes(3);
    w.commit_changes(vec![
        Change::TouchSession { hash: restricted.token_hash, at: later },
        Change::UnrestrictSession { hash: restricted.token_hash },
    ])
    .await
    .unwrap();
    let stored = w.kit.store.session(&restricted.token_hash).await.unwrap().unwrap();
    assert_eq!((stored.last_seen_at, stored.password_change_required), (later, false));
}

#[tokio::test]
async fn expiring_tokens_marks_only_the_unused_ones_of_that_purpose_and_a_used_token_conflicts() {
    let w = world().await;
    let verify = TokenPurpose::VerifyEmail { email: w.ann.email.clone() };
    let (r1, r2, v1) = (
        w.one_time_token(w.ann.id, TokenPurpose::ResetPassword),
        w.one_time_token(w.ann.id, TokenPurpose::ResetPassword),
        w.one_time_token(w.ann.id, verify),
    );
    w.commit_changes(vec![
        Change::InsertToken(r1.clone()),
        Change::InsertToken(r2.clone()),
        Change::InsertToken(v1.clone()),
    ])
    .await
    .unwrap();
    let at = w.now();
    w.commit_changes(vec![Change::ExpireTokens { user: w.ann.id, reset: true, at }]).await.unwrap();

    let store = &w.kit.store;
    let used = |hash: TokenHash| async move { store.one_time_token(&hash).await.unwrap().unwrap().used_at };
    assert_eq!((used(r1.hash).await, used(r2.hash).await, used(v1.hash).await), (Some(at), Some(at), None));
    let consume = |hash: TokenHash| {
        let mut changes = ChangeSet::new();
        changes.require(Precondition::TokenUnused { hash }).push(Change::ConsumeToken { hash, at });
        changes
    };
    assert!(matches!(w.commit(consume(r1.hash)).await, Err(CommitError::Conflict)));
    w.commit(consume(v1.hash)).await.unwrap();
    assert!(matches!(w.commit(consume(v1.hash)).await, Err(CommitError::Conflict)), "single use");
}

#[tokio::test]
async fn an_invitation_precondition_needs_the_pending_state_and_the_current_token() {
    let w = world().await;
    let (old_hash, new_hash) = (w.token_hash(), w.token_hash());
    let invitation = Invitation {
        id: InvitationId::from_uuid(w.id()),
        org: w.org.id,
        email: address("bob@example.com"),
        role: builtin::USER,
        token_hash: new_hash,
        invited_by: w.ann.id,
        created_at: w.now(),
        expires_at: w.now() + Duration::days(7),
        resent: 1,
        state: InvitationState::Pending,
    };
    w.commit_changes(vec![Change::InsertInvitation(invitation.clone())]).await.unwrap();
    let accept = |token_hash: TokenHash| {
        let accepted =
            Invitation { state: InvitationState::Accepted { by: w.ann.id, at: w.now() }, ..invitation.clone() };
        let mut changes = ChangeSet::new();
        changes
            .require(Precondition::InvitationPending { org: w.org.id, id: invitation.id, token_hash })
            .push(Change::UpdateInvitation(accepted));
        changes
    };
    assert!(matches!(w.commit(accept(old_hash)).await, Err(CommitError::Conflict)), "a resent link replaces the old");
    assert_eq!(w.kit.store.open_invitations_for(&address("BOB@example.com")).await.unwrap(), vec![invitation.clone()]);
    w.commit(accept(new_hash)).await.unwrap();
    assert!(matches!(w.commit(accept(new_hash)).await, Err(CommitError::Conflict)), "accepted once only");

    assert!(w.kit.store.open_invitations(w.org.id).await.unwrap().is_empty());
    let by_token = w.kit.store.invitation_by_token(&new_hash).await.unwrap().unwrap();
    assert!(matches!(by_token.state, InvitationState::Accepted { .. }), "found in any state");
    assert_eq!(w.kit.store.invitation(OrgId::from_uuid(w.id()), invitation.id).await.unwrap(), None, "org-scoped");
}

// ---- member search -----------------------------------------------------------------------

const FIRSTS: [&str; 3] = ["ann", "bob", "cy"];
const LASTS: [&str; 5] = ["smith", "adams", "o'neil", "van-dyke", "baker"];

/// 300 members besides the founder; every sixth is a manager, the rest users. Names
/// repeat, so the user id must break ties. Two members of another org match too.
async fn crowded_world() -> World {
    let w = world().await;
    let other = w.kit.seed_org("other-clinic", w.ann.id).await.unwrap();
    for i in 0..300_usize {
        let email = format!("{}.{}+{i}@example.com", FIRSTS[i % 3], LASTS[i % 5]);
        let user = w.kit.seed_user(&email, true).await.unwrap();
        let role = if i % 6 == 0 { builtin::MANAGER } else { builtin::USER };
        w.kit.seed_member(w.org.id, user.id, role).await.unwrap();
        if i < 2 {
            w.kit.seed_member(other.id, user.id, builtin::USER).await.unwrap();
        }
    }
    w
}

fn query(w: &World) -> MemberQuery {
    MemberQuery {
        org: w.org.id,
        text: None,
        role: None,
        facility: None,
        state: None,
        as_of: w.now(),
        limit: 100,
        after: None,
    }
}

#[tokio::test]
async fn keyset_search_pages_through_250_members_exactly_once_each_in_sort_order_with_filters_applied() {
    let w = crowded_world().await;
    let users: std::collections::BTreeMap<UserId, User> = w.kit.store.users().into_iter().map(|u| (u.id, u)).collect();
    let mut expected: Vec<(String, UserId)> = w
        .kit
        .store
        .memberships(w.org.id)
        .into_iter()
        .filter(|m| m.role == builtin::USER)
        .map(|m| (users[&m.user].name.sort_key(), m.user))
        .collect();
    expected.sort();
    assert_eq!(expected.len(), 250);

    let mut q = MemberQuery { role: Some(builtin::USER), ..query(&w) };
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let page = w.kit.store.search_members(&q).await.unwrap();
        sizes.push(page.items.len());
        assert!(page.items.iter().all(|item| item.membership.role == builtin::USER && item.membership.org == w.org.id));
        seen.extend(page.items.iter().map(|item| (item.name.sort_key(), item.membership.user)));
        match page.next {
            Some(next) => {
                assert_eq!(Some(&next.user), seen.last().map(|(_, id)| id), "the cursor is the last item");
                q.after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(sizes, vec![100, 100, 50]);
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn search_filters_by_text_state_and_facility_and_ends_without_a_cursor_on_an_exact_last_page() {
    let w = crowded_world().await;
    let text = MemberQuery { text: Some("VAN-D".into()), limit: 30, ..query(&w) };
    let page = w.kit.store.search_members(&text).await.unwrap();
    assert_eq!(page.items.len(), 30);
    assert!(page.items.iter().all(|item| item.name.last() == "Van-dyke"));
    let rest = w.kit.store.search_members(&MemberQuery { after: page.next, ..text }).await.unwrap();
    assert_eq!((rest.items.len(), rest.next), (30, None), "60 match: the second page is exactly full");

    let north = w.facility(w.org.id, "North");
    w.commit_changes(vec![Change::InsertFacility(north.clone())]).await.unwrap();
    let mut members = w.kit.store.memberships(w.org.id);
    members.truncate(3);
    let suspended = Membership {
        status: MembershipStatus::Suspended { by: w.ann.id, since: w.now() },
        facilities: [north.id].into(),
        ..members[1].clone()
    };
    let expiring = Membership { expires_at: Some(w.now() + Duration::hours(1)), ..members[2].clone() };
    w.commit_changes(vec![Change::UpdateMembership(suspended.clone()), Change::UpdateMembership(expiring.clone())])
        .await
        .unwrap();

    let by_state = |state, as_of| MemberQuery { state: Some(state), as_of, ..query(&w) };
    let users_of = |page: crate::query::MemberPage| -> Vec<UserId> {
        page.items.into_iter().map(|item| item.membership.user).collect()
    };
    let suspended_now = w.kit.store.search_members(&by_state(MemberState::Suspended, w.now())).await.unwrap();
    assert_eq!(users_of(suspended_now), vec![suspended.user]);
    let later = w.now() + Duration::hours(2);
    assert_eq!(users_of(w.kit.store.search_members(&by_state(MemberState::Expired, w.now())).await.unwrap()), vec![]);
    assert_eq!(
        users_of(w.kit.store.search_members(&by_state(MemberState::Expired, later)).await.unwrap()),
        vec![expiring.user]
    );
    let at_north = MemberQuery { facility: Some(north.id), ..query(&w) };
    assert_eq!(users_of(w.kit.store.search_members(&at_north).await.unwrap()), vec![suspended.user]);
    let zero = MemberQuery { limit: 0, ..query(&w) };
    assert_eq!(w.kit.store.search_members(&zero).await.unwrap().items.len(), 1, "limits clamp to 1..=200");
}

// ---- time-ordered pages --------------------------------------------------------------

#[tokio::test]
async fn audit_pages_are_newest_first_org_scoped_and_refuse_a_foreign_cursor() {
    let w = world().await;
    let other = w.kit.seed_org("other-clinic", w.ann.id).await.unwrap();
    let entries: Vec<AuditEntry> = (0..5).map(|_| w.audit_entry(w.org.id)).collect();
    let changes =
        ChangeSet { audit: entries.iter().cloned().chain([w.audit_entry(other.id)]).collect(), ..ChangeSet::new() };
    w.commit(changes).await.unwrap();

    let first = w.kit.store.audit_entries(w.org.id, PageRequest::first(2)).await.unwrap();
    assert_eq!(first.items, vec![entries[4].clone(), entries[3].clone()]);
    assert_eq!(first.next, Some(entries[3].id.to_string()));
    let mut page = PageRequest { limit: 2, after: first.next };
    let second = w.kit.store.audit_entries(w.org.id, page.clone()).await.unwrap();
    page.after = second.next.clone();
    let third = w.kit.store.audit_entries(w.org.id, page).await.unwrap();
    assert_eq!((third.items, third.next), (vec![entries[0].clone()], None));

    let forged = PageRequest { limit: 2, after: Some("not-a-cursor".into()) };
    let refused: Result<_, StoreError> = w.kit.store.audit_entries(w.org.id, forged).await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn runs_are_listed_newest_first_per_org() {
    let w = world().await;
    let run = |w: &World| RunRecord {
        id: RunId::from_uuid(w.id()),
        org: w.org.id,
        capability: CapabilityKey::parse("recall").unwrap(),
        started_at: w.now(),
        finished_at: w.now(),
        outcome: RunOutcome::Succeeded,
        counts: Default::default(),
        recorded_by: w.ann.id,
    };
    let (older, newer) = (run(&w), run(&w));
    w.commit_changes(vec![Change::InsertRun(older.clone()), Change::InsertRun(newer.clone())]).await.unwrap();
    let page = w.kit.store.runs(w.org.id, PageRequest::first(10)).await.unwrap();
    assert_eq!((page.items, page.next), (vec![newer, older], None));
    let forged = PageRequest { limit: 2, after: Some("zz".into()) };
    assert!(w.kit.store.runs(w.org.id, forged).await.is_err());
}

// ---- the outbox ----------------------------------------------------------------------

async fn outbox_world() -> (World, Vec<OutboundEmail>) {
    let w = world().await;
    let bob = address("bob@example.com");
    let mut emails = Vec::new();
    for i in 0..3 {
        let mut email = if i == 1 { w.notice_email(&bob) } else { w.reset_email(&bob) };
        email.queued_at = w.now() + Duration::seconds(i);
        emails.push(email);
    }
    // Committed newest first: claims must still take the oldest first.
    let changes = ChangeSet { emails: emails.iter().rev().cloned().collect(), ..ChangeSet::new() };
    w.commit(changes).await.unwrap();
    w.kit.clock.advance(Duration::minutes(1));
    (w, emails)
}

fn ids(claimed: &[crate::ports::ClaimedEmail]) -> Vec<MessageId> {
    claimed.iter().map(|c| c.email.id).collect()
}

#[tokio::test]
async fn claims_take_due_messages_oldest_first_and_a_lease_hides_them_until_it_ends() {
    let (w, emails) = outbox_world().await;
    let lease = Duration::minutes(5);
    let now = w.now();
    let first = w.kit.store.claim(2, now, lease).await.unwrap();
    assert_eq!(ids(&first), vec![emails[0].id, emails[1].id]);
    assert!(first.iter().all(|c| c.attempts == 0));
    assert_eq!(ids(&w.kit.store.claim(10, now, lease).await.unwrap()), vec![emails[2].id]);
    assert!(w.kit.store.claim(10, now + Duration::minutes(4), lease).await.unwrap().is_empty());

    let after_lease = w.kit.store.claim(10, now + lease, lease).await.unwrap();
    assert_eq!(ids(&after_lease), ids(&first).into_iter().chain([emails[2].id]).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_retry_waits_until_it_is_due_and_counts_the_attempt() {
    let (w, emails) = outbox_world().await;
    let now = w.now();
    w.kit.store.claim(1, now, Duration::minutes(5)).await.unwrap();
    let retry_at = now + Duration::minutes(10);
    let failure = DeliveryFailure::Retry { error: "421 try later".into(), at: retry_at };
    w.kit.store.mark_failed(emails[0].id, failure).await.unwrap();

    assert!(!ids(&w.kit.store.claim(10, now, Duration::minutes(5)).await.unwrap()).contains(&emails[0].id));
    w.kit.store.release(&[emails[1].id, emails[2].id]).await.unwrap();
    let due = w.kit.store.claim(1, retry_at, Duration::minutes(5)).await.unwrap();
    assert_eq!(ids(&due), vec![emails[0].id]);
    assert_eq!(due[0].attempts, 1);
    assert_eq!(w.kit.store.outbox()[2].last_error.as_deref(), Some("421 try later"));
}

#[tokio::test]
async fn a_dead_letter_is_never_claimed_again_and_loses_its_secret() {
    let (w, emails) = outbox_world().await;
    let now = w.now();
    w.kit.store.claim(1, now, Duration::minutes(5)).await.unwrap();
    w.kit
        .store
        .mark_failed(emails[0].id, DeliveryFailure::Dead { error: "550 no such user".into(), reports: Vec::new() })
        .await
        .unwrap();

    let dead = w.kit.store.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].payload.as_ref(), dead[0].attempts), (emails[0].id, None, 1));
    assert_eq!((dead[0].template, dead[0].last_error.as_deref()), ("password_reset", Some("550 no such user")));
    let later = w.kit.store.claim(10, now + Duration::days(1), Duration::minutes(5)).await.unwrap();
    assert_eq!(ids(&later), vec![emails[1].id, emails[2].id]);
}

#[tokio::test]
async fn releasing_claimed_messages_makes_them_claimable_at_once() {
    let (w, emails) = outbox_world().await;
    let now = w.now();
    let claimed = ids(&w.kit.store.claim(10, now, Duration::minutes(5)).await.unwrap());
    w.kit.store.release(&claimed[..2]).await.unwrap();
    assert_eq!(ids(&w.kit.store.claim(10, now, Duration::minutes(5)).await.unwrap()), vec![emails[0].id, emails[1].id]);
}

#[tokio::test]
async fn sending_erases_a_secret_but_keeps_the_record_and_the_test_log() {
    let (w, emails) = outbox_world().await;
    let now = w.now();
    w.kit.store.claim(10, now, Duration::minutes(5)).await.unwrap();
    w.kit.store.mark_sent(emails[0].id, now).await.unwrap();
    w.kit.store.mark_sent(emails[1].id, now).await.unwrap();

    let sent = w.kit.store.sent();
    assert_eq!(sent.iter().map(|m| m.id).collect::<Vec<_>>(), vec![emails[1].id, emails[0].id], "commit order");
    let reset = sent.iter().find(|m| m.id == emails[0].id).unwrap();
    assert_eq!((reset.payload.as_ref(), reset.template, &reset.to), (None, "password_reset", &emails[0].to));
    let notice = sent.iter().find(|m| m.id == emails[1].id).unwrap();
    assert_eq!(notice.payload.as_ref(), Some(&emails[1]), "a message without a secret is kept whole");
    assert!(w.kit.store.emails().contains(&emails[0]), "the test log keeps what was asked to be sent");
    assert!(w.kit.store.claim(10, now + Duration::days(1), Duration::minutes(5)).await.unwrap().len() == 1);
    assert!(w.kit.store.mark_sent(MessageId::from_uuid(w.id()), now).await.is_err());
}

// ---- fakes and fixtures --------------------------------------------------------------

#[test]
fn sequential_ids_are_unique_time_ordered_version_7_uuids() {
    let ids = SequentialIds::new();
    let made: Vec<uuid::Uuid> = (0..1000).map(|_| ids.generate()).collect();
    assert!(made.windows(2).all(|pair| pair[0] < pair[1]));
    for (n, id) in made.iter().enumerate() {
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        let millis = u64::from_be_bytes([
            0,
            0,
            id.as_bytes()[0],
            id.as_bytes()[1],
            id.as_bytes()[2],
            id.as_bytes()[3],
            id.as_bytes()[4],
            id.as_bytes()[5],
        ]);
        assert_eq!(millis, 1_767_603_600_000 + n as u64);
    }
    assert_eq!(SequentialIds::new().generate(), made[0], "deterministic");
}

#[test]
fn sequential_tokens_are_deterministic_and_distinct() {
    let (a, b) = (SequentialTokens::new(), SequentialTokens::new());
    let first = a.generate();
    assert_eq!(first, b.generate());
    assert_ne!(first, a.generate());
    assert_eq!(a.generated(), 2);
}

#[test]
fn the_manual_clock_starts_on_a_monday_morning_and_moves_only_when_told() {
    let clock = ManualClock::default();
    assert_eq!(clock.now().to_rfc3339(), "2026-01-05T09:00:00+00:00");
    clock.advance(Duration::minutes(90));
    assert_eq!(clock.now().to_rfc3339(), "2026-01-05T10:30:00+00:00");
    clock.set(DateTime::UNIX_EPOCH);
    assert_eq!(clock.now(), DateTime::UNIX_EPOCH);
    clock.advance(Duration::MIN);
    assert_eq!(clock.now(), DateTime::<Utc>::MIN_UTC, "saturates");
}

#[tokio::test]
async fn the_fake_hasher_salts_verifies_counts_and_can_fail() {
    let hasher = FakeHasher::new();
    let password = Password::new(PASSWORD);
    let (one, two) = (hasher.hash(&password).await.unwrap(), hasher.hash(&password).await.unwrap());
    assert_ne!(one, two, "salted");
    assert!(one.as_str().starts_with("fake$"));
    assert!(hasher.verify(&password, &one).await.unwrap());
    assert!(hasher.verify(&password, &two).await.unwrap());
    assert!(!hasher.verify(&Password::new("wrong"), &one).await.unwrap());
    assert!(hasher.verify(&password, &crate::user::PasswordHash::new("$argon2id$v=19$...")).await.is_err());
    hasher.verify_dummy(&password).await.unwrap();
    assert_eq!((hasher.hash_calls(), hasher.verify_calls(), hasher.dummy_verify_calls()), (2, 4, 1));

    let failing = FakeHasher::failing();
    assert!(failing.hash(&password).await.is_err());
    assert!(failing.verify(&password, &one).await.is_err());
    assert!(failing.verify_dummy(&password).await.is_err());
    failing.set_failing(false);
    assert!(failing.hash(&password).await.is_ok());
}

#[tokio::test]
async fn fixtures_seed_accounts_organisations_and_members_without_side_effects() {
    let w = world().await;
    assert_eq!((w.ann.name.first(), w.ann.name.last()), ("Ann", "Example"));
    assert!(w.ann.is_verified());
    assert_eq!(w.org.name.as_str(), "Acme Physio");
    let founder = w.membership(w.ann.id).await;
    assert_eq!((founder.role, founder.origin), (builtin::ADMINISTRATOR, crate::membership::MembershipOrigin::Founder));
    let hash = w.ann.password.hash.clone().unwrap();
    assert!(w.kit.hasher.verify(&TestKit::password(), &hash).await.unwrap());
    assert_eq!(w.kit.hasher.hash_calls(), 0, "fixtures do not count as hashing");
    assert!(PasswordPolicy::seed_default().validate(&TestKit::password(), Some(w.ann.email.local_part())).is_ok());
    assert!(w.kit.store.audit().is_empty() && w.kit.store.emails().is_empty());
    assert_eq!(w.org_version().await, 0);

    let bob = w.kit.seed_user("bob.lee+x@example.com", false).await.unwrap();
    assert_eq!((bob.name.full(), bob.is_verified()), ("Bob Lee".to_owned(), false));
    let member = w.kit.seed_member(w.org.id, bob.id, builtin::MANAGER).await.unwrap();
    assert_eq!(w.membership(bob.id).await, member);
    assert!(matches!(
        w.kit.seed_user("BOB.LEE+x@example.com", true).await,
        Err(FixtureError::Commit(CommitError::Duplicate(Duplicate::Email)))
    ));
    assert!(matches!(w.kit.seed_user("not an address", true).await, Err(FixtureError::Invalid(_))));
}

#[tokio::test]
async fn the_kit_finds_the_last_token_emailed_to_someone() {
    let w = world().await;
    let bob = address("bob@example.com");
    assert!(w.kit.last_token_sent_to(&bob).is_none());
    let (older, newer) = (w.reset_email(&bob), w.reset_email(&bob));
    let changes = ChangeSet { emails: vec![older, newer.clone(), w.notice_email(&bob)], ..ChangeSet::new() };
    w.commit(changes).await.unwrap();
    let Notification::PasswordReset { token, .. } = newer.notification else { unreachable!() };
    assert_eq!(w.kit.last_token_sent_to(&address("BOB@example.com")), Some(token));
}
