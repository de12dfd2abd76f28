//! Invitations: invite, accept, resend, revoke, decline, the landing page and the lists.

use chrono::Duration;
use guildhall_domain::audit::{AuditAction, AuditTarget, FieldChange};
use guildhall_domain::catalogue::permissions as p;
use guildhall_domain::error::AccessError;
use guildhall_domain::ids::OrgId;
use guildhall_domain::invitation::{Invitation, InvitationState, InvitationStatus};
use guildhall_domain::membership::MembershipOrigin;
use guildhall_domain::notification::Notification;
use guildhall_domain::policy::InvariantViolation;
use guildhall_domain::ports::Clock;
use guildhall_domain::role::builtin;
use guildhall_domain::token::Token;
use guildhall_domain::usecases::{
    AcceptInvitationError, DeclineInvitationError, InviteError, ListInvitationsError, ManageInvitationError,
    OrganisationUpdate,
};
use guildhall_domain::user::User;
use guildhall_domain::values::RoleKey;
use uuid::Uuid;

use crate::support::{Acme, address, deputy_permissions};

impl Acme {
    fn stored_invitation(&self, invitation: &Invitation) -> Invitation {
        self.kit.store.invitations().into_iter().find(|i| i.id == invitation.id).unwrap()
    }

    fn is_member(&self, user: &User) -> bool {
        self.kit.store.memberships(self.org.id).iter().any(|m| m.user == user.id)
    }
}

// ---- inviting and accepting ------------------------------------------------------------

#[tokio::test]
async fn an_invitation_emails_the_invitee_exactly_once_with_a_token_that_accept_takes() {
    let acme = Acme::new().await;
    let sent_at = acme.kit.clock.now();

    let invitation =
        acme.invitations().invite(acme.ann.id, acme.org.id, " Bo.Lee@example.com ", &builtin::USER_PLUS).await.unwrap();

    assert_eq!(invitation.email, address("bo.lee@example.com"));
    assert_eq!(invitation.role, builtin::USER_PLUS);
    assert_eq!(invitation.invited_by, acme.ann.id);
    assert_eq!(invitation.state, InvitationState::Pending);
    assert_eq!(acme.kit.store.invitations(), vec![invitation.clone()]);
    let emails = acme.kit.store.emails();
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert_eq!(emails[0].to, address("bo.lee@example.com"));
    assert_eq!(emails[0].org, Some(acme.org.id));
    let Notification::Invitation { invitation: id, org_name, invited_by, role_name, token, expires_at } =
        &emails[0].notification
    else {
        panic!("{:?}", emails[0].notification)
    };
    assert_eq!(*id, invitation.id);
    assert_eq!(org_name, "Acme Physio");
    assert_eq!(invited_by, "Ann Example");
    assert_eq!(role_name, "User plus");
    assert_eq!(*expires_at, sent_at + Duration::days(7));
    // Only the hash is stored.
    assert_eq!(invitation.token_hash, token.hash());

    let bo = acme.kit.seed_user("bo.lee@example.com", true).await.unwrap();
    let membership = acme.invitations().accept(bo.id, token.expose()).await.unwrap();

    assert_eq!(membership.org, acme.org.id);
    assert_eq!(membership.user, bo.id);
    assert_eq!(membership.role, builtin::USER_PLUS);
    assert_eq!(membership.origin, MembershipOrigin::Invitation);
    assert_eq!(membership.added_by, Some(acme.ann.id));
    assert!(acme.kit.store.memberships(acme.org.id).contains(&membership));
    assert_eq!(
        acme.stored_invitation(&invitation).state,
        InvitationState::Accepted { by: bo.id, at: acme.kit.clock.now() }
    );
    assert_eq!(acme.kit.store.emails().len(), 1, "accepting sends nothing");
}

