//! Members: creating users with a temporary password, linking, searching, editing,
//! suspending, removing, leaving, and explaining permissions.

use guildhall_domain::ports::Clock as _;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app};

const NEW_PASSWORD: &str = "Brand-new-password-77!";

/// An administrator with an organisation of their own: (token, org id).
async fn admin_with_org(app: &TestApp, email: &str, slug: &str) -> (String, String) {
    let token = app.signed_in(email).await;
    let org = app.create_org(&token, slug).await;
    (token, org)
}

/// Creates a user as an administrator; the member view.
async fn create_member(app: &TestApp, admin: &str, org: &str, email: &str, role: &str) -> Value {
    let reply = app
        .post(
            &format!("/orgs/{org}/members"),
            admin,
            json!({"first_name": "Pat", "last_name": last_name(email), "email": email, "role": role}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body
}

fn last_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or("member");
    let mut chars = local.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

/// A colleague created by the administrator who has signed in, changed the temporary
/// password and holds a full session: (token, user id).
async fn colleague(app: &TestApp, admin: &str, org: &str, email: &str, role: &str) -> (String, String) {
    let member = create_member(app, admin, org, email, role).await;
    let temporary = app.temporary_password_to(email).await;
    let token = app.login(email, &temporary).await.ok()["token"].as_str().unwrap().to_owned();
    app.post("/auth/password", &token, json!({"new_password": NEW_PASSWORD})).await.ok();
    (token, member["user_id"].as_str().unwrap().to_owned())
}

fn field_names(problem: &Value) -> Vec<String> {
    problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn an_administrator_creates_a_user_who_must_change_the_emailed_temporary_password_first() {
    let app = spawn_app().await;
    let (admin, org) = admin_with_org(&app, "admin@acme.example", "acme").await;

    let reply = app
        .post(
            &format!("/orgs/{org}/members"),
            &admin,
            json!({
                "first_name": "Jo", "last_name": "Bloggs", "email": "jo@acme.example", "phone": "+447700900123",
                "role": "manager", "position": "Practice manager", "aide": false,
                "access": {"patients": "facility", "nps": "organisation", "lists": "none"},
                "alerts": ["new_leads", "nps_low"],
            }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let member = reply.body;
    assert_eq!(member["email"], "jo@acme.example");
    assert_eq!(member["role"], "manager");
    assert_eq!(member["position"], "Practice manager");
    assert_eq!(member["access"], json!({"patients": "facility", "nps": "organisation"}));
    assert_eq!(member["alerts"], json!(["new_leads", "nps_low"]));
    assert_eq!(member["state"], "active");
    assert_eq!(member["origin"], "created_by_administrator");
    assert_eq!(member["password_change_required"], true);
    assert!(member["temporary_password_expires_at"].is_string());
    let user = member["user_id"].as_str().unwrap().to_owned();

    // Read it back.
    let read = app.get(&format!("/orgs/{org}/members/{user}"), &admin).await.ok();
    assert_eq!(read["last_name"], "Bloggs");
    assert_eq!(read["phone"], "+447700900123");

    // The temporary password came by email only (never in the response).
    assert!(!member.to_string().contains("temporary_password\""));
    let temporary = app.temporary_password_to("jo@acme.example").await;
    let session = app.login("jo@acme.example", &temporary).await.ok();
    assert_eq!(session["password_change_required"], true);
    let token = session["token"].as_str().unwrap().to_owned();

    app.get(&format!("/orgs/{org}"), &token).await.expect(403, "password-change-required");
    app.get(&format!("/orgs/{org}/members/{user}"), &token).await.expect(403, "password-change-required");

    app.post("/auth/password", &token, json!({"new_password": NEW_PASSWORD})).await.ok();
    app.get(&format!("/orgs/{org}"), &token).await.ok();
    let me = app.get(&format!("/orgs/{org}/members/{user}"), &token).await.ok();
    assert_eq!(me["password_change_required"], false);
    assert_eq!(me["temporary_password_expires_at"], Value::Null);

    // The temporary password worked once.
    app.login("jo@acme.example", &temporary).await.expect(401, "invalid-credentials");
    app.login("jo@acme.example", NEW_PASSWORD).await.ok();
}

#[tokio::test]
async fn creating_a_user_reports_every_invalid_field_at_once() {
    let app = spawn_app().await;
    let (admin, org) = admin_with_org(&app, "admin@acme.example", "acme").await;

    let problem = app
        .post(
            &format!("/orgs/{org}/members"),
            &admin,
            json!({
                "first_name": " ", "last_name": "Bloggs", "email": "not-an-address", "role": "overlord",
                "facilities": ["not-a-facility"], "alerts": ["nps_low", "Bad Alert"],
                "access": {"Patients!": "own"},
            }),
        )
        .await
        .expect(422, "invalid-input");
    let fields = field_names(&problem);
    for field in ["first_name", "email", "facilities", "alerts", "access"] {
        assert!(fields.contains(&field.to_owned()), "{field} missing in {problem}");
    }

    // Well-formed but unknown values are the domain's to refuse, all at once too.
    let problem = app
        .post(
            &format!("/orgs/{org}/members"),
            &admin,
            json!({
                "first_name": "Jo", "last_name": "Bloggs", "email": "jo@acme.example", "role": "overlord",
                "facilities": ["0192f4c6-7d3a-7b8e-9c1d-2e3f4a5b6c7d"], "alerts": ["earthquakes"],
                "access": {"spaceships": "own"},
            }),
        )
        .await
        .expect(422, "invalid-input");
    let mut fields = field_names(&problem);
    fields.sort();
    assert_eq!(fields, ["access", "alerts", "facilities", "role"], "{problem}");

    // Nothing was created.
    let page = app.get(&format!("/orgs/{org}/members?q=bloggs"), &admin).await.ok();
    assert_eq!(page["items"], json!([]));
    assert!(app.emails_to("jo@acme.example").await.is_empty());
}

#[tokio::test]
async fn an_aide_never_holds_patient_messaging_and_explain_says_why() {
    let app = spawn_app().await;
    let (admin, org) = admin_with_org(&app, "admin@acme.example", "acme").await;

    // The domain allows any role for an aide and masks what aides never hold.
    let reply = app
        .post(
            &format!("/orgs/{org}/members"),
            &admin,
            json!({"first_name": "Al", "last_name": "Aide", "email": "al@acme.example", "role": "user", "aide": true}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let user = reply.body["user_id"].as_str().unwrap().to_owned();
    assert_eq!(reply.body["aide"], true);
    let permissions = reply.body["permissions"].as_array().unwrap();
    assert!(permissions.contains(&json!("reports.view")));
    assert!(!permissions.contains(&json!("patients.message")));
    assert!(!permissions.contains(&json!("patients.assign")));

    let explained =
        app.get(&format!("/orgs/{org}/members/{user}/explain?permission=patients.message"), &admin).await.ok();
    assert_eq!(explained["allowed"], false);
    assert_eq!(explained["reasons"].as_array().unwrap().last().unwrap()["denial"], "aide");
    assert!(explained["summary"].as_str().unwrap().starts_with("denied: member is an aide"), "{explained}");

    let explained = app.get(&format!("/orgs/{org}/members/{user}/explain?permission=reports.view"), &admin).await.ok();
    assert_eq!(explained["allowed"], true);

    // The role's missing permission is a different reason.
    let explained =
        app.get(&format!("/orgs/{org}/members/{user}/explain?permission=financials.access"), &admin).await.ok();
    assert_eq!(explained["allowed"], false);
    assert_eq!(explained["reasons"].as_array().unwrap().last().unwrap()["denial"], "missing_permission");

    // Unknown or malformed permissions are field errors.
    let problem = app
        .get(&format!("/orgs/{org}/members/{user}/explain?permission=time.travel"), &admin)
        .await
        .expect(422, "invalid-input");
    assert_eq!(field_names(&problem), ["permission"]);
    app.get(&format!("/orgs/{org}/members/{user}/explain?permission=NOPE"), &admin).await.expect(422, "invalid-input");

    // No longer an aide: the role's grant applies.
    app.patch(&format!("/orgs/{org}/members/{user}"), &admin, json!({"aide": false})).await.ok();
    let explained =
        app.get(&format!("/orgs/{org}/members/{user}/explain?permission=patients.message"), &admin).await.ok();
    assert_eq!(explained["allowed"], true);
}

#[tokio::test]
async fn a_member_may_explain_their_own_permissions_but_not_others() {
    let app = spawn_app().await;
    let (admin, org) = admin_with_org(&app, "admin@acme.example", "acme").await;
    let (token, user) = colleague(&app, &admin, &org, "pat@acme.example", "user").await;
    let admin_id = app.get("/me", &admin).await.ok()["user"]["id"].as_str().unwrap().to_owned();

    let own = app.get(&format!("/orgs/{org}/members/{user}/explain?permission=members.manage"), &token).await.ok();
    assert_eq!(own["allowed"], false);
    app.get(&format!("/orgs/{org}/members/{admin_id}/explain?permission=members.manage"), &token)
        .await
        .expect(403, "forbidden");
}

#[tokio::test]
async fn a_plain_member_cannot_create_view_edit_suspend_or_delete_users() {
    let app = spawn_app().await;
    let (admin, org) = admin_with_org(&app, "admin@acme.example", "acme").await;
    let (token, own_id) = colleague(&app, &admin, &org, "pat@acme.example", "manager").await;
    let other = create_member(&app, &admin, &org, "sam@acme.example", "user").await;
    let other = other["user_id"].as_str().unwrap();

    let new_user = json!({"first_name": "Eve", "last_name": "Evil", "email": "eve@acme.example", "role": "user"});
    app.post(&format!("/orgs/{org}/members"), &token, new_user).await.expect(403, "forbidden");
    app.get(&format!("/orgs/{org}/members"), &token).await.expect(403, "forbidden");
    app.get(&format!("/orgs/{org}/members/{other}"), &token).await.expect(403, "forbidden");
    app.patch(&format!("/orgs/{org}/members/{other}"), &token, json!({"role": "manager"}))
        .await
        .expect(403, "forbidden");
    app.delete(&format!("/orgs/{org}/members/{other}"), &token).await.expect(403, "forbidden");
    app.post(&format!("/orgs/{org}/members/{other}/suspend"), &token, json!({})).await.expect(403, "forbidden");
    // Not even on themselves.
    app.patch(&format!("/orgs/{org}/members/{own_id}"), &token, json!({"role": "administrator"}))
        .await
        .expect(403, "forbidden");

    // They may look at themselves.
    let me = app.get(&format!("/orgs/{org}/members/{own_id}"), &token).await.ok();
    assert_eq!(me["role"], "manager");

    // Nothing changed.
    let read = app.get(&format!("/orgs/{org}/members/{other}"), &admin).await.ok();
    assert_eq!((read["role"].as_str(), read["state"].as_str()), (Some("user"), Some("active")));
    assert!(app.emails_to("eve@acme.example").await.is_empty());
}

#[tokio::test]
async fn an_outsider_cannot_tell_the_members_exist_and_changes_nothing() {
    let app = spawn_app().await;
    let (admin, org) = admin_with_org(&app, "admin@acme.example", "acme").await;
    let member = create_member(&app, &admin, &org, "pat@acme.example", "user").await;
    let user = member["user_id"].as_str().unwrap();
    let (outsider, _) = admin_with_org(&app, "boss@rival.example", "rival").await;

    app.get(&format!("/orgs/{org}/members"), &outsider).await.expect(404, "not-found");
    app.get("/orgs/acme/members", &outsider).await.expect(404, "not-found");
    app.get(&format!("/orgs/{org}/members/{user}"), &outsider).await.expect(404, "not-found");
    app.get(&format!("/orgs/{org}/members/{user}/explain?permission=reports.view"), &outsider)
        .await
        .expect(404, "not-found");
    app.post(
        &format!("/orgs/{org}/members"),
        &outsider,
        json!({"first_name": "Eve", "last_name": "Evil", "email": "eve@acme.example", "role": "administrator"}),
    )
    .await
    .expect(404, "not-found");
    app.patch(&format!("/orgs/{org}/members/{user}"), &outsider, json!({"role": "administrator"}))
        .await
        .expect(404, "not-found");
    app.post(&format!("/orgs/{org}/members/{user}/suspend"), &outsider, json!({})).await.expect(404, "not-found");
    app.delete(&format!("/orgs/{org}/members/{user}"), &outsider).await.expect(404, "not-found");
    app.post(&format!("/orgs/{org}/leave"), &outsider, json!({})).await.expect(404, "not-found");

    let read = app.get(&format!("/orgs/{org}/members/{user}"), &admin).await.ok();
    assert_eq!((read["role"].as_str(), read["state"].as_str()), (Some("user"), Some("active")));
    assert!(app.emails_to("eve@acme.example").await.is_empty());
}

#[tokio::test]
async fn unknown_or_malformed_member_ids_are_not_found() {
    let app = spawn_app().await;
    let (admin, org) = admin_with_org(&app, "admin@acme.example", "acme").await;
    app.get(&format!("/orgs/{org}/members/not-a-uuid"), &admin).await.expect(404, "not-found");
    app.get(&format!("/orgs/{org}/members/0192f4c6-7d3a-7b8e-9c1d-2e3f4a5b6c7d"), &admin)
        .await
        .expect(404, "not-found");
    app.patch(&format!("/orgs/{org}/members/0192f4c6-7d3a-7b8e-9c1d-2e3f4a5b6c7d"), &admin, json!({"aide": true}))
        .await
        .expect(404, "not-found");
    app.delete(&format!("/orgs/{org}/members/0192f4c6-7d3a-7b8e-9c1d-2e3f4a5b6c7d"), &admin)
        .await
        .expect(404, "not-found");
}

#[tokio::test]
async fn members_are_searched_by_name_email_role_and_state_one_page_at_a_time() {
    let app = spawn_app().await;
    let (admin, org) = admin_with_org(&app, "admin@acme.example", "acme").await;
    create_member(&app, &admin, &org, "ann@acme.example", "user").await;
    let bob = create_member(&app, &admin, &org, "bob@acme.example", "manager").await;
    create_member(&app, &admin, &org, "cat@clinic.example", "manager").await;

    let names = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|m| m["email"].as_str().unwrap().to_owned()).collect()
    };

    let page = app.get(&format!("/orgs/{org}/members?q=BOB"), &admin).await.ok();
    assert_eq!(names(&page), ["bob@acme.example"]);
    let page = app.get(&format!("/orgs/{org}/members?q=clinic.example"), &admin).await.ok();
    assert_eq!(names(&page), ["cat@clinic.example"]);
    let page = app.get(&format!("/orgs/{org}/members?role=manager"), &admin).await.ok();
    assert_eq!(names(&page), ["bob@acme.example", "cat@clinic.example"]);
    assert_eq!(page["items"][0]["role"], "manager");
    assert_eq!(page["next_cursor"], Value::Null);

    // Keyset pages, by last name (Admin's last name is "Admin"): Admin, Ann, Bob, Cat.
    let first = app.get(&format!("/orgs/{org}/members?limit=2"), &admin).await.ok();
    assert_eq!(names(&first), ["admin@acme.example", "ann@acme.example"]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = app.get(&format!("/orgs/{org}/members?limit=2&cursor={cursor}"), &admin).await.ok();
    assert_eq!(names(&second), ["bob@acme.example", "cat@clinic.example"]);
    if let Some(cursor) = second["next_cursor"].as_str() {
        let third = app.get(&format!("/orgs/{org}/members?limit=2&cursor={cursor}"), &admin).await.ok();
        assert_eq!(third["items"], json!([]));
    }

    // State filter.
    let bob_id = bob["user_id"].as_str().unwrap();
    app.post(&format!("/orgs/{org}/members/{bob_id}/suspend"), &admin, json!({})).await.ok();
    let page = app.get(&format!("/orgs/{org}/members?status=suspended"), &admin).await.ok();
    assert_eq!(names(&page), ["bob@acme.example"]);
    assert_eq!(page["items"][0]["state"], "suspended");

    // Bad parameters are field errors, never server errors.
    let problem = app.get(&format!("/orgs/{org}/members?cursor=garbage"), &admin).await.expect(422, "invalid-input");
    assert_eq!(field_names(&problem), ["cursor"]);
    for limit in ["0", "201", "-5", "99999999999"] {
        let problem = app.get(&format!("/orgs/{org}/members?limit={limit}"), &admin).await.expect(422, "invalid-input");
        assert_eq!(field_names(&problem), ["limit"], "limit={limit}");
        assert!(problem["errors"][0]["message"].as_str().unwrap().contains("200"));
    }
    let problem = app
        .get(&format!("/orgs/{org}/members?status=retired&role=Not%20A%20Role&facility=x"), &admin)
        .await
        .expect(422, "invalid-input");
    let mut fields = field_names(&problem);
    fields.sort();
    assert_eq!(fields, ["facility", "role", "status"]);
}

#[tokio::test]
async fn an_administrator_edits_a_member_and_absent_fields_stay_as_they_are() {
    let app = spawn_app().await;
    let (admin, org) = admin_with_org(&app, "admin@acme.example", "acme").await;
    let member = create_member(&app, &admin, &org, "pat@acme.example", "user").await;
    let user = member["user_id"].as_str().unwrap();
    let path = format!("/orgs/{org}/members/{user}");

    let updated = app
        .patch(
            &path,
            &admin,
            json!({"role": "manager", "position": "Physio", "access": {"patients": "own"}, "alerts": ["new_intakes"]}),
        )
        .await
        .ok();
    assert_eq!(updated["role"], "manager");
    assert_eq!(updated["position"], "Physio");

    let updated = app.patch(&path, &admin, json!({"aide": true})).await.ok();
    assert_eq!(updated["aide"], true);
    assert_eq!(updated["role"], "manager");
    assert_eq!(updated["position"], "Physio");
    assert_eq!(updated["access"], json!({"patients": "own"}));
    assert_eq!(updated["alerts"], json!(["new_intakes"]));

    let expiry = (app.clock.now() + chrono::Duration::days(30)).to_rfc3339();
    let updated = app.patch(&path, &admin, json!({"position": null, "expires_at": expiry})).await.ok();
    assert_eq!(updated["position"], Value::Null);
    assert!(updated["expires_at"].is_string());
    let updated = app.patch(&path, &admin, json!({"expires_at": null})).await.ok();
    assert_eq!(updated["expires_at"], Value::Null);

    // Validation: every field at once, nothing applied.
    let past = (app.clock.now() - chrono::Duration::days(1)).to_rfc3339();
    let problem = app
        .patch(&path, &admin, json!({"role": "overlord", "expires_at": past, "alerts": ["earthquakes"]}))
        .await
        .expect(422, "invalid-input");
    let mut fields = field_names(&problem);
    fields.sort();
    assert_eq!(fields, ["alerts", "expires_at", "role"]);
    let problem = app.patch(&path, &admin, json!({"facilities": ["nope"]})).await.expect(422, "invalid-input");
    assert_eq!(field_names(&problem), ["facilities"]);

    let read = app.get(&path, &admin).await.ok();
    assert_eq!(read["role"], "manager");
    assert_eq!(read["alerts"], json!(["new_intakes"]));
}

#[tokio::test]
async fn the_last_administrator_cannot_step_down_or_leave_but_others_can_leave() {
    let app = spawn_app().await;
    let (admin, org) = admin_with_org(&app, "admin@acme.example", "acme").await;
    let admin_id = app.get("/me", &admin).await.ok()["user"]["id"].as_str().unwrap().to_owned();

    let problem = app.post(&format!("/orgs/{org}/leave"), &admin, json!({})).await.expect(409, "last-administrator");
    assert!(problem["detail"].as_str().unwrap().contains("no administrator left"), "{problem}");
    app.patch(&format!("/orgs/{org}/members/{admin_id}"), &admin, json!({"role": "manager"}))
        .await
        .expect(409, "last-administrator");
    let expiry = (app.clock.now() + chrono::Duration::days(30)).to_rfc3339();
    app.patch(&format!("/orgs/{org}/members/{admin_id}"), &admin, json!({"expires_at": expiry}))
        .await
        .expect(409, "last-administrator");
    app.get(&format!("/orgs/{org}"), &admin).await.ok();

    // A plain member leaves; the organisation is then hidden from them.
    let (token, _) = colleague(&app, &admin, &org, "pat@acme.example", "user").await;
    app.post(&format!("/orgs/{org}/leave"), &token, json!({})).await.ok();
    app.get(&format!("/orgs/{org}"), &token).await.expect(404, "not-found");
    let page = app.get(&format!("/orgs/{org}/members?q=pat"), &admin).await.ok();
    assert_eq!(page["items"], json!([]));

    // With a second administrator, the first may leave.
    colleague(&app, &admin, &org, "deputy@acme.example", "administrator").await;
    app.post(&format!("/orgs/{org}/leave"), &admin, json!({})).await.ok();
    app.get(&format!("/orgs/{org}"), &admin).await.expect(404, "not-found");
}

#[tokio::test]
async fn removing_a_member_signs_them_out() {
    let app = spawn_app().await;
    let (admin, org) = admin_with_org(&app, "admin@acme.example", "acme").await;
    let (token, user) = colleague(&app, &admin, &org, "pat@acme.example", "user").await;
    app.get(&format!("/orgs/{org}"), &token).await.ok();

    app.delete(&format!("/orgs/{org}/members/{user}"), &admin).await.ok();

    app.get(&format!("/orgs/{org}"), &token).await.expect(401, "unauthenticated");
    app.get(&format!("/orgs/{org}/members/{user}"), &admin).await.expect(404, "not-found");
    app.delete(&format!("/orgs/{org}/members/{user}"), &admin).await.expect(404, "not-found");
    // The account stays; it just no longer belongs here.
    let session = app.login("pat@acme.example", NEW_PASSWORD).await.ok();
    let token = session["token"].as_str().unwrap();
    app.get(&format!("/orgs/{org}"), token).await.expect(404, "not-found");
}

#[tokio::test]
async fn a_suspended_member_is_signed_out_and_shut_out_until_reactivated() {
    let app = spawn_app().await;
    let (admin, org) = admin_with_org(&app, "admin@acme.example", "acme").await;
    let admin_id = app.get("/me", &admin).await.ok()["user"]["id"].as_str().unwrap().to_owned();
    let (token, user) = colleague(&app, &admin, &org, "pat@acme.example", "user").await;

    let suspended = app.post(&format!("/orgs/{org}/members/{user}/suspend"), &admin, json!({})).await.ok();
    assert_eq!(suspended["state"], "suspended");
    assert!(suspended["suspended_at"].is_string());
    assert_eq!(suspended["permissions"], json!([]));
    app.get(&format!("/orgs/{org}"), &token).await.expect(401, "unauthenticated");
    let token = app.login("pat@acme.example", NEW_PASSWORD).await.ok()["token"].as_str().unwrap().to_owned();
    app.get(&format!("/orgs/{org}"), &token).await.expect(403, "membership-inactive");

    app.post(&format!("/orgs/{org}/members/{user}/suspend"), &admin, json!({})).await.expect(409, "already-in-state");
    app.post(&format!("/orgs/{org}/members/{admin_id}/suspend"), &admin, json!({})).await.expect(409, "own-membership");

    let active = app.post(&format!("/orgs/{org}/members/{user}/reactivate"), &admin, json!({})).await.ok();
    assert_eq!(active["state"], "active");
    app.get(&format!("/orgs/{org}"), &token).await.ok();
    app.post(&format!("/orgs/{org}/members/{user}/reactivate"), &admin, json!({}))
        .await
        .expect(409, "already-in-state");
}

#[tokio::test]
async fn creating_a_user_whose_address_has_an_account_sends_an_invitation_instead() {
    let app = spawn_app().await;
    let (admin, org) = admin_with_org(&app, "admin@acme.example", "acme").await;
    app.signed_in("ada@example.org").await;

    let form = json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org", "role": "user"});
    let reply = app.post(&format!("/orgs/{org}/members"), &admin, form.clone()).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert!(reply.body["invitation_id"].is_string());
    assert!(
        app.emails_to("ada@example.org")
            .await
            .iter()
            .any(|n| matches!(n, guildhall_domain::notification::Notification::Invitation { .. }))
    );
    // Not a member until they accept.
    let page = app.get(&format!("/orgs/{org}/members?q=ada"), &admin).await.ok();
    assert_eq!(page["items"], json!([]));

    app.post(&format!("/orgs/{org}/members"), &admin, form).await.expect(409, "already-invited");
    let again = json!({"first_name": "Pat", "last_name": "Again", "email": "admin@acme.example", "role": "user"});
    app.post(&format!("/orgs/{org}/members"), &admin, again).await.expect(409, "already-member");
}

#[tokio::test]
async fn an_administrator_links_someone_they_manage_in_another_organisation() {
    let app = spawn_app().await;
    let (admin, first) = admin_with_org(&app, "admin@acme.example", "acme").await;
    let second = app.create_org(&admin, "acme-north").await;
    let (token, user) = colleague(&app, &admin, &first, "pat@acme.example", "user").await;

    let reply = app
        .post(
            &format!("/orgs/{second}/members/link"),
            &admin,
            json!({"source_org": "acme", "user_id": user, "role": "manager"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["role"], "manager");
    assert_eq!(reply.body["origin"], "linked");

    // One account, two memberships with their own roles.
    let me = app.get("/me", &token).await.ok();
    let mut roles: Vec<String> =
        me["memberships"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap().to_owned()).collect();
    roles.sort();
    assert_eq!(roles, ["manager", "user"]);

    app.post(
        &format!("/orgs/{second}/members/link"),
        &admin,
        json!({"source_org": first, "user_id": user, "role": "user"}),
    )
    .await
    .expect(409, "already-member");
    let problem = app
        .post(
            &format!("/orgs/{second}/members/link"),
            &admin,
            json!({"source_org": first, "user_id": user, "role": "Bad Role"}),
        )
        .await
        .expect(422, "invalid-input");
    assert_eq!(field_names(&problem), ["role"]);

    // Someone the administrator does not manage cannot be linked.
    let stranger = app.signed_in("stranger@example.org").await;
    let stranger_id = app.get("/me", &stranger).await.ok()["user"]["id"].as_str().unwrap().to_owned();
    let third = app.create_org(&admin, "acme-south").await;
    app.post(
        &format!("/orgs/{third}/members/link"),
        &admin,
        json!({"source_org": first, "user_id": stranger_id, "role": "user"}),
    )
    .await
    .expect(403, "not-managed-by-source");
    let page = app.get(&format!("/orgs/{third}/members?q=stranger"), &admin).await.ok();
    assert_eq!(page["items"], json!([]));

    // A plain member cannot link anyone.
    app.post(
        &format!("/orgs/{second}/members/link"),
        &token,
        json!({"source_org": first, "user_id": stranger_id, "role": "user"}),
    )
    .await
    .expect(403, "forbidden");
}

#[tokio::test]
async fn the_openapi_document_describes_every_member_operation_and_enumeration() {
    let app = spawn_app().await;
    let spec: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let operations = [
        ("/orgs/{org}/members", "get", "search_members"),
        ("/orgs/{org}/members", "post", "create_member"),
        ("/orgs/{org}/members/link", "post", "link_member"),
        ("/orgs/{org}/members/{user}", "get", "get_member"),
        ("/orgs/{org}/members/{user}", "patch", "update_member"),
        ("/orgs/{org}/members/{user}", "delete", "remove_member"),
        ("/orgs/{org}/members/{user}/suspend", "post", "suspend_member"),
        ("/orgs/{org}/members/{user}/reactivate", "post", "reactivate_member"),
        ("/orgs/{org}/members/{user}/explain", "get", "explain_member_permission"),
        ("/orgs/{org}/leave", "post", "leave_org"),
    ];
    for (path, method, id) in operations {
        let operation = &spec["paths"][path][method];
        assert_eq!(operation["operationId"], id, "{method} {path}");
        assert!(operation["summary"].is_string(), "{method} {path} has no summary");
    }
    assert!(spec["paths"]["/orgs/{org}/members"]["post"]["responses"]["201"].is_object());
    assert!(spec["paths"]["/orgs/{org}/members"]["post"]["responses"]["202"].is_object());
    assert_eq!(
        spec["components"]["schemas"]["AccessScopeBody"]["enum"],
        json!(["none", "own", "facility", "organisation"])
    );
    assert_eq!(spec["components"]["schemas"]["MemberStateBody"]["enum"], json!(["active", "suspended", "expired"]));
}
