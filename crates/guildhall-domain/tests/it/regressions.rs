//! Regression tests for bugs seen in peer systems, each named for the bug.
//!
//! Races are staged with `MemoryStore::land_before_next_commit`: the change set the
//! concurrent request's use case would commit (same preconditions, changes, audit entry)
//! lands between the use case's reads and its commit, as it would on a real database.

use chrono::Duration;
use guildhall_domain::audit::{AuditAction, AuditEntry, AuditTarget, FieldChange};
use guildhall_domain::catalogue::permissions as p;
use guildhall_domain::error::AccessError;
use guildhall_domain::ids::{AuditId, InvitationId, JoinRequestId, MessageId, OrgId, SessionId, UserId};
use guildhall_domain::invitation::{Invitation, InvitationState};
use guildhall_domain::join_request::{JoinRequest, JoinRequestState};
use guildhall_domain::membership::{Membership, MembershipOrigin};
use guildhall_domain::notification::{Notification, OutboundEmail};
use guildhall_domain::org::JoinPolicy;
use guildhall_domain::policy::{InvariantViolation, RoleChange};
use guildhall_domain::ports::{Change, ChangeSet, Clock, Precondition, UnitOfWork};
use guildhall_domain::role::{RoleGrant, RolePolicy, RoleSet, Scope, builtin};
use guildhall_domain::testing::TestKit;
use guildhall_domain::token::{Secret, Session, Token};
use guildhall_domain::usecases::{
    AcceptInvitationError, CreateMemberOutcome, DecideJoinRequestError, DeclineInvitationError, InviteError,
    MemberQueryError, MemberStatusError, MemberUpdate, NewMember, RequestToJoinError, RoleChangeError,
    UpdateMemberError,
};
use guildhall_domain::user::{PasswordState, User, UserStatus};
use guildhall_domain::values::{EmailAddress, PersonName};
use uuid::Uuid;

use crate::support::Acme;

impl Acme {
    fn memberships(&self) -> Vec<Membership> {
        self.kit.store.memberships(self.org.id)
    }

    /// The members who count as administrators now (active, unsuspended, no expiry,
    /// managing members and roles).
    fn administrators(&self) -> Vec<UserId> {
        let roles = RoleSet::new(
            self.kit.store.snapshot().roles.into_iter().filter(|((org, _), _)| *org == self.org.id).map(|(_, r)| r),
        );
        let catalogue = self.kit.guildhall.catalogue();
        let policy = RolePolicy::new(catalogue, &roles);
        let now = self.kit.clock.now();
        self.memberships().into_iter().filter(|m| policy.is_administrator(m, now)).map(|m| m.user).collect()
    }

    fn version(&self) -> u64 {
        self.stored_org().version
    }

    fn count_audit(&self, action: AuditAction) -> usize {
        self.kit.store.audit().iter().filter(|e| e.action == action).count()
    }

    /// An audit entry as a use case would write it.
    fn audit(&self, n: u128, actor: UserId, action: AuditAction, target: AuditTarget) -> AuditEntry {
        AuditEntry {
            id: AuditId::from_uuid(Uuid::from_u128(0xa0d1_7000 + n)),
            org: Some(self.org.id),
            actor: Some(actor),
            action,
            target,
            at: self.kit.clock.now(),
            changes: Vec::new(),
        }
    }

    async fn allow_requests(&self) {
        self.set_policy(JoinPolicy::RequestsAllowed).await;
    }
}

// ---- (1) single-use invitations ------------------------------------------------------------------

#[tokio::test]
async fn regression_an_invitation_accepted_twice_creates_one_membership_and_one_acceptance() {
    let acme = Acme::new().await;
    let (_, token) = acme.invite("bo@example.com", &builtin::USER).await;
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();
    acme.kit.guildhall.invitations().accept(bo.id, &token).await.unwrap();
    let after_first = acme.kit.store.snapshot();

    let err = acme.kit.guildhall.invitations().accept(bo.id, &token).await.unwrap_err();

    assert!(matches!(err, AcceptInvitationError::AlreadyUsed), "{err:?}");
    assert_eq!(acme.memberships().iter().filter(|m| m.user == bo.id).count(), 1);
    assert_eq!(acme.count_audit(AuditAction::InvitationAccepted), 1);
    assert_eq!(acme.kit.store.snapshot(), after_first);
}