#[tokio::test]
async fn the_invited_address_matches_the_account_ignoring_letter_case() {
    let acme = Acme::new().await;
    let (_, token) = acme.invite("Bo.Lee@Example.COM", &builtin::USER).await;
    let bo = acme.kit.seed_user("bo.lee@example.com", true).await.unwrap();

    acme.invitations().accept(bo.id, &token.to_uppercase()).await.unwrap();

    assert!(acme.is_member(&bo));
}

#[tokio::test]
async fn an_invitation_cannot_be_accepted_by_an_account_with_another_address() {
    let acme = Acme::new().await;
    let (invitation, token) = acme.invite("bo@example.com", &builtin::USER).await;
    let cy = acme.kit.seed_user("cy@example.com", true).await.unwrap();
    let commits = acme.kit.store.commit_count();

    let err = acme.invitations().accept(cy.id, &token).await.unwrap_err();

    let AcceptInvitationError::WrongAccount { invited } = &err else { panic!("{err:?}") };
    assert_eq!(*invited, address("bo@example.com"));
    assert!(err.to_string().contains("bo@example.com"), "{err}");
    assert!(!acme.is_member(&cy));
    assert_eq!(acme.stored_invitation(&invitation).state, InvitationState::Pending);
    assert_eq!(acme.kit.store.commit_count(), commits);
}

#[tokio::test]
async fn an_invitation_needs_the_accounts_address_to_be_verified() {
    let acme = Acme::new().await;
    let (invitation, token) = acme.invite("bo@example.com", &builtin::USER).await;
    let bo = acme.kit.seed_user("bo@example.com", false).await.unwrap();

    let err = acme.invitations().accept(bo.id, &token).await.unwrap_err();

    assert!(matches!(err, AcceptInvitationError::EmailNotVerified), "{err:?}");
    assert!(!acme.is_member(&bo));
    assert_eq!(acme.stored_invitation(&invitation).state, InvitationState::Pending);
}

#[tokio::test]
async fn a_malformed_or_unknown_token_is_an_invalid_link() {
    let acme = Acme::new().await;
    acme.invite("bo@example.com", &builtin::USER).await;
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();

    for token in ["", "not-a-token", &"ab".repeat(32)] {
        let err = acme.invitations().accept(bo.id, token).await.unwrap_err();
        assert!(matches!(err, AcceptInvitationError::InvalidToken), "{token:?}: {err:?}");
    }
    assert!(!acme.is_member(&bo));
}

// ---- expiry -----------------------------------------------------------------------------

#[tokio::test]
async fn an_invitation_expires_seven_days_after_it_is_sent_by_default() {
    let acme = Acme::new().await;
    let sent_at = acme.kit.clock.now();
    let (invitation, token) = acme.invite("bo@example.com", &builtin::USER).await;
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();
    assert_eq!(invitation.expires_at, sent_at + Duration::days(7));

    acme.kit.clock.advance(Duration::days(7) - Duration::seconds(1));
    assert_eq!(acme.invitations().details(&token).await.unwrap().status, InvitationStatus::Pending);
    acme.kit.clock.advance(Duration::seconds(1));
    assert_eq!(acme.invitations().details(&token).await.unwrap().status, InvitationStatus::Expired);

    let err = acme.invitations().accept(bo.id, &token).await.unwrap_err();

    let AcceptInvitationError::Expired { org_name, expires_at } = &err else { panic!("{err:?}") };
    assert_eq!(org_name, "Acme Physio");
    assert_eq!(*expires_at, invitation.expires_at);
    assert!(err.to_string().contains("Acme Physio"), "{err}");
    assert!(!acme.is_member(&bo));
    // Expiry is derived: the stored state is untouched.
    assert_eq!(acme.stored_invitation(&invitation).state, InvitationState::Pending);
}

#[tokio::test]
async fn an_invitation_lasts_as_long_as_the_organisation_configured() {
    let acme = Acme::new().await;
    let update = OrganisationUpdate { invitation_lifetime_seconds: Some(2 * 86_400), ..OrganisationUpdate::default() };
    acme.kit.guildhall.organisations().update(acme.ann.id, acme.org.id, update).await.unwrap();
    let sent_at = acme.kit.clock.now();

    let (invitation, token) = acme.invite("bo@example.com", &builtin::USER).await;

    assert_eq!(invitation.expires_at, sent_at + Duration::days(2));
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();
    acme.kit.clock.advance(Duration::days(2));
    let err = acme.invitations().accept(bo.id, &token).await.unwrap_err();
    assert!(matches!(err, AcceptInvitationError::Expired { .. }), "{err:?}");
}

