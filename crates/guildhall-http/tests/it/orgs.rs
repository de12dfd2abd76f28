//! Organisations: settings, capabilities, runs, facilities, audit log and dead letters.

use chrono::Duration;
use guildhall_domain::catalogue::{CapabilityDef, CapabilityKind, Catalogue};
use guildhall_domain::ids::{OrgId, UserId};
use guildhall_domain::ports::{Clock, DeliveryFailure, Outbox};
use guildhall_domain::usecases::{OperatorCreateOrganisation, OrganisationCreation, Settings};
use guildhall_domain::values::{CapabilityKey, RoleKey};
use guildhall_http::HttpSettings;
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, spawn_app_configured, spawn_app_with_catalogue};

/// The built-in catalogue plus two capabilities: one on by default, one off.
fn catalogue() -> Catalogue {
    let capability = |key: &str, kind, enabled_by_default, description: &str| CapabilityDef {
        key: CapabilityKey::parse(key).unwrap(),
        kind,
        enabled_by_default,
        description: description.to_owned(),
    };
    Catalogue::builder()
        .capability(capability("automated_recall", CapabilityKind::Automation, false, "Recall patients due a visit"))
        .unwrap()
        .capability(capability("patient_tasks", CapabilityKind::Service, true, "Tasks patients complete at home"))
        .unwrap()
        .build()
}

async fn spawn() -> TestApp {
    spawn_app_with_catalogue(Backend::Sqlite, HttpSettings::default(), catalogue()).await
}

async fn user_id(app: &TestApp, token: &str) -> UserId {
    UserId::parse(app.get("/me", token).await.ok()["user"]["id"].as_str().unwrap()).unwrap()
}

/// Signs `email` up and makes them a member of `org` with `role` (by an invitation the
/// administrator sends and they accept); their session token.
async fn member(app: &TestApp, admin: &str, org: &str, email: &str, role: &str) -> String {
    let token = app.signed_in(email).await;
    let (admin, user) = (user_id(app, admin).await, user_id(app, &token).await);
    let org = OrgId::parse(org).unwrap();
    app.guildhall.invitations().invite(admin, org, email, &RoleKey::parse(role).unwrap()).await.unwrap();
    let link = app.last_token_to(email).await;
    app.guildhall.invitations().accept(user, &link).await.unwrap();
    token
}

/// An administrator of `acme`, a plain member of it, and an outsider who runs `other`.
struct World {
    app: TestApp,
    admin: String,
    plain: String,
    outsider: String,
    org: String,
}

async fn world() -> World {
    let app = spawn().await;
    let admin = app.signed_in("ada@example.org").await;
    let org = app.create_org(&admin, "acme").await;
    let plain = member(&app, &admin, &org, "pat@example.org", "user").await;
    let outsider = app.signed_in("oscar@example.org").await;
    app.create_org(&outsider, "other").await;
    World { app, admin, plain, outsider, org }
}

fn fields(problem: &Value) -> Vec<String> {
    let mut fields: Vec<String> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect();
    fields.sort();
    fields.dedup();
    fields
}

fn keys(items: &Value, key: &str) -> Vec<String> {
    items.as_array().unwrap().iter().map(|i| i[key].as_str().unwrap().to_owned()).collect()
}

// ---------------------------------------------------------------------------------------
// The organisation and its settings
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_organisation_shows_its_default_settings_and_capabilities_by_id_or_slug() {
    let w = world().await;
    let by_slug = w.app.get("/orgs/acme", &w.plain).await.ok();
    let by_id = w.app.get(&format!("/orgs/{}", w.org), &w.plain).await.ok();
    assert_eq!(by_slug, by_id);
    assert_eq!(by_slug["id"], w.org.as_str());
    assert_eq!(by_slug["slug"], "acme");
    let settings = &by_slug["settings"];
    assert_eq!(settings["join_policy"], json!({"mode": "invitation_only", "domains": [], "auto_approve": false}));
    assert_eq!(settings["default_role"], "user");
    assert_eq!(settings["invitation_lifetime_seconds"], 7 * 86_400);
    assert_eq!(settings["password_policy"]["min_length"], 10);
    assert_eq!(settings["password_policy"]["required_classes"], json!(["uppercase", "lowercase", "digit", "symbol"]));
    assert_eq!(settings["notification_routing"], json!({}));
    assert_eq!(
        by_slug["capabilities"],
        json!([
            {"key": "automated_recall", "kind": "automation", "description": "Recall patients due a visit",
             "enabled_by_default": false, "enabled": false},
            {"key": "patient_tasks", "kind": "service", "description": "Tasks patients complete at home",
             "enabled_by_default": true, "enabled": true},
        ])
    );
}