#[tokio::test]
async fn regression_two_racing_acceptances_of_one_invitation_create_one_membership() {
    let acme = Acme::new().await;
    let (invitation, token) = acme.invite("bo@example.com", &builtin::USER).await;
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();
    let now = acme.kit.clock.now();
    // The first acceptance (the same link clicked twice) commits between the second's
    // reads and its commit.
    let mut first = ChangeSet::new();
    first
        .require(Precondition::InvitationPending {
            org: acme.org.id,
            id: invitation.id,
            token_hash: invitation.token_hash,
        })
        .require(Precondition::OrgUnchanged { org: acme.org.id, version: acme.version() })
        .push(Change::UpdateInvitation(Invitation {
            state: InvitationState::Accepted { by: bo.id, at: now },
            ..invitation.clone()
        }))
        .push(Change::InsertMembership(Membership::new(
            acme.org.id,
            bo.id,
            builtin::USER,
            MembershipOrigin::Invitation,
            Some(acme.ann.id),
            now,
        )))
        .audit(acme.audit(1, bo.id, AuditAction::InvitationAccepted, AuditTarget::Invitation(invitation.id)));
    acme.kit.store.land_before_next_commit(first);
    let attempts = acme.kit.store.commit_attempts();

    let err = acme.kit.guildhall.invitations().accept(bo.id, &token).await.unwrap_err();

    assert!(matches!(err, AcceptInvitationError::AlreadyUsed | AcceptInvitationError::AlreadyMember), "{err:?}");
    assert_eq!(acme.kit.store.commit_attempts(), attempts + 1, "the second acceptance decided on the pending state");
    assert_eq!(acme.memberships().iter().filter(|m| m.user == bo.id).count(), 1);
    assert_eq!(acme.count_audit(AuditAction::InvitationAccepted), 1);
}

#[tokio::test]
async fn regression_an_acceptance_racing_with_the_deletion_of_its_role_is_refused() {
    let acme = Acme::new().await;
    let front_desk =
        acme.custom_role_granting("front_desk", RoleGrant::Only([p::REPORTS_VIEW].into_iter().collect())).await;
    let (invitation, token) = acme.invite("bo@example.com", &front_desk).await;
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();
    // What `Roles::delete_role` commits: the role goes and its open invitations die with it.
    let revoked = guildhall_domain::invitation::Invitation {
        state: InvitationState::Revoked { by: acme.ann.id, at: acme.kit.clock.now() },
        ..invitation.clone()
    };
    let mut deletion = ChangeSet::new();
    deletion
        .require(Precondition::OrgVersion { org: acme.org.id, version: acme.version() })
        .require(Precondition::RoleUnheld { org: acme.org.id, role: front_desk.clone() })
        .require(Precondition::InvitationPending {
            org: acme.org.id,
            id: invitation.id,
            token_hash: invitation.token_hash,
        })
        .push(Change::UpdateInvitation(revoked))
        .push(Change::DeleteRole { org: acme.org.id, key: front_desk.clone() })
        .audit(acme.audit(1, acme.ann.id, AuditAction::RoleDeleted, AuditTarget::Role(front_desk)));
    acme.kit.store.land_before_next_commit(deletion);

    let err = acme.kit.guildhall.invitations().accept(bo.id, &token).await.unwrap_err();

    assert!(matches!(err, AcceptInvitationError::Revoked { .. }), "{err:?}");
    assert!(acme.membership(bo.id).is_none(), "no member may hold a deleted role");
    assert!(matches!(
        acme.kit.store.invitations().into_iter().find(|i| i.id == invitation.id).unwrap().state,
        InvitationState::Revoked { .. }
    ));
}