// ---- resend, revoke, decline --------------------------------------------------------------

#[tokio::test]
async fn resending_rotates_the_token_and_extends_the_expiry() {
    let acme = Acme::new().await;
    let (invitation, old_token) = acme.invite("bo@example.com", &builtin::USER).await;
    acme.kit.clock.advance(Duration::days(3));

    let resent = acme.invitations().resend(acme.ann.id, acme.org.id, invitation.id).await.unwrap();

    assert_eq!(resent.id, invitation.id);
    assert_eq!(resent.resent, 1);
    assert_eq!(resent.expires_at, acme.kit.clock.now() + Duration::days(7));
    assert!(resent.expires_at > invitation.expires_at);
    assert_ne!(resent.token_hash, invitation.token_hash);
    assert_eq!(acme.stored_invitation(&invitation), resent);
    assert_eq!(acme.kit.store.emails_to(&address("bo@example.com")).len(), 2);
    let new_token = acme.token_sent_to("bo@example.com");
    assert_ne!(new_token, old_token);
    assert_eq!(Token::parse(&new_token).unwrap().hash(), resent.token_hash);

    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();
    let err = acme.invitations().accept(bo.id, &old_token).await.unwrap_err();
    assert!(matches!(err, AcceptInvitationError::InvalidToken), "{err:?}");
    acme.invitations().accept(bo.id, &new_token).await.unwrap();
    assert!(acme.is_member(&bo));
}

#[tokio::test]
async fn an_expired_invitation_can_be_resent_and_then_accepted() {
    let acme = Acme::new().await;
    let (invitation, old_token) = acme.invite("bo@example.com", &builtin::USER).await;
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();
    acme.kit.clock.advance(Duration::days(8));
    assert!(matches!(
        acme.invitations().accept(bo.id, &old_token).await.unwrap_err(),
        AcceptInvitationError::Expired { .. }
    ));

    let resent = acme.invitations().resend(acme.ann.id, acme.org.id, invitation.id).await.unwrap();

    assert_eq!(resent.status(acme.kit.clock.now()), InvitationStatus::Pending);
    acme.invitations().accept(bo.id, &acme.token_sent_to("bo@example.com")).await.unwrap();
    assert!(acme.is_member(&bo));
}

#[tokio::test]
async fn a_revoked_invitation_cannot_be_accepted_resent_or_revoked_again() {
    let acme = Acme::new().await;
    let (invitation, token) = acme.invite("bo@example.com", &builtin::USER).await;
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();

    let revoked = acme.invitations().revoke(acme.ann.id, acme.org.id, invitation.id).await.unwrap();

    assert_eq!(revoked.state, InvitationState::Revoked { by: acme.ann.id, at: acme.kit.clock.now() });
    let err = acme.invitations().accept(bo.id, &token).await.unwrap_err();
    let AcceptInvitationError::Revoked { org_name } = &err else { panic!("{err:?}") };
    assert_eq!(org_name, "Acme Physio");
    assert!(!acme.is_member(&bo));
    let err = acme.invitations().resend(acme.ann.id, acme.org.id, invitation.id).await.unwrap_err();
    assert!(matches!(err, ManageInvitationError::Closed(InvitationStatus::Revoked)), "{err:?}");
    let err = acme.invitations().revoke(acme.ann.id, acme.org.id, invitation.id).await.unwrap_err();
    assert!(matches!(err, ManageInvitationError::Closed(InvitationStatus::Revoked)), "{err:?}");
    assert_eq!(acme.kit.store.emails_to(&address("bo@example.com")).len(), 1);
}

