//! The storage ports' rules, checked on each SQL backend against the reference
//! `MemoryStore`: every commit goes to both and must end the same way, and reads must
//! return the same values in the same order.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use guildhall_domain::audit::{AuditAction, AuditEntry, AuditTarget, FieldChange};
use guildhall_domain::ids::{AuditId, FacilityId, InvitationId, JoinRequestId, MessageId, OrgId, RunId, SessionId};
use guildhall_domain::invitation::{Invitation, InvitationState};
use guildhall_domain::join_request::{JoinRequest, JoinRequestState};
use guildhall_domain::membership::{AccessScope, AccessSettings, MemberState, MembershipStatus};
use guildhall_domain::notification::{Notification, OutboundEmail, SetPasswordLink};
use guildhall_domain::org::{Facility, JoinPolicy, RunOutcome, RunRecord};
use guildhall_domain::password::Password;
use guildhall_domain::ports::{
    AuditLog, Change, ChangeSet, ClaimedEmail, DeliveryFailure, DeliveryLog, Duplicate, InvitationRepository,
    JoinRequestRepository, MembershipRepository, OrganisationRepository, Outbox, Precondition, TokenRepository,
    UnitOfWork, UserRepository,
};
use guildhall_domain::query::{MemberQuery, PageRequest};
use guildhall_domain::role::{Role, RoleGrant, builtin};
use guildhall_domain::token::{OneTimeToken, Secret, Session, Token, TokenHash, TokenPurpose};
use guildhall_domain::user::{PasswordHash, TemporaryPassword, UserStatus};
use guildhall_domain::values::{
    AlertKind, CapabilityKey, EmailDomain, FacilityName, Note, OrgSlug, Permission, PhoneNumber, Position,
    ResourceKind, RoleKey, RoleName, Topic,
};

use sea_orm::{ConnectionTrait, Statement};

use crate::support::{Fresh, Outcome, Pair, at, changes, email, member, on_both, org, seed_org, user, uuid};

on_both!(
    accounts_round_trip_and_addresses_are_unique_ignoring_case,
    organisations_round_trip_and_slugs_are_unique,
    version_preconditions_serialise_decisions,
    memberships_round_trip_with_facilities_alerts_and_access,
    roles_are_custom_per_organisation,
    facility_names_are_unique_per_organisation_ignoring_case,
    invitations_are_consumed_once,
    at_most_one_join_request_is_pending_per_member,
    tokens_and_sessions_follow_their_lifecycle,
    audit_and_runs_page_newest_first,
    outbox_claims_leases_and_erases_secrets,
    an_unreadable_outbox_row_is_given_up_and_does_not_block_the_others,
    the_dead_letter_list_uses_its_index,
    member_search_matches_the_reference_on_every_filter_and_page,
    renaming_an_account_moves_it_in_every_member_list,
    a_failed_commit_leaves_no_partial_state,
    caller_bugs_are_store_errors,
);

fn hash(n: u8) -> TokenHash {
    Token::from_secret(&Secret::from_bytes([n; 32])).hash()
}

fn audit_entry(n: u64, org: Option<OrgId>) -> AuditEntry {
    AuditEntry {
        id: AuditId::from_uuid(uuid(n)),
        org,
        actor: None,
        action: AuditAction::MemberUpdated,
        target: AuditTarget::Role(builtin::MANAGER),
        at: at(i64::try_from(n).unwrap()),
        changes: vec![
            FieldChange::new("role", Some("user"), Some("manager")),
            FieldChange::new("x", None::<&str>, Some(1)),
        ],
    }
}

fn message(n: u64, to: &str, notification: Notification) -> OutboundEmail {
    OutboundEmail {
        id: MessageId::from_uuid(uuid(n)),
        org: None,
        topic: None,
        to: email(to),
        notification,
        queued_at: at(i64::try_from(n).unwrap()),
    }
}

async fn accounts_round_trip_and_addresses_are_unique_ignoring_case(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let mut ann = user(1, "Ann.Lee@Example.com", "Ann", "Lee");
    ann.phone = Some(PhoneNumber::parse("+44 113 496 0000").unwrap());
    ann.password.temporary = Some(TemporaryPassword { hash: PasswordHash::new("$temp"), expires_at: at(99) });
    ann.password.must_change = true;
    let mut bob = user(2, "bob@example.com", "Bob", "Stone");
    bob.status = UserStatus::Disabled { since: at(5) };
    bob.email_verified_at = None;
    bob.password = Default::default();
    assert_eq!(
        pair.commit(changes(vec![Change::InsertUser(ann.clone()), Change::InsertUser(bob.clone())])).await,
        Outcome::Committed
    );

    let sql = &pair.sql;
    assert_eq!(sql.user(ann.id).await.unwrap(), Some(ann.clone()));
    assert_eq!(sql.user(bob.id).await.unwrap(), Some(bob.clone()));
    assert_eq!(sql.user_by_email(&email("ANN.LEE@example.COM")).await.unwrap(), Some(ann.clone()));
    assert_eq!(
        sql.users(&[bob.id, ann.id, bob.id]).await.unwrap(),
        UserRepository::users(&pair.memory, &[bob.id, ann.id, bob.id]).await.unwrap()
    );

    let clash = user(3, "ann.lee@EXAMPLE.com", "Other", "Ann");
    let mut set = changes(vec![Change::InsertUser(clash)]);
    set.audit(audit_entry(10, None));
    assert_eq!(pair.commit(set).await, Outcome::Duplicate(Duplicate::Email));

    // Replacing an account keeps its version (only preconditions bump it); a clash on
    // update is a duplicate too.
    let mut renamed = ann.clone();
    renamed.name = guildhall_domain::values::PersonName::parse("Anne", "Lee").unwrap();
    renamed.version = 42;
    assert_eq!(pair.commit(changes(vec![Change::UpdateUser(renamed.clone())])).await, Outcome::Committed);
    assert_eq!(sql.user(ann.id).await.unwrap(), pair.memory.user(ann.id).await.unwrap());
    let mut stealing = bob.clone();
    stealing.email = email("ANN.lee@example.com");
    assert_eq!(pair.commit(changes(vec![Change::UpdateUser(stealing)])).await, Outcome::Duplicate(Duplicate::Email));
}