#[tokio::test]
async fn regression_a_role_deletion_racing_with_an_acceptance_moves_the_new_member_to_the_replacement() {
    let acme = Acme::new().await;
    let front_desk =
        acme.custom_role_granting("front_desk", RoleGrant::Only([p::REPORTS_VIEW].into_iter().collect())).await;
    let (invitation, _) = acme.invite("bo@example.com", &front_desk).await;
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();
    // Bo's acceptance lands between the deletion's reads and its commit.
    let now = acme.kit.clock.now();
    let accepted = guildhall_domain::invitation::Invitation {
        state: InvitationState::Accepted { by: bo.id, at: now },
        ..invitation.clone()
    };
    let membership = guildhall_domain::membership::Membership::new(
        acme.org.id,
        bo.id,
        front_desk.clone(),
        guildhall_domain::membership::MembershipOrigin::Invitation,
        Some(acme.ann.id),
        now,
    );
    let mut acceptance = ChangeSet::new();
    acceptance
        .require(Precondition::InvitationPending {
            org: acme.org.id,
            id: invitation.id,
            token_hash: invitation.token_hash,
        })
        .require(Precondition::OrgUnchanged { org: acme.org.id, version: acme.version() })
        .push(Change::UpdateInvitation(accepted))
        .push(Change::InsertMembership(membership));
    acme.kit.store.land_before_next_commit(acceptance);

    acme.kit.guildhall.roles().delete_role(acme.ann.id, acme.org.id, &front_desk, Some(&builtin::USER)).await.unwrap();

    assert_eq!(acme.membership(bo.id).unwrap().role, builtin::USER, "the new member moved to the replacement");
    assert!(
        matches!(
            acme.kit.store.invitations().into_iter().find(|i| i.id == invitation.id).unwrap().state,
            InvitationState::Accepted { .. }
        ),
        "an accepted invitation is never rewritten as revoked"
    );
}

// ---- (2) invitations bound to their address -------------------------------------------------------

#[tokio::test]
async fn regression_an_invitation_link_forwarded_to_another_address_cannot_be_used() {
    let acme = Acme::new().await;
    let (invitation, token) = acme.invite("bo@example.com", &builtin::MANAGER).await;
    // Someone else, verified, even with the same name, holding the forwarded link.
    let other = acme.kit.seed_user("bo@elsewhere.example", true).await.unwrap();
    let before = acme.kit.store.snapshot();

    let err = acme.kit.guildhall.invitations().accept(other.id, &token).await.unwrap_err();
    assert!(matches!(&err, AcceptInvitationError::WrongAccount { invited } if *invited == invitation.email), "{err:?}");
    let err = acme.kit.guildhall.invitations().decline(other.id, &token).await.unwrap_err();
    assert!(matches!(err, DeclineInvitationError::WrongAccount { .. }), "{err:?}");

    assert_eq!(acme.kit.store.snapshot(), before);
    assert!(acme.membership(other.id).is_none());
    // The invitee can still use it.
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();
    acme.kit.guildhall.invitations().accept(bo.id, &token).await.unwrap();
}

// ---- (3) the last administrator -----------------------------------------------------------------------

#[tokio::test]
async fn regression_the_sole_administrator_cannot_demote_themself() {
    let acme = Acme::new().await;
    acme.member("bo@example.com", builtin::MANAGER).await;
    let before = acme.kit.store.snapshot();

    let err = acme
        .kit
        .guildhall
        .members()
        .change_role(acme.ann.id, acme.org.id, acme.ann.id, &builtin::MANAGER)
        .await
        .unwrap_err();
    assert!(matches!(err, UpdateMemberError::Refused(InvariantViolation::NoAdministratorLeft)), "{err:?}");
    let change = RoleChange::AssignRole { user: acme.ann.id, role: builtin::USER };
    let err = acme.kit.guildhall.roles().apply(acme.ann.id, acme.org.id, &change).await.unwrap_err();
    assert!(
        matches!(&err, RoleChangeError::Refused(preview) if preview.violations == [InvariantViolation::NoAdministratorLeft]),
        "{err:?}"
    );

    assert_eq!(acme.kit.store.snapshot(), before);
    assert_eq!(acme.administrators(), [acme.ann.id]);
}

