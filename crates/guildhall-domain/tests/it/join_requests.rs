//! Join requests: asking to join, who is told, approving, rejecting, withdrawing, and
//! the verified-domain policy.

use std::collections::BTreeSet;

use chrono::Duration;
use guildhall_domain::audit::{AuditAction, AuditTarget, FieldChange};
use guildhall_domain::catalogue::{Catalogue, permissions as p, topics};
use guildhall_domain::error::AccessError;
use guildhall_domain::join_request::{JoinRequest, JoinRequestState};
use guildhall_domain::membership::{Membership, MembershipOrigin, MembershipStatus};
use guildhall_domain::notification::Notification;
use guildhall_domain::org::{JoinPolicy, NotificationRouting};
use guildhall_domain::policy::InvariantViolation;
use guildhall_domain::ports::{Change, Clock};
use guildhall_domain::role::builtin;
use guildhall_domain::testing::TestKit;
use guildhall_domain::usecases::{DecideJoinRequestError, JoinOutcome, OrganisationUpdate, RequestToJoinError};
use guildhall_domain::user::{User, UserStatus};
use guildhall_domain::values::{EmailAddress, EmailDomain, Note};

use crate::support::{Acme, address, deputy_permissions};

impl Acme {
    /// Acme, accepting requests to join.
    async fn open() -> Self {
        let acme = Self::new().await;
        acme.set_policy(JoinPolicy::RequestsAllowed).await;
        acme
    }

    fn stored_request(&self, request: &JoinRequest) -> JoinRequest {
        self.kit.store.join_requests().into_iter().find(|r| r.id == request.id).unwrap()
    }
}

fn addresses(texts: &[&str]) -> BTreeSet<EmailAddress> {
    texts.iter().map(|t| address(t)).collect()
}

fn recipients(kit: &TestKit) -> Vec<String> {
    let mut to: Vec<String> = kit.store.emails().iter().map(|e| e.to.normalized().to_owned()).collect();
    to.sort();
    to
}

fn domain_policy(auto_approve: bool) -> JoinPolicy {
    JoinPolicy::VerifiedDomains {
        domains: [EmailDomain::parse("acme-physio.example").unwrap()].into_iter().collect(),
        auto_approve,
    }
}

// ---- asking ----------------------------------------------------------------------------------

#[tokio::test]
async fn an_invitation_only_organisation_refuses_requests_to_join_as_if_it_did_not_exist() {
    let acme = Acme::new().await;
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();

    let err = acme.requests().request_to_join(rita.id, acme.org.id, Some("hello")).await.unwrap_err();
    let missing = acme
        .requests()
        .request_to_join(rita.id, guildhall_domain::ids::OrgId::from_uuid(uuid::Uuid::from_u128(42)), None)
        .await
        .unwrap_err();

    assert!(matches!(err, RequestToJoinError::OrgNotFound), "{err:?}");
    assert_eq!(err.to_string(), missing.to_string(), "nobody learns that an invitation-only organisation exists");
    assert!(!err.to_string().contains("Acme"), "{err}");
    assert!(err.to_string().contains("invitation"), "{err}");
    assert!(acme.kit.store.join_requests().is_empty());
    assert!(acme.kit.store.emails().is_empty());
}