async fn organisations_round_trip_and_slugs_are_unique(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let ann = user(1, "ann@example.com", "Ann", "Lee");
    let mut acme = org(2, "acme", ann.id);
    acme.settings.join_policy = JoinPolicy::VerifiedDomains {
        domains: [EmailDomain::parse("acme.example").unwrap()].into_iter().collect(),
        auto_approve: true,
    };
    acme.settings.capabilities.insert(CapabilityKey::parse("automated_recall").unwrap(), true);
    pair.commit(changes(vec![Change::InsertUser(ann.clone()), Change::InsertOrganisation(acme.clone())])).await;
    assert_eq!(pair.sql.organisation(acme.id).await.unwrap(), Some(acme.clone()));
    assert_eq!(pair.sql.organisation_by_slug(&acme.slug).await.unwrap(), Some(acme.clone()));

    let copycat = org(3, "acme", ann.id);
    assert_eq!(
        pair.commit(changes(vec![Change::InsertOrganisation(copycat)])).await,
        Outcome::Duplicate(Duplicate::Slug)
    );
    let other = org(4, "other", ann.id);
    pair.commit(changes(vec![Change::InsertOrganisation(other.clone())])).await;
    let mut renamed = other.clone();
    renamed.slug = OrgSlug::parse("acme").unwrap();
    assert_eq!(
        pair.commit(changes(vec![Change::UpdateOrganisation(renamed.clone())])).await,
        Outcome::Duplicate(Duplicate::Slug)
    );
    renamed.slug = OrgSlug::parse("other-2").unwrap();
    renamed.version = 9;
    assert_eq!(pair.commit(changes(vec![Change::UpdateOrganisation(renamed)])).await, Outcome::Committed);
    assert_eq!(pair.sql.organisation(other.id).await.unwrap(), pair.memory.organisation(other.id).await.unwrap());
    assert_eq!(pair.sql.organisation_by_slug(&other.slug).await.unwrap(), None);
}

async fn version_preconditions_serialise_decisions(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let (founder, acme) = seed_org(&pair.memory, 1).await;
    seed_org(pair.sql.as_ref(), 1).await;
    let bob = user(10, "bob@example.com", "Bob", "Stone");
    pair.commit(changes(vec![Change::InsertUser(bob.clone())])).await;

    let mut decided = changes(vec![Change::InsertMembership(member(acme.id, bob.id, builtin::USER))]);
    decided.require(Precondition::OrgVersion { org: acme.id, version: 0 });
    decided.audit(audit_entry(20, Some(acme.id)));
    assert_eq!(pair.commit(decided.clone()).await, Outcome::Committed);
    assert_eq!(pair.sql.organisation(acme.id).await.unwrap().unwrap().version, 1);

    // Decided on version 0: the second decision conflicts and writes nothing.
    let mut stale = changes(vec![Change::DeleteMembership { org: acme.id, user: founder.id }]);
    stale.require(Precondition::OrgVersion { org: acme.id, version: 0 });
    assert_eq!(pair.commit(stale).await, Outcome::Conflict);
    assert!(pair.sql.membership(acme.id, founder.id).await.unwrap().is_some());

    let mut unchanged = ChangeSet::new();
    unchanged.require(Precondition::OrgUnchanged { org: acme.id, version: 1 });
    unchanged.require(Precondition::OrgUnchanged { org: acme.id, version: 1 });
    assert_eq!(pair.commit(unchanged).await, Outcome::Committed);
    assert_eq!(pair.sql.organisation(acme.id).await.unwrap().unwrap().version, 1);

    let mut missing = ChangeSet::new();
    missing.require(Precondition::OrgUnchanged { org: OrgId::from_uuid(uuid(999)), version: 0 });
    assert_eq!(pair.commit(missing).await, Outcome::Conflict);

    let mut user_bump = ChangeSet::new();
    user_bump.require(Precondition::UserVersion { user: bob.id, version: 0 });
    user_bump.require(Precondition::OrgVersion { org: acme.id, version: 1 });
    assert_eq!(pair.commit(user_bump.clone()).await, Outcome::Committed);
    assert_eq!(pair.commit(user_bump).await, Outcome::Conflict);
    let mut user_check = ChangeSet::new();
    user_check.require(Precondition::UserUnchanged { user: bob.id, version: 1 });
    assert_eq!(pair.commit(user_check).await, Outcome::Committed);
    assert_eq!(pair.sql.user(bob.id).await.unwrap(), pair.memory.user(bob.id).await.unwrap());
    assert_eq!(pair.sql.organisation(acme.id).await.unwrap(), pair.memory.organisation(acme.id).await.unwrap());
}

