//! Sign-up, sign-in, sessions, cookies, throttling and the error contract.

use chrono::Duration;
use reqwest::Method;
use serde_json::json;

use crate::support::{ORIGIN, PASSWORD, spawn_app, spawn_postgres_app, spawn_two_instances};

#[tokio::test]
async fn a_person_signs_up_verifies_signs_in_and_sees_themselves() {
    let app = spawn_app().await;
    let token = app.signed_in("ada@example.org").await;
    let me = app.get("/me", &token).await.ok();
    assert_eq!(me["user"]["email"], "ada@example.org");
    assert_eq!(me["user"]["email_verified"], true);
    assert_eq!(me["memberships"], json!([]));
}

#[tokio::test]
async fn the_same_flow_works_on_postgres() {
    let Some(app) = spawn_postgres_app().await else { return };
    let token = app.signed_in("ada@example.org").await;
    let org = app.create_org(&token, "ada-clinic").await;
    let fetched = app.get("/orgs/ada-clinic", &token).await.ok();
    assert_eq!(fetched["id"], org.as_str());
}

#[tokio::test]
async fn sign_in_sets_a_host_only_http_only_strict_secure_cookie() {
    let app = spawn_app().await;
    app.signed_in("ada@example.org").await;
    let reply = app.login("ada@example.org", PASSWORD).await;
    let cookie = reply.header("set-cookie").unwrap().to_owned();
    let token = reply.ok()["token"].as_str().unwrap().to_owned();
    assert!(cookie.starts_with(&format!("__Host-guildhall_session={token};")), "{cookie}");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing from {cookie}");
    }
    assert!(!cookie.contains("Domain"), "a __Host- cookie must not name a domain");
}

#[tokio::test]
async fn a_cookie_session_reads_freely_but_changes_state_only_from_our_own_origin() {
    let app = spawn_app().await;
    let token = app.signed_in("ada@example.org").await;
    let cookie = format!("__Host-guildhall_session={token}");
    let me = app.client.get(app.url("/api/v1/me")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(me.status(), 200);

    for origin in [None, Some("https://evil.example")] {
        let mut request = app.client.post(app.url("/api/v1/auth/logout")).header("cookie", &cookie);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let reply = crate::support::TestApp::read(request.send().await.unwrap()).await;
        reply.expect(403, "cross-origin-request");
        app.get("/me", &token).await.ok();
    }

    let logout = app.client.post(app.url("/api/v1/auth/logout")).header("cookie", &cookie).header("origin", ORIGIN);
    let reply = crate::support::TestApp::read(logout.send().await.unwrap()).await;
    assert!(reply.header("set-cookie").unwrap().contains("Max-Age=0"));
    reply.ok();
    app.get("/me", &token).await.expect(401, "unauthenticated");
}

#[tokio::test]
async fn an_unknown_email_and_a_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    app.signed_in("ada@example.org").await;
    let unknown = app.login("nobody@example.org", PASSWORD).await;
    let wrong = app.login("ada@example.org", "Wrong-password-123!").await;
    assert_eq!((unknown.status, &unknown.body), (wrong.status, &wrong.body));
    assert_eq!(unknown.problem(), "invalid-credentials");
    assert_eq!(unknown.status, 401);
}

#[tokio::test]
async fn signing_up_with_a_registered_email_reads_like_a_new_sign_up() {
    let app = spawn_app().await;
    app.signed_in("ada@example.org").await;
    let form =
        |email: &str| json!({"email": email, "password": PASSWORD, "first_name": "Ada", "last_name": "Lovelace"});
    let again = app.anonymous(Method::POST, "/auth/signup", Some(form("ada@example.org"))).await;
    let fresh = app.anonymous(Method::POST, "/auth/signup", Some(form("grace@example.org"))).await;
    assert_eq!((again.status, &again.body), (fresh.status, &fresh.body));
    assert_eq!(fresh.body["outcome"], "verification_sent");
}

#[tokio::test]
async fn a_weak_password_is_refused_listing_every_rule_it_breaks() {
    let app = spawn_app().await;
    let reply = app
        .anonymous(
            Method::POST,
            "/auth/signup",
            Some(json!({"email": "not-an-email", "password": "short", "first_name": "", "last_name": "L"})),
        )
        .await;
    let body = reply.expect(422, "invalid-input");
    let errors = body["errors"].as_array().unwrap();
    let fields: Vec<&str> = errors.iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"email") && fields.contains(&"first_name"), "{body}");
    let password_rules = fields.iter().filter(|f| **f == "password").count();
    assert!(password_rules >= 3, "every broken password rule is listed: {body}");
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_with_retry_after_and_never_locked_out_for_good() {
    let app = spawn_app().await;
    app.signed_in("ada@example.org").await;
    for _ in 0..10 {
        app.login("ada@example.org", "Wrong-password-123!").await.expect(401, "invalid-credentials");
    }
    let throttled = app.login("ada@example.org", PASSWORD).await;
    assert_eq!(throttled.header("retry-after"), Some("1"));
    assert_eq!(throttled.body["retry_after"], 1);
    throttled.expect(429, "too-many-attempts");

    app.clock.advance(Duration::seconds(1));
    app.login("ada@example.org", "Wrong-password-123!").await.expect(401, "invalid-credentials");
    let longer = app.login("ada@example.org", PASSWORD).await;
    assert_eq!(longer.header("retry-after"), Some("2"), "the delay doubles");

    app.clock.advance(Duration::seconds(2));
    app.login("ada@example.org", PASSWORD).await.ok();
    // The account's count is cleared; the address's is not (one success must not buy an
    // attacker a fresh allowance for guessing other accounts), so it still paces.
    app.login("ada@example.org", PASSWORD).await.expect(429, "too-many-attempts");
    app.clock.advance(Duration::seconds(2));
    app.login("ada@example.org", PASSWORD).await.ok();
}

