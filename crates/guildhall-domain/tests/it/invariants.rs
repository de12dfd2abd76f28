//! Property tests of the five invariants: random sequences of operations by random actors
//! against two organisations. A reference model, written from first principles (not with
//! the domain's policy code), predicts which operations succeed and who is a member with
//! which role; after every step the invariants are checked on the store's whole state.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use guildhall_domain::catalogue::{Catalogue, permissions as p};
use guildhall_domain::ids::{JoinRequestId, OrgId, UserId};
use guildhall_domain::membership::{Membership, MembershipStatus};
use guildhall_domain::org::JoinPolicy;
use guildhall_domain::ports::{Change, ChangeSet, Clock, UnitOfWork};
use guildhall_domain::role::{Role, RoleGrant, RolePolicy, RoleSet, builtin};
use guildhall_domain::testing::{StoreSnapshot, TestKit};
use guildhall_domain::usecases::{JoinOutcome, MemberUpdate};
use guildhall_domain::values::{EmailAddress, Permission, RoleKey, RoleName};
use proptest::prelude::*;

const USERS: usize = 6;
const ORGS: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    Invite { actor: usize, org: usize, target: usize, role: usize },
    Accept { user: usize, invitation: usize },
    RequestToJoin { user: usize, org: usize },
    Approve { actor: usize, request: usize, role: usize },
    Reject { actor: usize, request: usize },
    ChangeRole { actor: usize, org: usize, target: usize, role: usize },
    SetAide { actor: usize, org: usize, target: usize, aide: bool },
    SetExpiry { actor: usize, org: usize, target: usize, days: u8 },
    Suspend { actor: usize, org: usize, target: usize },
    Reactivate { actor: usize, org: usize, target: usize },
    Remove { actor: usize, org: usize, target: usize },
    Leave { user: usize, org: usize },
    CreateRole { actor: usize, org: usize, perms: BTreeSet<Permission> },
    EditRole { actor: usize, org: usize, role: usize, perms: BTreeSet<Permission> },
    DeleteRole { actor: usize, org: usize, role: usize, replacement: usize },
    Resend { actor: usize, invitation: usize },
    Revoke { actor: usize, invitation: usize },
    Disable { user: usize },
    Enable { user: usize },
    Link { actor: usize, source: usize, user: usize, role: usize },
    Advance { hours: u16 },
}

fn perms() -> impl Strategy<Value = BTreeSet<Permission>> {
    let all: Vec<Permission> = Catalogue::builtin().all_permissions().into_iter().collect();
    let len = all.len();
    proptest::sample::subsequence(all, 0..=len).prop_map(|v| v.into_iter().collect())
}

fn op() -> impl Strategy<Value = Op> {
    let u = 0..USERS;
    // Actors are mostly the people who can act (the founders and deputies), so that
    // refusals are not all "not a member".
    let a = prop_oneof![3 => 0usize..4, 1 => 0..USERS];
    let o = 0..ORGS;
    let r = 0usize..8;
    prop_oneof![
        4 => (a.clone(), o.clone(), u.clone(), r.clone()).prop_map(|(actor, org, target, role)| Op::Invite { actor, org, target, role }),
        4 => (u.clone(), 0usize..16).prop_map(|(user, invitation)| Op::Accept { user, invitation }),
        3 => (u.clone(), o.clone()).prop_map(|(user, org)| Op::RequestToJoin { user, org }),
        3 => (a.clone(), 0usize..16, r.clone()).prop_map(|(actor, request, role)| Op::Approve { actor, request, role }),
        1 => (a.clone(), 0usize..16).prop_map(|(actor, request)| Op::Reject { actor, request }),
        5 => (a.clone(), o.clone(), u.clone(), r.clone()).prop_map(|(actor, org, target, role)| Op::ChangeRole { actor, org, target, role }),
        2 => (a.clone(), o.clone(), u.clone(), any::<bool>()).prop_map(|(actor, org, target, aide)| Op::SetAide { actor, org, target, aide }),
        2 => (a.clone(), o.clone(), u.clone(), 1u8..10).prop_map(|(actor, org, target, days)| Op::SetExpiry { actor, org, target, days }),
        3 => (a.clone(), o.clone(), u.clone()).prop_map(|(actor, org, target)| Op::Suspend { actor, org, target }),
        2 => (a.clone(), o.clone(), u.clone()).prop_map(|(actor, org, target)| Op::Reactivate { actor, org, target }),
        3 => (a.clone(), o.clone(), u.clone()).prop_map(|(actor, org, target)| Op::Remove { actor, org, target }),
        3 => (u.clone(), o.clone()).prop_map(|(user, org)| Op::Leave { user, org }),
        2 => (a.clone(), o.clone(), perms()).prop_map(|(actor, org, perms)| Op::CreateRole { actor, org, perms }),
        2 => (a.clone(), o.clone(), r.clone(), perms()).prop_map(|(actor, org, role, perms)| Op::EditRole { actor, org, role, perms }),
        1 => (a.clone(), o.clone(), r.clone(), r.clone()).prop_map(|(actor, org, role, replacement)| Op::DeleteRole { actor, org, role, replacement }),
        2 => (a.clone(), 0usize..16).prop_map(|(actor, invitation)| Op::Resend { actor, invitation }),
        1 => (a.clone(), 0usize..16).prop_map(|(actor, invitation)| Op::Revoke { actor, invitation }),
        1 => u.clone().prop_map(|user| Op::Disable { user }),
        1 => u.clone().prop_map(|user| Op::Enable { user }),
        2 => (a.clone(), o.clone(), u.clone(), r.clone()).prop_map(|(actor, source, user, role)| Op::Link { actor, source, user, role }),
        1 => (1u16..100).prop_map(|hours| Op::Advance { hours }),
    ]
}

