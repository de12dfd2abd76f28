//! The GP-practice portal (the abtrace seed): people join a practice by asking or by
//! invitation, reports go to the practice's shared inboxes, and an administrator switches
//! patient-facing services and automated recall on and tracks recall runs.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Backend, PASSWORD, PUBLIC_URL, TestApp, spawn_app};

const ORG_NAME: &str = "Riverside Surgery";
const SLUG: &str = "riverside-surgery";
const JOIN_INBOX: &str = "joiners@riverside.test";

#[tokio::test]
async fn a_practice_admits_people_by_request_and_invitation_routes_reports_and_tracks_recall_on_sqlite() {
    run(&spawn_app(Backend::Sqlite).await).await;
}

#[tokio::test]
async fn a_practice_admits_people_by_request_and_invitation_routes_reports_and_tracks_recall_on_postgres() {
    if !crate::support::postgres_available() {
        return;
    }
    run(&spawn_app(Backend::Postgres).await).await;
}

async fn run(app: &TestApp) {
    // The practice manager signs up and creates the practice; they are its administrator.
    let admin = app.signed_up("ada@riverside.test", "Ada", "Admin").await;
    let admin_id = user_id(app, &admin).await;
    let reply = app.post("/orgs", &admin, json!({"slug": SLUG, "name": ORG_NAME})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let org = reply.body["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.body["slug"], SLUG);
    assert_eq!(reply.body["name"], ORG_NAME);
    let roles = app.get(&format!("/orgs/{org}/roles"), &admin).await.ok();
    let role_keys: Vec<&str> = roles.as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(role_keys, ["user", "user_plus", "manager", "administrator"]);
    let me = app.get("/me", &admin).await.ok();
    assert_eq!(me["memberships"][0]["role"], "administrator");

    // Shared inboxes per topic, and requests to join allowed.
    let routing = json!({
        "failed_messaging": ["office@riverside.test"],
        "questionnaire_responses": ["clinical@riverside.test", "office@riverside.test"],
        "booking_requests": ["bookings@riverside.test"],
        "join_requests": [JOIN_INBOX],
    });
    let updated = app
        .patch(
            &format!("/orgs/{org}"),
            &admin,
            json!({"settings": {"notification_routing": routing, "join_policy": {"mode": "requests_allowed"}}}),
        )
        .await
        .ok();
    let read = app.get(&format!("/orgs/{SLUG}"), &admin).await.ok();
    assert_eq!(updated, read);
    assert_eq!(read["settings"]["notification_routing"], routing, "the shared addresses read back per topic");
    assert_eq!(read["settings"]["join_policy"]["mode"], "requests_allowed");

    // A person signs up and confirms their address from the emailed link.
    let signup = app
        .anonymous(
            Method::POST,
            "/auth/signup",
            Some(json!({"email": "pat@example.test", "password": PASSWORD, "first_name": "Pat", "last_name": "Patel"})),
        )
        .await
        .ok();
    assert_eq!(signup["outcome"], "verification_sent");
    let pat = app.login("pat@example.test", PASSWORD).await.ok()["token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/me", &pat).await.ok()["user"]["email_verified"], false);
    let message = "I am the new practice nurse, starting Monday.";
    app.post(&format!("/orgs/{SLUG}/join-requests"), &pat, json!({"message": message}))
        .await
        .expect(403, "email-not-verified");
    let confirm = app.email("pat@example.test", "Confirm your email address").await;
    assert_eq!(confirm.subject, "Confirm your email address for Guildhall");
    assert!(confirm.text.contains(&format!("{PUBLIC_URL}/verify-email?token={}", confirm.token())), "{}", confirm.text);
    app.anonymous(Method::POST, "/auth/verify-email", Some(json!({"token": confirm.token()}))).await.ok();
    let me = app.get("/me", &pat).await.ok();
    assert_eq!(me["user"]["email_verified"], true);
    assert_eq!(me["memberships"], json!([]));

    // Verified, they ask to join the practice by its slug, with a message.
    let reply = app.post(&format!("/orgs/{SLUG}/join-requests"), &pat, json!({"message": message})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["outcome"], "pending");
    let request = &reply.body["request"];
    assert_eq!(request["state"], "pending");
    assert_eq!(request["message"], message);
    assert_eq!(request["org_id"], org.as_str());
    let request_id = request["id"].as_str().unwrap().to_owned();

    // The administrator and the practice's join-request inbox are both told.
    let subject = format!("Pat Patel asks to join {ORG_NAME}");
    for to in ["ada@riverside.test", JOIN_INBOX] {
        let email = app.email(to, "asks to join").await;
        assert_eq!(email.subject, subject, "to {to}");
        assert!(email.text.contains("pat@example.test"), "{}", email.text);
        assert!(email.text.contains(message), "the message is passed on: {}", email.text);
        assert!(
            email.text.contains(&format!("{PUBLIC_URL}/orgs/{org}/join-requests/{request_id}")),
            "a link to review it: {}",
            email.text
        );
    }
    for other_inbox in ["office@riverside.test", "bookings@riverside.test", "clinical@riverside.test"] {
        assert!(app_emails_to(app, other_inbox).is_empty(), "{other_inbox} is not routed join requests");
    }

    let pending = app.get(&format!("/orgs/{org}/join-requests"), &admin).await.ok();
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    assert_eq!(pending[0]["id"], request_id.as_str());
    assert_eq!(pending[0]["name"], "Pat Patel");
    assert_eq!(pending[0]["email"], "pat@example.test");
    assert_eq!(pending[0]["message"], message);

    // The administrator approves with a role; the person is told and now belongs.
    let membership = app
        .post(&format!("/orgs/{org}/join-requests/{request_id}/approve"), &admin, json!({"role": "user_plus"}))
        .await
        .ok();
    assert_eq!(membership["role"], "user_plus");
    assert_eq!(membership["origin"], "join_request");
    assert_eq!(membership["status"], "active");
    assert_eq!(membership["added_by"], admin_id.as_str());
    let approved = app.email("pat@example.test", "was approved").await;
    assert_eq!(approved.subject, format!("Your request to join {ORG_NAME} was approved"));
    assert!(approved.text.contains("User plus"), "{}", approved.text);
    assert!(approved.text.contains(&format!("{PUBLIC_URL}/orgs/{org}")), "{}", approved.text);
    let me = app.get("/me", &pat).await.ok();
    assert_eq!(
        me["memberships"],
        json!([{"org_id": org, "slug": SLUG, "name": ORG_NAME, "role": "user_plus", "role_name": "User plus", "state": "active"}])
    );
    let mine = app.get("/me/join-requests", &pat).await.ok();
    assert_eq!(mine[0]["state"], "approved");
    assert_eq!(mine[0]["role"], "user_plus");
    assert_eq!(app.get(&format!("/orgs/{org}/join-requests"), &admin).await.ok(), json!([]));
    app.get(&format!("/orgs/{SLUG}"), &pat).await.ok();

    // Another person is invited, signs up through the link and accepts.
    let reply = app
        .post(&format!("/orgs/{org}/invitations"), &admin, json!({"email": "ivy@example.test", "role": "manager"}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["status"], "pending");
    assert_eq!(reply.body["role"], "manager");
    assert_eq!(reply.body["invited_by"], admin_id.as_str());
    let invitation = app.email("ivy@example.test", "invited you").await;
    assert_eq!(invitation.subject, format!("Ada Admin invited you to join {ORG_NAME} on Guildhall"));
    assert!(invitation.text.contains("Manager"), "the role is named: {}", invitation.text);
    let link = invitation.token();
    assert!(invitation.text.contains(&format!("{PUBLIC_URL}/invitations/accept?token={link}")), "{}", invitation.text);
    let details = app.anonymous(Method::POST, "/invitations/details", Some(json!({"token": link}))).await.ok();
    assert_eq!(details["org_name"], ORG_NAME);
    assert_eq!(details["role_name"], "Manager");
    let signup = app
        .anonymous(
            Method::POST,
            "/auth/signup",
            Some(json!({
                "email": "ivy@example.test", "password": PASSWORD, "first_name": "Ivy", "last_name": "Ingram",
                "invitation_token": link,
            })),
        )
        .await
        .ok();
    assert_eq!(signup["outcome"], "verified", "the invitation link proves the address");
    let ivy = app.login("ivy@example.test", PASSWORD).await.ok()["token"].as_str().unwrap().to_owned();
    let accepted = app.post("/invitations/accept", &ivy, json!({"token": link})).await.ok();
    assert_eq!(accepted["org_id"], org.as_str());
    assert_eq!(accepted["role"], "manager");
    assert_eq!(accepted["origin"], "invitation");
    let members = app.get(&format!("/orgs/{org}/members"), &admin).await.ok();
    let listed: Vec<(&str, &str, &str)> = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap(), m["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [
            ("ada@riverside.test", "administrator", "active"),
            ("ivy@example.test", "manager", "active"),
            ("pat@example.test", "user_plus", "active"),
        ],
        "by last name: Admin, Ingram, Patel"
    );
    assert_eq!(app.get(&format!("/orgs/{org}/invitations"), &admin).await.ok(), json!([]));

    // Patient-facing services and automated recall.
    let capabilities = app.get(&format!("/orgs/{org}/capabilities"), &admin).await.ok();
    let patient_tasks = capability(&capabilities, "patient_task", "service");
    let questionnaires = capability(&capabilities, "questionnaire", "service");
    let recall = capability(&capabilities, "recall", "automation");
    let was = |key: &str| enabled(&capabilities, key);
    let (tasks_were, questionnaires_were) = (was(&patient_tasks), was(&questionnaires));
    let states = app
        .put(
            &format!("/orgs/{org}/capabilities"),
            &admin,
            json!({"capabilities": {&patient_tasks: !tasks_were, &questionnaires: !questionnaires_were, &recall: true}}),
        )
        .await
        .ok();
    for listing in [states, app.get(&format!("/orgs/{org}/capabilities"), &pat).await.ok()] {
        assert_eq!(enabled(&listing, &patient_tasks), !tasks_were, "{listing}");
        assert_eq!(enabled(&listing, &questionnaires), !questionnaires_were, "{listing}");
        assert!(enabled(&listing, &recall), "{listing}");
    }
    // Toggled back, both patient-facing services end up on.
    let states = app
        .put(
            &format!("/orgs/{org}/capabilities"),
            &admin,
            json!({"capabilities": {&patient_tasks: true, &questionnaires: true}}),
        )
        .await
        .ok();
    assert!(enabled(&states, &patient_tasks) && enabled(&states, &questionnaires) && enabled(&states, &recall));
    let org_view = app.get(&format!("/orgs/{org}"), &admin).await.ok();
    assert!(enabled(&org_view["capabilities"], &recall));
    // A member without the permission cannot switch services.
    app.put(&format!("/orgs/{org}/capabilities"), &pat, json!({"capabilities": {&recall: false}}))
        .await
        .expect(403, "forbidden");

    // The recall system's runs are recorded and listed newest first.
    let now = Utc::now().trunc_subsecs(0);
    let first_start = now - Duration::hours(26);
    let first = app
        .post(
            &format!("/orgs/{org}/runs"),
            &admin,
            json!({
                "capability": recall, "started_at": first_start.to_rfc3339(),
                "finished_at": (first_start + Duration::minutes(4)).to_rfc3339(),
                "outcome": "succeeded", "counts": {"patients_contacted": 120, "bookings_made": 31},
            }),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let first = first.body;
    let second_start = now - Duration::hours(2);
    let second = app
        .post(
            &format!("/orgs/{org}/runs"),
            &admin,
            json!({
                "capability": recall, "started_at": second_start.to_rfc3339(),
                "finished_at": (second_start + Duration::minutes(1)).to_rfc3339(),
                "outcome": "partially_succeeded", "detail": "the SMS gateway refused 3 numbers",
                "counts": {"patients_contacted": 40},
            }),
        )
        .await;
    assert_eq!(second.status, 201, "{}", second.body);
    let second = second.body;

    let page = app.get(&format!("/orgs/{org}/runs"), &admin).await.ok();
    let runs = page["items"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{page}");
    assert!(page["next_cursor"].is_null(), "{page}");
    assert_eq!((&runs[0]["id"], &runs[1]["id"]), (&second["id"], &first["id"]), "newest first");
    let newest = &runs[0];
    assert_eq!(newest["capability"], recall.as_str());
    assert_eq!(newest["outcome"], "partially_succeeded");
    assert_eq!(newest["detail"], "the SMS gateway refused 3 numbers");
    assert_eq!(newest["counts"], json!({"patients_contacted": 40}));
    assert_eq!(newest["recorded_by"], admin_id.as_str());
    assert_eq!(time(&newest["started_at"]), second_start);
    assert_eq!(time(&newest["finished_at"]), second_start + Duration::minutes(1));
    let oldest = &runs[1];
    assert_eq!(oldest["outcome"], "succeeded");
    assert_eq!(oldest["detail"], Value::Null);
    assert_eq!(oldest["counts"], json!({"patients_contacted": 120, "bookings_made": 31}));
    assert_eq!(time(&oldest["started_at"]), first_start);
    assert_eq!(time(&oldest["finished_at"]), first_start + Duration::minutes(4));
    assert_eq!(oldest["recorded_by"], admin_id.as_str());
}

async fn user_id(app: &TestApp, token: &str) -> String {
    app.get("/me", token).await.ok()["user"]["id"].as_str().unwrap().to_owned()
}

/// Every email in the outbox to `to`, right now.
fn app_emails_to(app: &TestApp, to: &str) -> Vec<crate::support::Email> {
    crate::support::read_outboxes(&[app.outbox()]).into_values().filter(|e| e.to.contains(to)).collect()
}

/// The key of the one capability of `kind` whose key mentions `fragment`.
#[track_caller]
fn capability(listing: &Value, fragment: &str, kind: &str) -> String {
    let found: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == kind && c["key"].as_str().unwrap().contains(fragment))
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} capability like {fragment:?} in {listing}");
    found[0].to_owned()
}

#[track_caller]
fn enabled(listing: &Value, key: &str) -> bool {
    let entry = listing.as_array().unwrap().iter().find(|c| c["key"] == key);
    entry.unwrap_or_else(|| panic!("no capability {key} in {listing}"))["enabled"].as_bool().unwrap()
}

#[track_caller]
fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap().with_timezone(&Utc)
}