#[tokio::test]
async fn a_request_waits_and_alerts_each_active_member_manager_and_shared_address_once() {
    let acme = Acme::open().await;
    let deputy = acme.custom_role("deputy", &deputy_permissions()).await;
    acme.member("dee@acme-physio.example", deputy).await;
    acme.member("mo@acme-physio.example", builtin::MANAGER).await;
    let sue = acme.member("sue@acme-physio.example", builtin::ADMINISTRATOR).await;
    let eve = acme.member("eve@acme-physio.example", builtin::ADMINISTRATOR).await;
    let dan = acme.member("dan@acme-physio.example", builtin::ADMINISTRATOR).await;
    let now = acme.kit.clock.now();
    let sue_membership = acme.membership(sue.id).unwrap();
    let eve_membership = acme.membership(eve.id).unwrap();
    acme.commit(vec![
        Change::UpdateMembership(Membership {
            status: MembershipStatus::Suspended { since: now, by: acme.ann.id },
            ..sue_membership
        }),
        Change::UpdateMembership(Membership { expires_at: Some(now - Duration::hours(1)), ..eve_membership }),
        Change::UpdateUser(User { status: UserStatus::Disabled { since: now }, ..dan }),
    ])
    .await;
    let update = OrganisationUpdate {
        routing: Some(vec![
            (
                "join_requests".to_owned(),
                vec!["frontdesk@acme-physio.example".to_owned(), "ANN@acme-physio.example".to_owned()],
            ),
            ("booking_requests".to_owned(), vec!["bookings@acme-physio.example".to_owned()]),
        ]),
        ..OrganisationUpdate::default()
    };
    acme.kit.guildhall.organisations().update(acme.ann.id, acme.org.id, update).await.unwrap();
    let rita = acme.kit.seed_user("rita.ray@example.com", true).await.unwrap();

    let outcome =
        acme.requests().request_to_join(rita.id, acme.org.id, Some("  I am the new receptionist ")).await.unwrap();

    let JoinOutcome::Pending(request) = outcome else { panic!("{outcome:?}") };
    assert_eq!(request.state, JoinRequestState::Pending);
    assert_eq!(request.user, rita.id);
    assert_eq!(request.message, Some(Note::parse("I am the new receptionist").unwrap()));
    assert_eq!(acme.kit.store.join_requests(), vec![request.clone()]);
    assert!(acme.membership(rita.id).is_none());
    assert_eq!(
        recipients(&acme.kit),
        ["ann@acme-physio.example", "dee@acme-physio.example", "frontdesk@acme-physio.example"]
    );
    for email in acme.kit.store.emails() {
        let Notification::JoinRequestReceived { request: id, org_name, requester_name, requester_email, message } =
            &email.notification
        else {
            panic!("{email:?}")
        };
        assert_eq!(*id, request.id);
        assert_eq!(org_name, "Acme Physio");
        assert_eq!(requester_name, "Rita Ray");
        assert_eq!(*requester_email, rita.email);
        assert_eq!(*message, request.message);
        let shared = email.to == address("frontdesk@acme-physio.example");
        assert_eq!(email.topic, shared.then_some(topics::JOIN_REQUESTS), "{email:?}");
    }
    let audit = acme.kit.store.audit();
    let last = audit.last().unwrap();
    assert_eq!(last.action, AuditAction::JoinRequested);
    assert_eq!(last.actor, Some(rita.id));
    assert_eq!(last.org, Some(acme.org.id));
    assert_eq!(last.target, AuditTarget::JoinRequest(request.id));
}

#[tokio::test]
async fn shared_join_request_addresses_set_in_the_stored_settings_are_emailed() {
    let acme = Acme::open().await;
    let mut org = acme.stored_org();
    let shared = addresses(&["frontdesk@acme-physio.example", "office@acme-physio.example"]);
    org.settings.routing = NotificationRouting::new(&Catalogue::builtin(), [(topics::JOIN_REQUESTS, shared)]).unwrap();
    acme.commit(vec![Change::UpdateOrganisation(org)]).await;
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();

    acme.pending_request(&rita).await;

    assert_eq!(
        recipients(&acme.kit),
        ["ann@acme-physio.example", "frontdesk@acme-physio.example", "office@acme-physio.example"]
    );
}

#[tokio::test]
async fn a_second_pending_request_is_refused_and_alerts_nobody_again() {
    let acme = Acme::open().await;
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();
    acme.pending_request(&rita).await;
    let emails = acme.kit.store.emails().len();

    let err = acme.requests().request_to_join(rita.id, acme.org.id, None).await.unwrap_err();

    assert!(matches!(err, RequestToJoinError::AlreadyPending), "{err:?}");
    assert_eq!(acme.kit.store.join_requests().len(), 1);
    assert_eq!(acme.kit.store.emails().len(), emails);
}