/// A membership as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelMember {
    role: RoleKey,
    aide: bool,
    suspended: bool,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct ModelInvitation {
    org: usize,
    user: usize,
    role: RoleKey,
    expires_at: DateTime<Utc>,
    token: String,
    open: bool,
}

#[derive(Debug, Clone)]
struct ModelRequest {
    org: usize,
    user: usize,
    id: JoinRequestId,
    pending: bool,
}

#[derive(Debug, Default)]
struct Model {
    members: BTreeMap<(usize, usize), ModelMember>,
    invitations: Vec<ModelInvitation>,
    requests: Vec<ModelRequest>,
}

/// Built-in grants written out from the analytics seed's matrix.
fn builtin_grant(role: &RoleKey, all: &BTreeSet<Permission>) -> Option<BTreeSet<Permission>> {
    let clinical = [p::REPORTS_VIEW, p::PATIENTS_ASSIGN, p::PATIENTS_MESSAGE];
    let set = |extra: &[Permission]| clinical.iter().chain(extra).cloned().collect::<BTreeSet<_>>();
    Some(match role.as_str() {
        "user" => set(&[]),
        "user_plus" => set(&[p::CAMPAIGNS_ACCESS]),
        "manager" => set(&[p::CAMPAIGNS_ACCESS, p::FINANCIALS_ACCESS, p::REPORTS_DOWNLOAD]),
        "administrator" => all.clone(),
        _ => return None,
    })
}

struct World {
    kit: TestKit,
    users: Vec<UserId>,
    emails: Vec<EmailAddress>,
    orgs: Vec<OrgId>,
    all: BTreeSet<Permission>,
    model: Model,
    created_roles: usize,
    disabled: BTreeSet<usize>,
}

