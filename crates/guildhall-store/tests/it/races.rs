//! Bounded race tests: many tasks doing the same thing at the same moment, on each
//! backend. The invariants must hold whoever wins.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Duration;
use guildhall_domain::catalogue::Catalogue;
use guildhall_domain::ids::{JoinRequestId, MessageId};
use guildhall_domain::join_request::{JoinRequest, JoinRequestState};
use guildhall_domain::membership::{Membership, MembershipOrigin};
use guildhall_domain::notification::{Notification, OutboundEmail};
use guildhall_domain::ports::{
    Change, ChangeSet, Duplicate, JoinRequestRepository, MembershipRepository, OrganisationRepository, Outbox,
    UnitOfWork,
};
use guildhall_domain::role::{Role, builtin};
use guildhall_domain::testing::{FakeHasher, ManualClock, SequentialIds, SequentialTokens};
use guildhall_domain::usecases::{Guildhall, Ports, Settings};
use guildhall_domain::values::RoleKey;
use guildhall_store::Store;

use crate::support::{Fresh, Outcome, at, changes, email, on_both, outcome, seed_org, user, uuid};

on_both!(
    two_administrators_removing_each_other_leave_one,
    an_invitation_accepted_concurrently_makes_one_membership,
    concurrent_join_requests_leave_one_pending,
    concurrent_dispatchers_claim_every_email_exactly_once,
    deleting_a_role_while_its_invitation_is_accepted_leaves_no_member_without_a_role,
);

const TASKS: u64 = 50;
const ROUNDS: u64 = 5;

fn guildhall(store: Arc<Store>) -> Guildhall {
    let ports = Ports::from_store(
        store,
        Arc::new(FakeHasher::new()),
        Arc::new(ManualClock::default()),
        Arc::new(SequentialTokens::new()),
        Arc::new(SequentialIds::new()),
    );
    Guildhall::new(ports, Arc::new(Catalogue::builtin()), Settings::default())
}

async fn two_administrators_removing_each_other_leave_one(fresh: Fresh) {
    let store = fresh().await;
    let guildhall = Arc::new(guildhall(store.clone()));
    for round in 0..20 {
        let (ann, org) = seed_org(store.as_ref(), 1000 * (round + 1)).await;
        let bob = user(1000 * (round + 1) + 500, &format!("bob{round}@example.com"), "Bob", "Admin");
        let admin = Membership::new(org.id, bob.id, builtin::ADMINISTRATOR, MembershipOrigin::Invitation, None, at(1));
        store.commit(changes(vec![Change::InsertUser(bob.clone()), Change::InsertMembership(admin)])).await.unwrap();

        let (g1, g2) = (guildhall.clone(), guildhall.clone());
        let first = tokio::spawn(async move { g1.members().remove(ann.id, org.id, bob.id).await.is_ok() });
        let second = tokio::spawn(async move { g2.members().remove(bob.id, org.id, ann.id).await.is_ok() });
        let removed = u8::from(first.await.unwrap()) + u8::from(second.await.unwrap());
        let admins = store.memberships_with_roles(org.id, &[builtin::ADMINISTRATOR]).await.unwrap();
        assert_eq!(admins.len(), 1, "round {round}: exactly one administrator must remain");
        assert_eq!(removed, 1, "round {round}: exactly one removal succeeds");
    }
}

async fn an_invitation_accepted_concurrently_makes_one_membership(fresh: Fresh) {
    let store = fresh().await;
    let guildhall = Arc::new(guildhall(store.clone()));
    let lease = Duration::hours(1);
    for round in 0..ROUNDS {
        let (ann, org) = seed_org(store.as_ref(), 1000 * (round + 1)).await;
        let bob = user(1000 * (round + 1) + 500, &format!("bob{round}@example.com"), "Bob", "Invitee");
        store.commit(changes(vec![Change::InsertUser(bob.clone())])).await.unwrap();
        guildhall.invitations().invite(ann.id, org.id, bob.email.as_str(), &builtin::USER).await.unwrap();
        let token = store
            .claim(100, at(0), lease)
            .await
            .unwrap()
            .into_iter()
            .find_map(|claimed| match claimed.email.notification {
                Notification::Invitation { token, .. } => Some(token),
                _ => None,
            })
            .unwrap();

        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (guildhall, token) = (guildhall.clone(), token.clone());
                tokio::spawn(async move { guildhall.invitations().accept(bob.id, token.expose()).await.is_ok() })
            })
            .collect();
        let mut accepted = 0;
        for task in tasks {
            accepted += u32::from(task.await.unwrap());
        }
        assert_eq!(accepted, 1, "round {round}: exactly one acceptance succeeds");
        let memberships = store.memberships_of_user(bob.id).await.unwrap();
        assert_eq!(memberships.len(), 1);
        assert_eq!(memberships[0].org, org.id);
    }
}