async fn memberships_round_trip_with_facilities_alerts_and_access(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let (founder, acme) = seed_org(&pair.memory, 1).await;
    seed_org(pair.sql.as_ref(), 1).await;
    let north = Facility {
        id: FacilityId::from_uuid(uuid(30)),
        org: acme.id,
        name: FacilityName::parse("North").unwrap(),
        created_at: at(3),
    };
    let south = Facility {
        id: FacilityId::from_uuid(uuid(31)),
        org: acme.id,
        name: FacilityName::parse("South").unwrap(),
        created_at: at(3),
    };
    pair.commit(changes(vec![Change::InsertFacility(north.clone()), Change::InsertFacility(south.clone())])).await;
    let bob = user(10, "bob@example.com", "Bob", "Stone");
    let mut membership = member(acme.id, bob.id, builtin::MANAGER);
    membership.position = Some(Position::parse("Practice manager").unwrap());
    membership.facilities = [north.id, south.id].into_iter().collect();
    membership.aide = true;
    membership.access = AccessSettings::new([(ResourceKind::parse("patients").unwrap(), AccessScope::Facility)]);
    membership.alerts =
        [AlertKind::parse("new_leads").unwrap(), AlertKind::parse("nps_low").unwrap()].into_iter().collect();
    membership.expires_at = Some(at(1000));
    membership.added_by = Some(founder.id);
    membership.status = MembershipStatus::Suspended { since: at(7), by: founder.id };
    pair.commit(changes(vec![Change::InsertUser(bob.clone()), Change::InsertMembership(membership.clone())])).await;
    assert_eq!(pair.sql.membership(acme.id, bob.id).await.unwrap(), Some(membership.clone()));
    assert_eq!(
        pair.commit(changes(vec![Change::InsertMembership(member(acme.id, bob.id, builtin::USER))])).await,
        Outcome::Duplicate(Duplicate::Membership)
    );

    let roles = [builtin::MANAGER, builtin::ADMINISTRATOR];
    assert_eq!(
        pair.sql.memberships_with_roles(acme.id, &roles).await.unwrap(),
        pair.memory.memberships_with_roles(acme.id, &roles).await.unwrap()
    );
    let nps = AlertKind::parse("nps_low").unwrap();
    assert_eq!(pair.sql.memberships_with_alert(acme.id, &nps).await.unwrap(), vec![membership.clone()]);
    assert_eq!(pair.sql.memberships_of_user(bob.id).await.unwrap(), vec![membership.clone()]);

    let mut updated = membership.clone();
    updated.facilities = [south.id].into_iter().collect();
    updated.alerts = BTreeSet::new();
    updated.status = MembershipStatus::Active;
    pair.commit(changes(vec![Change::UpdateMembership(updated.clone())])).await;
    assert_eq!(pair.sql.membership(acme.id, bob.id).await.unwrap(), Some(updated.clone()));
    assert!(pair.sql.memberships_with_alert(acme.id, &nps).await.unwrap().is_empty());

    // Deleting a facility removes it from every membership.
    pair.commit(changes(vec![Change::DeleteFacility { org: acme.id, id: south.id }])).await;
    assert_eq!(
        pair.sql.membership(acme.id, bob.id).await.unwrap(),
        pair.memory.membership(acme.id, bob.id).await.unwrap()
    );
    assert_eq!(pair.sql.facilities(acme.id).await.unwrap(), vec![north]);

    pair.commit(changes(vec![Change::DeleteMembership { org: acme.id, user: bob.id }])).await;
    assert_eq!(pair.sql.membership(acme.id, bob.id).await.unwrap(), None);
    assert_eq!(
        pair.commit(changes(vec![Change::DeleteMembership { org: acme.id, user: bob.id }])).await,
        Outcome::Store
    );
}

async fn roles_are_custom_per_organisation(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let (_, acme) = seed_org(&pair.memory, 1).await;
    seed_org(pair.sql.as_ref(), 1).await;
    let role = |key: &str, name: &str| Role {
        key: RoleKey::parse(key).unwrap(),
        name: RoleName::parse(name).unwrap(),
        grant: RoleGrant::Only([Permission::parse("reports.view").unwrap()].into_iter().collect()),
        built_in: false,
    };
    let desk = role("front_desk", "Front desk");
    let billing = role("billing", "Billing");
    pair.commit(changes(vec![
        Change::PutRole { org: acme.id, role: desk.clone() },
        Change::PutRole { org: acme.id, role: billing.clone() },
    ]))
    .await;
    let renamed = role("front_desk", "Reception");
    pair.commit(changes(vec![Change::PutRole { org: acme.id, role: renamed.clone() }])).await;
    assert_eq!(pair.sql.custom_roles(acme.id).await.unwrap(), vec![billing.clone(), renamed.clone()]);
    assert_eq!(pair.sql.custom_roles(acme.id).await.unwrap(), pair.memory.custom_roles(acme.id).await.unwrap());
    assert_eq!(
        pair.commit(changes(vec![Change::PutRole { org: acme.id, role: role("manager", "Mine") }])).await,
        Outcome::Duplicate(Duplicate::RoleKey)
    );

    let bob = user(10, "bob@example.com", "Bob", "Stone");
    pair.commit(changes(vec![
        Change::InsertUser(bob.clone()),
        Change::InsertMembership(member(acme.id, bob.id, desk.key.clone())),
    ]))
    .await;
    let mut unheld = ChangeSet::new();
    unheld.require(Precondition::RoleUnheld { org: acme.id, role: desk.key.clone() });
    assert_eq!(pair.commit(unheld.clone()).await, Outcome::Conflict);
    assert_eq!(
        pair.commit(changes(vec![Change::DeleteRole { org: acme.id, key: desk.key.clone() }])).await,
        Outcome::Store
    );
    pair.commit(changes(vec![
        Change::ReassignRole { org: acme.id, from: desk.key.clone(), to: billing.key.clone() },
        Change::DeleteRole { org: acme.id, key: desk.key.clone() },
    ]))
    .await;
    assert_eq!(pair.commit(unheld).await, Outcome::Committed);
    assert_eq!(pair.sql.membership(acme.id, bob.id).await.unwrap().unwrap().role, billing.key);
    assert_eq!(pair.sql.custom_roles(acme.id).await.unwrap(), vec![billing]);
}

async fn facility_names_are_unique_per_organisation_ignoring_case(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let (founder, acme) = seed_org(&pair.memory, 1).await;
    seed_org(pair.sql.as_ref(), 1).await;
    let other = org(5, "other", founder.id);
    pair.commit(changes(vec![Change::InsertOrganisation(other.clone())])).await;
    let facility = |n: u64, org: OrgId, name: &str| Facility {
        id: FacilityId::from_uuid(uuid(n)),
        org,
        name: FacilityName::parse(name).unwrap(),
        created_at: at(3),
    };
    pair.commit(changes(vec![Change::InsertFacility(facility(30, acme.id, "Émile Clinic"))])).await;
    assert_eq!(
        pair.commit(changes(vec![Change::InsertFacility(facility(31, acme.id, "éMILE clinic"))])).await,
        Outcome::Duplicate(Duplicate::FacilityName)
    );
    assert_eq!(
        pair.commit(changes(vec![Change::InsertFacility(facility(32, other.id, "émile clinic"))])).await,
        Outcome::Committed
    );
    pair.commit(changes(vec![Change::InsertFacility(facility(33, acme.id, "Annex"))])).await;
    assert_eq!(
        pair.commit(changes(vec![Change::UpdateFacility(facility(33, acme.id, "ÉMILE CLINIC"))])).await,
        Outcome::Duplicate(Duplicate::FacilityName)
    );
    pair.commit(changes(vec![Change::UpdateFacility(facility(33, acme.id, "zebra"))])).await;
    pair.commit(changes(vec![Change::InsertFacility(facility(34, acme.id, "Yard"))])).await;
    assert_eq!(pair.sql.facilities(acme.id).await.unwrap(), pair.memory.facilities(acme.id).await.unwrap());
    assert_eq!(pair.commit(changes(vec![Change::UpdateFacility(facility(33, other.id, "x"))])).await, Outcome::Store);
}

