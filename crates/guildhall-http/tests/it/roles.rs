//! Roles: list, create, read, edit, delete, and the preview that saves nothing.

use std::sync::Arc;

use guildhall_domain::catalogue::Catalogue;
use guildhall_domain::ids::{OrgId, UserId};
use guildhall_domain::policy::RoleChange;
use guildhall_domain::usecases::{Guildhall, Ports, Settings};
use guildhall_domain::values::RoleKey;
use guildhall_http::system::{Argon2Hasher, OsTokens, UuidV7Ids};
use serde_json::{Value, json};

use crate::support::{TestApp, cheap_argon2, spawn_app};

/// The use cases over the app's own store, for arranging what the API under test does
/// not offer here (invitations, role assignments).
fn domain(app: &TestApp) -> Guildhall {
    let hasher = Arc::new(Argon2Hasher::new(cheap_argon2()).unwrap());
    let ports =
        Ports::from_store(app.store.clone(), hasher, app.clock.clone(), Arc::new(OsTokens), Arc::new(UuidV7Ids));
    Guildhall::new(ports, Arc::new(Catalogue::builtin()), Settings::default())
}

async fn user_id(app: &TestApp, token: &str) -> UserId {
    let me = app.get("/me", token).await.ok();
    UserId::parse(me["user"]["id"].as_str().unwrap()).unwrap()
}

/// An organisation `acme` with its administrator.
struct Org {
    app: TestApp,
    domain: Guildhall,
    admin: String,
    admin_id: UserId,
    org: OrgId,
}

impl Org {
    async fn new() -> Self {
        let app = spawn_app().await;
        let admin = app.signed_in("ada@example.org").await;
        let org = OrgId::parse(&app.create_org(&admin, "acme").await).unwrap();
        let admin_id = user_id(&app, &admin).await;
        let domain = domain(&app);
        Self { app, domain, admin, admin_id, org }
    }

    /// Signs up `email` and makes them a member with `role`; their token and id.
    async fn member(&self, email: &str, role: &str) -> (String, UserId) {
        let token = self.app.signed_in(email).await;
        let id = user_id(&self.app, &token).await;
        let role = RoleKey::parse(role).unwrap();
        self.domain.invitations().invite(self.admin_id, self.org, email, &role).await.unwrap();
        let link = self.app.last_token_to(email).await;
        self.domain.invitations().accept(id, &link).await.unwrap();
        (token, id)
    }

    async fn create_role(&self, key: &str, permissions: &[&str]) -> Value {
        let body = json!({"key": key, "name": format!("Role {key}"), "permissions": permissions});
        let reply = self.app.post("/orgs/acme/roles", &self.admin, body).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body
    }

    async fn roles(&self) -> Value {
        self.app.get("/orgs/acme/roles", &self.admin).await.ok()
    }

    async fn role_of(&self, token: &str) -> String {
        let me = self.app.get("/me", token).await.ok();
        me["memberships"][0]["role"].as_str().unwrap().to_owned()
    }
}

fn keys(roles: &Value) -> Vec<&str> {
    roles.as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap()).collect()
}

fn fields(problem: &Value) -> Vec<&str> {
    problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect()
}

const FRONT_DESK: &[&str] = &["patients.assign", "patients.message", "reports.view"];

#[tokio::test]
async fn any_member_lists_the_roles_built_in_first_with_their_permissions() {
    let org = Org::new().await;
    org.create_role("front_desk", FRONT_DESK).await;
    let (member, _) = org.member("bob@example.org", "user").await;

    let roles = org.app.get("/orgs/acme/roles", &member).await.ok();
    assert_eq!(keys(&roles), ["user", "user_plus", "manager", "administrator", "front_desk"]);
    let admin = &roles[3];
    assert_eq!((admin["built_in"].clone(), admin["grants_all"].clone()), (json!(true), json!(true)));
    assert!(admin["permissions"].as_array().unwrap().contains(&json!("roles.manage")));
    assert_eq!(
        roles[4],
        json!({"key": "front_desk", "name": "Role front_desk", "built_in": false, "grants_all": false, "permissions": FRONT_DESK})
    );
    // By id too, and one at a time.
    let by_id = org.app.get(&format!("/orgs/{}/roles/front_desk", org.org), &member).await.ok();
    assert_eq!(by_id, roles[4]);
    org.app.get("/orgs/acme/roles/nobody_has_this", &member).await.expect(404, "not-found");
    org.app.get("/orgs/acme/roles/NOT%20A%20KEY", &member).await.expect(404, "not-found");
}

