//! Invitations and join requests over HTTP.

use std::collections::BTreeSet;
use std::sync::Arc;

use guildhall_domain::catalogue::Catalogue;
use guildhall_domain::ids::{OrgId, UserId};
use guildhall_domain::org::JoinPolicy;
use guildhall_domain::usecases::{Guildhall, OrganisationUpdate, Ports, Settings};
use guildhall_domain::values::EmailDomain;
use guildhall_http::system::{Argon2Hasher, OsTokens, UuidV7Ids};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, cheap_argon2, spawn_app, spawn_postgres_app};

/// Invites `email` to `org` as `admin`; the invitation.
async fn invite(app: &TestApp, admin: &str, org: &str, email: &str, role: &str) -> Value {
    let reply = app.post(&format!("/orgs/{org}/invitations"), admin, json!({"email": email, "role": role})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body
}

/// A signed-in member of `org` with `role`, added by invitation; their session token.
async fn member(app: &TestApp, admin: &str, org: &str, email: &str, role: &str) -> String {
    let token = app.signed_in(email).await;
    invite(app, admin, org, email, role).await;
    let link = app.last_token_to(email).await;
    app.post("/invitations/accept", &token, json!({"token": link})).await.ok();
    token
}

async fn my_org_slugs(app: &TestApp, token: &str) -> Vec<String> {
    let me = app.get("/me", token).await.ok();
    me["memberships"].as_array().unwrap().iter().map(|m| m["slug"].as_str().unwrap().to_owned()).collect()
}

async fn user_id(app: &TestApp, token: &str) -> UserId {
    UserId::parse(app.get("/me", token).await.ok()["user"]["id"].as_str().unwrap()).unwrap()
}

/// Sets the join policy through the use case (the settings endpoint belongs to another
/// resource); `admin` must be allowed to.
async fn set_join_policy(app: &TestApp, admin: &str, org: &str, policy: JoinPolicy) {
    let hasher = Arc::new(Argon2Hasher::new(cheap_argon2()).unwrap());
    let ports =
        Ports::from_store(app.store.clone(), hasher, app.clock.clone(), Arc::new(OsTokens), Arc::new(UuidV7Ids));
    let guildhall = Guildhall::new(ports, Arc::new(Catalogue::builtin()), Settings::default());
    let actor = user_id(app, admin).await;
    let update = OrganisationUpdate { join_policy: Some(policy), ..OrganisationUpdate::default() };
    guildhall.organisations().update(actor, OrgId::parse(org).unwrap(), update).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Invitations
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_invitee_signs_up_through_the_link_accepts_and_becomes_a_member() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;

    let invitation = invite(&app, &admin, &org, "ivy@example.org", "manager").await;
    assert_eq!(invitation["email"], "ivy@example.org");
    assert_eq!(invitation["role"], "manager");
    assert_eq!(invitation["status"], "pending");
    assert_eq!(invitation["invited_by"], user_id(&app, &admin).await.to_string());
    assert!(invitation.get("token").is_none());

    let listed = app.get(&format!("/orgs/{org}/invitations"), &admin).await.ok();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], invitation["id"]);

    // The landing page, before anyone signs in.
    let link = app.last_token_to("ivy@example.org").await;
    let details = app.anonymous(Method::POST, "/invitations/details", Some(json!({"token": link}))).await.ok();
    assert_eq!(details["org_name"], "Org clinic");
    assert_eq!(details["role_name"], "Manager");
    assert_eq!(details["status"], "pending");
    assert_eq!(details["account_exists"], false);

    // Sign up through the link: the address counts as verified.
    let signup = app
        .anonymous(
            Method::POST,
            "/auth/signup",
            Some(json!({"email": "ivy@example.org", "password": PASSWORD, "first_name": "Ivy", "last_name": "Invitee", "invitation_token": link})),
        )
        .await
        .ok();
    assert_eq!(signup["outcome"], "verified");
    let ivy = app.login("ivy@example.org", PASSWORD).await.ok()["token"].as_str().unwrap().to_owned();
    let mine = app.get("/me/invitations", &ivy).await.ok();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["id"], invitation["id"]);

    let membership = app.post("/invitations/accept", &ivy, json!({"token": link})).await.ok();
    assert_eq!(membership["org_id"], org);
    assert_eq!(membership["role"], "manager");
    assert_eq!(membership["origin"], "invitation");
    assert_eq!(membership["status"], "active");

    let me = app.get("/me", &ivy).await.ok();
    assert_eq!(me["memberships"].as_array().unwrap().len(), 1);
    assert_eq!(me["memberships"][0]["org_id"], org);
    assert_eq!(me["memberships"][0]["role"], "manager");
    // No longer open.
    assert_eq!(app.get(&format!("/orgs/{org}/invitations"), &admin).await.ok(), json!([]));
    assert_eq!(app.get("/me/invitations", &ivy).await.ok(), json!([]));
    let details = app.anonymous(Method::POST, "/invitations/details", Some(json!({"token": link}))).await.ok();
    assert_eq!(details["status"], "accepted");
}