#[tokio::test]
async fn an_invitation_of_another_organisation_cannot_be_managed() {
    let acme = Acme::new().await;
    let (invitation, _) = acme.invite("bo@example.com", &builtin::USER).await;
    let zed = acme.kit.seed_user("zed@beta.example", true).await.unwrap();
    let beta = acme.kit.seed_org("beta-clinic", zed.id).await.unwrap();

    let err = acme.invitations().revoke(zed.id, beta.id, invitation.id).await.unwrap_err();

    assert!(matches!(err, ManageInvitationError::NotFound), "{err:?}");
    assert_eq!(acme.stored_invitation(&invitation).state, InvitationState::Pending);
}

#[tokio::test]
async fn the_invitee_can_decline_and_the_link_then_stops_working() {
    let acme = Acme::new().await;
    let (invitation, token) = acme.invite("bo@example.com", &builtin::USER).await;
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();
    let cy = acme.kit.seed_user("cy@example.com", true).await.unwrap();

    let err = acme.invitations().decline(cy.id, &token).await.unwrap_err();
    assert!(matches!(err, DeclineInvitationError::WrongAccount { .. }), "{err:?}");

    let declined = acme.invitations().decline(bo.id, &token).await.unwrap();

    assert_eq!(declined.state, InvitationState::Declined { at: acme.kit.clock.now() });
    assert_eq!(acme.stored_invitation(&invitation), declined);
    let err = acme.invitations().accept(bo.id, &token).await.unwrap_err();
    let AcceptInvitationError::Declined { org_name } = &err else { panic!("{err:?}") };
    assert_eq!(org_name, "Acme Physio");
    let err = acme.invitations().decline(bo.id, &token).await.unwrap_err();
    assert!(matches!(err, DeclineInvitationError::Closed(InvitationStatus::Declined)), "{err:?}");
    assert!(!acme.is_member(&bo));
}

// ---- who may invite whom ---------------------------------------------------------------------

#[tokio::test]
async fn inviting_an_existing_member_is_refused_whatever_the_letter_case() {
    let acme = Acme::new().await;
    acme.member("cy@example.com", builtin::USER).await;

    let err =
        acme.invitations().invite(acme.ann.id, acme.org.id, "CY@Example.com", &builtin::MANAGER).await.unwrap_err();

    let InviteError::AlreadyMember(email) = &err else { panic!("{err:?}") };
    assert_eq!(*email, address("cy@example.com"));
    assert!(acme.kit.store.invitations().is_empty());
    assert!(acme.kit.store.emails().is_empty());
}

#[tokio::test]
async fn a_second_invitation_while_one_is_pending_is_refused() {
    let acme = Acme::new().await;
    let (first, _) = acme.invite("bo@example.com", &builtin::USER).await;

    let err =
        acme.invitations().invite(acme.ann.id, acme.org.id, "BO@example.com", &builtin::MANAGER).await.unwrap_err();

    let InviteError::AlreadyInvited { email, invitation } = &err else { panic!("{err:?}") };
    assert_eq!(*email, address("bo@example.com"));
    assert_eq!(*invitation, first.id);
    assert!(err.to_string().contains("resend"), "{err}");
    assert_eq!(acme.kit.store.invitations().len(), 1);
    assert_eq!(acme.kit.store.emails().len(), 1);
}

#[tokio::test]
async fn an_inviter_cannot_offer_a_role_granting_more_than_they_hold() {
    let acme = Acme::new().await;
    let deputy = acme.custom_role("deputy", &deputy_permissions()).await;
    let dee = acme.member("dee@acme-physio.example", deputy).await;

    let err = acme.invitations().invite(dee.id, acme.org.id, "bo@example.com", &builtin::MANAGER).await.unwrap_err();

    let InviteError::Escalation(InvariantViolation::Escalation { missing }) = &err else { panic!("{err:?}") };
    assert_eq!(missing.iter().collect::<Vec<_>>(), [&p::FINANCIALS_ACCESS]);
    assert!(acme.kit.store.invitations().is_empty());
    assert!(acme.kit.store.emails().is_empty());
    // A role within the deputy's permissions is fine.
    acme.invitations().invite(dee.id, acme.org.id, "bo@example.com", &builtin::USER_PLUS).await.unwrap();
}

