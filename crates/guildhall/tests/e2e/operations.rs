//! What an operator relies on: health, readiness, metrics, request IDs, the command
//! line's configuration checks, migrations and operator actions.

use reqwest::Method;
use serde_json::json;

use crate::support::{Backend, PASSWORD, run_command, spawn_app, spawn_app_with, spawn_process, temp_dir, test_env};

#[tokio::test]
async fn health_readiness_and_metrics_answer_and_every_response_carries_a_request_id() {
    let app = spawn_app(Backend::Sqlite).await;
    let health = app.client.get(app.url("/healthz")).header("x-request-id", "probe-42").send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["x-request-id"], "probe-42", "a caller's request id is echoed");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let generated = ready.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "one is made when none is sent: {generated}");
    let refused =
        app.client.get(app.url("/healthz")).header("x-request-id", "bad id with spaces").send().await.unwrap();
    assert_ne!(refused.headers()["x-request-id"], "bad id with spaces", "an unsafe id is replaced");

    app.login("nobody@example.test", "wrong-password-123").await.expect(401, "invalid-credentials");
    app.anonymous(
        Method::POST,
        "/auth/signup",
        Some(json!({"email": "x@example.test", "password": PASSWORD, "first_name": "X", "last_name": "Y"})),
    )
    .await
    .ok();
    app.email("x@example.test", "onfirm").await;

    // The file is written before the message is marked sent: wait until it is.
    let mut text = String::new();
    for _ in 0..100 {
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), 200);
        assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        text = metrics.text().await.unwrap();
        if text.contains(r#"guildhall_outbox_messages{state="pending"} 0"#) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for expected in [
        r#"guildhall_http_requests_total{method="GET",operation="healthz",status="200"} 2"#,
        r#"guildhall_http_requests_total{method="POST",operation="login",status="401"} 1"#,
        r#"guildhall_http_requests_total{method="POST",operation="sign_up",status="200"} 1"#,
        r#"guildhall_sign_in_failures_total{reason="wrong_credentials"} 1"#,
        r#"guildhall_http_request_duration_seconds_count{method="POST",operation="login"} 1"#,
        r#"guildhall_outbox_messages{state="pending"} 0"#,
        r#"guildhall_outbox_messages{state="dead"} 0"#,
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
}