#[tokio::test]
async fn creating_an_organisation_answers_its_id_settings_and_capabilities() {
    let app = spawn().await;
    let token = app.signed_in("ada@example.org").await;
    let reply = app.post("/orgs", &token, json!({"slug": "north", "name": "North Physio"})).await;
    assert_eq!(reply.status, 201);
    let created = reply.ok();
    assert_eq!(created["name"], "North Physio");
    assert_eq!(created["settings"]["default_role"], "user");
    assert_eq!(keys(&created["capabilities"], "key"), ["automated_recall", "patient_tasks"]);
    let read = app.get(&format!("/orgs/{}", created["id"].as_str().unwrap()), &token).await.ok();
    assert_eq!(read, created);
}

#[tokio::test]
async fn where_only_operators_may_create_organisations_a_signed_in_person_is_refused_with_a_reason() {
    let domain = Settings { organisation_creation: OrganisationCreation::OperatorsOnly, ..Settings::default() };
    let app = spawn_app_configured(Backend::Sqlite, HttpSettings::default(), catalogue(), domain).await;
    let token = app.signed_in("ada@example.org").await;

    let problem = app
        .post("/orgs", &token, json!({"slug": "north", "name": "North Physio"}))
        .await
        .expect(403, "organisation-creation-restricted");

    assert!(problem["detail"].as_str().unwrap().contains("ask one to create it for you"), "{problem}");
    assert_eq!(app.get("/me", &token).await.ok()["memberships"], json!([]));
    let operator = app.guildhall.operators();
    let created = operator
        .create_organisation(OperatorCreateOrganisation {
            slug: "north".into(),
            name: "North Physio".into(),
            administrator_email: "ada@example.org".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
        })
        .await
        .unwrap();
    let read = app.get(&format!("/orgs/{}", created.organisation.id), &token).await.ok();
    assert_eq!(read["slug"], "north", "an operator creates it instead");
}

#[tokio::test]
async fn an_administrator_changes_the_name_slug_and_settings_and_reads_them_back() {
    let w = world().await;
    let patch = json!({
        "name": "Acme Physio",
        "slug": "acme-physio",
        "settings": {
            "join_policy": {"mode": "verified_domains", "domains": ["Acme-Physio.example"], "auto_approve": false},
            "default_role": "user_plus",
            "invitation_lifetime_seconds": 86_400,
            "password_policy": {
                "min_length": 15, "max_length": 128, "required_classes": [],
                "reject_email_local_part": true, "reject_common_passwords": true
            },
            "notification_routing": {"failed_messaging": ["office@acme.example", "it@acme.example"]}
        }
    });
    let updated = w.app.patch("/orgs/acme", &w.admin, patch).await.ok();
    let read = w.app.get("/orgs/acme-physio", &w.admin).await.ok();
    assert_eq!(updated, read);
    assert_eq!(read["name"], "Acme Physio");
    assert_eq!(read["id"], w.org.as_str());
    let settings = &read["settings"];
    assert_eq!(
        settings["join_policy"],
        json!({"mode": "verified_domains", "domains": ["acme-physio.example"], "auto_approve": false})
    );
    assert_eq!(settings["default_role"], "user_plus");
    assert_eq!(settings["invitation_lifetime_seconds"], 86_400);
    assert_eq!(settings["password_policy"]["min_length"], 15);
    assert_eq!(settings["password_policy"]["required_classes"], json!([]));
    assert_eq!(
        settings["notification_routing"],
        json!({"failed_messaging": ["it@acme.example", "office@acme.example"]})
    );
    // The old slug no longer names it.
    w.app.get("/orgs/acme", &w.admin).await.expect(404, "not-found");

    // A partial change leaves the rest alone.
    let renamed = w.app.patch("/orgs/acme-physio", &w.admin, json!({"name": "Acme"})).await.ok();
    assert_eq!(renamed["name"], "Acme");
    assert_eq!(renamed["settings"], read["settings"]);
}

