//! The fixture the area modules share: Acme Physio, founded by Ann, and the helpers more
//! than one module needs. A helper only one module uses stays in that module, in its own
//! `impl Acme` block.

use guildhall_domain::catalogue::permissions as p;
use guildhall_domain::error::Invalid;
use guildhall_domain::ids::UserId;
use guildhall_domain::invitation::Invitation;
use guildhall_domain::join_request::JoinRequest;
use guildhall_domain::membership::Membership;
use guildhall_domain::org::{JoinPolicy, Organisation};
use guildhall_domain::ports::{Change, ChangeSet, UnitOfWork};
use guildhall_domain::role::{Role, RoleGrant};
use guildhall_domain::testing::TestKit;
use guildhall_domain::usecases::{
    Invitations, JoinOutcome, JoinRequests, Members, OrganisationUpdate, Organisations, Roles,
};
use guildhall_domain::user::User;
use guildhall_domain::values::{EmailAddress, Permission, RoleKey, RoleName};

/// Ann founded Acme Physio and is its only member.
pub struct Acme {
    pub kit: TestKit,
    pub ann: User,
    pub org: Organisation,
}

impl Acme {
    pub async fn new() -> Self {
        Self::with_kit(TestKit::new()).await
    }

    /// Ann founds Acme Physio in `kit`.
    pub async fn with_kit(kit: TestKit) -> Self {
        let ann = kit.seed_user("ann@acme-physio.example", true).await.unwrap();
        let org = kit.seed_org("acme-physio", ann.id).await.unwrap();
        Self { kit, ann, org }
    }

    // ---- the use cases ----

    pub fn invitations(&self) -> Invitations {
        self.kit.guildhall.invitations()
    }

    pub fn members(&self) -> Members {
        self.kit.guildhall.members()
    }

    pub fn organisations(&self) -> Organisations {
        self.kit.guildhall.organisations()
    }

    pub fn requests(&self) -> JoinRequests {
        self.kit.guildhall.join_requests()
    }

    pub fn roles(&self) -> Roles {
        self.kit.guildhall.roles()
    }

    // ---- arranging ----

    /// A verified account that is a member of Acme with `role`.
    pub async fn member(&self, email: &str, role: RoleKey) -> User {
        let user = self.kit.seed_user(email, true).await.unwrap();
        self.kit.seed_member(self.org.id, user.id, role).await.unwrap();
        user
    }

    /// A custom role of Acme granting exactly `permissions`, put straight into the store.
    pub async fn custom_role(&self, key: &str, permissions: &[Permission]) -> RoleKey {
        self.custom_role_granting(key, RoleGrant::Only(permissions.iter().cloned().collect())).await
    }

    /// A custom role of Acme with `grant`, put straight into the store.
    pub async fn custom_role_granting(&self, key: &str, grant: RoleGrant) -> RoleKey {
        let role =
            Role { key: RoleKey::parse(key).unwrap(), name: RoleName::parse(key).unwrap(), grant, built_in: false };
        self.commit(vec![Change::PutRole { org: self.org.id, role: role.clone() }]).await;
        role.key
    }

    /// Commits `changes` straight to the store, with no preconditions, audit or emails.
    pub async fn commit(&self, changes: Vec<Change>) {
        self.kit.store.commit(ChangeSet { changes, ..ChangeSet::new() }).await.unwrap();
    }

    /// Ann sets Acme's join policy.
    pub async fn set_policy(&self, policy: JoinPolicy) {
        let update = OrganisationUpdate { join_policy: Some(policy), ..OrganisationUpdate::default() };
        self.organisations().update(self.ann.id, self.org.id, update).await.unwrap();
    }

    /// Ann invites `email` with `role`; returns the invitation and the token emailed.
    pub async fn invite(&self, email: &str, role: &RoleKey) -> (Invitation, String) {
        let invitation = self.invitations().invite(self.ann.id, self.org.id, email, role).await.unwrap();
        (invitation, self.token_sent_to(email))
    }

    /// The token in the last email sent to `email`.
    pub fn token_sent_to(&self, email: &str) -> String {
        self.kit.last_token_sent_to(&address(email)).unwrap().expose().to_owned()
    }

    /// `user` asks to join and the request waits.
    pub async fn pending_request(&self, user: &User) -> JoinRequest {
        match self.requests().request_to_join(user.id, self.org.id, None).await.unwrap() {
            JoinOutcome::Pending(request) => request,
            other => panic!("{other:?}"),
        }
    }

    // ---- reading the store ----

    /// Acme as stored now.
    pub fn stored_org(&self) -> Organisation {
        self.kit.store.organisations().into_iter().find(|o| o.id == self.org.id).unwrap()
    }

    /// `user`'s membership of Acme as stored now, if any.
    pub fn membership(&self, user: UserId) -> Option<Membership> {
        self.kit.store.memberships(self.org.id).into_iter().find(|m| m.user == user)
    }
}

pub fn address(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

/// The fields an `Invalid` error names, in order.
pub fn fields(invalid: &Invalid) -> Vec<&'static str> {
    invalid.0.iter().map(|problem| problem.field()).collect()
}

/// Members management and everything the Manager role grants except financials.
pub fn deputy_permissions() -> Vec<Permission> {
    vec![
        p::MEMBERS_MANAGE,
        p::REPORTS_VIEW,
        p::REPORTS_DOWNLOAD,
        p::CAMPAIGNS_ACCESS,
        p::PATIENTS_ASSIGN,
        p::PATIENTS_MESSAGE,
    ]
}