#[tokio::test]
async fn an_administrator_creates_a_custom_role_and_reads_it_back() {
    let org = Org::new().await;
    let created = org.create_role("front_desk", FRONT_DESK).await;
    assert_eq!(created["key"], "front_desk");
    assert_eq!(created["built_in"], false);
    assert_eq!(created["permissions"], json!(FRONT_DESK));

    let read = org.app.get("/orgs/acme/roles/front_desk", &org.admin).await.ok();
    assert_eq!(read, created);
    assert!(keys(&org.roles().await).contains(&"front_desk"));
}

#[tokio::test]
async fn creating_a_role_reports_every_invalid_field_and_taken_keys() {
    let org = Org::new().await;
    let problem = org
        .app
        .post("/orgs/acme/roles", &org.admin, json!({"key": "X", "name": " ", "permissions": ["Not A Permission"]}))
        .await
        .expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["key", "name", "permissions"]);

    let problem = org
        .app
        .post("/orgs/acme/roles", &org.admin, json!({"key": "desk", "name": "Desk", "permissions": ["no.such"]}))
        .await
        .expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["permissions"]);

    org.create_role("front_desk", FRONT_DESK).await;
    for key in ["front_desk", "administrator"] {
        org.app
            .post("/orgs/acme/roles", &org.admin, json!({"key": key, "name": "Again", "permissions": []}))
            .await
            .expect(409, "role-exists");
    }
    assert_eq!(keys(&org.roles().await), ["user", "user_plus", "manager", "administrator", "front_desk"]);
}

#[tokio::test]
async fn a_plain_member_cannot_create_edit_delete_or_preview_roles() {
    let org = Org::new().await;
    org.create_role("front_desk", FRONT_DESK).await;
    let (member, _) = org.member("bob@example.org", "user").await;
    let before = org.roles().await;

    let app = &org.app;
    let new = json!({"key": "mine", "name": "Mine", "permissions": []});
    app.post("/orgs/acme/roles", &member, new).await.expect(403, "forbidden");
    app.patch("/orgs/acme/roles/front_desk", &member, json!({"name": "Renamed"})).await.expect(403, "forbidden");
    app.delete("/orgs/acme/roles/front_desk?replacement=user", &member).await.expect(403, "forbidden");
    let edit = json!({"change": "edit", "role": "front_desk", "permissions": []});
    app.post("/orgs/acme/roles/preview", &member, edit).await.expect(403, "forbidden");

    assert_eq!(org.roles().await, before);
}

#[tokio::test]
async fn a_member_of_another_organisation_finds_nothing_and_changes_nothing() {
    let org = Org::new().await;
    org.create_role("front_desk", FRONT_DESK).await;
    let outsider = org.app.signed_in("eve@example.org").await;
    org.app.create_org(&outsider, "evil").await;
    let before = org.roles().await;

    let app = &org.app;
    for path in ["/orgs/acme/roles", "/orgs/acme/roles/front_desk", &format!("/orgs/{}/roles", org.org)] {
        app.get(path, &outsider).await.expect(404, "not-found");
    }
    let new = json!({"key": "mine", "name": "Mine", "permissions": []});
    app.post("/orgs/acme/roles", &outsider, new).await.expect(404, "not-found");
    app.patch("/orgs/acme/roles/front_desk", &outsider, json!({"name": "Mine"})).await.expect(404, "not-found");
    app.delete("/orgs/acme/roles/front_desk", &outsider).await.expect(404, "not-found");
    let edit = json!({"change": "edit", "role": "front_desk", "permissions": []});
    app.post("/orgs/acme/roles/preview", &outsider, edit).await.expect(404, "not-found");

    assert_eq!(org.roles().await, before);
}