#[tokio::test]
async fn every_invalid_setting_is_reported_at_once_and_nothing_changes() {
    let w = world().await;
    let before = w.app.get("/orgs/acme", &w.admin).await.ok();

    // Problems the domain finds.
    let problem = w
        .app
        .patch(
            "/orgs/acme",
            &w.admin,
            json!({
                "name": "  ",
                "settings": {
                    "join_policy": {"mode": "verified_domains", "domains": []},
                    "default_role": "no_such_role",
                    "invitation_lifetime_seconds": 60,
                    "notification_routing": {"no_such_topic": ["office@acme.example"], "failed_messaging": ["nope"]}
                }
            }),
        )
        .await
        .expect(422, "invalid-input");
    assert_eq!(
        fields(&problem),
        [
            "name",
            "settings.default_role",
            "settings.invitation_lifetime_seconds",
            "settings.join_policy",
            "settings.notification_routing"
        ]
    );

    // Problems the request's shape has, with the domain's field checks alongside.
    let problem = w
        .app
        .patch(
            "/orgs/acme",
            &w.admin,
            json!({
                "slug": "Not A Slug",
                "settings": {
                    "join_policy": {"mode": "invitation_only", "domains": ["acme.example"]},
                    "default_role": "Not a key",
                    "invitation_lifetime_seconds": 99_999_999,
                    "password_policy": {
                        "min_length": 4, "max_length": 128, "required_classes": ["digit"],
                        "reject_email_local_part": true, "reject_common_passwords": true
                    }
                }
            }),
        )
        .await
        .expect(422, "invalid-input");
    assert_eq!(
        fields(&problem),
        [
            "settings.default_role",
            "settings.invitation_lifetime_seconds",
            "settings.join_policy.domains",
            "settings.password_policy.min_length",
            "slug"
        ]
    );
    // A misspelt field is refused rather than ignored.
    w.app
        .patch("/orgs/acme", &w.admin, json!({"settings": {"defualt_role": "manager"}}))
        .await
        .expect(400, "malformed-request");
    w.app
        .patch("/orgs/acme", &w.admin, json!({"join_policy": {"mode": "requests_allowed"}}))
        .await
        .expect(400, "malformed-request");
    assert_eq!(w.app.get("/orgs/acme", &w.admin).await.ok(), before);
}

#[tokio::test]
async fn a_slug_another_organisation_uses_is_refused() {
    let w = world().await;
    w.app.patch("/orgs/acme", &w.admin, json!({"slug": "other"})).await.expect(409, "slug-taken");
    assert_eq!(w.app.get("/orgs/acme", &w.admin).await.ok()["slug"], "acme");
}

#[tokio::test]
async fn a_plain_member_cannot_change_settings_even_with_invalid_ones() {
    let w = world().await;
    w.app.patch("/orgs/acme", &w.plain, json!({"name": "Mine now"})).await.expect(403, "forbidden");
    w.app
        .patch("/orgs/acme", &w.plain, json!({"settings": {"default_role": "Not a key"}}))
        .await
        .expect(403, "forbidden");
    assert_eq!(w.app.get("/orgs/acme", &w.admin).await.ok()["name"], "Org acme");
}

#[tokio::test]
async fn an_outsider_can_neither_see_nor_change_an_organisation() {
    let w = world().await;
    let not_found = w.app.get("/orgs/no-such-org", &w.outsider).await.expect(404, "not-found");
    assert_eq!(w.app.get("/orgs/acme", &w.outsider).await.expect(404, "not-found"), not_found);
    assert_eq!(w.app.get(&format!("/orgs/{}", w.org), &w.outsider).await.expect(404, "not-found"), not_found);
    w.app.patch("/orgs/acme", &w.outsider, json!({"name": "Taken over"})).await.expect(404, "not-found");
    w.app
        .patch("/orgs/acme", &w.outsider, json!({"settings": {"default_role": "Not a key"}}))
        .await
        .expect(404, "not-found");
    assert_eq!(w.app.get("/orgs/acme", &w.admin).await.ok()["name"], "Org acme");
}