#[tokio::test]
async fn an_invitation_works_only_once() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    let ivy = app.signed_in("ivy@example.org").await;
    invite(&app, &admin, &org, "ivy@example.org", "user").await;
    let link = app.last_token_to("ivy@example.org").await;

    app.post("/invitations/accept", &ivy, json!({"token": link})).await.ok();
    app.post("/invitations/accept", &ivy, json!({"token": link})).await.expect(410, "invitation-used");

    assert_eq!(my_org_slugs(&app, &ivy).await, vec!["clinic"]);
}

#[tokio::test]
async fn an_expired_invitation_is_gone_until_it_is_resent() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    app.signed_in("ivy@example.org").await;
    let invitation = invite(&app, &admin, &org, "ivy@example.org", "user").await;
    let old_link = app.last_token_to("ivy@example.org").await;

    app.clock.advance(chrono::Duration::days(8));
    // Sessions do not last that long either.
    let admin = app.login("admin@example.org", PASSWORD).await.ok()["token"].as_str().unwrap().to_owned();
    let ivy = app.login("ivy@example.org", PASSWORD).await.ok()["token"].as_str().unwrap().to_owned();
    let problem =
        app.post("/invitations/accept", &ivy, json!({"token": old_link})).await.expect(410, "invitation-expired");
    assert!(problem["detail"].as_str().unwrap().contains("Org clinic"), "{problem}");
    let listed = app.get(&format!("/orgs/{org}/invitations"), &admin).await.ok();
    assert_eq!(listed[0]["status"], "expired");
    assert!(my_org_slugs(&app, &ivy).await.is_empty());

    // Resending issues a new link; the old one stops working.
    let id = invitation["id"].as_str().unwrap();
    let resent = app.post(&format!("/orgs/{org}/invitations/{id}/resend"), &admin, json!({})).await.ok();
    assert_eq!(resent["status"], "pending");
    assert_eq!(resent["resent"], 1);
    let new_link = app.last_token_to("ivy@example.org").await;
    assert_ne!(new_link, old_link);
    app.post("/invitations/accept", &ivy, json!({"token": old_link})).await.expect(404, "invalid-token");
    app.post("/invitations/accept", &ivy, json!({"token": new_link})).await.ok();
    assert_eq!(my_org_slugs(&app, &ivy).await, vec!["clinic"]);
}

#[tokio::test]
async fn a_revoked_invitation_is_gone() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    let ivy = app.signed_in("ivy@example.org").await;
    let invitation = invite(&app, &admin, &org, "ivy@example.org", "user").await;
    let link = app.last_token_to("ivy@example.org").await;
    let id = invitation["id"].as_str().unwrap();

    let revoked = app.delete(&format!("/orgs/{org}/invitations/{id}"), &admin).await.ok();
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(app.get(&format!("/orgs/{org}/invitations"), &admin).await.ok(), json!([]));

    app.post("/invitations/accept", &ivy, json!({"token": link})).await.expect(410, "invitation-revoked");
    app.delete(&format!("/orgs/{org}/invitations/{id}"), &admin).await.expect(409, "invitation-closed");
    app.post(&format!("/orgs/{org}/invitations/{id}/resend"), &admin, json!({})).await.expect(409, "invitation-closed");
    assert!(my_org_slugs(&app, &ivy).await.is_empty());
}

#[tokio::test]
async fn a_declined_invitation_cannot_be_accepted() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    let ivy = app.signed_in("ivy@example.org").await;
    invite(&app, &admin, &org, "ivy@example.org", "user").await;
    let link = app.last_token_to("ivy@example.org").await;

    app.post("/invitations/decline", &ivy, json!({"token": link})).await.ok();
    app.post("/invitations/accept", &ivy, json!({"token": link})).await.expect(410, "invitation-declined");
    app.post("/invitations/decline", &ivy, json!({"token": link})).await.expect(410, "invitation-declined");
    assert!(my_org_slugs(&app, &ivy).await.is_empty());
}