#[tokio::test]
async fn built_in_roles_cannot_be_edited_or_deleted() {
    let org = Org::new().await;
    let app = &org.app;
    let no_admin_rights = json!({"permissions": ["reports.view"]});
    app.patch("/orgs/acme/roles/administrator", &org.admin, no_admin_rights).await.expect(409, "built-in-role");
    app.patch("/orgs/acme/roles/user", &org.admin, json!({"name": "Basic"})).await.expect(409, "built-in-role");
    app.delete("/orgs/acme/roles/manager?replacement=user", &org.admin).await.expect(409, "built-in-role");
    let edit = json!({"change": "edit", "role": "administrator", "permissions": ["reports.view"]});
    app.post("/orgs/acme/roles/preview", &org.admin, edit).await.expect(409, "built-in-role");
    assert_eq!(keys(&org.roles().await), ["user", "user_plus", "manager", "administrator"]);
}

#[tokio::test]
async fn editing_renames_or_replaces_permissions_and_leaves_the_rest() {
    let org = Org::new().await;
    org.create_role("front_desk", FRONT_DESK).await;
    let app = &org.app;

    let renamed = app.patch("/orgs/acme/roles/front_desk", &org.admin, json!({"name": "Front desk"})).await.ok();
    assert_eq!((renamed["name"].clone(), renamed["permissions"].clone()), (json!("Front desk"), json!(FRONT_DESK)));

    let narrowed =
        app.patch("/orgs/acme/roles/front_desk", &org.admin, json!({"permissions": ["reports.view"]})).await.ok();
    assert_eq!(
        (narrowed["name"].clone(), narrowed["permissions"].clone()),
        (json!("Front desk"), json!(["reports.view"]))
    );
    assert_eq!(app.get("/orgs/acme/roles/front_desk", &org.admin).await.ok(), narrowed);

    let problem = app
        .patch("/orgs/acme/roles/front_desk", &org.admin, json!({"name": "", "permissions": ["Bad!"]}))
        .await
        .expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["name", "permissions"]);
    app.patch("/orgs/acme/roles/front_desk", &org.admin, json!({})).await.expect(422, "invalid-input");
    app.patch("/orgs/acme/roles/nobody", &org.admin, json!({"name": "X"})).await.expect(404, "not-found");
    assert_eq!(app.get("/orgs/acme/roles/front_desk", &org.admin).await.ok(), narrowed);
}

#[tokio::test]
async fn deleting_a_role_moves_its_members_to_the_replacement() {
    let org = Org::new().await;
    org.create_role("front_desk", FRONT_DESK).await;
    let (member, member_id) = org.member("bob@example.org", "front_desk").await;
    let app = &org.app;

    let problem = app.delete("/orgs/acme/roles/front_desk", &org.admin).await.expect(409, "role-in-use");
    assert!(problem["detail"].as_str().unwrap().contains("replacement"), "{problem}");
    let unknown = app.delete("/orgs/acme/roles/front_desk?replacement=nobody", &org.admin).await;
    assert_eq!(fields(&unknown.expect(422, "invalid-input")), ["replacement"]);
    let same = app.delete("/orgs/acme/roles/front_desk?replacement=front_desk", &org.admin).await;
    assert_eq!(fields(&same.expect(422, "invalid-input")), ["replacement"]);
    let malformed = app.delete("/orgs/acme/roles/front_desk?replacement=No%20Way", &org.admin).await;
    assert_eq!(fields(&malformed.expect(422, "invalid-input")), ["replacement"]);
    assert_eq!(org.role_of(&member).await, "front_desk");

    let done = app.delete("/orgs/acme/roles/front_desk?replacement=user_plus", &org.admin).await.ok();
    assert_eq!(done["allowed"], true);
    assert_eq!(done["violations"], json!([]));
    assert_eq!(
        done["impacts"],
        json!([{
            "user_id": member_id.to_string(),
            "name": "Test Bob",
            "email": "bob@example.org",
            "role_before": "front_desk",
            "role_after": "user_plus",
            "gained": ["campaigns.access"],
            "lost": [],
        }])
    );
    assert_eq!(keys(&done["roles_after"]), ["user", "user_plus", "manager", "administrator"]);

    app.get("/orgs/acme/roles/front_desk", &org.admin).await.expect(404, "not-found");
    assert_eq!(org.role_of(&member).await, "user_plus");
    // A role nobody holds needs no replacement.
    org.create_role("spare", &["reports.view"]).await;
    let done = app.delete("/orgs/acme/roles/spare", &org.admin).await.ok();
    assert_eq!(done["impacts"], json!([]));
    assert_eq!(keys(&org.roles().await), ["user", "user_plus", "manager", "administrator"]);
}