#[tokio::test]
async fn regression_the_sole_administrator_cannot_leave() {
    let acme = Acme::new().await;
    acme.member("bo@example.com", builtin::MANAGER).await;

    let err = acme.kit.guildhall.members().leave(acme.ann.id, acme.org.id).await.unwrap_err();

    assert!(matches!(err, MemberStatusError::Refused(InvariantViolation::NoAdministratorLeft)), "{err:?}");
    assert_eq!(acme.administrators(), [acme.ann.id]);
    // With a second administrator, leaving is fine.
    let bea = acme.member("bea@acme-physio.example", builtin::ADMINISTRATOR).await;
    acme.kit.guildhall.members().leave(acme.ann.id, acme.org.id).await.unwrap();
    assert_eq!(acme.administrators(), [bea.id]);
}

#[tokio::test]
async fn regression_the_sole_administrator_cannot_suspend_or_remove_themself() {
    let acme = Acme::new().await;
    let before = acme.kit.store.snapshot();

    let err = acme.kit.guildhall.members().suspend(acme.ann.id, acme.org.id, acme.ann.id).await.unwrap_err();
    assert!(
        matches!(
            err,
            MemberStatusError::OwnMembership | MemberStatusError::Refused(InvariantViolation::NoAdministratorLeft)
        ),
        "{err:?}"
    );
    let err = acme.kit.guildhall.members().remove(acme.ann.id, acme.org.id, acme.ann.id).await.unwrap_err();
    assert!(
        matches!(
            err,
            MemberStatusError::OwnMembership | MemberStatusError::Refused(InvariantViolation::NoAdministratorLeft)
        ),
        "{err:?}"
    );

    assert_eq!(acme.kit.store.snapshot(), before);
}

#[tokio::test]
async fn regression_the_sole_administrator_cannot_set_an_expiry_on_themself() {
    let acme = Acme::new().await;
    let update =
        MemberUpdate { expires_at: Some(Some(acme.kit.clock.now() + Duration::days(90))), ..MemberUpdate::default() };

    let err =
        acme.kit.guildhall.members().update_member(acme.ann.id, acme.org.id, acme.ann.id, &update).await.unwrap_err();

    assert!(matches!(err, UpdateMemberError::Refused(InvariantViolation::NoAdministratorLeft)), "{err:?}");
    assert_eq!(acme.membership(acme.ann.id).unwrap().expires_at, None);
}

#[tokio::test]
async fn regression_an_administrator_with_an_expiry_does_not_count_as_the_one_left() {
    let acme = Acme::new().await;
    let bea = acme.member("bea@acme-physio.example", builtin::ADMINISTRATOR).await;
    let update =
        MemberUpdate { expires_at: Some(Some(acme.kit.clock.now() + Duration::days(10))), ..MemberUpdate::default() };
    acme.kit.guildhall.members().update_member(acme.ann.id, acme.org.id, bea.id, &update).await.unwrap();

    let err = acme.kit.guildhall.members().remove(bea.id, acme.org.id, acme.ann.id).await.unwrap_err();
    assert!(matches!(err, MemberStatusError::Refused(InvariantViolation::NoAdministratorLeft)), "{err:?}");
    let err = acme.kit.guildhall.members().leave(acme.ann.id, acme.org.id).await.unwrap_err();
    assert!(matches!(err, MemberStatusError::Refused(InvariantViolation::NoAdministratorLeft)), "{err:?}");

    assert_eq!(acme.administrators(), [acme.ann.id]);
}

#[tokio::test]
async fn regression_the_sole_administrators_custom_role_cannot_lose_role_management_or_be_deleted() {
    let acme = Acme::new().await;
    let owner = acme.custom_role_granting("owner", RoleGrant::All).await;
    let mut changes = ChangeSet::new();
    changes.push(Change::UpdateMembership(Membership { role: owner.clone(), ..acme.membership(acme.ann.id).unwrap() }));
    acme.kit.store.commit(changes).await.unwrap();
    let before = acme.kit.store.snapshot();
    let all_but_roles: Vec<String> = acme
        .kit
        .guildhall
        .catalogue()
        .all_permissions()
        .into_iter()
        .filter(|p| *p != p::ROLES_MANAGE)
        .map(|p| p.to_string())
        .collect();

    let err =
        acme.kit.guildhall.roles().edit_role(acme.ann.id, acme.org.id, &owner, None, &all_but_roles).await.unwrap_err();
    assert!(
        matches!(&err, RoleChangeError::Refused(preview) if preview.violations.contains(&InvariantViolation::NoAdministratorLeft)),
        "{err:?}"
    );
    let err = acme
        .kit
        .guildhall
        .roles()
        .delete_role(acme.ann.id, acme.org.id, &owner, Some(&builtin::MANAGER))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RoleChangeError::Refused(preview) if preview.violations.contains(&InvariantViolation::NoAdministratorLeft)),
        "{err:?}"
    );

    assert_eq!(acme.kit.store.snapshot(), before);
}