#[tokio::test]
async fn a_default_role_granting_more_than_the_caller_holds_is_refused() {
    let w = world().await;
    let admin = user_id(&w.app, &w.admin).await;
    let org = OrgId::parse(&w.org).unwrap();
    let permissions = ["org.settings".to_owned(), "members.manage".to_owned(), "reports.view".to_owned()];
    w.app.guildhall.roles().create_role(admin, org, "office", "Office", &permissions).await.unwrap();
    let office = member(&w.app, &w.admin, &w.org, "olive@example.org", "office").await;
    let problem = w
        .app
        .patch("/orgs/acme", &office, json!({"settings": {"default_role": "administrator"}}))
        .await
        .expect(403, "escalation");
    assert!(problem["detail"].as_str().unwrap().contains("administrator"), "{problem}");
    assert_eq!(w.app.get("/orgs/acme", &w.admin).await.ok()["settings"]["default_role"], "user");
}

// ---------------------------------------------------------------------------------------
// Capabilities
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_administrator_switches_capabilities_and_every_member_sees_the_result() {
    let w = world().await;
    let states = w
        .app
        .put(
            "/orgs/acme/capabilities",
            &w.admin,
            json!({"capabilities": {"automated_recall": true, "patient_tasks": false}}),
        )
        .await
        .ok();
    let enabled = |states: &Value| -> Vec<(String, bool)> {
        states
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["key"].as_str().unwrap().to_owned(), s["enabled"] == true))
            .collect()
    };
    let expected = vec![("automated_recall".to_owned(), true), ("patient_tasks".to_owned(), false)];
    assert_eq!(enabled(&states), expected);
    assert_eq!(enabled(&w.app.get("/orgs/acme/capabilities", &w.plain).await.ok()), expected);
    assert_eq!(enabled(&w.app.get("/orgs/acme", &w.plain).await.ok()["capabilities"]), expected);

    let audit = w.app.get("/orgs/acme/audit", &w.admin).await.ok();
    let toggled: Vec<&Value> =
        audit["items"].as_array().unwrap().iter().filter(|e| e["action"] == "capability.toggled").collect();
    assert_eq!(toggled.len(), 2);
    assert_eq!(toggled[0]["target"]["kind"], "capability");
}

#[tokio::test]
async fn an_unknown_capability_refuses_the_whole_change() {
    let w = world().await;
    let problem = w
        .app
        .put(
            "/orgs/acme/capabilities",
            &w.admin,
            json!({"capabilities": {"automated_recall": true, "teleportation": true, "Bad Key": false}}),
        )
        .await
        .expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["capabilities.Bad Key", "capabilities.teleportation"]);
    let states = w.app.get("/orgs/acme/capabilities", &w.admin).await.ok();
    assert_eq!(states[0]["key"], "automated_recall");
    assert_eq!(states[0]["enabled"], false, "nothing was written");
}

#[tokio::test]
async fn a_plain_member_cannot_switch_capabilities_and_an_outsider_cannot_see_them() {
    let w = world().await;
    let body = json!({"capabilities": {"automated_recall": true}});
    w.app.put("/orgs/acme/capabilities", &w.plain, body.clone()).await.expect(403, "forbidden");
    w.app.put("/orgs/acme/capabilities", &w.outsider, body).await.expect(404, "not-found");
    w.app.get("/orgs/acme/capabilities", &w.outsider).await.expect(404, "not-found");
    assert_eq!(w.app.get("/orgs/acme/capabilities", &w.admin).await.ok()[0]["enabled"], false);
}

// ---------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------

fn run(capability: &str, minute: i64) -> Value {
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").unwrap() + Duration::minutes(minute);
    json!({
        "capability": capability,
        "started_at": start.to_rfc3339(),
        "finished_at": (start + Duration::seconds(30)).to_rfc3339(),
        "outcome": "succeeded",
        "counts": {"patients_contacted": 120}
    })
}

async fn recall_on(w: &World) {
    w.app.put("/orgs/acme/capabilities", &w.admin, json!({"capabilities": {"automated_recall": true}})).await.ok();
}

