//! The IDOR matrix: every org-scoped operation in the published document, called
//! unauthenticated, by an outsider, by an administrator of another organisation with
//! this organisation's ids, and by a plain member where an administrator is needed, is
//! refused, and nothing in the organisation changes.
//!
//! The operations come from `/openapi.json`, so a new endpoint joins the matrix by being
//! documented; one without a request body here fails the test until someone adds one.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app};

/// What the plain member may do, by operation id, with the status they get. Anything
/// else must be refused with `403 forbidden`.
const MEMBER_MAY: &[(&str, u16)] = &[
    ("get_org", 200),
    ("list_org_capabilities", 200),
    ("list_org_facilities", 200),
    ("list_roles", 200),
    ("get_role", 200),
    // Their own member record is theirs to read, and to explain.
    ("get_member", 200),
    ("explain_member_permission", 200),
    // Withdrawing is for the requester only; another's request reads as absent.
    ("withdraw_join_request", 404),
    // A member may already be one: asking to join again is a conflict, not a refusal.
    ("request_to_join", 409),
];

/// Run last for the member, since it succeeds and ends their membership.
const MEMBER_LAST: &str = "leave_org";

struct World {
    app: TestApp,
    admin: String,
    member: String,
    outsider: String,
    alpha: String,
    beta: String,
    member_id: String,
    outsider_id: String,
    invitation: String,
    join_request: String,
    facility: String,
}

async fn world() -> World {
    let app = spawn_app().await;
    let admin = app.signed_in("alice@example.org").await;
    let alpha = app.create_org(&admin, "alpha").await;
    app.patch("/orgs/alpha", &admin, json!({"settings": {"join_policy": {"mode": "requests_allowed"}}})).await.ok();

    let member = app.signed_in("bob@example.org").await;
    app.post("/orgs/alpha/invitations", &admin, json!({"email": "bob@example.org", "role": "user"})).await.ok();
    let token = app.last_token_to("bob@example.org").await;
    let membership = app.post("/invitations/accept", &member, json!({"token": token})).await.ok();
    let member_id = app.get("/me", &member).await.ok()["user"]["id"].as_str().unwrap().to_owned();
    assert!(membership.to_string().contains(&member_id));

    let carol = app.signed_in("carol@example.org").await;
    let asked = app.post("/orgs/alpha/join-requests", &carol, json!({"message": "hello"})).await.ok();
    let join_request = asked["request"]["id"].as_str().unwrap().to_owned();

    let invited = app.post("/orgs/alpha/invitations", &admin, json!({"email": "dave@example.org", "role": "user"}));
    let invitation = invited.await.ok()["id"].as_str().unwrap().to_owned();
    let facility = app.post("/orgs/alpha/facilities", &admin, json!({"name": "North"})).await.ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post("/orgs/alpha/roles", &admin, json!({"key": "helper", "name": "Helper", "permissions": []})).await.ok();

    let outsider = app.signed_in("eve@example.org").await;
    let beta = app.create_org(&outsider, "beta").await;
    let outsider_id = app.get("/me", &outsider).await.ok()["user"]["id"].as_str().unwrap().to_owned();
    World { app, admin, member, outsider, alpha, beta, member_id, outsider_id, invitation, join_request, facility }
}

/// A well-formed request body for each operation that takes one.
fn body(operation: &str, w: &World) -> Option<Value> {
    Some(match operation {
        "update_org" => json!({"name": "Renamed"}),
        "set_org_capabilities" => json!({"capabilities": {}}),
        "record_org_run" => json!({
            "capability": "automated_recall", "started_at": "2026-11-23T00:00:00Z",
            "finished_at": "2026-11-23T00:01:00Z", "outcome": "succeeded"
        }),
        "create_org_facility" | "rename_org_facility" => json!({"name": "South"}),
        "create_member" => {
            json!({"first_name": "Frank", "last_name": "Ford", "email": "frank@example.org", "role": "user"})
        }
        "link_member" => json!({"source_org": w.beta, "user_id": w.outsider_id, "role": "user"}),
        "update_member" => json!({"position": "Nurse"}),
        "create_invitation" => json!({"email": "gina@example.org", "role": "user"}),
        "request_to_join" => json!({"message": "let me in"}),
        "approve_join_request" | "reject_join_request" => json!({}),
        "create_role" => json!({"key": "extra", "name": "Extra", "permissions": []}),
        "preview_role_change" => json!({"change": "delete", "role": "helper", "replacement": "user"}),
        "update_role" => json!({"name": "Helper Two"}),
        _ => return None,
    })
}