// ---- (4) two administrators acting on each other at the same moment ------------------------------------

#[tokio::test]
async fn regression_two_administrators_removing_each_other_at_once_leave_exactly_one() {
    let acme = Acme::new().await;
    let bea = acme.member("bea@acme-physio.example", builtin::ADMINISTRATOR).await;
    let version = acme.version();
    // Bea's removal of Ann, exactly as `Members::remove` commits it, decided on the same
    // version as Ann's removal of Bea.
    let mut beas_removal = ChangeSet::new();
    beas_removal
        .require(Precondition::OrgVersion { org: acme.org.id, version })
        .push(Change::DeleteMembership { org: acme.org.id, user: acme.ann.id })
        .push(Change::RevokeSessionsOf { user: acme.ann.id, except: None, at: acme.kit.clock.now() })
        .audit(AuditEntry {
            changes: vec![FieldChange::new("role", Some("administrator"), None::<&str>)],
            ..acme.audit(1, bea.id, AuditAction::MemberRemoved, AuditTarget::User(acme.ann.id))
        });
    acme.kit.store.land_before_next_commit(beas_removal);
    let attempts = acme.kit.store.commit_attempts();

    let err = acme.kit.guildhall.members().remove(acme.ann.id, acme.org.id, bea.id).await.unwrap_err();

    assert_eq!(acme.kit.store.commit_attempts(), attempts + 1, "Ann decided on version {version} and conflicted");
    assert!(matches!(err, MemberStatusError::Access(AccessError::NotFound)), "{err:?}");
    assert_eq!(acme.memberships().iter().map(|m| m.user).collect::<Vec<_>>(), [bea.id]);
    assert_eq!(acme.administrators(), [bea.id]);
    assert_eq!(acme.count_audit(AuditAction::MemberRemoved), 1);
}

#[tokio::test]
async fn regression_two_administrators_demoting_each_other_at_once_leave_exactly_one() {
    let acme = Acme::new().await;
    let bea = acme.member("bea@acme-physio.example", builtin::ADMINISTRATOR).await;
    let mut beas_demotion = ChangeSet::new();
    beas_demotion
        .require(Precondition::OrgVersion { org: acme.org.id, version: acme.version() })
        .push(Change::UpdateMembership(Membership { role: builtin::USER, ..acme.membership(acme.ann.id).unwrap() }))
        .audit(AuditEntry {
            changes: vec![FieldChange::new("role", Some("administrator"), Some("user"))],
            ..acme.audit(1, bea.id, AuditAction::MemberUpdated, AuditTarget::User(acme.ann.id))
        });
    acme.kit.store.land_before_next_commit(beas_demotion);
    let attempts = acme.kit.store.commit_attempts();

    let err =
        acme.kit.guildhall.members().change_role(acme.ann.id, acme.org.id, bea.id, &builtin::USER).await.unwrap_err();

    assert_eq!(acme.kit.store.commit_attempts(), attempts + 1);
    assert!(
        matches!(&err, UpdateMemberError::Access(AccessError::Forbidden { permission, .. }) if *permission == p::MEMBERS_MANAGE),
        "{err:?}"
    );
    assert_eq!(acme.membership(bea.id).unwrap().role, builtin::ADMINISTRATOR);
    assert_eq!(acme.membership(acme.ann.id).unwrap().role, builtin::USER);
    assert_eq!(acme.administrators(), [bea.id]);
}