#[tokio::test]
async fn after_a_rejection_a_new_request_is_allowed() {
    let acme = Acme::open().await;
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();
    let first = acme.pending_request(&rita).await;
    acme.requests().reject(acme.ann.id, acme.org.id, first.id, None).await.unwrap();

    let second = acme.pending_request(&rita).await;

    assert_ne!(second.id, first.id);
    let mine: Vec<_> = acme.requests().mine(rita.id).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(mine.len(), 2);
    assert!(mine.contains(&first.id) && mine.contains(&second.id));
}

#[tokio::test]
async fn a_member_asking_to_join_is_told_they_are_already_one() {
    let acme = Acme::open().await;
    let mo = acme.member("mo@acme-physio.example", builtin::MANAGER).await;

    let err = acme.requests().request_to_join(mo.id, acme.org.id, None).await.unwrap_err();

    assert!(matches!(err, RequestToJoinError::AlreadyMember), "{err:?}");
    assert!(acme.kit.store.join_requests().is_empty());
}

#[tokio::test]
async fn an_unverified_account_cannot_ask_to_join() {
    let acme = Acme::open().await;
    let rita = acme.kit.seed_user("rita@example.com", false).await.unwrap();

    let err = acme.requests().request_to_join(rita.id, acme.org.id, None).await.unwrap_err();

    assert!(matches!(err, RequestToJoinError::EmailNotVerified), "{err:?}");
    assert!(acme.kit.store.join_requests().is_empty());
    assert!(acme.kit.store.emails().is_empty());
}

// ---- deciding ------------------------------------------------------------------------------------