impl World {
    async fn new() -> Self {
        let kit = TestKit::new();
        let mut users = Vec::new();
        let mut emails = Vec::new();
        for i in 0..USERS {
            let user = kit.seed_user(&format!("person{i}@example.com"), true).await.unwrap();
            users.push(user.id);
            emails.push(user.email);
        }
        let mut orgs = Vec::new();
        let mut model = Model::default();
        for o in 0..ORGS {
            let org = kit.seed_org(&format!("org-{o}"), users[o]).await.unwrap();
            let mut open = org.clone();
            open.settings.join_policy = JoinPolicy::RequestsAllowed;
            let mut changes = ChangeSet::new();
            changes.push(Change::UpdateOrganisation(open));
            kit.store.commit(changes).await.unwrap();
            orgs.push(org.id);
            model.members.insert(
                (o, o),
                ModelMember { role: builtin::ADMINISTRATOR, aide: false, suspended: false, expires_at: None },
            );
            // A deputy manages members but holds no financials or role management, so
            // escalation attempts are common; and one ordinary user.
            let deputy = Role {
                key: RoleKey::parse("deputy").unwrap(),
                name: RoleName::parse("Deputy").unwrap(),
                grant: RoleGrant::Only([p::MEMBERS_MANAGE, p::REPORTS_VIEW, p::CAMPAIGNS_ACCESS].into_iter().collect()),
                built_in: false,
            };
            let mut changes = ChangeSet::new();
            changes.push(Change::PutRole { org: org.id, role: deputy.clone() });
            kit.store.commit(changes).await.unwrap();
            // The first founder also administers the second organisation (linking needs
            // someone who manages members in both).
            let extra = if o == 1 { vec![(0, builtin::ADMINISTRATOR)] } else { Vec::new() };
            for (user, role) in [(2 + o, deputy.key.clone()), (4 + o, builtin::USER)].into_iter().chain(extra) {
                kit.seed_member(org.id, users[user], role.clone()).await.unwrap();
                model.members.insert((o, user), ModelMember { role, aide: false, suspended: false, expires_at: None });
            }
        }
        let all = Catalogue::builtin().all_permissions();
        Self { kit, users, emails, orgs, all, model, created_roles: 0, disabled: BTreeSet::new() }
    }

    fn now(&self) -> DateTime<Utc> {
        self.kit.clock.now()
    }

    /// The org's roles (built-in and custom) in a stable order, with their grants, from
    /// the store.
    fn roles(&self, snapshot: &StoreSnapshot, org: usize) -> Vec<(RoleKey, BTreeSet<Permission>)> {
        let mut roles: Vec<(RoleKey, BTreeSet<Permission>)> =
            [builtin::USER, builtin::USER_PLUS, builtin::MANAGER, builtin::ADMINISTRATOR]
                .into_iter()
                .map(|k| {
                    let grant = builtin_grant(&k, &self.all).unwrap();
                    (k, grant)
                })
                .collect();
        for ((o, key), role) in &snapshot.roles {
            if *o == self.orgs[org] {
                let grant = match &role.grant {
                    RoleGrant::All => self.all.clone(),
                    RoleGrant::Only(set) => set.clone(),
                };
                roles.push((key.clone(), grant));
            }
        }
        roles
    }

    fn grant(&self, snapshot: &StoreSnapshot, org: usize, role: &RoleKey) -> Option<BTreeSet<Permission>> {
        self.roles(snapshot, org).into_iter().find(|(k, _)| k == role).map(|(_, g)| g)
    }

    fn effective(&self, snapshot: &StoreSnapshot, org: usize, m: &ModelMember) -> BTreeSet<Permission> {
        if m.suspended || m.expires_at.is_some_and(|e| e <= self.now()) {
            return BTreeSet::new();
        }
        let mut perms = self.grant(snapshot, org, &m.role).unwrap_or_default();
        if m.aide {
            perms.remove(&p::PATIENTS_ASSIGN);
            perms.remove(&p::PATIENTS_MESSAGE);
        }
        perms
    }

    fn is_admin(&self, snapshot: &StoreSnapshot, org: usize, m: &ModelMember) -> bool {
        let perms = self.effective(snapshot, org, m);
        m.expires_at.is_none() && perms.contains(&p::MEMBERS_MANAGE) && perms.contains(&p::ROLES_MANAGE)
    }

    fn held(&self, snapshot: &StoreSnapshot, org: usize, user: usize) -> BTreeSet<Permission> {
        if self.disabled.contains(&user) {
            return BTreeSet::new(); // a disabled account can do nothing anywhere
        }
        self.model.members.get(&(org, user)).map(|m| self.effective(snapshot, org, m)).unwrap_or_default()
    }

    fn admins_after(&self, snapshot: &StoreSnapshot, org: usize, user: usize, next: Option<ModelMember>) -> usize {
        let mut members: BTreeMap<usize, ModelMember> =
            self.model.members.iter().filter(|((o, _), _)| *o == org).map(|((_, u), m)| (*u, m.clone())).collect();
        match next {
            Some(m) => members.insert(user, m),
            None => members.remove(&user),
        };
        members.iter().filter(|(u, m)| !self.disabled.contains(u) && self.is_admin(snapshot, org, m)).count()
    }