#[tokio::test]
async fn a_non_member_cannot_invite_and_learns_nothing_about_the_organisation() {
    let acme = Acme::new().await;
    let outsider = acme.kit.seed_user("out@else.example", true).await.unwrap();
    let missing_org = OrgId::from_uuid(Uuid::from_u128(0xdead));

    let err = acme.invitations().invite(outsider.id, acme.org.id, "bo@example.com", &builtin::USER).await.unwrap_err();
    assert!(matches!(err, InviteError::Access(AccessError::NotFound)), "{err:?}");
    let err = acme.invitations().invite(acme.ann.id, missing_org, "bo@example.com", &builtin::USER).await.unwrap_err();
    assert!(matches!(err, InviteError::Access(AccessError::NotFound)), "{err:?}");
    assert!(acme.kit.store.invitations().is_empty());
}

#[tokio::test]
async fn a_member_without_member_management_cannot_invite() {
    let acme = Acme::new().await;
    let mo = acme.member("mo@acme-physio.example", builtin::MANAGER).await;

    let err = acme.invitations().invite(mo.id, acme.org.id, "bo@example.com", &builtin::USER).await.unwrap_err();

    let InviteError::Access(AccessError::Forbidden { permission, .. }) = &err else { panic!("{err:?}") };
    assert_eq!(*permission, p::MEMBERS_MANAGE);
    assert!(err.to_string().contains("members.manage"), "{err}");
    assert!(acme.kit.store.invitations().is_empty());
    let err = acme.invitations().list(mo.id, acme.org.id).await.unwrap_err();
    assert!(matches!(err, ListInvitationsError::Access(AccessError::Forbidden { .. })), "{err:?}");
}

#[tokio::test]
async fn inviting_with_a_role_the_organisation_does_not_have_is_refused() {
    let acme = Acme::new().await;
    let overlord = RoleKey::parse("overlord").unwrap();

    let err = acme.invitations().invite(acme.ann.id, acme.org.id, "bo@example.com", &overlord).await.unwrap_err();

    assert!(matches!(&err, InviteError::UnknownRole(role) if *role == overlord), "{err:?}");
    let err = acme.invitations().invite(acme.ann.id, acme.org.id, "bo@@example", &builtin::USER).await.unwrap_err();
    assert!(matches!(&err, InviteError::Invalid(invalid) if invalid.field() == "email"), "{err:?}");
    assert!(acme.kit.store.invitations().is_empty());
}

#[tokio::test]
async fn deleting_the_offered_role_revokes_its_open_invitations() {
    let acme = Acme::new().await;
    let front_desk = acme.custom_role("front_desk", &[p::REPORTS_VIEW]).await;
    let (invitation, token) = acme.invite("bo@example.com", &front_desk).await;
    acme.kit.guildhall.roles().delete_role(acme.ann.id, acme.org.id, &front_desk, None).await.unwrap();
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();

    let err = acme.invitations().accept(bo.id, &token).await.unwrap_err();

    let AcceptInvitationError::Revoked { org_name } = &err else { panic!("{err:?}") };
    assert_eq!(org_name, "Acme Physio");
    assert!(!acme.is_member(&bo));
    assert!(
        matches!(acme.stored_invitation(&invitation).state, InvitationState::Revoked { by, .. } if by == acme.ann.id)
    );
    let err = acme.invitations().resend(acme.ann.id, acme.org.id, invitation.id).await.unwrap_err();
    assert!(matches!(&err, ManageInvitationError::Closed(InvitationStatus::Revoked)), "{err:?}");
    // A role created later under the same key is never granted by the old link.
    acme.custom_role("front_desk", &[p::REPORTS_VIEW]).await;
    assert!(acme.invitations().accept(bo.id, &token).await.is_err());
    assert!(!acme.is_member(&bo));
}