async fn invitations_are_consumed_once(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let (founder, acme) = seed_org(&pair.memory, 1).await;
    seed_org(pair.sql.as_ref(), 1).await;
    let invitation = |n: u64, address: &str, created: i64| Invitation {
        id: InvitationId::from_uuid(uuid(n)),
        org: acme.id,
        email: email(address),
        role: builtin::USER,
        token_hash: hash(u8::try_from(n).unwrap()),
        invited_by: founder.id,
        created_at: at(created),
        expires_at: at(created + 3600),
        resent: 0,
        state: InvitationState::Pending,
    };
    let first = invitation(40, "Bob@Example.com", 10);
    let second = invitation(41, "carol@example.com", 20);
    let third = invitation(42, "bob@example.com", 20);
    pair.commit(changes(vec![
        Change::InsertInvitation(first.clone()),
        Change::InsertInvitation(second.clone()),
        Change::InsertInvitation(third.clone()),
    ]))
    .await;
    assert_eq!(pair.sql.invitation(acme.id, first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(pair.sql.invitation(OrgId::from_uuid(uuid(77)), first.id).await.unwrap(), None);
    assert_eq!(pair.sql.invitation_by_token(&first.token_hash).await.unwrap(), Some(first.clone()));
    assert_eq!(pair.sql.open_invitations(acme.id).await.unwrap(), pair.memory.open_invitations(acme.id).await.unwrap());
    let bob_address = email("BOB@example.com");
    assert_eq!(pair.sql.open_invitations_for(&bob_address).await.unwrap(), vec![third.clone(), first.clone()]);

    let bob = user(10, "bob@example.com", "Bob", "Stone");
    pair.commit(changes(vec![Change::InsertUser(bob.clone())])).await;
    let accept = |invitation: &Invitation| {
        let mut accepted = invitation.clone();
        accepted.state = InvitationState::Accepted { by: bob.id, at: at(30) };
        let mut set = changes(vec![
            Change::UpdateInvitation(accepted),
            Change::InsertMembership(member(acme.id, bob.id, builtin::USER)),
        ]);
        set.require(Precondition::InvitationPending {
            org: acme.id,
            id: invitation.id,
            token_hash: invitation.token_hash,
        });
        set.require(Precondition::OrgUnchanged { org: acme.id, version: 0 });
        set
    };
    assert_eq!(pair.commit(accept(&first)).await, Outcome::Committed);
    assert_eq!(pair.commit(accept(&first)).await, Outcome::Conflict);
    assert_eq!(pair.commit(accept(&third)).await, Outcome::Duplicate(Duplicate::Membership));
    let mut wrong_hash = ChangeSet::new();
    wrong_hash.require(Precondition::InvitationPending { org: acme.id, id: second.id, token_hash: hash(1) });
    assert_eq!(pair.commit(wrong_hash).await, Outcome::Conflict);
    let mut revoked = second.clone();
    revoked.state = InvitationState::Revoked { by: founder.id, at: at(40) };
    revoked.resent = 3;
    pair.commit(changes(vec![Change::UpdateInvitation(revoked.clone())])).await;
    let mut declined = third.clone();
    declined.state = InvitationState::Declined { at: at(41) };
    pair.commit(changes(vec![Change::UpdateInvitation(declined.clone())])).await;
    assert_eq!(pair.sql.invitation(acme.id, second.id).await.unwrap(), Some(revoked));
    assert_eq!(pair.sql.invitation(acme.id, third.id).await.unwrap(), Some(declined));
    assert_eq!(
        pair.sql.invitation(acme.id, first.id).await.unwrap(),
        pair.memory.invitation(acme.id, first.id).await.unwrap()
    );
    assert!(pair.sql.open_invitations(acme.id).await.unwrap().is_empty());
}

async fn at_most_one_join_request_is_pending_per_member(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let (founder, acme) = seed_org(&pair.memory, 1).await;
    seed_org(pair.sql.as_ref(), 1).await;
    let bob = user(10, "bob@example.com", "Bob", "Stone");
    pair.commit(changes(vec![Change::InsertUser(bob.clone())])).await;
    let request = |n: u64, created: i64| JoinRequest {
        id: JoinRequestId::from_uuid(uuid(n)),
        org: acme.id,
        user: bob.id,
        message: Some(Note::parse("Hello, I work here").unwrap()),
        created_at: at(created),
        state: JoinRequestState::Pending,
    };
    let first = request(50, 10);
    pair.commit(changes(vec![Change::InsertJoinRequest(first.clone())])).await;
    assert_eq!(
        pair.commit(changes(vec![Change::InsertJoinRequest(request(51, 11))])).await,
        Outcome::Duplicate(Duplicate::PendingJoinRequest)
    );
    let mut rejected = first.clone();
    rejected.state =
        JoinRequestState::Rejected { by: founder.id, at: at(12), reason: Some(Note::parse("Not staff").unwrap()) };
    let mut decision = changes(vec![Change::UpdateJoinRequest(rejected.clone())]);
    decision.require(Precondition::JoinRequestPending { org: acme.id, id: first.id });
    assert_eq!(pair.commit(decision.clone()).await, Outcome::Committed);
    assert_eq!(pair.commit(decision).await, Outcome::Conflict);

    let second = request(52, 13);
    pair.commit(changes(vec![Change::InsertJoinRequest(second.clone())])).await;
    // Re-opening the rejected one would make two pending.
    assert_eq!(
        pair.commit(changes(vec![Change::UpdateJoinRequest(first.clone())])).await,
        Outcome::Duplicate(Duplicate::PendingJoinRequest)
    );
    let mut approved = second.clone();
    approved.state = JoinRequestState::Approved { by: None, at: at(14), role: builtin::USER };
    pair.commit(changes(vec![Change::UpdateJoinRequest(approved.clone())])).await;
    let third = request(53, 15);
    pair.commit(changes(vec![Change::InsertJoinRequest(third.clone())])).await;
    let mut withdrawn = third.clone();
    withdrawn.state = JoinRequestState::Withdrawn { at: at(16) };
    let fourth = request(54, 17);
    pair.commit(changes(vec![Change::UpdateJoinRequest(withdrawn.clone()), Change::InsertJoinRequest(fourth.clone())]))
        .await;

    assert_eq!(pair.sql.join_request(acme.id, first.id).await.unwrap(), Some(rejected));
    assert_eq!(pair.sql.join_request(acme.id, second.id).await.unwrap(), Some(approved));
    assert_eq!(pair.sql.pending_join_requests(acme.id).await.unwrap(), vec![fourth]);
    assert_eq!(
        pair.sql.join_requests_of_user(bob.id).await.unwrap(),
        pair.memory.join_requests_of_user(bob.id).await.unwrap()
    );
    assert_eq!(pair.sql.join_requests_of_user(bob.id).await.unwrap().len(), 4);
}

async fn tokens_and_sessions_follow_their_lifecycle(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let bob = user(10, "bob@example.com", "Bob", "Stone");
    pair.commit(changes(vec![Change::InsertUser(bob.clone())])).await;
    let token = |n: u8, purpose: TokenPurpose| OneTimeToken {
        hash: hash(n),
        user: bob.id,
        purpose,
        created_at: at(i64::from(n)),
        expires_at: at(i64::from(n) + 3600),
        used_at: None,
    };
    let verify = TokenPurpose::VerifyEmail { email: email("Bob.New@example.com") };
    pair.commit(changes(vec![
        Change::InsertToken(token(1, TokenPurpose::ResetPassword)),
        Change::InsertToken(token(2, TokenPurpose::ResetPassword)),
        Change::InsertToken(token(3, verify.clone())),
    ]))
    .await;
    assert_eq!(pair.sql.one_time_token(&hash(3)).await.unwrap(), Some(token(3, verify)));
    assert_eq!(
        pair.commit(changes(vec![Change::InsertToken(token(3, TokenPurpose::ResetPassword))])).await,
        Outcome::Store
    );

    let mut consume = changes(vec![Change::ConsumeToken { hash: hash(1), at: at(60) }]);
    consume.require(Precondition::TokenUnused { hash: hash(1) });
    assert_eq!(pair.commit(consume.clone()).await, Outcome::Committed);
    assert_eq!(pair.commit(consume).await, Outcome::Conflict);
    pair.commit(changes(vec![Change::ExpireTokens { user: bob.id, reset: true, at: at(61) }])).await;
    for n in 1..=3 {
        assert_eq!(
            pair.sql.one_time_token(&hash(n)).await.unwrap(),
            pair.memory.one_time_token(&hash(n)).await.unwrap()
        );
    }
    assert!(pair.sql.one_time_token(&hash(3)).await.unwrap().unwrap().used_at.is_none());

    let session = |n: u8, created: i64| Session {
        id: SessionId::from_uuid(uuid(u64::from(n) + 100)),
        user: bob.id,
        token_hash: hash(n + 100),
        created_at: at(created),
        last_seen_at: at(created),
        expires_at: at(created + 86_400),
        password_change_required: true,
        revoked_at: None,
    };
    pair.commit(changes(vec![
        Change::InsertSession(session(1, 1)),
        Change::InsertSession(session(2, 2)),
        Change::InsertSession(session(3, 3)),
    ]))
    .await;
    pair.commit(changes(vec![
        Change::TouchSession { hash: hash(101), at: at(500) },
        Change::UnrestrictSession { hash: hash(101) },
        Change::RevokeSession { hash: hash(102), at: at(501) },
        Change::RevokeSession { hash: hash(102), at: at(502) },
    ]))
    .await;
    assert_eq!(pair.sql.sessions_of_user(bob.id).await.unwrap(), pair.memory.sessions_of_user(bob.id).await.unwrap());
    pair.commit(changes(vec![Change::RevokeSessionsOf { user: bob.id, except: Some(hash(103)), at: at(600) }])).await;
    for n in 101..=103 {
        assert_eq!(pair.sql.session(&hash(n)).await.unwrap(), pair.memory.session(&hash(n)).await.unwrap());
    }
    assert_eq!(pair.sql.sessions_of_user(bob.id).await.unwrap(), vec![session(3, 3)]);
    assert_eq!(pair.commit(changes(vec![Change::TouchSession { hash: hash(9), at: at(1) }])).await, Outcome::Store);
}

async fn audit_and_runs_page_newest_first(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let (founder, acme) = seed_org(&pair.memory, 1).await;
    seed_org(pair.sql.as_ref(), 1).await;
    let mut set = ChangeSet::new();
    for n in 10..15 {
        set.audit(audit_entry(n, Some(acme.id)));
    }
    set.audit(audit_entry(20, None));
    for n in 30..35 {
        set.push(Change::InsertRun(RunRecord {
            id: RunId::from_uuid(uuid(n)),
            org: acme.id,
            capability: CapabilityKey::parse("automated_recall").unwrap(),
            started_at: at(1),
            finished_at: at(2),
            outcome: if n % 2 == 0 { RunOutcome::Succeeded } else { RunOutcome::Failed { detail: "smtp down".into() } },
            counts: BTreeMap::from([("patients_contacted".to_owned(), n)]),
            recorded_by: founder.id,
        }));
    }
    pair.commit(set).await;
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = PageRequest { limit: 2, after: after.clone() };
        let sql = pair.sql.audit_entries(acme.id, page.clone()).await.unwrap();
        assert_eq!(sql, pair.memory.audit_entries(acme.id, page.clone()).await.unwrap());
        let runs = pair.sql.runs(acme.id, page.clone()).await.unwrap();
        assert_eq!(runs, pair.memory.runs(acme.id, page).await.unwrap());
        pages += 1;
        after = sql.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert!(pair.sql.audit_entries(acme.id, PageRequest { limit: 2, after: Some("nonsense".into()) }).await.is_err());
    assert!(pair.sql.runs(acme.id, PageRequest { limit: 2, after: Some("nonsense".into()) }).await.is_err());
}

async fn outbox_claims_leases_and_erases_secrets(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let token = Token::from_secret(&Secret::from_bytes([7; 32]));
    let mut set = ChangeSet::new();
    set.send(message(3, "a@example.com", Notification::PasswordReset { token: token.clone(), expires_at: at(99) }));
    set.send(message(1, "b@example.com", Notification::PasswordChanged { at: at(1) }));
    set.send(message(
        2,
        "c@example.com",
        Notification::AccountCreated {
            org_name: "Acme".into(),
            created_by: "Ann Lee".into(),
            temporary_password: Password::new("Tëmp-Pass-123"),
            expires_at: at(99),
        },
    ));
    let mut routed = message(
        4,
        "d@example.com",
        Notification::JoinRequestReceived {
            request: JoinRequestId::from_uuid(uuid(5)),
            org_name: "Acme".into(),
            requester_name: "Bob Stone".into(),
            requester_email: email("Bob@example.com"),
            message: None,
        },
    );
    routed.topic = Some(Topic::parse("join_requests").unwrap());
    routed.org = Some(OrgId::from_uuid(uuid(6)));
    set.send(routed);
    let link = SetPasswordLink { token: Token::from_secret(&Secret::from_bytes([8; 32])), expires_at: at(99) };
    set.send(message(
        5,
        "e@example.com",
        Notification::AdministratorAppointed { org_name: "Riverside".into(), set_password: Some(link) },
    ));
    set.send(message(
        6,
        "f@example.com",
        Notification::AdministratorAppointed { org_name: "Riverside".into(), set_password: None },
    ));
    pair.commit(set).await;

    let lease = Duration::seconds(60);
    let ids = |claimed: &[ClaimedEmail]| claimed.iter().map(|c| c.email.id).collect::<Vec<_>>();
    let sql = pair.sql.claim(2, at(10), lease).await.unwrap();
    assert_eq!(sql, pair.memory.claim(2, at(10), lease).await.unwrap());
    assert_eq!(ids(&sql), vec![MessageId::from_uuid(uuid(1)), MessageId::from_uuid(uuid(2))]);
    let rest = pair.sql.claim(10, at(11), lease).await.unwrap();
    assert_eq!(rest, pair.memory.claim(10, at(11), lease).await.unwrap());
    assert_eq!(rest.len(), 4);
    assert!(pair.sql.claim(10, at(12), lease).await.unwrap().is_empty());

    for store in [&pair.memory as &dyn Outbox, pair.sql.as_ref() as &dyn Outbox] {
        store.mark_sent(MessageId::from_uuid(uuid(3)), at(20)).await.unwrap();
        store.mark_sent(MessageId::from_uuid(uuid(1)), at(20)).await.unwrap();
        store.mark_sent(MessageId::from_uuid(uuid(5)), at(20)).await.unwrap();
        store.mark_sent(MessageId::from_uuid(uuid(6)), at(20)).await.unwrap();
        store
            .mark_failed(
                MessageId::from_uuid(uuid(2)),
                DeliveryFailure::Dead { error: "bounced".into(), reports: Vec::new() },
            )
            .await
            .unwrap();
        store
            .mark_failed(MessageId::from_uuid(uuid(4)), DeliveryFailure::Retry { error: "timeout".into(), at: at(200) })
            .await
            .unwrap();
        assert!(store.mark_sent(MessageId::from_uuid(uuid(99)), at(20)).await.is_err());
    }
    // Sent, dead and not yet due: nothing to claim; then the retry falls due.
    assert!(pair.sql.claim(10, at(100), lease).await.unwrap().is_empty());
    let retried = pair.sql.claim(10, at(200), lease).await.unwrap();
    assert_eq!(retried, pair.memory.claim(10, at(200), lease).await.unwrap());
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
    for store in [&pair.memory as &dyn Outbox, pair.sql.as_ref() as &dyn Outbox] {
        store.release(&[MessageId::from_uuid(uuid(4))]).await.unwrap();
    }
    assert_eq!(pair.sql.claim(10, at(201), lease).await.unwrap(), pair.memory.claim(10, at(201), lease).await.unwrap());
    // The secret-carrying payloads are gone from the table; an appointment without a link
    // carries none and keeps its payload.
    let reference: Vec<_> = pair.memory.outbox().into_iter().map(|m| (m.id, m.payload.is_some())).collect();
    let kept: Vec<MessageId> = reference.iter().filter(|(_, kept)| *kept).map(|(id, _)| *id).collect();
    assert_eq!(kept, [1, 4, 6].map(|n| MessageId::from_uuid(uuid(n))));
    let sql = "SELECT id FROM outbox WHERE payload IS NOT NULL ORDER BY queued_at, id";
    let db = pair.sql.connection();
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    let stored: Vec<MessageId> = rows
        .iter()
        .map(|row| MessageId::from_uuid(uuid::Uuid::from_slice(&row.try_get::<Vec<u8>>("", "id").unwrap()).unwrap()))
        .collect();
    assert_eq!(stored, kept);
}

/// A row this version cannot read (a payload written by a newer version, or damaged)
/// becomes a dead letter with the reason instead of failing every claim after it.
async fn an_unreadable_outbox_row_is_given_up_and_does_not_block_the_others(fresh: Fresh) {
    let store = fresh().await;
    let org = OrgId::from_uuid(uuid(7));
    let mut good = message(2, "b@example.com", Notification::PasswordChanged { at: at(1) });
    good.org = Some(org);
    let mut bad = message(1, "a@example.com", Notification::PasswordChanged { at: at(0) });
    bad.org = Some(org);
    store.commit(ChangeSet { emails: vec![bad.clone(), good.clone()], ..ChangeSet::new() }).await.unwrap();
    let db = store.connection();
    let damage = Statement::from_sql_and_values(
        db.get_database_backend(),
        match db.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                "UPDATE outbox SET payload = '{\"kind\":\"from_the_future\"}' WHERE id = $1"
            }
            _ => "UPDATE outbox SET payload = '{\"kind\":\"from_the_future\"}' WHERE id = ?",
        },
        [uuid(1).as_bytes().to_vec().into()],
    );
    db.execute_raw(damage).await.unwrap();

    let claimed = store.claim(10, at(10), Duration::minutes(5)).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.email.id).collect::<Vec<_>>(), vec![good.id]);
    let dead = store.undelivered(org, PageRequest::first(10)).await.unwrap().items;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, bad.id);
    assert!(dead[0].last_error.as_deref().unwrap().starts_with("the stored message cannot be read"), "{dead:?}");
    assert!(store.claim(10, at(20), Duration::minutes(5)).await.unwrap().is_empty(), "the good one is leased");
}