#[tokio::test]
async fn the_preview_shows_gains_and_losses_per_member_and_saves_nothing() {
    let org = Org::new().await;
    org.create_role("front_desk", FRONT_DESK).await;
    let (member, member_id) = org.member("bob@example.org", "front_desk").await;
    let before = org.roles().await;

    let change = json!({"change": "edit", "role": "front_desk", "permissions": ["campaigns.access", "reports.view"]});
    let preview = org.app.post("/orgs/acme/roles/preview", &org.admin, change).await.ok();
    assert_eq!(preview["allowed"], true);
    assert_eq!(preview["violations"], json!([]));
    assert_eq!(
        preview["impacts"],
        json!([{
            "user_id": member_id.to_string(),
            "name": "Test Bob",
            "email": "bob@example.org",
            "role_before": "front_desk",
            "role_after": "front_desk",
            "gained": ["campaigns.access"],
            "lost": ["patients.assign", "patients.message"],
        }])
    );
    let after = preview["roles_after"].as_array().unwrap().iter().find(|r| r["key"] == "front_desk").unwrap();
    assert_eq!(after["permissions"], json!(["campaigns.access", "reports.view"]));

    let create = json!({"change": "create", "key": "auditor", "name": "Auditor", "permissions": ["audit.view"]});
    let preview = org.app.post("/orgs/acme/roles/preview", &org.admin, create).await.ok();
    assert_eq!((preview["allowed"].clone(), preview["impacts"].clone()), (json!(true), json!([])));
    assert!(keys(&preview["roles_after"]).contains(&"auditor"));

    let delete = json!({"change": "delete", "role": "front_desk", "replacement": "user"});
    let preview = org.app.post("/orgs/acme/roles/preview", &org.admin, delete).await.ok();
    assert_eq!(preview["impacts"][0]["role_after"], "user");
    assert!(!keys(&preview["roles_after"]).contains(&"front_desk"));

    let assign = json!({"change": "assign", "user_id": member_id.to_string(), "role": "manager"});
    let preview = org.app.post("/orgs/acme/roles/preview", &org.admin, assign).await.ok();
    assert_eq!(preview["impacts"][0]["gained"], json!(["campaigns.access", "financials.access", "reports.download"]));

    assert_eq!(org.roles().await, before);
    assert_eq!(org.role_of(&member).await, "front_desk");
}

#[tokio::test]
async fn the_preview_reports_every_invalid_field() {
    let org = Org::new().await;
    let app = &org.app;
    let create = json!({"change": "create", "key": "X", "name": "", "permissions": ["??"]});
    let problem = app.post("/orgs/acme/roles/preview", &org.admin, create).await.expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["key", "name", "permissions"]);

    let assign = json!({"change": "assign", "user_id": "someone", "role": "Nope"});
    let problem = app.post("/orgs/acme/roles/preview", &org.admin, assign).await.expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["user_id", "role"]);

    let stranger = json!({"change": "assign", "user_id": uuid::Uuid::now_v7().to_string(), "role": "user"});
    let problem = app.post("/orgs/acme/roles/preview", &org.admin, stranger).await.expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["user_id"]);

    let unknown_kind = json!({"change": "rename", "role": "user"});
    app.post("/orgs/acme/roles/preview", &org.admin, unknown_kind).await.expect(400, "malformed-request");

    let edit = json!({"change": "edit", "role": "nobody", "permissions": []});
    let problem = app.post("/orgs/acme/roles/preview", &org.admin, edit).await.expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["role"]);

    let create = json!({"change": "create", "key": "desk", "name": "Desk", "permissions": ["no.such"]});
    let problem = app.post("/orgs/acme/roles/preview", &org.admin, create).await.expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["permissions"]);
}