async fn concurrent_join_requests_leave_one_pending(fresh: Fresh) {
    let store = fresh().await;
    for round in 0..ROUNDS {
        let (_, org) = seed_org(store.as_ref(), 1000 * (round + 1)).await;
        let bob = user(1000 * (round + 1) + 500, &format!("bob{round}@example.com"), "Bob", "Asker");
        store.commit(changes(vec![Change::InsertUser(bob.clone())])).await.unwrap();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let store = store.clone();
                let request = JoinRequest {
                    id: JoinRequestId::from_uuid(uuid(1000 * (round + 1) + 600 + task)),
                    org: org.id,
                    user: bob.id,
                    message: None,
                    created_at: at(1),
                    state: JoinRequestState::Pending,
                };
                tokio::spawn(
                    async move { outcome(store.commit(changes(vec![Change::InsertJoinRequest(request)])).await) },
                )
            })
            .collect();
        let mut committed = 0;
        for task in tasks {
            match task.await.unwrap() {
                Outcome::Committed => committed += 1,
                Outcome::Duplicate(Duplicate::PendingJoinRequest) => {}
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(committed, 1, "round {round}");
        assert_eq!(store.pending_join_requests(org.id).await.unwrap().len(), 1);
    }
}

async fn concurrent_dispatchers_claim_every_email_exactly_once(fresh: Fresh) {
    let store = fresh().await;
    let total: u64 = 400;
    for batch in 0..4 {
        let mut set = ChangeSet::new();
        for n in 0..total / 4 {
            let id = batch * 1000 + n;
            set.send(OutboundEmail {
                id: MessageId::from_uuid(uuid(id + 1)),
                org: None,
                topic: None,
                to: email(&format!("person{id}@example.com")),
                notification: Notification::PasswordChanged { at: at(1) },
                queued_at: at(i64::try_from(n).unwrap()),
            });
        }
        store.commit(set).await.unwrap();
    }
    let dispatchers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = store.claim(7, at(10_000), Duration::hours(1)).await.unwrap();
                    if claimed.is_empty() {
                        break mine;
                    }
                    for message in claimed {
                        store.mark_sent(message.email.id, at(10_001)).await.unwrap();
                        mine.push(message.email.id);
                    }
                }
            })
        })
        .collect();
    let mut all: Vec<MessageId> = Vec::new();
    for dispatcher in dispatchers {
        all.extend(dispatcher.await.unwrap());
    }
    let distinct: BTreeSet<MessageId> = all.iter().copied().collect();
    assert_eq!(all.len(), usize::try_from(total).unwrap(), "no email is claimed twice");
    assert_eq!(distinct.len(), all.len());
}

async fn deleting_a_role_while_its_invitation_is_accepted_leaves_no_member_without_a_role(fresh: Fresh) {
    let store = fresh().await;
    let guildhall = Arc::new(guildhall(store.clone()));
    let desk = RoleKey::parse("front_desk").unwrap();
    for round in 0..20 {
        let (ann, org) = seed_org(store.as_ref(), 1000 * (round + 1)).await;
        let bob = user(1000 * (round + 1) + 500, &format!("bob{round}@example.com"), "Bob", "Desk");
        store.commit(changes(vec![Change::InsertUser(bob.clone())])).await.unwrap();
        let permissions = ["reports.view".to_owned()];
        guildhall.roles().create_role(ann.id, org.id, desk.as_str(), "Front desk", &permissions).await.unwrap();
        guildhall.invitations().invite(ann.id, org.id, bob.email.as_str(), &desk).await.unwrap();
        let token = store
            .claim(100, at(0), Duration::hours(1))
            .await
            .unwrap()
            .into_iter()
            .find_map(|claimed| match claimed.email.notification {
                Notification::Invitation { token, .. } => Some(token),
                _ => None,
            })
            .unwrap();

        let (g1, g2, key) = (guildhall.clone(), guildhall.clone(), desk.clone());
        let delete = tokio::spawn(async move { g1.roles().delete_role(ann.id, org.id, &key, None).await.is_ok() });
        let accept = tokio::spawn(async move { g2.invitations().accept(bob.id, token.expose()).await.is_ok() });
        let (deleted, accepted) = (delete.await.unwrap(), accept.await.unwrap());
        assert!(!(deleted && accepted), "round {round}: the role cannot both go and be given");

        let custom: Vec<RoleKey> = store.custom_roles(org.id).await.unwrap().into_iter().map(|r| r.key).collect();
        let known = |key: &RoleKey| Role::builtins().iter().any(|b| &b.key == key) || custom.contains(key);
        let holders = store.memberships_with_roles(org.id, std::slice::from_ref(&desk)).await.unwrap();
        for membership in &holders {
            assert!(known(&membership.role), "round {round}: a member holds the deleted role {}", membership.role);
        }
        assert_eq!(holders.len(), usize::from(accepted), "round {round}");
    }
}