#[tokio::test]
async fn runs_are_recorded_and_listed_newest_first_a_page_at_a_time() {
    let w = world().await;
    recall_on(&w).await;
    let reply = w.app.post("/orgs/acme/runs", &w.admin, run("automated_recall", 0)).await;
    assert_eq!(reply.status, 201);
    let first = reply.ok();
    assert_eq!(first["capability"], "automated_recall");
    assert_eq!(first["outcome"], "succeeded");
    assert_eq!(first["counts"], json!({"patients_contacted": 120}));
    assert_eq!(first["recorded_by"], user_id(&w.app, &w.admin).await.to_string());
    let mut failed = run("automated_recall", 1);
    failed["outcome"] = json!("failed");
    failed["detail"] = json!("the SMS gateway timed out");
    let second = w.app.post("/orgs/acme/runs", &w.admin, failed).await.ok();
    assert_eq!(second["detail"], "the SMS gateway timed out");
    let third = w.app.post("/orgs/acme/runs", &w.admin, run("automated_recall", 2)).await.ok();

    let page = w.app.get("/orgs/acme/runs?limit=2", &w.admin).await.ok();
    assert_eq!(keys(&page["items"], "id"), [third["id"].as_str().unwrap(), second["id"].as_str().unwrap()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = w.app.get(&format!("/orgs/acme/runs?limit=2&cursor={cursor}"), &w.admin).await.ok();
    assert_eq!(keys(&rest["items"], "id"), [first["id"].as_str().unwrap()]);
    assert!(rest["next_cursor"].is_null(), "{rest}");
}

#[tokio::test]
async fn a_cursor_that_is_not_from_a_previous_page_is_refused() {
    let w = world().await;
    for cursor in ["garbage", "%E2%9C%93", "0192f4c6-7d3a-7b8e-9c1d-2e3f4a5b6c7d.x"] {
        for list in ["runs", "audit", "undelivered"] {
            let problem =
                w.app.get(&format!("/orgs/acme/{list}?cursor={cursor}"), &w.admin).await.expect(422, "invalid-input");
            assert_eq!(fields(&problem), ["cursor"], "{list} {cursor}");
        }
    }
    // An outsider learns nothing from a bad cursor either.
    w.app.get("/orgs/acme/runs?cursor=garbage", &w.outsider).await.expect(404, "not-found");
    w.app.get("/orgs/acme/audit?cursor=garbage", &w.plain).await.expect(403, "forbidden");
}

#[tokio::test]
async fn an_invalid_run_report_lists_every_problem() {
    let w = world().await;
    recall_on(&w).await;
    let mut report = run("automated_recall", 0);
    report["finished_at"] = json!("2026-03-02T08:00:00Z");
    report["outcome"] = json!("partially_succeeded");
    report["counts"] = json!({" ": 1});
    let problem = w.app.post("/orgs/acme/runs", &w.admin, report).await.expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["counts", "detail", "finished_at"]);

    let problem = w.app.post("/orgs/acme/runs", &w.admin, run("Not A Key", 0)).await.expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["capability"]);
    let problem = w.app.post("/orgs/acme/runs", &w.admin, run("teleportation", 0)).await.expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["capability"]);
    assert_eq!(w.app.get("/orgs/acme/runs", &w.admin).await.ok()["items"], json!([]));
}

#[tokio::test]
async fn runs_of_a_switched_off_capability_are_refused() {
    let w = world().await;
    w.app.post("/orgs/acme/runs", &w.admin, run("automated_recall", 0)).await.expect(409, "capability-disabled");
    assert_eq!(w.app.get("/orgs/acme/runs", &w.admin).await.ok()["items"], json!([]));
}

#[tokio::test]
async fn a_plain_member_cannot_record_or_read_runs_and_an_outsider_cannot_either() {
    let w = world().await;
    recall_on(&w).await;
    w.app.post("/orgs/acme/runs", &w.plain, run("automated_recall", 0)).await.expect(403, "forbidden");
    w.app.post("/orgs/acme/runs", &w.plain, run("Not A Key", 0)).await.expect(403, "forbidden");
    w.app.get("/orgs/acme/runs", &w.plain).await.expect(403, "forbidden");
    w.app.post("/orgs/acme/runs", &w.outsider, run("automated_recall", 0)).await.expect(404, "not-found");
    w.app.get("/orgs/acme/runs", &w.outsider).await.expect(404, "not-found");
    assert_eq!(w.app.get("/orgs/acme/runs", &w.admin).await.ok()["items"], json!([]));
}