/// The dead-letter list is one seek on its index, without a sort, on both databases.
async fn the_dead_letter_list_uses_its_index(fresh: Fresh) {
    let store = fresh().await;
    // An outbox of some size, mostly delivered, with statistics (SQLite's connections run
    // `PRAGMA optimize`; PostgreSQL autovacuum analyses): on a few rows any plan will do.
    let emails: Vec<OutboundEmail> = (1..=600)
        .map(|n| {
            let mut email = message(n, "a@example.com", Notification::PasswordChanged { at: at(0) });
            email.org = Some(OrgId::from_uuid(uuid(n % 30)));
            email
        })
        .collect();
    store.commit(ChangeSet { emails, ..ChangeSet::new() }).await.unwrap();
    let db = store.connection();
    let backend = db.get_database_backend();
    db.execute_unprepared("UPDATE outbox SET sent_at = 1 WHERE attempts = 0").await.unwrap();
    db.execute_unprepared("ANALYZE").await.unwrap();
    let (explain, org) = match backend {
        sea_orm::DatabaseBackend::Postgres => ("EXPLAIN", "'\\x00000000000000000000000000000007'::bytea"),
        _ => ("EXPLAIN QUERY PLAN", "x'00000000000000000000000000000007'"),
    };
    // The statement the store issues, as sea-query renders it.
    let sql = format!(
        "{explain} SELECT * FROM outbox WHERE outbox.org_id = {org} AND outbox.dead = TRUE ORDER BY outbox.id DESC LIMIT 11"
    );
    let rows = db.query_all_raw(Statement::from_string(backend, sql)).await.unwrap();
    let plan: Vec<String> = rows
        .iter()
        .map(|row| row.try_get::<String>("", "detail").or_else(|_| row.try_get::<String>("", "QUERY PLAN")).unwrap())
        .collect();
    assert!(plan.iter().any(|line| line.contains("outbox_dead_by_org")), "{plan:?}");
    assert!(!plan.iter().any(|line| line.contains("TEMP B-TREE") || line.contains("Sort")), "no sort: {plan:?}");
}