// ---- what people see ---------------------------------------------------------------------------

#[tokio::test]
async fn the_landing_page_shows_the_invitation_and_whether_an_account_exists() {
    let acme = Acme::new().await;
    let (invitation, token) = acme.invite("bo@example.com", &builtin::MANAGER).await;

    let details = acme.invitations().details(&token).await.unwrap();

    assert_eq!(details.id, invitation.id);
    assert_eq!(details.org, acme.org.id);
    assert_eq!(details.org_name, "Acme Physio");
    assert_eq!(details.email, address("bo@example.com"));
    assert_eq!(details.role_name, "Manager");
    assert_eq!(details.status, InvitationStatus::Pending);
    assert_eq!(details.expires_at, invitation.expires_at);
    assert!(!details.account_exists);

    let bo = acme.kit.seed_user("BO@example.com", true).await.unwrap();
    assert!(acme.invitations().details(&token).await.unwrap().account_exists);
    acme.invitations().accept(bo.id, &token).await.unwrap();
    assert_eq!(acme.invitations().details(&token).await.unwrap().status, InvitationStatus::Accepted);

    let err = acme.invitations().details(&"cd".repeat(32)).await.unwrap_err();
    assert!(matches!(err, ListInvitationsError::InvalidToken), "{err:?}");
    let err = acme.invitations().details("nonsense").await.unwrap_err();
    assert!(matches!(err, ListInvitationsError::InvalidToken), "{err:?}");
}

#[tokio::test]
async fn administrators_list_open_invitations_newest_first_with_their_status() {
    let acme = Acme::new().await;
    let (bo, _) = acme.invite("bo@example.com", &builtin::USER).await;
    acme.kit.clock.advance(Duration::days(1));
    let (cy, _) = acme.invite("cy@example.com", &builtin::USER).await;
    let (dee, _) = acme.invite("dee@example.com", &builtin::USER).await;
    acme.invitations().revoke(acme.ann.id, acme.org.id, dee.id).await.unwrap();
    acme.kit.clock.advance(Duration::days(6));

    let listed = acme.invitations().list(acme.ann.id, acme.org.id).await.unwrap();

    let summary: Vec<_> = listed.iter().map(|s| (s.invitation.id, s.status)).collect();
    assert_eq!(summary, [(cy.id, InvitationStatus::Pending), (bo.id, InvitationStatus::Expired)]);
}

#[tokio::test]
async fn people_see_their_own_pending_invitations_in_every_organisation() {
    let acme = Acme::new().await;
    let zed = acme.kit.seed_user("zed@beta.example", true).await.unwrap();
    let beta = acme.kit.seed_org("beta-clinic", zed.id).await.unwrap();
    let (at_acme, _) = acme.invite("bo@example.com", &builtin::USER).await;
    let at_beta = acme.invitations().invite(zed.id, beta.id, "bo@example.com", &builtin::USER).await.unwrap();
    acme.invitations().invite(zed.id, beta.id, "cy@example.com", &builtin::USER).await.unwrap();
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();
    let cy = acme.kit.seed_user("cy@example.com", false).await.unwrap();

    let mine = acme.invitations().mine(bo.id).await.unwrap();

    let mut ids: Vec<_> = mine.iter().map(|s| s.invitation.id).collect();
    ids.sort();
    let mut expected = vec![at_acme.id, at_beta.id];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(mine.iter().all(|s| s.status == InvitationStatus::Pending));
    // Only a verified address proves the invitations are theirs.
    assert!(acme.invitations().mine(cy.id).await.unwrap().is_empty());

    acme.invitations().revoke(zed.id, beta.id, at_beta.id).await.unwrap();
    let mine = acme.invitations().mine(bo.id).await.unwrap();
    assert_eq!(mine.iter().map(|s| s.invitation.id).collect::<Vec<_>>(), [at_acme.id]);
    acme.kit.clock.advance(Duration::days(7));
    assert!(acme.invitations().mine(bo.id).await.unwrap().is_empty(), "expired invitations are not offered");
}