// ---------------------------------------------------------------------------------------
// Facilities
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_administrator_adds_renames_and_deletes_facilities() {
    let w = world().await;
    let reply = w.app.post("/orgs/acme/facilities", &w.admin, json!({"name": "North Clinic"})).await;
    assert_eq!(reply.status, 201);
    let north = reply.ok();
    w.app.post("/orgs/acme/facilities", &w.admin, json!({"name": "East Clinic"})).await.ok();
    let listed = w.app.get("/orgs/acme/facilities", &w.plain).await.ok();
    assert_eq!(keys(&listed, "name"), ["East Clinic", "North Clinic"]);

    let id = north["id"].as_str().unwrap();
    let renamed =
        w.app.patch(&format!("/orgs/acme/facilities/{id}"), &w.admin, json!({"name": "West Clinic"})).await.ok();
    assert_eq!((renamed["id"].as_str(), renamed["name"].as_str()), (Some(id), Some("West Clinic")));
    assert_eq!(keys(&w.app.get("/orgs/acme/facilities", &w.admin).await.ok(), "name"), ["East Clinic", "West Clinic"]);

    let deleted = w.app.delete(&format!("/orgs/acme/facilities/{id}"), &w.admin).await.ok();
    assert_eq!(deleted["name"], "West Clinic");
    assert_eq!(keys(&w.app.get("/orgs/acme/facilities", &w.admin).await.ok(), "name"), ["East Clinic"]);
    w.app.delete(&format!("/orgs/acme/facilities/{id}"), &w.admin).await.expect(404, "not-found");
    w.app
        .patch(&format!("/orgs/acme/facilities/{id}"), &w.admin, json!({"name": "Again"}))
        .await
        .expect(404, "not-found");
}

#[tokio::test]
async fn facility_names_must_be_present_and_unique_ignoring_case() {
    let w = world().await;
    let north = w.app.post("/orgs/acme/facilities", &w.admin, json!({"name": "North Clinic"})).await.ok();
    w.app
        .post("/orgs/acme/facilities", &w.admin, json!({"name": "north clinic"}))
        .await
        .expect(409, "facility-name-taken");
    let problem =
        w.app.post("/orgs/acme/facilities", &w.admin, json!({"name": "   "})).await.expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["name"]);
    let id = north["id"].as_str().unwrap();
    let problem = w
        .app
        .patch(&format!("/orgs/acme/facilities/{id}"), &w.admin, json!({"name": ""}))
        .await
        .expect(422, "invalid-input");
    assert_eq!(fields(&problem), ["name"]);
    // Changing only the letter case is a rename.
    let renamed =
        w.app.patch(&format!("/orgs/acme/facilities/{id}"), &w.admin, json!({"name": "NORTH CLINIC"})).await.ok();
    assert_eq!(renamed["name"], "NORTH CLINIC");
    assert_eq!(keys(&w.app.get("/orgs/acme/facilities", &w.admin).await.ok(), "name"), ["NORTH CLINIC"]);
}

#[tokio::test]
async fn a_plain_member_cannot_create_a_facility() {
    let w = world().await;
    let north = w.app.post("/orgs/acme/facilities", &w.admin, json!({"name": "North Clinic"})).await.ok();
    let id = north["id"].as_str().unwrap();
    w.app.post("/orgs/acme/facilities", &w.plain, json!({"name": "Mine"})).await.expect(403, "forbidden");
    w.app
        .patch(&format!("/orgs/acme/facilities/{id}"), &w.plain, json!({"name": "Mine"}))
        .await
        .expect(403, "forbidden");
    w.app.delete(&format!("/orgs/acme/facilities/{id}"), &w.plain).await.expect(403, "forbidden");
    assert_eq!(keys(&w.app.get("/orgs/acme/facilities", &w.plain).await.ok(), "name"), ["North Clinic"]);
}