async fn member_search_matches_the_reference_on_every_filter_and_page(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let (founder, acme) = seed_org(&pair.memory, 1).await;
    seed_org(pair.sql.as_ref(), 1).await;
    let (_, other) = seed_org(&pair.memory, 500).await;
    seed_org(pair.sql.as_ref(), 500).await;
    let north = Facility {
        id: FacilityId::from_uuid(uuid(30)),
        org: acme.id,
        name: FacilityName::parse("North").unwrap(),
        created_at: at(3),
    };
    pair.commit(changes(vec![Change::InsertFacility(north.clone())])).await;
    let names = [
        ("Zoë", "Åberg"),
        ("zoe", "aberg"),
        ("Émile", "Zola"),
        ("ann", "O'Brien"),
        ("Ann", "o'brien"),
        ("Bob", "Smith"),
        ("bob", "smith"),
        ("Σίσυφος", "ΟΔΥΣΣΕΥΣ"),
        ("Li", "Wu"),
        ("Al", "Wu"),
        ("Mary-Jane", "Watson"),
        ("Ian", "_under"),
        ("Pct", "100%"),
        ("Ed", "Ng"),
        ("Ed", "Ng"),
    ];
    let mut set = ChangeSet::new();
    for (i, (first, last)) in names.iter().enumerate() {
        let n = 100 + u64::try_from(i).unwrap();
        let person =
            user(n, &format!("Person{i}.{}@Example.com", if i % 2 == 0 { "even" } else { "odd" }), first, last);
        set.push(Change::InsertUser(person.clone()));
        let role = [builtin::USER, builtin::MANAGER, builtin::USER_PLUS][i % 3].clone();
        let mut membership = member(acme.id, person.id, role);
        if i % 4 == 0 {
            membership.facilities.insert(north.id);
        }
        if i % 5 == 1 {
            membership.status = MembershipStatus::Suspended { since: at(1), by: founder.id };
        }
        if i % 5 == 2 {
            membership.expires_at = Some(at(50));
        }
        if i % 5 == 3 {
            membership.expires_at = Some(at(5000));
        }
        set.push(Change::InsertMembership(membership));
        if i % 3 == 0 {
            set.push(Change::InsertMembership(member(other.id, person.id, builtin::USER)));
        }
    }
    pair.commit(set).await;

    let texts = [
        None,
        Some("wu"),
        Some("ANN O"),
        Some("example.com"),
        Some("odd@"),
        Some("σ"),
        Some("ς"),
        Some("%"),
        Some("_"),
        Some("zo"),
        Some("É"),
        Some("nobody"),
    ];
    let roles = [None, Some(builtin::USER), Some(builtin::ADMINISTRATOR)];
    let states = [None, Some(MemberState::Active), Some(MemberState::Suspended), Some(MemberState::Expired)];
    for text in texts {
        for role in &roles {
            for state in states {
                for facility in [None, Some(north.id)] {
                    for limit in [1, 4, 200] {
                        let mut query = MemberQuery {
                            org: acme.id,
                            text: text.map(str::to_owned),
                            role: role.clone(),
                            facility,
                            state,
                            as_of: at(100),
                            limit,
                            after: None,
                        };
                        loop {
                            let expected = pair.memory.search_members(&query).await.unwrap();
                            let actual = pair.sql.search_members(&query).await.unwrap();
                            assert_eq!(actual, expected, "{query:?}");
                            match actual.next {
                                Some(next) => query.after = Some(next),
                                None => break,
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn a_failed_commit_leaves_no_partial_state(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let (_, acme) = seed_org(&pair.memory, 1).await;
    seed_org(pair.sql.as_ref(), 1).await;
    let bob = user(10, "bob@example.com", "Bob", "Stone");
    // The first writes succeed, then a change refers to a missing row: nothing may stay.
    let mut set = changes(vec![
        Change::InsertUser(bob.clone()),
        Change::InsertMembership(member(acme.id, bob.id, builtin::USER)),
        Change::UpdateMembership(member(acme.id, guildhall_domain::ids::UserId::from_uuid(uuid(404)), builtin::USER)),
    ]);
    set.require(Precondition::OrgVersion { org: acme.id, version: 0 });
    set.audit(audit_entry(60, Some(acme.id)));
    set.send(message(61, "bob@example.com", Notification::PasswordChanged { at: at(1) }));
    assert_eq!(pair.commit(set).await, Outcome::Store);
    assert_eq!(pair.sql.user(bob.id).await.unwrap(), None);
    assert_eq!(pair.sql.membership(acme.id, bob.id).await.unwrap(), None);
    assert_eq!(pair.sql.organisation(acme.id).await.unwrap().unwrap().version, 0);
    assert!(pair.sql.audit_entries(acme.id, PageRequest::first(10)).await.unwrap().items.is_empty());
    assert!(pair.sql.claim(10, at(100), Duration::seconds(1)).await.unwrap().is_empty());

    // A duplicate after other writes rolls them back too.
    let carol = user(11, "carol@example.com", "Carol", "King");
    let set = changes(vec![
        Change::InsertUser(carol.clone()),
        Change::InsertUser(user(12, "CAROL@example.com", "Other", "Carol")),
    ]);
    assert_eq!(pair.commit(set).await, Outcome::Duplicate(Duplicate::Email));
    assert_eq!(pair.sql.user(carol.id).await.unwrap(), None);
}

async fn caller_bugs_are_store_errors(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let (founder, acme) = seed_org(&pair.memory, 1).await;
    seed_org(pair.sql.as_ref(), 1).await;
    let ghost = guildhall_domain::ids::UserId::from_uuid(uuid(404));
    let nowhere = OrgId::from_uuid(uuid(405));
    let cases = vec![
        Change::InsertUser(founder.clone()),
        Change::InsertOrganisation(org(406, "ghost-town", ghost)),
        Change::InsertMembership(member(acme.id, ghost, builtin::USER)),
        Change::InsertMembership(member(nowhere, founder.id, builtin::USER)),
        Change::UpdateUser(user(404, "ghost@example.com", "G", "Host")),
        Change::UpdateOrganisation(org(405, "nowhere", founder.id)),
        Change::DeleteRole { org: acme.id, key: RoleKey::parse("nothing").unwrap() },
        Change::DeleteFacility { org: acme.id, id: FacilityId::from_uuid(uuid(407)) },
        Change::ConsumeToken { hash: hash(9), at: at(1) },
        Change::RevokeSession { hash: hash(9), at: at(1) },
        Change::UnrestrictSession { hash: hash(9) },
    ];
    for change in cases {
        assert_eq!(pair.commit(changes(vec![change])).await, Outcome::Store);
    }
    let mut twice = ChangeSet::new();
    twice.audit(audit_entry(70, Some(acme.id)));
    twice.audit(audit_entry(70, Some(acme.id)));
    assert_eq!(pair.commit(twice).await, Outcome::Store);
}

async fn renaming_an_account_moves_it_in_every_member_list(fresh: Fresh) {
    let pair = Pair::new(&fresh).await;
    let (_, acme) = seed_org(&pair.memory, 1).await;
    seed_org(pair.sql.as_ref(), 1).await;
    let (_, other) = seed_org(&pair.memory, 500).await;
    seed_org(pair.sql.as_ref(), 500).await;
    let mut set = ChangeSet::new();
    for (n, last) in [(10, "Adams"), (11, "Brown"), (12, "Clark")] {
        let person = user(n, &format!("p{n}@example.com"), "Pat", last);
        set.push(Change::InsertUser(person.clone()));
        set.push(Change::InsertMembership(member(acme.id, person.id, builtin::USER)));
        set.push(Change::InsertMembership(member(other.id, person.id, builtin::USER)));
    }
    pair.commit(set).await;
    let mut adams = pair.memory.user(guildhall_domain::ids::UserId::from_uuid(uuid(10))).await.unwrap().unwrap();
    adams.name = guildhall_domain::values::PersonName::parse("Pat", "Zimmer").unwrap();
    let mut rename = changes(vec![Change::UpdateUser(adams.clone())]);
    rename.require(Precondition::UserVersion { user: adams.id, version: 0 });
    pair.commit(rename).await;
    for org in [acme.id, other.id] {
        let query = MemberQuery {
            org,
            text: Some("pat".into()),
            role: None,
            facility: None,
            state: None,
            as_of: at(100),
            limit: 2,
            after: None,
        };
        let first = pair.sql.search_members(&query).await.unwrap();
        assert_eq!(first, pair.memory.search_members(&query).await.unwrap());
        let next = MemberQuery { after: first.next.clone(), ..query };
        let second = pair.sql.search_members(&next).await.unwrap();
        assert_eq!(second, pair.memory.search_members(&next).await.unwrap());
        assert_eq!(second.items.last().map(|m| m.membership.user), Some(adams.id));
    }
}