// ---- audit -----------------------------------------------------------------------------------------

#[tokio::test]
async fn every_invitation_action_is_audited_with_its_actor_and_organisation() {
    let acme = Acme::new().await;
    let (to_bo, bo_token) = acme.invite("bo@example.com", &builtin::USER).await;
    acme.invitations().resend(acme.ann.id, acme.org.id, to_bo.id).await.unwrap();
    let resent = acme.stored_invitation(&to_bo);
    let (to_cy, cy_token) = acme.invite("cy@example.com", &builtin::USER).await;
    let (to_dee, _) = acme.invite("dee@example.com", &builtin::USER).await;
    acme.invitations().revoke(acme.ann.id, acme.org.id, to_dee.id).await.unwrap();
    let bo = acme.kit.seed_user("bo@example.com", true).await.unwrap();
    let cy = acme.kit.seed_user("cy@example.com", true).await.unwrap();
    let err = acme.invitations().accept(bo.id, &bo_token).await.unwrap_err();
    assert!(matches!(err, AcceptInvitationError::InvalidToken), "the resend replaced this link");
    acme.invitations().accept(bo.id, &acme.token_sent_to("bo@example.com")).await.unwrap();
    acme.invitations().decline(cy.id, &cy_token).await.unwrap();

    let audit = acme.kit.store.audit();

    let summary: Vec<_> = audit.iter().map(|e| (e.action, e.actor, e.target.clone())).collect();
    assert_eq!(
        summary,
        [
            (AuditAction::InvitationSent, Some(acme.ann.id), AuditTarget::Invitation(to_bo.id)),
            (AuditAction::InvitationResent, Some(acme.ann.id), AuditTarget::Invitation(to_bo.id)),
            (AuditAction::InvitationSent, Some(acme.ann.id), AuditTarget::Invitation(to_cy.id)),
            (AuditAction::InvitationSent, Some(acme.ann.id), AuditTarget::Invitation(to_dee.id)),
            (AuditAction::InvitationRevoked, Some(acme.ann.id), AuditTarget::Invitation(to_dee.id)),
            (AuditAction::InvitationAccepted, Some(bo.id), AuditTarget::Invitation(to_bo.id)),
            (AuditAction::InvitationDeclined, Some(cy.id), AuditTarget::Invitation(to_cy.id)),
        ]
    );
    assert!(audit.iter().all(|e| e.org == Some(acme.org.id)));
    assert_eq!(
        audit[0].changes,
        [
            FieldChange::new("email", None::<&str>, Some("bo@example.com")),
            FieldChange::new("role", None::<&str>, Some("user")),
        ]
    );
    assert_eq!(audit[1].changes, [FieldChange::new("expires_at", Some(to_bo.expires_at), Some(resent.expires_at))]);
    // No audit entry carries a token.
    let tokens = [bo_token, cy_token];
    assert!(audit.iter().all(|e| !tokens.iter().any(|t| format!("{e:?}").contains(t.as_str()))));
}

#[tokio::test]
async fn a_member_manager_cannot_resend_an_invitation_for_a_role_above_their_own() {
    let acme = Acme::new().await;
    let deputy = acme.custom_role("deputy", &deputy_permissions()).await;
    let dee = acme.member("dee@acme-physio.example", deputy).await;
    let (invitation, _) = acme.invite("bo@example.com", &builtin::ADMINISTRATOR).await;
    acme.kit.clock.advance(Duration::days(8));
    let before = acme.kit.store.snapshot();

    // The expired offer is dead; resending it makes a new Administrator offer, which the
    // deputy could not have made with `invite`.
    let result = acme.invitations().resend(dee.id, acme.org.id, invitation.id).await;

    assert!(result.is_err(), "{result:?}");
    assert_eq!(acme.kit.store.snapshot(), before);
    assert_eq!(acme.stored_invitation(&invitation).status(acme.kit.clock.now()), InvitationStatus::Expired);
}