#[tokio::test]
async fn an_outsider_cannot_see_or_touch_facilities() {
    let w = world().await;
    let north = w.app.post("/orgs/acme/facilities", &w.admin, json!({"name": "North Clinic"})).await.ok();
    let id = north["id"].as_str().unwrap();
    w.app.get("/orgs/acme/facilities", &w.outsider).await.expect(404, "not-found");
    w.app.post("/orgs/acme/facilities", &w.outsider, json!({"name": "Mine"})).await.expect(404, "not-found");
    let missing_org =
        w.app.delete("/orgs/no-such-org/facilities/not-an-id", &w.outsider).await.expect(404, "not-found");
    // A malformed id answers an outsider exactly as an organisation that does not exist.
    assert_eq!(
        w.app.delete("/orgs/acme/facilities/not-an-id", &w.outsider).await.expect(404, "not-found"),
        missing_org
    );
    w.app.delete(&format!("/orgs/acme/facilities/{id}"), &w.outsider).await.expect(404, "not-found");
    w.app
        .patch(&format!("/orgs/acme/facilities/{id}"), &w.outsider, json!({"name": "Mine"}))
        .await
        .expect(404, "not-found");
    // The other organisation's administrator cannot reach it through their own org either.
    w.app.delete(&format!("/orgs/other/facilities/{id}"), &w.outsider).await.expect(404, "not-found");
    assert_eq!(keys(&w.app.get("/orgs/acme/facilities", &w.admin).await.ok(), "name"), ["North Clinic"]);
}

// ---------------------------------------------------------------------------------------
// Audit log and dead letters
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_audit_log_names_the_actor_and_lists_field_changes_newest_first() {
    let w = world().await;
    w.app.patch("/orgs/acme", &w.admin, json!({"name": "Acme Physio"})).await.ok();
    let audit = w.app.get("/orgs/acme/audit", &w.admin).await.ok();
    let items = audit["items"].as_array().unwrap();
    let latest = &items[0];
    assert_eq!(latest["action"], "org.settings_changed");
    assert_eq!(latest["actor_id"], user_id(&w.app, &w.admin).await.to_string());
    assert_eq!(latest["actor_name"], "Test Ada");
    assert_eq!(latest["target"], json!({"kind": "organisation", "id": w.org}));
    assert_eq!(latest["changes"], json!([{"field": "name", "before": "Org acme", "after": "Acme Physio"}]));
    let created = items.last().unwrap();
    assert_eq!(created["action"], "org.created");
    assert_eq!(created["actor_name"], "Test Ada");

    let first = w.app.get("/orgs/acme/audit?limit=1", &w.admin).await.ok();
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().unwrap();
    let next = w.app.get(&format!("/orgs/acme/audit?limit=1&cursor={cursor}"), &w.admin).await.ok();
    assert_eq!(next["items"][0]["id"], items[1]["id"]);
}

#[tokio::test]
async fn only_administrators_read_the_audit_log_and_dead_letters() {
    let w = world().await;
    w.app.get("/orgs/acme/audit", &w.plain).await.expect(403, "forbidden");
    w.app.get("/orgs/acme/undelivered", &w.plain).await.expect(403, "forbidden");
    w.app.get("/orgs/acme/audit", &w.outsider).await.expect(404, "not-found");
    w.app.get("/orgs/acme/undelivered", &w.outsider).await.expect(404, "not-found");
}

#[tokio::test]
async fn messages_that_could_not_be_delivered_are_listed_for_administrators() {
    let w = world().await;
    assert_eq!(w.app.get("/orgs/acme/undelivered", &w.admin).await.ok()["items"], json!([]));
    let admin = user_id(&w.app, &w.admin).await;
    let org = OrgId::parse(&w.org).unwrap();
    let user = RoleKey::parse("user").unwrap();
    w.app.guildhall.invitations().invite(admin, org, "nobody@example.org", &user).await.unwrap();
    let far = w.app.clock.now() + Duration::days(3650);
    let claimed = w.app.store.claim(100, far, Duration::minutes(5)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let failure = DeliveryFailure::Dead { error: "550 mailbox unavailable".to_owned(), reports: Vec::new() };
    w.app.store.mark_failed(claimed[0].email.id, failure).await.unwrap();

    let page = w.app.get("/orgs/acme/undelivered", &w.admin).await.ok();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["to"], "nobody@example.org");
    assert_eq!(items[0]["attempts"], 1);
    assert_eq!(items[0]["last_error"], "550 mailbox unavailable");
    assert!(page["next_cursor"].is_null());
    // Another organisation's administrator does not see it.
    assert_eq!(w.app.get("/orgs/other/undelivered", &w.outsider).await.ok()["items"], json!([]));
}
