//! The analytics product (the trackstat seed): an administrator adds a user who gets a
//! sign-in link and a temporary password and must choose a password that meets every
//! rule; the four built-in roles grant exactly the seed's matrix; one account is linked
//! into a second organisation, and each organisation's audit log records their actions
//! under their name.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{Backend, PUBLIC_URL, TestApp, spawn_app};

const EAST: &str = "trackstat-east";
const WEST: &str = "trackstat-west";
const NEW_PASSWORD: &str = "Quarterly-figures-2026!";

#[tokio::test]
async fn an_added_user_must_replace_the_emailed_temporary_password_roles_match_the_seed_and_a_linked_account_is_audited_in_each_org_on_sqlite()
 {
    run(&spawn_app(Backend::Sqlite).await).await;
}

#[tokio::test]
async fn an_added_user_must_replace_the_emailed_temporary_password_roles_match_the_seed_and_a_linked_account_is_audited_in_each_org_on_postgres()
 {
    if !crate::support::postgres_available() {
        return;
    }
    run(&spawn_app(Backend::Postgres).await).await;
}

async fn run(app: &TestApp) {
    let admin = app.signed_up("ada@trackstat.test", "Ada", "Admin").await;
    let admin_id = user_id(app, &admin).await;
    let east = create_org(app, &admin, EAST, "TrackStat East").await;
    let west = create_org(app, &admin, WEST, "TrackStat West").await;

    // The administrator adds a user: first and last name, email, phone, role, position.
    let reply = app
        .post(
            &format!("/orgs/{east}/members"),
            &admin,
            json!({
                "first_name": "Morgan", "last_name": "Lee", "email": "morgan@trackstat.test",
                "phone": "+14155550123", "role": "administrator", "position": "Operations director",
            }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let member = reply.body;
    let morgan_id = member["user_id"].as_str().unwrap().to_owned();
    assert_eq!((member["first_name"].as_str(), member["last_name"].as_str()), (Some("Morgan"), Some("Lee")));
    assert_eq!(member["email"], "morgan@trackstat.test");
    assert_eq!(member["phone"], "+14155550123");
    assert_eq!(member["role"], "administrator");
    assert_eq!(member["position"], "Operations director");
    assert_eq!(member["origin"], "created_by_administrator");
    assert_eq!(member["password_change_required"], true);
    assert!(member["temporary_password_expires_at"].is_string(), "{member}");
    assert!(!member.to_string().contains("password\":\""), "the temporary password is only emailed: {member}");

    // The email: a sign-in link and a temporary password.
    let email = app.email("morgan@trackstat.test", "account for").await;
    assert_eq!(email.subject, "Your new Guildhall account for TrackStat East");
    assert!(email.text.contains("Ada Admin"), "says who created it: {}", email.text);
    assert!(email.text.contains(&format!("{PUBLIC_URL}/login?email=morgan%40trackstat.test")), "{}", email.text);
    let temporary = email.temporary_password();
    assert!(temporary.len() >= 10 && !temporary.contains(' '), "{temporary:?}");

    // Signing in with it gives a session that can only change the password.
    let session = app.login("morgan@trackstat.test", &temporary).await.ok();
    assert_eq!(session["password_change_required"], true);
    assert_eq!(session["user_id"], morgan_id.as_str());
    let morgan = session["token"].as_str().unwrap().to_owned();
    for path in [
        format!("/orgs/{east}"),
        format!("/orgs/{east}/roles"),
        format!("/orgs/{east}/members"),
        format!("/orgs/{east}/members/{morgan_id}"),
        format!("/orgs/{east}/audit"),
        "/me/sessions".to_owned(),
    ] {
        app.get(&path, &morgan).await.expect(403, "password-change-required");
    }
    app.post(&format!("/orgs/{east}/facilities"), &morgan, json!({"name": "Sneaky"}))
        .await
        .expect(403, "password-change-required");
    app.post("/orgs", &morgan, json!({"slug": "morgans-own", "name": "Mine"}))
        .await
        .expect(403, "password-change-required");
    // Who they are is shown (so a client can say why), but no organisation is reachable.
    let me = app.get("/me", &morgan).await.ok();
    assert_eq!(me["user"]["password_change_required"], true);
    assert_eq!(me["memberships"], json!([]));

    // Weak passwords are refused, naming every rule they break.
    assert_eq!(
        refused_rules(app, &morgan, "qzvwk").await,
        [
            "must be at least 10 characters long (it has 5)",
            "must contain a digit",
            "must contain a symbol such as !, # or %",
            "must contain an upper-case letter",
        ]
    );
    assert_eq!(
        refused_rules(app, &morgan, "ALLCAPSPASSWORD").await,
        ["must contain a digit", "must contain a lower-case letter", "must contain a symbol such as !, # or %"]
    );
    assert_eq!(refused_rules(app, &morgan, "Nearly-there-but-no-number").await, ["must contain a digit"]);
    app.get(&format!("/orgs/{east}"), &morgan).await.expect(403, "password-change-required");

    // A good one works; then the same session can do everything its role allows.
    app.post("/auth/password", &morgan, json!({"new_password": NEW_PASSWORD})).await.ok();
    app.get(&format!("/orgs/{east}"), &morgan).await.ok();
    let own = app.get(&format!("/orgs/{east}/members/{morgan_id}"), &morgan).await.ok();
    assert_eq!(own["password_change_required"], false);
    assert_eq!(own["temporary_password_expires_at"], Value::Null);
    app.login("morgan@trackstat.test", &temporary).await.expect(401, "invalid-credentials");
    app.login("morgan@trackstat.test", NEW_PASSWORD).await.ok();

    // The four built-in roles grant exactly the seed's matrix.
    let roles = app.get(&format!("/orgs/{east}/roles"), &morgan).await.ok();
    let by_key: BTreeMap<&str, &Value> =
        roles.as_array().unwrap().iter().map(|r| (r["key"].as_str().unwrap(), r)).collect();
    let permissions = |key: &str| -> Vec<String> { strings(&by_key[key]["permissions"]) };
    // User: all reports; no campaigns, financials, downloads or user management.
    assert_eq!(by_key["user"]["name"], "User");
    assert_eq!(permissions("user"), ["patients.assign", "patients.message", "reports.view"]);
    // User plus: reports and campaigns; no financials, downloads or user management.
    assert_eq!(by_key["user_plus"]["name"], "User plus");
    assert_eq!(permissions("user_plus"), ["campaigns.access", "patients.assign", "patients.message", "reports.view"]);
    // Manager: reports, financials, campaigns and downloads; no user management.
    assert_eq!(by_key["manager"]["name"], "Manager");
    assert_eq!(
        permissions("manager"),
        [
            "campaigns.access",
            "financials.access",
            "patients.assign",
            "patients.message",
            "reports.download",
            "reports.view"
        ]
    );
    // Administrator: everything, adding and deleting users included.
    assert_eq!(by_key["administrator"]["name"], "Administrator");
    assert_eq!(by_key["administrator"]["grants_all"], true);
    assert_eq!(
        permissions("administrator"),
        [
            "audit.view",
            "campaigns.access",
            "financials.access",
            "members.manage",
            "org.settings",
            "patients.assign",
            "patients.message",
            "reports.download",
            "reports.view",
            "roles.manage",
            "runs.record"
        ]
    );
    for key in ["user", "user_plus", "manager", "administrator"] {
        assert_eq!(by_key[key]["built_in"], true, "{key}");
    }
    // The seed's matrix, row by row.
    let matrix = [
        // (role, reports, campaigns, financials, download reports, add/delete users)
        ("user", true, false, false, false, false),
        ("user_plus", true, true, false, false, false),
        ("manager", true, true, true, true, false),
        ("administrator", true, true, true, true, true),
    ];
    for (role, reports, campaigns, financials, download, users) in matrix {
        let held = permissions(role);
        let has = |p: &str| held.iter().any(|h| h == p);
        assert_eq!(
            (has("reports.view"), has("campaigns.access"), has("financials.access"), has("reports.download")),
            (reports, campaigns, financials, download),
            "{role}"
        );
        assert_eq!(has("members.manage"), users, "{role} adding and deleting users");
    }

    // The new administrator adds a manager, who cannot add or delete users themselves.
    let reply = app
        .post(
            &format!("/orgs/{east}/members"),
            &morgan,
            json!({
                "first_name": "Max", "last_name": "Manning", "email": "max@trackstat.test", "phone": "+14155550199",
                "role": "manager", "position": "Clinic manager",
            }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let max_id = reply.body["user_id"].as_str().unwrap().to_owned();
    let max_email = app.email("max@trackstat.test", "account for").await;
    assert!(max_email.text.contains("Morgan Lee"), "{}", max_email.text);
    let max = app.login("max@trackstat.test", &max_email.temporary_password()).await.ok()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post("/auth/password", &max, json!({"new_password": "Managers-choice-2026?"})).await.ok();
    app.get(&format!("/orgs/{east}"), &max).await.ok();
    let attempt = json!({"first_name": "Nia", "last_name": "New", "email": "nia@trackstat.test", "role": "user"});
    app.post(&format!("/orgs/{east}/members"), &max, attempt).await.expect(403, "forbidden");
    app.delete(&format!("/orgs/{east}/members/{morgan_id}"), &max).await.expect(403, "forbidden");

    // Morgan is linked into the second organisation, with a role of its own there.
    let reply = app
        .post(
            &format!("/orgs/{west}/members/link"),
            &admin,
            json!({"source_org": EAST, "user_id": morgan_id, "role": "administrator"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["user_id"], morgan_id.as_str());
    assert_eq!(reply.body["email"], "morgan@trackstat.test");
    assert_eq!(reply.body["role"], "administrator");
    assert_eq!(reply.body["origin"], "linked");
    assert_eq!(reply.body["added_by"], admin_id.as_str());
    assert_eq!(reply.body["password_change_required"], false, "one account: its password is already chosen");
    let me = app.get("/me", &morgan).await.ok();
    let mut memberships: Vec<(String, String, String, String)> = me["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let field = |k: &str| m[k].as_str().unwrap().to_owned();
            (field("slug"), field("name"), field("role"), field("state"))
        })
        .collect();
    memberships.sort();
    assert_eq!(
        memberships,
        [
            (EAST.to_owned(), "TrackStat East".to_owned(), "administrator".to_owned(), "active".to_owned()),
            (WEST.to_owned(), "TrackStat West".to_owned(), "administrator".to_owned(), "active".to_owned()),
        ]
    );

    // Switching between them: org-scoped calls work in each, and see each one's data.
    assert_eq!(app.get(&format!("/orgs/{EAST}"), &morgan).await.ok()["name"], "TrackStat East");
    assert_eq!(app.get(&format!("/orgs/{WEST}"), &morgan).await.ok()["name"], "TrackStat West");
    assert_eq!(
        emails(&app.get(&format!("/orgs/{EAST}/members"), &morgan).await.ok()),
        ["ada@trackstat.test", "morgan@trackstat.test", "max@trackstat.test"]
    );
    assert_eq!(
        emails(&app.get(&format!("/orgs/{WEST}/members"), &morgan).await.ok()),
        ["ada@trackstat.test", "morgan@trackstat.test"]
    );
    let renamed = app.patch(&format!("/orgs/{WEST}"), &morgan, json!({"name": "TrackStat West Coast"})).await.ok();
    assert_eq!(renamed["name"], "TrackStat West Coast");
    let annex = app.post(&format!("/orgs/{WEST}/facilities"), &morgan, json!({"name": "Bayview"})).await;
    assert_eq!(annex.status, 201, "{}", annex.body);
    let annex_id = annex.body["id"].as_str().unwrap().to_owned();

    // Each organisation's audit log records Morgan's actions under Morgan's name.
    let east_log = audit(app, &admin, &east).await;
    let created = find(&east_log, "member.created", "user", &max_id);
    assert_eq!((created["actor_id"].as_str(), created["actor_name"].as_str()), (Some(&*morgan_id), Some("Morgan Lee")));
    let morgan_created = find(&east_log, "member.created", "user", &morgan_id);
    assert_eq!(
        (morgan_created["actor_id"].as_str(), morgan_created["actor_name"].as_str()),
        (Some(&*admin_id), Some("Ada Admin")),
        "and Ada's under Ada's"
    );
    assert!(
        east_log.iter().all(|e| e["action"] != "facility.created" && e["action"] != "org.settings_changed"),
        "nothing done in the other organisation shows here: {east_log:#?}"
    );

    let west_log = audit(app, &morgan, &west).await;
    let renamed = find(&west_log, "org.settings_changed", "organisation", &west);
    assert_eq!((renamed["actor_id"].as_str(), renamed["actor_name"].as_str()), (Some(&*morgan_id), Some("Morgan Lee")));
    assert_eq!(
        renamed["changes"],
        json!([{"field": "name", "before": "TrackStat West", "after": "TrackStat West Coast"}])
    );
    let added = find(&west_log, "facility.created", "facility", &annex_id);
    assert_eq!((added["actor_id"].as_str(), added["actor_name"].as_str()), (Some(&*morgan_id), Some("Morgan Lee")));
    let linked = find(&west_log, "member.linked", "user", &morgan_id);
    assert_eq!((linked["actor_id"].as_str(), linked["actor_name"].as_str()), (Some(&*admin_id), Some("Ada Admin")));
    assert!(
        west_log.iter().all(|e| e["target"]["id"] != max_id.as_str()),
        "nothing done in the other organisation shows here: {west_log:#?}"
    );
}

async fn user_id(app: &TestApp, token: &str) -> String {
    app.get("/me", token).await.ok()["user"]["id"].as_str().unwrap().to_owned()
}

async fn create_org(app: &TestApp, token: &str, slug: &str, name: &str) -> String {
    let reply = app.post("/orgs", token, json!({"slug": slug, "name": name})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

/// The messages of the `new_password` errors a refused password change lists, sorted.
async fn refused_rules(app: &TestApp, token: &str, password: &str) -> Vec<String> {
    let problem =
        app.post("/auth/password", token, json!({"new_password": password})).await.expect(422, "invalid-input");
    let errors = problem["errors"].as_array().unwrap();
    assert!(errors.iter().all(|e| e["field"] == "new_password"), "{problem}");
    let mut messages: Vec<String> = errors.iter().map(|e| e["message"].as_str().unwrap().to_owned()).collect();
    messages.sort();
    messages
}

/// Every entry of an organisation's audit log (newest first).
async fn audit(app: &TestApp, token: &str, org: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut path = format!("/orgs/{org}/audit?limit=200");
    loop {
        let page = app.get(&path, token).await.ok();
        entries.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/orgs/{org}/audit?limit=200&cursor={cursor}"),
            None => return entries,
        }
    }
}

#[track_caller]
fn find<'a>(log: &'a [Value], action: &str, kind: &str, target: &str) -> &'a Value {
    let found: Vec<&Value> =
        log.iter().filter(|e| e["action"] == action && e["target"] == json!({"kind": kind, "id": target})).collect();
    assert_eq!(found.len(), 1, "expected one {action} of {kind} {target} in {log:#?}");
    found[0]
}

fn strings(list: &Value) -> Vec<String> {
    let mut items: Vec<String> = list.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    items.sort();
    items
}

/// The emails of a page of members, in the order listed.
fn emails(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|m| m["email"].as_str().unwrap().to_owned()).collect()
}