#[tokio::test]
async fn readiness_reports_a_database_behind_this_build() {
    let app = spawn_app(Backend::Sqlite).await;
    let url = format!("sqlite://{}", app.data_dir.join("guildhall.db").display());
    let store = guildhall_store::Store::connect(&url).await.unwrap();
    let last = store.migrations().await.unwrap().last().unwrap().name.clone();
    store.migrate_down_by(1).await.unwrap();
    let reply = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(reply.status(), 503);
    let body: serde_json::Value = reply.json().await.unwrap();
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(&last) && detail.contains("guildhall migrate up"), "{detail}");
    store.migrate().await.unwrap();
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn invalid_configuration_stops_the_binary_naming_the_key() {
    let dir = temp_dir("config");
    let mut env = test_env(&dir, None);
    env.push(("GUILDHALL_ARGON2__ITERATIONS".into(), "0".into()));
    let (code, _, stderr) = run_command(&["check-config"], &env).await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("argon2.iterations"), "{stderr}");

    let file = dir.join("guildhall.toml");
    std::fs::write(&file, "listen = \"nowhere\"\n").unwrap();
    let mut env = test_env(&dir, None);
    env.retain(|(key, _)| key != "GUILDHALL_LISTEN");
    let (code, _, stderr) = run_command(&["--config", file.to_str().unwrap(), "serve"], &env).await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("`listen`") && stderr.contains("guildhall.toml"), "{stderr}");

    let mut env = test_env(&dir, None);
    env.push(("GUILDHALL_LSTEN".into(), "127.0.0.1:1".into()));
    let (code, _, stderr) = run_command(&["check-config"], &env).await;
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("lsten") && stderr.contains("GUILDHALL_LSTEN"), "{stderr}");

    let (code, stdout, stderr) = run_command(&["check-config"], &test_env(&dir, None)).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("configuration OK") && stdout.contains("public URL: https://guildhall.test"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn migrate_applies_lists_and_reverts() {
    let dir = temp_dir("migrate");
    let env = test_env(&dir, None);
    let (code, stdout, _) = run_command(&["migrate", "status"], &env).await;
    assert_eq!(code, Some(0));
    assert!(stdout.lines().all(|l| l.starts_with("pending")), "{stdout}");
    let (code, _, stderr) = run_command(&["migrate", "up"], &env).await;
    assert_eq!(code, Some(0), "{stderr}");
    let (_, stdout, _) = run_command(&["migrate", "status"], &env).await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 2 && lines.iter().all(|l| l.starts_with("applied")), "{stdout}");
    let (code, _, _) = run_command(&["migrate", "down"], &env).await;
    assert_eq!(code, Some(0));
    let (_, stdout, _) = run_command(&["migrate", "status"], &env).await;
    let after: Vec<&str> = stdout.lines().collect();
    assert!(after.last().unwrap().starts_with("pending"), "only the last is reverted: {stdout}");
    assert!(after[..after.len() - 1].iter().all(|l| l.starts_with("applied")), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn an_operator_creates_the_first_organisation_whose_administrator_chooses_a_password_by_email() {
    let dir = temp_dir("admin");
    let env = test_env(&dir, None);
    let (code, stdout, stderr) = run_command(
        &[
            "admin",
            "create-org",
            "--slug",
            "riverside",
            "--name",
            "Riverside Practice",
            "--admin-email",
            "manager@riverside.test",
            "--first-name",
            "Rita",
            "--last-name",
            "Manager",
        ],
        &env,
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("Riverside Practice") && stdout.contains("choose its password"), "{stdout}");
    let (code, _, stderr) = run_command(
        &[
            "admin",
            "create-org",
            "--slug",
            "riverside",
            "--name",
            "Again",
            "--admin-email",
            "x@riverside.test",
            "--first-name",
            "X",
            "--last-name",
            "Y",
        ],
        &env,
    )
    .await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("riverside"), "a taken slug is refused by name: {stderr}");

    let server = spawn_process(dir.clone(), &env).await;
    let client = reqwest::Client::new();
    let api = |path: &str| format!("{}/api/v1{path}", server.base);
    let login = json!({"email": "manager@riverside.test", "password": PASSWORD});
    let refused = client.post(api("/auth/login")).json(&login).send().await.unwrap();
    assert_eq!(refused.status(), 401, "there is no default password");

    let email =
        crate::support::wait_for_emails(&[server.outbox()], "manager@riverside.test", "Riverside", 1).await.remove(0);
    let confirmed = client
        .post(api("/auth/password-reset/confirm"))
        .json(&json!({"token": email.token(), "new_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(confirmed.status().is_success(), "{:?}", confirmed.text().await);
    let session: serde_json::Value =
        client.post(api("/auth/login")).json(&login).send().await.unwrap().json().await.unwrap();
    let token = session["token"].as_str().unwrap();
    let org: serde_json::Value =
        client.get(api("/orgs/riverside")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    assert_eq!(org["name"], "Riverside Practice");

    let (code, _, stderr) = run_command(&["admin", "end-sessions", "--email", "manager@riverside.test"], &env).await;
    assert_eq!(code, Some(0), "{stderr}");
    let after = client.get(api("/me")).bearer_auth(token).send().await.unwrap();
    assert_eq!(after.status(), 401, "the operator ended the session");
    let (code, _, stderr) = run_command(&["admin", "end-sessions", "--email", "nobody@riverside.test"], &env).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("nobody@riverside.test"), "{stderr}");
}

#[tokio::test]
async fn organisation_creation_can_be_reserved_to_operators() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUILDHALL_ORGANISATION_CREATION", "operators")]).await;
    let token = app.signed_up("founder@example.test", "Fay", "Founder").await;
    app.post("/orgs", &token, json!({"slug": "mine", "name": "Mine"}))
        .await
        .expect(403, "organisation-creation-restricted");
}