#[tokio::test]
async fn the_preview_reports_that_the_last_administrator_would_lose_their_rights() {
    let org = Org::new().await;
    let demote = json!({"change": "assign", "user_id": org.admin_id.to_string(), "role": "user"});
    let preview = org.app.post("/orgs/acme/roles/preview", &org.admin, demote).await.ok();
    assert_eq!(preview["allowed"], false);
    assert_eq!(preview["violations"].as_array().unwrap().len(), 1);
    assert_eq!(preview["violations"][0]["kind"], "no_administrator_left");
    assert!(preview["violations"][0]["message"].as_str().unwrap().contains("no administrator left"));
    let lost = preview["impacts"][0]["lost"].as_array().unwrap();
    assert!(lost.contains(&json!("members.manage")) && lost.contains(&json!("roles.manage")));
    // Nothing was saved: the administrator still administers.
    assert_eq!(org.role_of(&org.admin).await, "administrator");
    org.create_role("still_allowed", &["reports.view"]).await;
}

#[tokio::test]
async fn changes_that_would_leave_no_administrator_are_refused_and_previewed() {
    let org = Org::new().await;
    let steward_permissions = ["members.manage", "reports.view", "roles.manage"];
    org.create_role("steward", &steward_permissions).await;
    org.create_role("viewer", &["reports.view"]).await;
    let (steward, steward_id) = org.member("sam@example.org", "steward").await;
    // The founder steps down: the steward is the last administrator.
    let founder = RoleChange::AssignRole { user: org.admin_id, role: RoleKey::parse("user").unwrap() };
    org.domain.roles().apply(org.admin_id, org.org, &founder).await.unwrap();
    let app = &org.app;

    let narrowed = json!({"permissions": ["members.manage", "reports.view"]});
    let problem = app.patch("/orgs/acme/roles/steward", &steward, narrowed).await.expect(409, "last-administrator");
    assert!(problem["detail"].as_str().unwrap().contains("no administrator left"), "{problem}");
    app.delete("/orgs/acme/roles/steward?replacement=viewer", &steward).await.expect(409, "last-administrator");
    // When the caller also oversteps their own permissions, that is said first (and the
    // detail lists both).
    let both = app.delete("/orgs/acme/roles/steward?replacement=user", &steward).await.expect(403, "escalation");
    assert!(both["detail"].as_str().unwrap().contains("no administrator left"), "{both}");

    let change = json!({"change": "edit", "role": "steward", "permissions": ["members.manage", "reports.view"]});
    let preview = app.post("/orgs/acme/roles/preview", &steward, change).await.ok();
    assert_eq!(preview["allowed"], false);
    assert_eq!(preview["violations"][0]["kind"], "no_administrator_left");
    assert_eq!(preview["impacts"][0]["user_id"], steward_id.to_string());
    assert_eq!(preview["impacts"][0]["lost"], json!(["roles.manage"]));

    let steward_role = app.get("/orgs/acme/roles/steward", &steward).await.ok();
    assert_eq!(steward_role["permissions"], json!(steward_permissions));
    assert_eq!(org.role_of(&steward).await, "steward");
}