#[tokio::test]
async fn an_invitation_for_another_address_cannot_be_accepted_or_declined() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    invite(&app, &admin, &org, "ivy@example.org", "user").await;
    let link = app.last_token_to("ivy@example.org").await;
    let mallory = app.signed_in("mallory@example.org").await;

    let problem = app
        .post("/invitations/accept", &mallory, json!({"token": link}))
        .await
        .expect(403, "invitation-for-another-address");
    assert!(problem["detail"].as_str().unwrap().contains("ivy@example.org"));
    app.post("/invitations/decline", &mallory, json!({"token": link}))
        .await
        .expect(403, "invitation-for-another-address");
    assert!(my_org_slugs(&app, &mallory).await.is_empty());
    let listed = app.get(&format!("/orgs/{org}/invitations"), &admin).await.ok();
    assert_eq!(listed[0]["status"], "pending");
}

#[tokio::test]
async fn an_unknown_invitation_link_is_not_found() {
    let app = spawn_app().await;
    let ivy = app.signed_in("ivy@example.org").await;
    app.post("/invitations/accept", &ivy, json!({"token": "not-a-token"})).await.expect(404, "invalid-token");
    app.anonymous(
        Method::POST,
        "/invitations/details",
        Some(json!({"token": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})),
    )
    .await
    .expect(404, "invalid-token");
}

#[tokio::test]
async fn inviting_checks_every_field() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;

    let problem = app
        .post(&format!("/orgs/{org}/invitations"), &admin, json!({"email": "not an address", "role": "Bad Role"}))
        .await
        .expect(422, "invalid-input");
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["email", "role"]);

    let problem = app
        .post(&format!("/orgs/{org}/invitations"), &admin, json!({"email": "ivy@example.org", "role": "wizard"}))
        .await
        .expect(422, "invalid-input");
    assert_eq!(problem["errors"][0]["field"], "role");

    assert_eq!(app.get(&format!("/orgs/{org}/invitations"), &admin).await.ok(), json!([]));
    assert!(app.emails_to("ivy@example.org").await.is_empty());
}

#[tokio::test]
async fn inviting_a_member_or_an_invited_address_again_is_a_conflict() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    member(&app, &admin, &org, "mia@example.org", "user").await;
    invite(&app, &admin, &org, "ivy@example.org", "user").await;

    app.post(&format!("/orgs/{org}/invitations"), &admin, json!({"email": "mia@example.org", "role": "user"}))
        .await
        .expect(409, "already-member");
    app.post(&format!("/orgs/{org}/invitations"), &admin, json!({"email": "ivy@example.org", "role": "user"}))
        .await
        .expect(409, "already-invited");
    assert_eq!(app.get(&format!("/orgs/{org}/invitations"), &admin).await.ok().as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_plain_member_cannot_invite_or_see_invitations() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    let mia = member(&app, &admin, &org, "mia@example.org", "user").await;

    app.post(&format!("/orgs/{org}/invitations"), &mia, json!({"email": "ivy@example.org", "role": "user"}))
        .await
        .expect(403, "forbidden");
    app.get(&format!("/orgs/{org}/invitations"), &mia).await.expect(403, "forbidden");
    assert!(app.emails_to("ivy@example.org").await.is_empty());
}

#[tokio::test]
async fn an_outsider_cannot_see_or_touch_an_orgs_invitations() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    let invitation = invite(&app, &admin, &org, "ivy@example.org", "user").await;
    let id = invitation["id"].as_str().unwrap();
    let outsider = app.signed_in("olga@example.org").await;
    app.create_org(&outsider, "elsewhere").await;

    app.get(&format!("/orgs/{org}/invitations"), &outsider).await.expect(404, "not-found");
    app.get("/orgs/clinic/invitations", &outsider).await.expect(404, "not-found");
    app.post(&format!("/orgs/{org}/invitations"), &outsider, json!({"email": "x@example.org", "role": "user"}))
        .await
        .expect(404, "not-found");
    app.delete(&format!("/orgs/{org}/invitations/{id}"), &outsider).await.expect(404, "not-found");
    app.post(&format!("/orgs/{org}/invitations/{id}/resend"), &outsider, json!({})).await.expect(404, "not-found");
    // Its own organisation does not hold the invitation either.
    app.delete(&format!("/orgs/elsewhere/invitations/{id}"), &outsider).await.expect(404, "not-found");

    let listed = app.get(&format!("/orgs/{org}/invitations"), &admin).await.ok();
    assert_eq!(listed[0]["status"], "pending");
    assert_eq!(listed[0]["resent"], 0);
}