    /// The common preconditions of an administrator's change to `target`: the actor
    /// manages members, the target is a member the actor does not outrank.
    fn may_manage(&self, snapshot: &StoreSnapshot, org: usize, actor: usize, target: usize) -> bool {
        let held = self.held(snapshot, org, actor);
        let Some(current) = self.model.members.get(&(org, target)) else { return false };
        held.contains(&p::MEMBERS_MANAGE)
            && self.grant(snapshot, org, &current.role).unwrap_or_default().is_subset(&held)
    }
}

fn store_members(snapshot: &StoreSnapshot, world: &World) -> BTreeMap<(usize, usize), ModelMember> {
    snapshot
        .memberships
        .values()
        .map(|m: &Membership| {
            let org = world.orgs.iter().position(|o| *o == m.org).unwrap();
            let user = world.users.iter().position(|u| *u == m.user).unwrap();
            let member = ModelMember {
                role: m.role.clone(),
                aide: m.aide,
                suspended: matches!(m.status, MembershipStatus::Suspended { .. }),
                expires_at: m.expires_at,
            };
            ((org, user), member)
        })
        .collect()
}

/// What belongs to one organisation, to check that an operation on another left it alone.
fn org_slice(snapshot: &StoreSnapshot, org: OrgId) -> String {
    let members: Vec<_> = snapshot.memberships.values().filter(|m| m.org == org).collect();
    let roles: Vec<_> = snapshot.roles.iter().filter(|((o, _), _)| *o == org).collect();
    let invitations: Vec<_> = snapshot.invitations.values().filter(|i| i.org == org).collect();
    let requests: Vec<_> = snapshot.join_requests.values().filter(|r| r.org == org).collect();
    format!("{members:?}{roles:?}{invitations:?}{requests:?}{:?}", snapshot.organisations.get(&org))
}