#[tokio::test]
async fn regression_two_administrators_leaving_at_once_leave_exactly_one() {
    let acme = Acme::new().await;
    let bea = acme.member("bea@acme-physio.example", builtin::ADMINISTRATOR).await;
    let mut beas_leaving = ChangeSet::new();
    beas_leaving
        .require(Precondition::OrgVersion { org: acme.org.id, version: acme.version() })
        .push(Change::DeleteMembership { org: acme.org.id, user: bea.id })
        .audit(acme.audit(1, bea.id, AuditAction::MemberLeft, AuditTarget::User(bea.id)));
    acme.kit.store.land_before_next_commit(beas_leaving);

    let err = acme.kit.guildhall.members().leave(acme.ann.id, acme.org.id).await.unwrap_err();

    assert!(matches!(err, MemberStatusError::Refused(InvariantViolation::NoAdministratorLeft)), "{err:?}");
    assert_eq!(acme.administrators(), [acme.ann.id]);
}

// ---- (5) removal takes effect at once ------------------------------------------------------------------

#[tokio::test]
async fn regression_a_removed_members_permissions_and_sessions_end_on_their_next_request() {
    let acme = Acme::new().await;
    let bo = acme.member("bo@example.com", builtin::MANAGER).await;
    let now = acme.kit.clock.now();
    let session = Session {
        id: SessionId::from_uuid(Uuid::from_u128(0x5e55)),
        user: bo.id,
        token_hash: Token::from_secret(&Secret::from_bytes([9; 32])).hash(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::days(14),
        password_change_required: false,
        revoked_at: None,
    };
    let mut changes = ChangeSet::new();
    changes.push(Change::InsertSession(session.clone()));
    acme.kit.store.commit(changes).await.unwrap();
    let members = acme.kit.guildhall.members();
    let scope = Scope::Organisation(acme.org.id);
    members.authorize(bo.id, &p::FINANCIALS_ACCESS, &scope).await.unwrap();

    members.remove(acme.ann.id, acme.org.id, bo.id).await.unwrap();

    let err = members.authorize(bo.id, &p::FINANCIALS_ACCESS, &scope).await.unwrap_err();
    assert!(matches!(err, MemberQueryError::Access(AccessError::NotFound)), "{err:?}");
    let err = members.get(bo.id, acme.org.id, bo.id).await.unwrap_err();
    assert!(matches!(err, MemberQueryError::Access(AccessError::NotFound)), "{err:?}");
    let stored = acme.kit.store.sessions().into_iter().find(|s| s.id == session.id).unwrap();
    assert_eq!(stored.revoked_at, Some(now));
}

// ---- (6) single-use join requests ------------------------------------------------------------------------

#[tokio::test]
async fn regression_a_join_request_approved_twice_creates_one_membership() {
    let acme = Acme::new().await;
    acme.allow_requests().await;
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();
    let request = acme.pending_request(&rita).await;
    let requests = acme.kit.guildhall.join_requests();
    requests.approve(acme.ann.id, acme.org.id, request.id, None).await.unwrap();

    let err = requests.approve(acme.ann.id, acme.org.id, request.id, Some(&builtin::MANAGER)).await.unwrap_err();

    assert!(matches!(err, DecideJoinRequestError::NotPending("approved")), "{err:?}");
    assert_eq!(acme.memberships().iter().filter(|m| m.user == rita.id).count(), 1);
    assert_eq!(acme.membership(rita.id).unwrap().role, builtin::USER);
    assert_eq!(acme.count_audit(AuditAction::JoinRequestApproved), 1);
    assert_eq!(acme.kit.store.emails_to(&rita.email).len(), 1);
}

#[tokio::test]
async fn regression_two_administrators_approving_one_request_at_once_create_one_membership() {
    let acme = Acme::new().await;
    acme.allow_requests().await;
    let bea = acme.member("bea@acme-physio.example", builtin::ADMINISTRATOR).await;
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();
    let request = acme.pending_request(&rita).await;
    let now = acme.kit.clock.now();
    let mut anns_approval = ChangeSet::new();
    anns_approval
        .require(Precondition::OrgVersion { org: acme.org.id, version: acme.version() })
        .require(Precondition::JoinRequestPending { org: acme.org.id, id: request.id })
        .push(Change::UpdateJoinRequest(JoinRequest {
            state: JoinRequestState::Approved { by: Some(acme.ann.id), at: now, role: builtin::USER },
            ..request.clone()
        }))
        .push(Change::InsertMembership(Membership::new(
            acme.org.id,
            rita.id,
            builtin::USER,
            MembershipOrigin::JoinRequest,
            Some(acme.ann.id),
            now,
        )))
        .audit(acme.audit(1, acme.ann.id, AuditAction::JoinRequestApproved, AuditTarget::JoinRequest(request.id)));
    acme.kit.store.land_before_next_commit(anns_approval);

    let err = acme
        .kit
        .guildhall
        .join_requests()
        .approve(bea.id, acme.org.id, request.id, Some(&builtin::MANAGER))
        .await
        .unwrap_err();

    assert!(
        matches!(err, DecideJoinRequestError::NotPending("approved") | DecideJoinRequestError::AlreadyMember),
        "{err:?}"
    );
    assert_eq!(acme.memberships().iter().filter(|m| m.user == rita.id).count(), 1);
    assert_eq!(acme.membership(rita.id).unwrap().role, builtin::USER);
    assert_eq!(acme.count_audit(AuditAction::JoinRequestApproved), 1);
}

#[tokio::test]
async fn regression_an_approval_racing_with_the_requesters_withdrawal_admits_nobody() {
    let acme = Acme::new().await;
    acme.allow_requests().await;
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();
    let request = acme.pending_request(&rita).await;
    let mut withdrawal = ChangeSet::new();
    withdrawal
        .require(Precondition::JoinRequestPending { org: acme.org.id, id: request.id })
        .push(Change::UpdateJoinRequest(JoinRequest {
            state: JoinRequestState::Withdrawn { at: acme.kit.clock.now() },
            ..request.clone()
        }))
        .audit(acme.audit(1, rita.id, AuditAction::JoinRequestWithdrawn, AuditTarget::JoinRequest(request.id)));
    acme.kit.store.land_before_next_commit(withdrawal);

    let err = acme.kit.guildhall.join_requests().approve(acme.ann.id, acme.org.id, request.id, None).await.unwrap_err();

    assert!(matches!(err, DecideJoinRequestError::NotPending("withdrawn")), "{err:?}");
    assert!(acme.membership(rita.id).is_none());
    assert!(acme.kit.store.emails_to(&rita.email).is_empty());
}

// ---- accounts created twice ---------------------------------------------------------------------------------

#[tokio::test]
async fn regression_creating_a_member_racing_with_their_sign_up_invites_the_new_account_instead_of_duplicating_it() {
    let acme = Acme::new().await;
    let email = EmailAddress::parse("cy@example.com").unwrap();
    let now = acme.kit.clock.now();
    let signed_up = User {
        id: UserId::from_uuid(Uuid::from_u128(0xc7)),
        email: email.clone(),
        name: PersonName::parse("Cy", "Self").unwrap(),
        phone: None,
        email_verified_at: None,
        status: UserStatus::Active,
        password: PasswordState {
            hash: Some(acme.kit.hasher.hash_uncounted(&TestKit::password())),
            temporary: None,
            must_change: false,
            changed_at: Some(now),
        },
        created_at: now,
        version: 0,
    };
    let mut sign_up = ChangeSet::new();
    sign_up.push(Change::InsertUser(signed_up.clone())).audit(AuditEntry {
        org: None::<OrgId>,
        ..acme.audit(1, signed_up.id, AuditAction::UserSignedUp, AuditTarget::User(signed_up.id))
    });
    acme.kit.store.land_before_next_commit(sign_up);
    let form = NewMember {
        first_name: "Cy".to_owned(),
        last_name: "Created".to_owned(),
        email: "cy@example.com".to_owned(),
        role: "user".to_owned(),
        ..NewMember::default()
    };

    let outcome = acme.kit.guildhall.members().create_member(acme.ann.id, acme.org.id, &form).await.unwrap();

    assert!(matches!(outcome, CreateMemberOutcome::InvitationSent { .. }), "{outcome:?}");
    let accounts: Vec<User> = acme.kit.store.users().into_iter().filter(|u| u.email == email).collect();
    assert_eq!(accounts, std::slice::from_ref(&signed_up), "the person's own account is untouched");
    assert!(acme.memberships().iter().all(|m| m.user != signed_up.id), "nobody joins without consent");
    let templates: Vec<&str> = acme.kit.store.emails_to(&email).iter().map(|e| e.notification.template()).collect();
    assert_eq!(templates, ["invitation"]);
}

// ---- duplicates from simultaneous requests ----------------------------------------------------------------

#[tokio::test]
async fn regression_an_address_invited_by_two_administrators_at_once_gets_one_invitation() {
    let acme = Acme::new().await;
    let bea = acme.member("bea@acme-physio.example", builtin::ADMINISTRATOR).await;
    let bo = EmailAddress::parse("bo@example.com").unwrap();
    let now = acme.kit.clock.now();
    let token = Token::from_secret(&Secret::from_bytes([7; 32]));
    let beas = Invitation {
        id: InvitationId::from_uuid(Uuid::from_u128(0x1417)),
        org: acme.org.id,
        email: bo.clone(),
        role: builtin::USER,
        token_hash: token.hash(),
        invited_by: bea.id,
        created_at: now,
        expires_at: now + Duration::days(7),
        resent: 0,
        state: InvitationState::Pending,
    };
    let mut beas_invite = ChangeSet::new();
    beas_invite
        .require(Precondition::OrgVersion { org: acme.org.id, version: acme.version() })
        .push(Change::InsertInvitation(beas.clone()))
        .audit(acme.audit(1, bea.id, AuditAction::InvitationSent, AuditTarget::Invitation(beas.id)))
        .send(OutboundEmail {
            id: MessageId::from_uuid(Uuid::from_u128(0x3e55)),
            org: Some(acme.org.id),
            topic: None,
            to: bo.clone(),
            notification: Notification::Invitation {
                invitation: beas.id,
                org_name: "Acme Physio".to_owned(),
                invited_by: "Bea Example".to_owned(),
                role_name: "User".to_owned(),
                token,
                expires_at: beas.expires_at,
            },
            queued_at: now,
        });
    acme.kit.store.land_before_next_commit(beas_invite);

    let err = acme
        .kit
        .guildhall
        .invitations()
        .invite(acme.ann.id, acme.org.id, "bo@example.com", &builtin::MANAGER)
        .await
        .unwrap_err();

    assert!(matches!(&err, InviteError::AlreadyInvited { invitation, .. } if *invitation == beas.id), "{err:?}");
    assert_eq!(acme.kit.store.invitations(), [beas]);
    assert_eq!(acme.kit.store.emails_to(&bo).len(), 1, "one invitation email, not two links");
}

#[tokio::test]
async fn regression_two_simultaneous_requests_to_join_create_one_request() {
    let acme = Acme::new().await;
    acme.allow_requests().await;
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();
    let first = JoinRequest {
        id: JoinRequestId::from_uuid(Uuid::from_u128(0x10_1e)),
        org: acme.org.id,
        user: rita.id,
        message: None,
        created_at: acme.kit.clock.now(),
        state: JoinRequestState::Pending,
    };
    let mut first_request = ChangeSet::new();
    first_request.push(Change::InsertJoinRequest(first.clone())).audit(acme.audit(
        1,
        rita.id,
        AuditAction::JoinRequested,
        AuditTarget::JoinRequest(first.id),
    ));
    acme.kit.store.land_before_next_commit(first_request);
    let emails = acme.kit.store.emails().len();

    let err = acme.kit.guildhall.join_requests().request_to_join(rita.id, acme.org.id, None).await.unwrap_err();

    assert!(matches!(err, RequestToJoinError::AlreadyPending), "{err:?}");
    assert_eq!(acme.kit.store.join_requests(), [first]);
    assert_eq!(acme.kit.store.emails().len(), emails, "the refused request alerts nobody");
    assert_eq!(acme.count_audit(AuditAction::JoinRequested), 1);
}