struct Operation {
    id: String,
    method: Method,
    template: String,
    has_body: bool,
}

fn org_scoped_operations(document: &Value) -> Vec<Operation> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        if !path.starts_with("/orgs/{org}") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            operations.push(Operation {
                id: operation["operationId"].as_str().unwrap().to_owned(),
                method: Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                template: path.clone(),
                has_body: operation.get("requestBody").is_some(),
            });
        }
    }
    operations
}

/// The operation's path with `org` and this world's ids (always alpha's sub-resources).
fn path(op: &Operation, org: &str, w: &World) -> String {
    let id = if op.template.contains("/facilities/") {
        &w.facility
    } else if op.template.contains("/invitations/") {
        &w.invitation
    } else {
        &w.join_request
    };
    let mut path = op.template.replace("{org}", org).replace("{user}", &w.member_id).replace("{role}", "helper");
    path = path.replace("{id}", id);
    match op.id.as_str() {
        "explain_member_permission" => path + "?permission=members.manage",
        "delete_role" => path + "?replacement=user",
        _ => path,
    }
}

async fn call(w: &World, op: &Operation, org: &str, token: Option<&str>) -> crate::support::Reply {
    let body = if op.has_body { body(&op.id, w) } else { None };
    assert!(!op.has_body || body.is_some(), "the IDOR matrix has no request body for `{}`: add one", op.id);
    w.app.call(op.method.clone(), &path(op, org, w), token, body).await
}

/// Everything an administrator of alpha can see, to compare before and after.
async fn snapshot(w: &World) -> Value {
    let mut state = serde_json::Map::new();
    for path in [
        "/orgs/alpha",
        "/orgs/alpha/members",
        "/orgs/alpha/invitations",
        "/orgs/alpha/join-requests",
        "/orgs/alpha/roles",
        "/orgs/alpha/facilities",
        "/orgs/alpha/capabilities",
        "/orgs/alpha/runs",
        "/orgs/alpha/audit?limit=200",
    ] {
        state.insert(path.to_owned(), w.app.get(path, &w.admin).await.ok());
    }
    Value::Object(state)
}

#[tokio::test]
async fn every_org_scoped_operation_refuses_outsiders_strangers_and_members_without_the_permission() {
    let w = world().await;
    let document: Value = w.app.client.get(w.app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let operations = org_scoped_operations(&document);
    assert!(operations.len() >= 35, "only {} org-scoped operations found", operations.len());
    let before = snapshot(&w).await;
    let mut failures = Vec::new();
    let check = |failures: &mut Vec<String>,
                 who: &str,
                 op: &Operation,
                 reply: &crate::support::Reply,
                 expected: (u16, &str)| {
        if (reply.status, reply.problem()) != expected {
            failures.push(format!("{who} {} {}: got {} {}", op.method, op.template, reply.status, reply.body));
        }
    };

    for op in &operations {
        let reply = call(&w, op, &w.alpha, None).await;
        check(&mut failures, "anonymous", op, &reply, (401, "unauthenticated"));

        // An outsider may ask to join; everything else in alpha does not exist for them.
        if op.id != "request_to_join" {
            let reply = call(&w, op, "alpha", Some(&w.outsider)).await;
            check(&mut failures, "outsider", op, &reply, (404, "not-found"));
        }

        // The outsider administers beta: alpha's ids there are unknown.
        let names_a_resource = ["{user}", "{id}", "{role}"].iter().any(|p| op.template.contains(p));
        if names_a_resource {
            let reply = call(&w, op, &w.beta, Some(&w.outsider)).await;
            check(&mut failures, "beta's administrator with alpha's ids", op, &reply, (404, "not-found"));
        }

        if op.id != MEMBER_LAST {
            let reply = call(&w, op, &w.alpha, Some(&w.member)).await;
            match MEMBER_MAY.iter().find(|(id, _)| *id == op.id) {
                Some((_, status)) if reply.status == *status => {}
                Some((_, status)) => {
                    failures
                        .push(format!("member {} {}: expected {status}, got {}", op.method, op.template, reply.status));
                }
                None => check(&mut failures, "member", op, &reply, (403, "forbidden")),
            }
        }
    }

    let after = snapshot(&w).await;
    assert!(failures.is_empty(), "{} refusals missing:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(before, after, "a refused request changed alpha");

    // The one thing a plain member may change: leaving.
    let leave = operations.iter().find(|op| op.id == MEMBER_LAST).unwrap();
    call(&w, leave, &w.alpha, Some(&w.member)).await.ok();
    w.app.get("/orgs/alpha", &w.member).await.expect(404, "not-found");
}