fn check_invariants(world: &World, snapshot: &StoreSnapshot) -> Result<(), TestCaseError> {
    let catalogue = Catalogue::builtin();
    for (o, org) in world.orgs.iter().enumerate() {
        // 1. at least one administrator, counted from first principles
        let admins = store_members(snapshot, world)
            .iter()
            .filter(|((mo, u), m)| *mo == o && !world.disabled.contains(u) && world.is_admin(snapshot, o, m))
            .count();
        prop_assert!(admins >= 1, "org {o} has no administrator: {:?}", snapshot.memberships);
        // 3. aides never hold patient permissions (through the domain's policy)
        let custom: Vec<_> = snapshot.roles.iter().filter(|((ro, _), _)| ro == org).map(|(_, r)| r.clone()).collect();
        let roles = RoleSet::new(custom);
        let policy = RolePolicy::new(&catalogue, &roles);
        for m in snapshot.memberships.values().filter(|m| m.org == *org && m.aide) {
            let perms = policy.effective_permissions(m, world.now());
            prop_assert!(!perms.contains(&p::PATIENTS_ASSIGN) && !perms.contains(&p::PATIENTS_MESSAGE));
        }
        // every membership's role exists
        for m in snapshot.memberships.values().filter(|m| m.org == *org) {
            prop_assert!(roles.get(&m.role).is_some(), "membership with a deleted role {}", m.role);
        }
    }
    // 4. one pending join request per (org, user); an invitation accepted at most once
    let mut pending = BTreeSet::new();
    for r in snapshot.join_requests.values().filter(|r| r.is_pending()) {
        prop_assert!(pending.insert((r.org, r.user)), "two pending requests for {:?}", (r.org, r.user));
    }
    let mut accepted = BTreeSet::new();
    for entry in snapshot.audit.iter().filter(|e| e.action == guildhall_domain::audit::AuditAction::InvitationAccepted)
    {
        prop_assert!(accepted.insert(format!("{:?}", entry.target)), "invitation accepted twice: {:?}", entry.target);
    }
    // the model agrees with the system on who is a member with which role and status
    prop_assert_eq!(&store_members(snapshot, world), &world.model.members);
    Ok(())
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut world = World::new().await;
    check_invariants(&world, &world.kit.store.snapshot())?;
    for op in ops {
        let before = world.kit.store.snapshot();
        let now = world.now();
        let g = world.kit.guildhall.clone();
        // (org touched, predicted outcome or None when not predicted, actual outcome)
        let (touched, predicted, ok): (Option<usize>, Option<bool>, bool) = match op.clone() {
            Op::Invite { actor, org, target, role } => {
                let roles = world.roles(&before, org);
                let (key, grant) = roles[role % roles.len()].clone();
                let held = world.held(&before, org, actor);
                let already_invited = world
                    .model
                    .invitations
                    .iter()
                    .any(|i| i.org == org && i.user == target && i.open && i.expires_at > now);
                let expect = held.contains(&p::MEMBERS_MANAGE)
                    && grant.is_subset(&held)
                    && !world.model.members.contains_key(&(org, target))
                    && !already_invited;
                let result = g
                    .invitations()
                    .invite(world.users[actor], world.orgs[org], world.emails[target].as_str(), &key)
                    .await;
                if let Ok(invitation) = &result {
                    let token = world.kit.last_token_sent_to(&world.emails[target]).unwrap();
                    world.model.invitations.push(ModelInvitation {
                        org,
                        user: target,
                        role: key,
                        expires_at: invitation.expires_at,
                        token: token.expose().to_owned(),
                        open: true,
                    });
                }
                (Some(org), Some(expect), result.is_ok())
            }
            Op::Accept { user, invitation } => {
                if world.model.invitations.is_empty() {
                    continue;
                }
                // Mostly open invitations, mostly accepted by the invitee.
                let open: Vec<usize> =
                    (0..world.model.invitations.len()).filter(|i| world.model.invitations[*i].open).collect();
                let idx = if open.is_empty() || invitation >= 12 {
                    invitation % world.model.invitations.len()
                } else {
                    open[invitation % open.len()]
                };
                let inv = world.model.invitations[idx].clone();
                let user = if user < 4 { inv.user } else { user };
                let expect = inv.open
                    && !world.disabled.contains(&user)
                    && inv.expires_at > now
                    && inv.user == user
                    && !world.model.members.contains_key(&(inv.org, user))
                    && world.grant(&before, inv.org, &inv.role).is_some();
                let result = g.invitations().accept(world.users[user], &inv.token).await;
                if result.is_ok() {
                    world.model.invitations[idx].open = false;
                    world.model.members.insert(
                        (inv.org, user),
                        ModelMember { role: inv.role.clone(), aide: false, suspended: false, expires_at: None },
                    );
                }
                (Some(inv.org), Some(expect), result.is_ok())
            }
            Op::RequestToJoin { user, org } => {
                let has_pending = world.model.requests.iter().any(|r| r.org == org && r.user == user && r.pending);
                let expect =
                    !world.model.members.contains_key(&(org, user)) && !has_pending && !world.disabled.contains(&user);
                let result = g.join_requests().request_to_join(world.users[user], world.orgs[org], Some("hello")).await;
                match &result {
                    Ok(JoinOutcome::Pending(request)) => {
                        world.model.requests.push(ModelRequest { org, user, id: request.id, pending: true })
                    }
                    Ok(JoinOutcome::Joined(_)) => prop_assert!(false, "requests are not auto-approved here"),
                    Err(_) => {}
                }
                (Some(org), Some(expect), result.is_ok())
            }
            Op::Approve { actor, request, role } => {
                if world.model.requests.is_empty() {
                    continue;
                }
                let idx = request % world.model.requests.len();
                let req = world.model.requests[idx].clone();
                let roles = world.roles(&before, req.org);
                let (key, grant) = roles[role % roles.len()].clone();
                let held = world.held(&before, req.org, actor);
                let expect = held.contains(&p::MEMBERS_MANAGE)
                    && req.pending
                    && grant.is_subset(&held)
                    && !world.model.members.contains_key(&(req.org, req.user));
                let result =
                    g.join_requests().approve(world.users[actor], world.orgs[req.org], req.id, Some(&key)).await;
                if result.is_ok() {
                    world.model.requests[idx].pending = false;
                    world.model.members.insert(
                        (req.org, req.user),
                        ModelMember { role: key, aide: false, suspended: false, expires_at: None },
                    );
                }
                (Some(req.org), Some(expect), result.is_ok())
            }
            Op::Reject { actor, request } => {
                if world.model.requests.is_empty() {
                    continue;
                }
                let idx = request % world.model.requests.len();
                let req = world.model.requests[idx].clone();
                let held = world.held(&before, req.org, actor);
                let expect = held.contains(&p::MEMBERS_MANAGE) && req.pending;
                let result =
                    g.join_requests().reject(world.users[actor], world.orgs[req.org], req.id, Some("not now")).await;
                if result.is_ok() {
                    world.model.requests[idx].pending = false;
                }
                (Some(req.org), Some(expect), result.is_ok())
            }
            Op::ChangeRole { actor, org, target, role } => {
                let roles = world.roles(&before, org);
                let (key, grant) = roles[role % roles.len()].clone();
                let held = world.held(&before, org, actor);
                let next =
                    world.model.members.get(&(org, target)).map(|m| ModelMember { role: key.clone(), ..m.clone() });
                let expect = world.may_manage(&before, org, actor, target)
                    && grant.is_subset(&held)
                    && world.admins_after(&before, org, target, next.clone()) > 0;
                let result =
                    g.members().change_role(world.users[actor], world.orgs[org], world.users[target], &key).await;
                if result.is_ok() {
                    world.model.members.insert((org, target), next.unwrap());
                }
                (Some(org), Some(expect), result.is_ok())
            }
            Op::SetAide { actor, org, target, aide } => {
                let next = world.model.members.get(&(org, target)).map(|m| ModelMember { aide, ..m.clone() });
                let expect = world.may_manage(&before, org, actor, target);
                let update = MemberUpdate { aide: Some(aide), ..MemberUpdate::default() };
                let result =
                    g.members().update_member(world.users[actor], world.orgs[org], world.users[target], &update).await;
                if result.is_ok() {
                    world.model.members.insert((org, target), next.unwrap());
                }
                (Some(org), Some(expect), result.is_ok())
            }
            Op::SetExpiry { actor, org, target, days } => {
                let at = now + Duration::days(i64::from(days));
                let next =
                    world.model.members.get(&(org, target)).map(|m| ModelMember { expires_at: Some(at), ..m.clone() });
                let expect = world.may_manage(&before, org, actor, target)
                    && world.admins_after(&before, org, target, next.clone()) > 0;
                let update = MemberUpdate { expires_at: Some(Some(at)), ..MemberUpdate::default() };
                let result =
                    g.members().update_member(world.users[actor], world.orgs[org], world.users[target], &update).await;
                if result.is_ok() {
                    world.model.members.insert((org, target), next.unwrap());
                }
                (Some(org), Some(expect), result.is_ok())
            }
            Op::Suspend { actor, org, target } => {
                let current = world.model.members.get(&(org, target)).cloned();
                let next = current.clone().map(|m| ModelMember { suspended: true, ..m });
                let expect = world.may_manage(&before, org, actor, target)
                    && actor != target
                    && current.is_some_and(|m| !m.suspended)
                    && world.admins_after(&before, org, target, next.clone()) > 0;
                let result = g.members().suspend(world.users[actor], world.orgs[org], world.users[target]).await;
                if result.is_ok() {
                    world.model.members.insert((org, target), next.unwrap());
                }
                (Some(org), Some(expect), result.is_ok())
            }
            Op::Reactivate { actor, org, target } => {
                // Mostly someone who is suspended.
                let suspended: Vec<usize> = world
                    .model
                    .members
                    .iter()
                    .filter(|((o, _), m)| *o == org && m.suspended)
                    .map(|((_, u), _)| *u)
                    .collect();
                let target =
                    if suspended.is_empty() || target >= 4 { target } else { suspended[target % suspended.len()] };
                let current = world.model.members.get(&(org, target)).cloned();
                let expect =
                    world.may_manage(&before, org, actor, target) && current.as_ref().is_some_and(|m| m.suspended);
                let result = g.members().reactivate(world.users[actor], world.orgs[org], world.users[target]).await;
                if result.is_ok() {
                    world.model.members.insert((org, target), ModelMember { suspended: false, ..current.unwrap() });
                }
                (Some(org), Some(expect), result.is_ok())
            }
            Op::Remove { actor, org, target } => {
                let expect = world.may_manage(&before, org, actor, target)
                    && actor != target
                    && world.admins_after(&before, org, target, None) > 0;
                let result = g.members().remove(world.users[actor], world.orgs[org], world.users[target]).await;
                if result.is_ok() {
                    world.model.members.remove(&(org, target));
                }
                (Some(org), Some(expect), result.is_ok())
            }
            Op::Leave { user, org } => {
                let expect = world.model.members.contains_key(&(org, user))
                    && !world.disabled.contains(&user)
                    && world.admins_after(&before, org, user, None) > 0;
                let result = g.members().leave(world.users[user], world.orgs[org]).await;
                if result.is_ok() {
                    world.model.members.remove(&(org, user));
                }
                (Some(org), Some(expect), result.is_ok())
            }
            Op::CreateRole { actor, org, perms } => {
                world.created_roles += 1;
                let key = format!("custom_{}", world.created_roles);
                let list: Vec<String> = perms.iter().map(|p| p.to_string()).collect();
                let held = world.held(&before, org, actor);
                let expect = held.contains(&p::ROLES_MANAGE) && perms.is_subset(&held);
                let result = g.roles().create_role(world.users[actor], world.orgs[org], &key, "Custom", &list).await;
                (Some(org), Some(expect), result.is_ok())
            }
            Op::EditRole { actor, org, role, perms } => {
                let custom: Vec<_> = world.roles(&before, org).into_iter().skip(4).collect();
                if custom.is_empty() {
                    continue;
                }
                let (key, old) = custom[role % custom.len()].clone();
                let list: Vec<String> = perms.iter().map(|p| p.to_string()).collect();
                let result = g.roles().edit_role(world.users[actor], world.orgs[org], &key, None, &list).await;
                if result.is_ok() {
                    let held = world.held(&before, org, actor);
                    prop_assert!(held.contains(&p::ROLES_MANAGE), "edited a role without roles.manage");
                    prop_assert!(perms.is_subset(&held) && old.is_subset(&held), "escalation through a role edit");
                }
                (Some(org), None, result.is_ok())
            }
            Op::DeleteRole { actor, org, role, replacement } => {
                let all_roles = world.roles(&before, org);
                let custom: Vec<_> = all_roles.iter().skip(4).cloned().collect();
                if custom.is_empty() {
                    continue;
                }
                let (key, old) = custom[role % custom.len()].clone();
                let (to, to_grant) = all_roles[replacement % all_roles.len()].clone();
                let result = g.roles().delete_role(world.users[actor], world.orgs[org], &key, Some(&to)).await;
                if result.is_ok() {
                    let held = world.held(&before, org, actor);
                    prop_assert!(old.is_subset(&held), "deleted a role holding more than the actor");
                    let moved: Vec<usize> = world
                        .model
                        .members
                        .iter()
                        .filter(|((o, _), m)| *o == org && m.role == key)
                        .map(|((_, u), _)| *u)
                        .collect();
                    prop_assert!(to_grant.is_subset(&held), "escalation through a replacement role");
                    // Deleting the role revoked its open invitations.
                    for invitation in world.model.invitations.iter_mut().filter(|i| i.org == org && i.role == key) {
                        invitation.open = false;
                    }
                    for u in moved {
                        if let Some(m) = world.model.members.get_mut(&(org, u)) {
                            m.role = to.clone();
                        }
                    }
                }
                (Some(org), None, result.is_ok())
            }
            Op::Resend { actor, invitation } => {
                if world.model.invitations.is_empty() {
                    continue;
                }
                let idx = invitation % world.model.invitations.len();
                let inv = world.model.invitations[idx].clone();
                let held = world.held(&before, inv.org, actor);
                let expect = held.contains(&p::MEMBERS_MANAGE)
                    && inv.open
                    && world.grant(&before, inv.org, &inv.role).is_some_and(|g| g.is_subset(&held));
                let id = before
                    .invitations
                    .values()
                    .find(|i| {
                        i.org == world.orgs[inv.org]
                            && i.email == world.emails[inv.user]
                            && i.created_at <= now
                            && i.token_hash == guildhall_domain::token::Token::parse(&inv.token).unwrap().hash()
                    })
                    .map(|i| i.id);
                let Some(id) = id else { continue };
                let result = g.invitations().resend(world.users[actor], world.orgs[inv.org], id).await;
                if let Ok(resent) = &result {
                    let token = world.kit.last_token_sent_to(&world.emails[inv.user]).unwrap();
                    world.model.invitations[idx].token = token.expose().to_owned();
                    world.model.invitations[idx].expires_at = resent.expires_at;
                }
                (Some(inv.org), Some(expect), result.is_ok())
            }
            Op::Revoke { actor, invitation } => {
                if world.model.invitations.is_empty() {
                    continue;
                }
                let idx = invitation % world.model.invitations.len();
                let inv = world.model.invitations[idx].clone();
                let hash = guildhall_domain::token::Token::parse(&inv.token).unwrap().hash();
                let Some(id) = before.invitations.values().find(|i| i.token_hash == hash).map(|i| i.id) else {
                    continue;
                };
                let held = world.held(&before, inv.org, actor);
                let outranked = world.grant(&before, inv.org, &inv.role).is_some_and(|g| !g.is_subset(&held));
                let expect = held.contains(&p::MEMBERS_MANAGE) && inv.open && !outranked;
                let result = g.invitations().revoke(world.users[actor], world.orgs[inv.org], id).await;
                if result.is_ok() {
                    world.model.invitations[idx].open = false;
                }
                (Some(inv.org), Some(expect), result.is_ok())
            }
            Op::Disable { user } => {
                let last_admin_somewhere = (0..ORGS).any(|o| {
                    let is_admin = world.model.members.get(&(o, user)).is_some_and(|m| world.is_admin(&before, o, m));
                    is_admin && !world.disabled.contains(&user) && world.admins_after(&before, o, user, None) == 0
                });
                let expect = !world.disabled.contains(&user) && !last_admin_somewhere;
                let result = g.accounts().disable(world.users[user]).await;
                if result.is_ok() {
                    world.disabled.insert(user);
                }
                (None, Some(expect), result.is_ok())
            }
            Op::Enable { user } => {
                let expect = world.disabled.contains(&user);
                let result = g.accounts().enable(world.users[user]).await;
                if result.is_ok() {
                    world.disabled.remove(&user);
                }
                (None, Some(expect), result.is_ok())
            }
            Op::Link { actor, source, user, role } => {
                let target = 1 - source;
                let roles = world.roles(&before, target);
                let (key, grant) = roles[role % roles.len()].clone();
                let held_source = world.held(&before, source, actor);
                let held_target = world.held(&before, target, actor);
                let in_force = world
                    .model
                    .members
                    .get(&(source, user))
                    .is_some_and(|m| !m.suspended && m.expires_at.is_none_or(|e| e > now));
                let expect = held_source.contains(&p::MEMBERS_MANAGE)
                    && held_target.contains(&p::MEMBERS_MANAGE)
                    && in_force
                    && !world.disabled.contains(&user)
                    && world.may_manage(&before, source, actor, user)
                    && grant.is_subset(&held_target)
                    && !world.model.members.contains_key(&(target, user));
                let result = g
                    .members()
                    .link_existing_user(
                        world.users[actor],
                        world.orgs[source],
                        world.orgs[target],
                        world.users[user],
                        &key,
                    )
                    .await;
                if result.is_ok() {
                    world.model.members.insert(
                        (target, user),
                        ModelMember { role: key, aide: false, suspended: false, expires_at: None },
                    );
                }
                (Some(target), Some(expect), result.is_ok())
            }
            Op::Advance { hours } => {
                world.kit.clock.advance(Duration::hours(i64::from(hours)));
                (None, None, true)
            }
        };
        if let Some(expected) = predicted {
            prop_assert_eq!(ok, expected, "{:?} did not do what the model predicted", op);
        }
        let after = world.kit.store.snapshot();
        // 5. isolation: an operation on one organisation changes nothing of the other
        if let Some(org) = touched {
            for (o, other) in world.orgs.iter().enumerate() {
                if o != org {
                    prop_assert_eq!(
                        org_slice(&before, *other),
                        org_slice(&after, *other),
                        "{:?} touched org {}",
                        op,
                        o
                    );
                }
            }
        }
        // a failed operation writes nothing
        if !ok {
            prop_assert_eq!(&before, &after, "{:?} failed but changed the state", op);
        }
        check_invariants(&world, &after)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_by_random_actors_keep_every_invariant(ops in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(run(ops))?;
    }
}