#[tokio::test]
async fn nobody_grants_permissions_they_do_not_hold_or_changes_roles_that_outrank_them() {
    let org = Org::new().await;
    org.create_role("role_keeper", &["reports.view", "roles.manage"]).await;
    org.create_role("finance", &["financials.access", "reports.view"]).await;
    let (keeper, _) = org.member("kim@example.org", "role_keeper").await;
    let before = org.roles().await;
    let app = &org.app;

    let wider = json!({"key": "money", "name": "Money", "permissions": ["financials.access"]});
    let problem = app.post("/orgs/acme/roles", &keeper, wider).await.expect(403, "escalation");
    assert!(problem["detail"].as_str().unwrap().contains("financials.access"), "{problem}");
    app.patch("/orgs/acme/roles/finance", &keeper, json!({"name": "Finance"})).await.expect(403, "outranked");
    app.delete("/orgs/acme/roles/finance", &keeper).await.expect(403, "outranked");

    let preview = json!({"change": "create", "key": "money", "name": "Money", "permissions": ["financials.access"]});
    let preview = app.post("/orgs/acme/roles/preview", &keeper, preview).await.ok();
    assert_eq!(preview["allowed"], false);
    assert_eq!(
        preview["violations"],
        json!([{
            "kind": "escalation",
            "message": "you cannot grant permissions you do not hold yourself: financials.access",
            "missing_permissions": ["financials.access"],
        }])
    );
    // Within their own permissions, they may.
    let within = json!({"key": "viewer", "name": "Viewer", "permissions": ["reports.view"]});
    assert_eq!(app.post("/orgs/acme/roles", &keeper, within).await.status, 201);
    let mut others = org.roles().await.as_array().unwrap().clone();
    others.retain(|role| role["key"] != "viewer");
    assert_eq!(Value::Array(others), before);

    // They may not look at members, so the preview names nobody.
    let (_, viewer_id) = org.member("vic@example.org", "viewer").await;
    let narrowed = json!({"change": "edit", "role": "viewer", "permissions": []});
    let preview = app.post("/orgs/acme/roles/preview", &keeper, narrowed).await.ok();
    assert_eq!(preview["impacts"][0]["user_id"], viewer_id.to_string());
    assert_eq!(
        (preview["impacts"][0]["name"].clone(), preview["impacts"][0]["email"].clone()),
        (Value::Null, Value::Null)
    );
}

#[tokio::test]
async fn a_role_keyed_preview_is_still_reachable() {
    let org = Org::new().await;
    org.create_role("preview", &["reports.view"]).await;
    let app = &org.app;
    assert_eq!(app.get("/orgs/acme/roles/preview", &org.admin).await.ok()["key"], "preview");
    let renamed = app.patch("/orgs/acme/roles/preview", &org.admin, json!({"name": "Preview"})).await.ok();
    assert_eq!(renamed["name"], "Preview");
    app.delete("/orgs/acme/roles/preview", &org.admin).await.ok();
    assert!(!keys(&org.roles().await).contains(&"preview"));
}

#[tokio::test]
async fn the_document_describes_the_roles_endpoints_and_the_kinds_of_change() {
    let app = spawn_app().await;
    let spec: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let operations = |path: &str| -> Vec<(String, String)> {
        let mut ops: Vec<(String, String)> = spec["paths"][path]
            .as_object()
            .unwrap()
            .iter()
            .map(|(method, op)| (method.clone(), op["operationId"].as_str().unwrap().to_owned()))
            .collect();
        ops.sort();
        ops
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter().map(|(m, o)| ((*m).to_owned(), (*o).to_owned())).collect()
    };
    assert_eq!(operations("/orgs/{org}/roles"), pairs(&[("get", "list_roles"), ("post", "create_role")]));
    assert_eq!(operations("/orgs/{org}/roles/preview"), pairs(&[("post", "preview_role_change")]));
    assert_eq!(
        operations("/orgs/{org}/roles/{role}"),
        pairs(&[("delete", "delete_role"), ("get", "get_role"), ("patch", "update_role")])
    );
    let change = &spec["components"]["schemas"]["ProposedRoleChange"]["discriminator"];
    assert_eq!(change["propertyName"], "change");
    let mut kinds: Vec<&String> = change["mapping"].as_object().unwrap().keys().collect();
    kinds.sort();
    assert_eq!(kinds, ["assign", "create", "delete", "edit"]);
}