// ---------------------------------------------------------------------------------------
// Join requests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_invitation_only_org_reads_like_an_unknown_one_to_a_join_request() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    app.create_org(&admin, "clinic").await;
    let rita = app.signed_in("rita@example.org").await;

    let hidden = app.post("/orgs/clinic/join-requests", &rita, json!({"message": "hi"})).await;
    let unknown = app.post("/orgs/no-such-org/join-requests", &rita, json!({"message": "hi"})).await;
    assert_eq!((hidden.status, unknown.status), (404, 404));
    assert_eq!(hidden.body, unknown.body);
    assert_eq!(app.get("/me/join-requests", &rita).await.ok(), json!([]));
}

#[tokio::test]
async fn a_request_to_join_is_approved_and_the_requester_becomes_a_member() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    set_join_policy(&app, &admin, &org, JoinPolicy::RequestsAllowed).await;
    let rita = app.signed_in("rita@example.org").await;

    let reply = app.post("/orgs/clinic/join-requests", &rita, json!({"message": "I work at the front desk"})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["outcome"], "pending");
    let request = &reply.body["request"];
    assert_eq!(request["state"], "pending");
    assert_eq!(request["message"], "I work at the front desk");
    let id = request["id"].as_str().unwrap();
    assert!(!app.emails_to("admin@example.org").await.is_empty(), "the administrator is told");

    let pending = app.get(&format!("/orgs/{org}/join-requests"), &admin).await.ok();
    assert_eq!(pending.as_array().unwrap().len(), 1);
    assert_eq!(pending[0]["id"], id);
    assert_eq!(pending[0]["email"], "rita@example.org");
    assert_eq!(pending[0]["message"], "I work at the front desk");

    let membership =
        app.post(&format!("/orgs/{org}/join-requests/{id}/approve"), &admin, json!({"role": "user_plus"})).await.ok();
    assert_eq!(membership["role"], "user_plus");
    assert_eq!(membership["origin"], "join_request");

    assert_eq!(my_org_slugs(&app, &rita).await, vec!["clinic"]);
    assert_eq!(app.get(&format!("/orgs/{org}/join-requests"), &admin).await.ok(), json!([]));
    let mine = app.get("/me/join-requests", &rita).await.ok();
    assert_eq!(mine[0]["state"], "approved");
    assert_eq!(mine[0]["role"], "user_plus");

    app.post(&format!("/orgs/{org}/join-requests/{id}/approve"), &admin, json!({}))
        .await
        .expect(409, "already-decided");
    app.post("/orgs/clinic/join-requests", &rita, json!({})).await.expect(409, "already-member");
}

#[tokio::test]
async fn approving_without_a_role_gives_the_default_role() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    set_join_policy(&app, &admin, &org, JoinPolicy::RequestsAllowed).await;
    let rita = app.signed_in("rita@example.org").await;
    let reply = app.post(&format!("/orgs/{org}/join-requests"), &rita, json!({})).await;
    let id = reply.body["request"]["id"].as_str().unwrap().to_owned();

    app.post(&format!("/orgs/{org}/join-requests/{id}/approve"), &admin, json!({"role": "wizard"}))
        .await
        .expect(422, "invalid-input");
    let membership = app.post(&format!("/orgs/{org}/join-requests/{id}/approve"), &admin, json!({})).await.ok();
    assert_eq!(membership["role"], "user");
}