#[tokio::test]
async fn instances_sharing_a_database_share_the_failed_sign_in_count() {
    let (first, second) = spawn_two_instances().await;
    first.signed_in("ada@example.org").await;
    for instance in [&first, &second, &first, &second, &first, &second, &first, &second, &first, &second] {
        instance.login("ada@example.org", "Wrong-password-123!").await.expect(401, "invalid-credentials");
    }
    // Had each instance counted on its own, each would have seen only 5 failures.
    for instance in [&first, &second] {
        let throttled = instance.login("ada@example.org", PASSWORD).await;
        assert_eq!(throttled.header("retry-after"), Some("1"));
        throttled.expect(429, "too-many-attempts");
    }
    first.clock.advance(Duration::seconds(1));
    second.login("ada@example.org", PASSWORD).await.ok();
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    let app = spawn_app().await;
    let first = app.signed_in("ada@example.org").await;
    let second = app.login("ada@example.org", PASSWORD).await.ok()["token"].as_str().unwrap().to_owned();
    let new_password = "Another-long-password-7?";
    app.post("/auth/password", &first, json!({"current_password": "Wrong-password-1!", "new_password": new_password}))
        .await
        .expect(422, "invalid-input");
    app.post("/auth/password", &first, json!({"current_password": PASSWORD, "new_password": new_password})).await.ok();
    app.get("/me", &first).await.ok();
    app.get("/me", &second).await.expect(401, "unauthenticated");
    app.login("ada@example.org", PASSWORD).await.expect(401, "invalid-credentials");
    app.login("ada@example.org", new_password).await.ok();
}

#[tokio::test]
async fn a_password_reset_link_sets_a_new_password_and_unknown_addresses_learn_nothing() {
    let app = spawn_app().await;
    app.signed_in("ada@example.org").await;
    let known = app.anonymous(Method::POST, "/auth/password-reset", Some(json!({"email": "ada@example.org"}))).await;
    let unknown =
        app.anonymous(Method::POST, "/auth/password-reset", Some(json!({"email": "nobody@example.org"}))).await;
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    assert!(app.emails_to("nobody@example.org").await.is_empty());

    let token = app.last_token_to("ada@example.org").await;
    let new_password = "Reset-password-long-9#";
    let confirm = json!({"token": token, "new_password": new_password});
    app.anonymous(Method::POST, "/auth/password-reset/confirm", Some(confirm.clone())).await.ok();
    app.anonymous(Method::POST, "/auth/password-reset/confirm", Some(confirm)).await.expect(410, "token-used");
    app.login("ada@example.org", new_password).await.ok();
}

#[tokio::test]
async fn sessions_end_after_the_idle_timeout() {
    let app = spawn_app().await;
    let token = app.signed_in("ada@example.org").await;
    app.clock.advance(Duration::hours(13));
    app.get("/me", &token).await.expect(401, "unauthenticated");
}

#[tokio::test]
async fn every_error_is_a_problem_document() {
    let app = spawn_app().await;
    let token = app.signed_in("ada@example.org").await;

    let unreadable = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    crate::support::TestApp::read(unreadable).await.expect(400, "malformed-request");

    let mistyped = app.anonymous(Method::POST, "/auth/password-reset", Some(json!({"email": 5}))).await;
    let body = mistyped.expect(400, "malformed-request");
    assert_eq!(body["detail"], "`email` must be a string");

    let huge = "x".repeat(70 * 1024);
    app.anonymous(Method::POST, "/auth/login", Some(json!({"email": huge, "password": "p"})))
        .await
        .expect(413, "request-too-large");

    app.get("/nothing-here", &token).await.expect(404, "not-found");
    let wrong_method = app.call(Method::PUT, "/me", Some(&token), None).await;
    assert_eq!(wrong_method.header("allow"), Some("GET, PATCH"));
    wrong_method.expect(405, "method-not-allowed");

    app.anonymous(Method::GET, "/me", None).await.expect(401, "unauthenticated");
    app.call(Method::GET, "/me", Some("not-a-token"), None).await.expect(401, "unauthenticated");
}

#[tokio::test]
async fn health_readiness_the_document_and_its_viewer_are_served() {
    let app = spawn_app().await;
    for (path, needle) in
        [("/healthz", "\"ok\""), ("/readyz", "\"ready\""), ("/openapi.json", "\"/orgs/{org}\""), ("/docs", "swagger")]
    {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let text = response.text().await.unwrap();
        assert!(text.contains(needle), "{path} does not mention {needle}");
    }
}