#[tokio::test]
async fn approving_creates_the_membership_with_the_default_role_in_the_same_commit_and_tells_the_requester() {
    let acme = Acme::open().await;
    let update = OrganisationUpdate { default_role: Some(builtin::USER_PLUS), ..OrganisationUpdate::default() };
    acme.kit.guildhall.organisations().update(acme.ann.id, acme.org.id, update).await.unwrap();
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();
    let request = acme.pending_request(&rita).await;
    let commits = acme.kit.store.commit_count();
    acme.kit.clock.advance(Duration::hours(3));

    let membership = acme.requests().approve(acme.ann.id, acme.org.id, request.id, None).await.unwrap();

    assert_eq!(acme.kit.store.commit_count(), commits + 1, "request and membership change together");
    assert_eq!(membership.role, builtin::USER_PLUS);
    assert_eq!(membership.origin, MembershipOrigin::JoinRequest);
    assert_eq!(membership.added_by, Some(acme.ann.id));
    assert_eq!(acme.membership(rita.id), Some(membership));
    let now = acme.kit.clock.now();
    assert_eq!(
        acme.stored_request(&request).state,
        JoinRequestState::Approved { by: Some(acme.ann.id), at: now, role: builtin::USER_PLUS }
    );
    let to_rita = acme.kit.store.emails_to(&rita.email);
    assert_eq!(to_rita.len(), 1);
    assert_eq!(
        to_rita[0].notification,
        Notification::JoinRequestApproved { org_name: "Acme Physio".to_owned(), role_name: "User plus".to_owned() }
    );
    let last = acme.kit.store.audit().pop().unwrap();
    assert_eq!(last.action, AuditAction::JoinRequestApproved);
    assert_eq!(last.actor, Some(acme.ann.id));
    assert_eq!(last.changes, [FieldChange::new("role", None::<&str>, Some("user_plus"))]);
    assert!(acme.requests().pending(acme.ann.id, acme.org.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn approving_with_a_chosen_role_gives_that_role() {
    let acme = Acme::open().await;
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();
    let request = acme.pending_request(&rita).await;

    let membership =
        acme.requests().approve(acme.ann.id, acme.org.id, request.id, Some(&builtin::MANAGER)).await.unwrap();

    assert_eq!(membership.role, builtin::MANAGER);
    assert_eq!(acme.membership(rita.id).unwrap().role, builtin::MANAGER);
    let to_rita = acme.kit.store.emails_to(&rita.email);
    assert!(
        matches!(&to_rita[0].notification, Notification::JoinRequestApproved { role_name, .. } if role_name == "Manager")
    );
}

#[tokio::test]
async fn administrators_see_pending_requests_with_the_requesters_name_and_address() {
    let acme = Acme::open().await;
    let rita = acme.kit.seed_user("rita.ray@example.com", true).await.unwrap();
    let request = acme.pending_request(&rita).await;
    let mo = acme.member("mo@acme-physio.example", builtin::MANAGER).await;

    let pending = acme.requests().pending(acme.ann.id, acme.org.id).await.unwrap();

    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].request, request);
    assert_eq!(pending[0].name, "Rita Ray");
    assert_eq!(pending[0].email, rita.email);
    let err = acme.requests().pending(mo.id, acme.org.id).await.unwrap_err();
    assert!(err.to_string().contains("members.manage"), "{err}");
}

#[tokio::test]
async fn rejecting_with_a_reason_tells_the_requester_why() {
    let acme = Acme::open().await;
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();
    let request = acme.pending_request(&rita).await;

    let rejected = acme
        .requests()
        .reject(acme.ann.id, acme.org.id, request.id, Some(" We only take clinic staff "))
        .await
        .unwrap();

    let reason = Note::parse("We only take clinic staff").unwrap();
    assert_eq!(
        rejected.state,
        JoinRequestState::Rejected { by: acme.ann.id, at: acme.kit.clock.now(), reason: Some(reason.clone()) }
    );
    assert_eq!(acme.stored_request(&request), rejected);
    assert!(acme.membership(rita.id).is_none());
    let to_rita = acme.kit.store.emails_to(&rita.email);
    assert_eq!(to_rita.len(), 1);
    assert_eq!(
        to_rita[0].notification,
        Notification::JoinRequestRejected { org_name: "Acme Physio".to_owned(), reason: Some(reason) }
    );
    let last = acme.kit.store.audit().pop().unwrap();
    assert_eq!(last.action, AuditAction::JoinRequestRejected);
    assert_eq!(last.changes, [FieldChange::new("reason", None::<&str>, Some("We only take clinic staff"))]);
}

#[tokio::test]
async fn only_the_requester_can_withdraw_a_request() {
    let acme = Acme::open().await;
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();
    let sam = acme.kit.seed_user("sam@example.com", true).await.unwrap();
    let request = acme.pending_request(&rita).await;

    for someone_else in [&sam, &acme.ann] {
        let err = acme.requests().withdraw(someone_else.id, acme.org.id, request.id).await.unwrap_err();
        assert!(matches!(err, DecideJoinRequestError::NotFound), "{err:?}");
    }
    assert!(acme.stored_request(&request).is_pending());

    let withdrawn = acme.requests().withdraw(rita.id, acme.org.id, request.id).await.unwrap();

    assert_eq!(withdrawn.state, JoinRequestState::Withdrawn { at: acme.kit.clock.now() });
    let last = acme.kit.store.audit().pop().unwrap();
    assert_eq!((last.action, last.actor), (AuditAction::JoinRequestWithdrawn, Some(rita.id)));
}

#[tokio::test]
async fn a_withdrawn_request_cannot_be_approved() {
    let acme = Acme::open().await;
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();
    let request = acme.pending_request(&rita).await;
    acme.requests().withdraw(rita.id, acme.org.id, request.id).await.unwrap();

    let err = acme.requests().approve(acme.ann.id, acme.org.id, request.id, None).await.unwrap_err();

    assert!(matches!(err, DecideJoinRequestError::NotPending("withdrawn")), "{err:?}");
    assert!(acme.membership(rita.id).is_none());
    let err = acme.requests().reject(acme.ann.id, acme.org.id, request.id, None).await.unwrap_err();
    assert!(matches!(err, DecideJoinRequestError::NotPending("withdrawn")), "{err:?}");
}

#[tokio::test]
async fn approving_with_a_role_above_the_approvers_permissions_is_refused() {
    let acme = Acme::open().await;
    let deputy = acme.custom_role("deputy", &deputy_permissions()).await;
    let dee = acme.member("dee@acme-physio.example", deputy).await;
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();
    let request = acme.pending_request(&rita).await;

    let err = acme.requests().approve(dee.id, acme.org.id, request.id, Some(&builtin::MANAGER)).await.unwrap_err();

    let DecideJoinRequestError::Escalation(InvariantViolation::Escalation { missing }) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(missing.iter().collect::<Vec<_>>(), [&p::FINANCIALS_ACCESS]);
    assert!(acme.membership(rita.id).is_none());
    assert!(acme.stored_request(&request).is_pending());
    let membership = acme.requests().approve(dee.id, acme.org.id, request.id, Some(&builtin::USER_PLUS)).await.unwrap();
    assert_eq!(membership.role, builtin::USER_PLUS);
}

#[tokio::test]
async fn deciding_needs_member_management_in_that_organisation() {
    let acme = Acme::open().await;
    let mo = acme.member("mo@acme-physio.example", builtin::MANAGER).await;
    let zed = acme.kit.seed_user("zed@beta.example", true).await.unwrap();
    let beta = acme.kit.seed_org("beta-clinic", zed.id).await.unwrap();
    let rita = acme.kit.seed_user("rita@example.com", true).await.unwrap();
    let request = acme.pending_request(&rita).await;

    let err = acme.requests().approve(mo.id, acme.org.id, request.id, None).await.unwrap_err();
    assert!(
        matches!(&err, DecideJoinRequestError::Access(AccessError::Forbidden { permission, .. }) if *permission == p::MEMBERS_MANAGE),
        "{err:?}"
    );
    let err = acme.requests().approve(zed.id, acme.org.id, request.id, None).await.unwrap_err();
    assert!(matches!(err, DecideJoinRequestError::Access(AccessError::NotFound)), "{err:?}");
    // Zed's own organisation has no such request.
    let err = acme.requests().approve(zed.id, beta.id, request.id, None).await.unwrap_err();
    assert!(matches!(err, DecideJoinRequestError::NotFound), "{err:?}");
    assert!(acme.membership(rita.id).is_none());
}

// ---- verified domains --------------------------------------------------------------------------------

#[tokio::test]
async fn a_verified_domain_policy_refuses_addresses_at_other_domains() {
    let acme = Acme::new().await;
    acme.set_policy(domain_policy(true)).await;
    let rita = acme.kit.seed_user("rita@gmail.example", true).await.unwrap();

    let err = acme.requests().request_to_join(rita.id, acme.org.id, None).await.unwrap_err();

    assert!(matches!(err, RequestToJoinError::OrgNotFound), "{err:?}");
    assert!(acme.membership(rita.id).is_none());
    assert!(acme.kit.store.join_requests().is_empty());
}

#[tokio::test]
async fn a_verified_domain_policy_with_automatic_approval_admits_a_matching_address_at_once() {
    let acme = Acme::new().await;
    acme.set_policy(domain_policy(true)).await;
    let rita = acme.kit.seed_user("Rita@ACME-Physio.example", true).await.unwrap();
    let emails = acme.kit.store.emails().len();

    let outcome = acme.requests().request_to_join(rita.id, acme.org.id, None).await.unwrap();

    let JoinOutcome::Joined(membership) = outcome else { panic!("{outcome:?}") };
    assert_eq!(membership.role, builtin::USER);
    assert_eq!(membership.origin, MembershipOrigin::JoinRequest);
    assert_eq!(acme.membership(rita.id), Some(membership));
    let requests = acme.kit.store.join_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].state,
        JoinRequestState::Approved { by: None, at: acme.kit.clock.now(), role: builtin::USER }
    );
    assert_eq!(acme.kit.store.emails().len(), emails, "nobody needs to decide");
    let last = acme.kit.store.audit().pop().unwrap();
    assert_eq!((last.action, last.actor), (AuditAction::JoinRequestApproved, Some(rita.id)));
}

#[tokio::test]
async fn a_verified_domain_policy_without_automatic_approval_leaves_the_request_pending() {
    let acme = Acme::new().await;
    acme.set_policy(domain_policy(false)).await;
    let rita = acme.kit.seed_user("rita@acme-physio.example", true).await.unwrap();

    let request = acme.pending_request(&rita).await;

    assert!(request.is_pending());
    assert!(acme.membership(rita.id).is_none());
    assert_eq!(recipients(&acme.kit), ["ann@acme-physio.example"]);
}