#[tokio::test]
async fn asking_twice_while_pending_is_a_conflict() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    set_join_policy(&app, &admin, &org, JoinPolicy::RequestsAllowed).await;
    let rita = app.signed_in("rita@example.org").await;

    assert_eq!(app.post("/orgs/clinic/join-requests", &rita, json!({})).await.status, 201);
    app.post("/orgs/clinic/join-requests", &rita, json!({})).await.expect(409, "already-requested");
    let too_long = "x".repeat(1001);
    let problem =
        app.post("/orgs/clinic/join-requests", &rita, json!({"message": too_long})).await.expect(422, "invalid-input");
    assert_eq!(problem["errors"][0]["field"], "message");
    assert_eq!(app.get(&format!("/orgs/{org}/join-requests"), &admin).await.ok().as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_trusted_domain_joins_at_once() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    let domains = BTreeSet::from([EmailDomain::parse("clinic.example").unwrap()]);
    set_join_policy(&app, &admin, &org, JoinPolicy::VerifiedDomains { domains, auto_approve: true }).await;
    let dora = app.signed_in("dora@clinic.example").await;
    let rita = app.signed_in("rita@example.org").await;

    let reply = app.post("/orgs/clinic/join-requests", &dora, json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["outcome"], "joined");
    assert_eq!(reply.body["membership"]["role"], "user");
    assert_eq!(my_org_slugs(&app, &dora).await, vec!["clinic"]);

    // Another domain reads like an unknown organisation.
    let refused = app.post("/orgs/clinic/join-requests", &rita, json!({})).await;
    let unknown = app.post("/orgs/nowhere/join-requests", &rita, json!({})).await;
    assert_eq!(refused.status, 404);
    assert_eq!(refused.body, unknown.body);
}

#[tokio::test]
async fn a_requester_withdraws_their_request_and_nobody_else_can() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    set_join_policy(&app, &admin, &org, JoinPolicy::RequestsAllowed).await;
    let rita = app.signed_in("rita@example.org").await;
    let reply = app.post("/orgs/clinic/join-requests", &rita, json!({})).await;
    let id = reply.body["request"]["id"].as_str().unwrap().to_owned();
    let other = app.signed_in("otto@example.org").await;

    app.delete(&format!("/orgs/{org}/join-requests/{id}"), &other).await.expect(404, "not-found");
    app.delete(&format!("/orgs/{org}/join-requests/{id}"), &admin).await.expect(404, "not-found");
    let withdrawn = app.delete(&format!("/orgs/{org}/join-requests/{id}"), &rita).await.ok();
    assert_eq!(withdrawn["state"], "withdrawn");

    assert_eq!(app.get(&format!("/orgs/{org}/join-requests"), &admin).await.ok(), json!([]));
    assert_eq!(app.get("/me/join-requests", &rita).await.ok()[0]["state"], "withdrawn");
    app.delete(&format!("/orgs/{org}/join-requests/{id}"), &rita).await.expect(409, "already-decided");
    app.post(&format!("/orgs/{org}/join-requests/{id}/approve"), &admin, json!({}))
        .await
        .expect(409, "already-decided");
    assert!(my_org_slugs(&app, &rita).await.is_empty());
}

#[tokio::test]
async fn a_rejected_requester_sees_the_reason() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    set_join_policy(&app, &admin, &org, JoinPolicy::RequestsAllowed).await;
    let rita = app.signed_in("rita@example.org").await;
    let reply = app.post("/orgs/clinic/join-requests", &rita, json!({})).await;
    let id = reply.body["request"]["id"].as_str().unwrap().to_owned();

    let problem = app
        .post(&format!("/orgs/{org}/join-requests/{id}/reject"), &admin, json!({"reason": "x".repeat(1001)}))
        .await
        .expect(422, "invalid-input");
    assert_eq!(problem["errors"][0]["field"], "reason");

    let rejected = app
        .post(&format!("/orgs/{org}/join-requests/{id}/reject"), &admin, json!({"reason": "We only take staff"}))
        .await
        .ok();
    assert_eq!(rejected["state"], "rejected");
    let mine = app.get("/me/join-requests", &rita).await.ok();
    assert_eq!(mine[0]["state"], "rejected");
    assert_eq!(mine[0]["reason"], "We only take staff");
    assert!(my_org_slugs(&app, &rita).await.is_empty());
}

