//! The physio CRM (the webpt-reach seed): an administrator creates users with their
//! role, facility, access settings, NPS access, lead and intake notifications and score
//! alerts, finds them by name or email, and removes them; aides never message patients;
//! nobody but an administrator manages users.

use serde_json::{Value, json};

use crate::support::{Backend, PUBLIC_URL, TestApp, spawn_app};

const ORG_NAME: &str = "Harbour Physio";
const NEW_PASSWORD: &str = "Harbour-therapist-2026!";

#[tokio::test]
async fn an_administrator_creates_finds_and_removes_users_and_only_administrators_manage_users_on_sqlite() {
    run(&spawn_app(Backend::Sqlite).await).await;
}

#[tokio::test]
async fn an_administrator_creates_finds_and_removes_users_and_only_administrators_manage_users_on_postgres() {
    if !crate::support::postgres_available() {
        return;
    }
    run(&spawn_app(Backend::Postgres).await).await;
}

async fn run(app: &TestApp) {
    let admin = app.signed_up("olivia@harbour.test", "Olivia", "Owner").await;
    let admin_id = app.get("/me", &admin).await.ok()["user"]["id"].as_str().unwrap().to_owned();
    let reply = app.post("/orgs", &admin, json!({"slug": "harbour-physio", "name": ORG_NAME})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let org = reply.body["id"].as_str().unwrap().to_owned();
    let members = format!("/orgs/{org}/members");

    // Facilities first: users are attributed to them.
    let north = facility(app, &admin, &org, "North Quay Clinic").await;
    let south = facility(app, &admin, &org, "South Dock Clinic").await;
    let listed = app.get(&format!("/orgs/{org}/facilities"), &admin).await.ok();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["North Quay Clinic", "South Dock Clinic"]);

    // A licensed therapist, with every setting of the "Create User" form.
    let access = json!({
        "patients": "facility", "lists": "own", "content": "organisation", "workflows": "facility", "nps": "facility",
    });
    let reply = app
        .post(
            &members,
            &admin,
            json!({
                "first_name": "Tara", "last_name": "Therapist", "email": "tara@harbour.test", "aide": false,
                "role": "user_plus", "facilities": [north], "access": access,
                "alerts": ["new_leads", "new_intakes", "nps_low"],
            }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let tara_id = reply.body["user_id"].as_str().unwrap().to_owned();
    let created = reply.body;

    // Read back: every field as entered.
    let tara = app.get(&format!("{members}/{tara_id}"), &admin).await.ok();
    assert_eq!(tara, created, "the creation answer and the read-back agree");
    assert_eq!(tara["user_id"], tara_id.as_str());
    assert_eq!(tara["first_name"], "Tara");
    assert_eq!(tara["last_name"], "Therapist");
    assert_eq!(tara["email"], "tara@harbour.test");
    assert_eq!(tara["aide"], false);
    assert_eq!(tara["role"], "user_plus");
    assert_eq!(tara["facilities"], json!([north]));
    assert_eq!(tara["access"], access);
    assert_eq!(sorted(&tara["alerts"]), ["new_intakes", "new_leads", "nps_low"]);
    assert_eq!(
        sorted(&tara["permissions"]),
        ["campaigns.access", "patients.assign", "patients.message", "reports.view"]
    );
    assert_eq!(tara["state"], "active");
    assert_eq!(tara["origin"], "created_by_administrator");
    assert_eq!(tara["added_by"], admin_id.as_str());
    assert_eq!(tara["password_change_required"], true);
    assert!(tara["temporary_password_expires_at"].is_string(), "{tara}");
    let welcome = app.email("tara@harbour.test", "account for").await;
    assert_eq!(welcome.subject, format!("Your new Guildhall account for {ORG_NAME}"));
    assert!(welcome.text.contains(&format!("{PUBLIC_URL}/login?email=tara%40harbour.test")), "{}", welcome.text);

    // An aide (not a licensed therapist), with promoter and passive score alerts.
    let reply = app
        .post(
            &members,
            &admin,
            json!({
                "first_name": "Andy", "last_name": "Aide", "email": "andy@harbour.test", "aide": true,
                "role": "user", "facilities": [south], "access": {"patients": "own", "nps": "none"},
                "alerts": ["nps_passive", "nps_promoter"],
            }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let andy_id = reply.body["user_id"].as_str().unwrap().to_owned();
    let andy = app.get(&format!("{members}/{andy_id}"), &admin).await.ok();
    assert_eq!((andy["first_name"].as_str(), andy["last_name"].as_str()), (Some("Andy"), Some("Aide")));
    assert_eq!(andy["aide"], true);
    assert_eq!(andy["role"], "user");
    assert_eq!(andy["facilities"], json!([south]));
    assert_eq!(andy["access"], json!({"patients": "own"}), "`none` is the same as not listed");
    assert_eq!(sorted(&andy["alerts"]), ["nps_passive", "nps_promoter"]);

    // An aide never messages patients nor has them assigned, whatever the role grants.
    assert_eq!(sorted(&andy["permissions"]), ["reports.view"], "the user role's patient permissions are withheld");
    let explained = app.get(&format!("{members}/{andy_id}/explain?permission=patients.message"), &admin).await.ok();
    assert_eq!(explained["allowed"], false, "{explained}");
    assert_eq!(explained["reasons"].as_array().unwrap().last().unwrap()["denial"], "aide", "{explained}");
    // Giving the aide a role that grants patient messaging still does not let them message.
    let promoted = app.patch(&format!("{members}/{andy_id}"), &admin, json!({"role": "manager"})).await.ok();
    assert_eq!(promoted["role"], "manager");
    let permissions = sorted(&promoted["permissions"]);
    assert!(!permissions.contains(&"patients.message".to_owned()), "{promoted}");
    assert!(!permissions.contains(&"patients.assign".to_owned()), "{promoted}");
    assert!(permissions.contains(&"financials.access".to_owned()), "the rest of the role applies: {promoted}");
    let explained = app.get(&format!("{members}/{andy_id}/explain?permission=patients.message"), &admin).await.ok();
    assert_eq!(explained["allowed"], false, "{explained}");

    // Search by name (first, last, full, any case) and by email.
    assert_eq!(search(app, &admin, &members, "q=tara").await, ["tara@harbour.test"]);
    assert_eq!(search(app, &admin, &members, "q=THERAPIST").await, ["tara@harbour.test"]);
    assert_eq!(search(app, &admin, &members, "q=Tara%20Therapist").await, ["tara@harbour.test"]);
    assert_eq!(search(app, &admin, &members, "q=andy%40harbour.test").await, ["andy@harbour.test"]);
    assert_eq!(
        search(app, &admin, &members, "q=harbour.test").await,
        ["andy@harbour.test", "olivia@harbour.test", "tara@harbour.test"],
        "by last name: Aide, Owner, Therapist"
    );
    assert_eq!(search(app, &admin, &members, "q=nobody").await, Vec::<String>::new());
    assert_eq!(search(app, &admin, &members, &format!("facility={south}")).await, ["andy@harbour.test"]);
    let page = app.get(&format!("{members}?q=tara"), &admin).await.ok();
    let item = &page["items"][0];
    assert_eq!(item["user_id"], tara_id.as_str());
    assert_eq!((item["first_name"].as_str(), item["last_name"].as_str()), (Some("Tara"), Some("Therapist")));
    assert_eq!(item["role"], "user_plus");
    assert_eq!(item["facilities"], json!([north]));
    assert_eq!(item["aide"], false);

    // The therapist signs in; a member who is not an administrator manages no users.
    let temporary = welcome.temporary_password();
    let tara_token = app.login("tara@harbour.test", &temporary).await.ok()["token"].as_str().unwrap().to_owned();
    app.post("/auth/password", &tara_token, json!({"new_password": NEW_PASSWORD})).await.ok();
    let new_user = json!({"first_name": "Eve", "last_name": "Extra", "email": "eve@harbour.test", "role": "user"});
    app.post(&members, &tara_token, new_user).await.expect(403, "forbidden");
    app.get(&members, &tara_token).await.expect(403, "forbidden");
    app.get(&format!("{members}?q=andy"), &tara_token).await.expect(403, "forbidden");
    app.get(&format!("{members}/{andy_id}"), &tara_token).await.expect(403, "forbidden");
    app.patch(&format!("{members}/{andy_id}"), &tara_token, json!({"aide": false})).await.expect(403, "forbidden");
    app.delete(&format!("{members}/{andy_id}"), &tara_token).await.expect(403, "forbidden");
    let after = app.get(&format!("{members}/{andy_id}"), &admin).await.ok();
    assert_eq!((after["aide"].as_bool(), after["state"].as_str()), (Some(true), Some("active")), "nothing changed");
    assert_eq!(search(app, &admin, &members, "q=eve").await, Vec::<String>::new(), "nobody was created");
    assert!(
        crate::support::read_outboxes(&[app.outbox()]).values().all(|e| !e.to.contains("eve@harbour.test")),
        "and nobody was emailed"
    );

    // The administrator deletes the aide: gone from the list and from lookups.
    let removed = app.delete(&format!("{members}/{andy_id}"), &admin).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(
        search(app, &admin, &members, "").await,
        ["olivia@harbour.test", "tara@harbour.test"],
        "Andy is no longer listed"
    );
    assert_eq!(search(app, &admin, &members, "q=andy").await, Vec::<String>::new());
    app.get(&format!("{members}/{andy_id}"), &admin).await.expect(404, "not-found");
    app.delete(&format!("{members}/{andy_id}"), &admin).await.expect(404, "not-found");
}

async fn facility(app: &TestApp, admin: &str, org: &str, name: &str) -> String {
    let reply = app.post(&format!("/orgs/{org}/facilities"), admin, json!({"name": name})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["name"], name);
    reply.body["id"].as_str().unwrap().to_owned()
}

/// The emails of the members a search finds, in the order listed.
async fn search(app: &TestApp, admin: &str, members: &str, query: &str) -> Vec<String> {
    let page = app.get(&format!("{members}?{query}"), admin).await.ok();
    page["items"].as_array().unwrap().iter().map(|m| m["email"].as_str().unwrap().to_owned()).collect()
}

fn sorted(list: &Value) -> Vec<String> {
    let mut items: Vec<String> = list.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    items.sort();
    items
}