#[tokio::test]
async fn only_those_who_manage_members_see_and_decide_join_requests() {
    let app = spawn_app().await;
    let admin = app.signed_in("admin@example.org").await;
    let org = app.create_org(&admin, "clinic").await;
    set_join_policy(&app, &admin, &org, JoinPolicy::RequestsAllowed).await;
    let mia = member(&app, &admin, &org, "mia@example.org", "user").await;
    let outsider = app.signed_in("olga@example.org").await;
    app.create_org(&outsider, "elsewhere").await;
    let rita = app.signed_in("rita@example.org").await;
    let reply = app.post("/orgs/clinic/join-requests", &rita, json!({})).await;
    let id = reply.body["request"]["id"].as_str().unwrap().to_owned();

    app.get(&format!("/orgs/{org}/join-requests"), &mia).await.expect(403, "forbidden");
    app.post(&format!("/orgs/{org}/join-requests/{id}/approve"), &mia, json!({})).await.expect(403, "forbidden");
    app.post(&format!("/orgs/{org}/join-requests/{id}/reject"), &mia, json!({})).await.expect(403, "forbidden");

    app.get(&format!("/orgs/{org}/join-requests"), &outsider).await.expect(404, "not-found");
    app.post(&format!("/orgs/{org}/join-requests/{id}/approve"), &outsider, json!({})).await.expect(404, "not-found");
    app.post(&format!("/orgs/{org}/join-requests/{id}/reject"), &outsider, json!({})).await.expect(404, "not-found");
    // Nor through its own organisation.
    app.post(&format!("/orgs/elsewhere/join-requests/{id}/approve"), &outsider, json!({}))
        .await
        .expect(404, "not-found");

    let pending = app.get(&format!("/orgs/{org}/join-requests"), &admin).await.ok();
    assert_eq!(pending.as_array().unwrap().len(), 1);
    assert!(my_org_slugs(&app, &rita).await.is_empty());
}

/// Sends `emails.len()` invitations at once, each on its own task: the statuses.
async fn invite_at_once(app: &Arc<TestApp>, admin: &str, org: &str, emails: Vec<String>) -> Vec<u16> {
    let mut tasks = tokio::task::JoinSet::new();
    for email in emails {
        let (app, admin, path) = (app.clone(), admin.to_owned(), format!("/orgs/{org}/invitations"));
        tasks.spawn(async move { app.post(&path, &admin, json!({"email": email, "role": "user"})).await });
    }
    let mut statuses = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        assert!(matches!(reply.status, 201 | 409), "{} {}", reply.status, reply.body);
        if reply.status == 409 {
            assert_eq!(reply.body["type"], "urn:guildhall:problem:already-invited", "{}", reply.body);
        }
        statuses.push(reply.status);
    }
    statuses.sort_unstable();
    statuses
}

async fn pending_invitations(app: &TestApp, admin: &str, org: &str) -> Vec<String> {
    let list = app.get(&format!("/orgs/{org}/invitations"), admin).await.ok();
    let items = list["items"].as_array().or_else(|| list.as_array()).cloned().unwrap_or_default();
    items.iter().filter(|i| i["status"] == "pending").map(|i| i["email"].as_str().unwrap().to_owned()).collect()
}

/// Invitations of different addresses do not conflict with each other (they once bumped
/// the organisation's version, and concurrent ones ran out of retries with a 500); one
/// address invited many times at once still gets exactly one invitation.
#[tokio::test]
async fn concurrent_invitations_all_land_and_one_address_is_invited_once() {
    concurrent_invitations(Arc::new(spawn_app().await)).await;
}

/// The same on PostgreSQL, where the check of the address runs under a transaction-scoped
/// lock on the (organisation, address) pair rather than SQLite's write lock.
#[tokio::test]
async fn concurrent_invitations_all_land_and_one_address_is_invited_once_on_postgres() {
    let Some(app) = spawn_postgres_app().await else { return };
    concurrent_invitations(Arc::new(app)).await;
}

async fn concurrent_invitations(app: Arc<TestApp>) {
    let admin = app.signed_in("ann@example.org").await;
    app.create_org(&admin, "busy-clinic").await;
    let many: Vec<String> = (0..16).map(|i| format!("person{i}@example.org")).collect();
    assert_eq!(invite_at_once(&app, &admin, "busy-clinic", many).await, vec![201; 16]);
    let same = vec!["twice@example.org".to_owned(); 8];
    let mut expected = vec![201];
    expected.extend([409; 7]);
    assert_eq!(invite_at_once(&app, &admin, "busy-clinic", same).await, expected);
    let pending = pending_invitations(&app, &admin, "busy-clinic").await;
    assert_eq!(pending.len(), 17, "{pending:?}");
    assert_eq!(pending.iter().filter(|e| *e == "twice@example.org").count(), 1);
}
