//! Scenario 4: two `guildhall serve` processes on one PostgreSQL database.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{
    Backend, PASSWORD, Process, call, drop_database, fresh_database, postgres_available, read_outboxes, run_command,
    spawn_process, temp_dir, test_env, wait_for_emails,
};

async fn api(
    process: &Process,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> crate::support::Reply {
    call(&reqwest::Client::new(), &process.base, method, path, token, body).await
}

#[tokio::test]
async fn two_instances_on_one_postgres_database_accept_an_invitation_once_and_send_every_email_once() {
    if !postgres_available() {
        return;
    }
    let (url, database) = fresh_database(Backend::Postgres).await;
    let url = url.unwrap();
    // Several instances: migrations run once, by the operator, not by each instance.
    let setup_dir = temp_dir("scale-setup");
    let mut env = test_env(&setup_dir, Some(&url));
    env.push(("GUILDHALL_AUTO_MIGRATE".into(), "false".into()));
    let (code, _, stderr) = run_command(&["migrate", "up"], &env).await;
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = run_command(
        &[
            "admin",
            "create-org",
            "--slug",
            "shared",
            "--name",
            "Shared Practice",
            "--admin-email",
            "admin@shared.test",
            "--first-name",
            "Ann",
            "--last-name",
            "Admin",
        ],
        &env,
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");

    let (dir_a, dir_b) = (temp_dir("scale-a"), temp_dir("scale-b"));
    let mut env_a = test_env(&dir_a, Some(&url));
    env_a.push(("GUILDHALL_AUTO_MIGRATE".into(), "false".into()));
    let mut env_b = test_env(&dir_b, Some(&url));
    env_b.push(("GUILDHALL_AUTO_MIGRATE".into(), "false".into()));
    let (a, b) = tokio::join!(spawn_process(dir_a, &env_a), spawn_process(dir_b, &env_b));
    let outboxes = [a.outbox(), b.outbox()];
    use reqwest::Method;

    // The administrator's set-password link is delivered by one of the two.
    let link = wait_for_emails(&outboxes, "admin@shared.test", "Shared Practice", 1).await.remove(0);
    api(
        &a,
        Method::POST,
        "/auth/password-reset/confirm",
        None,
        Some(json!({"token": link.token(), "new_password": PASSWORD})),
    )
    .await
    .ok();
    // A session made on one instance works on the other.
    let admin =
        api(&a, Method::POST, "/auth/login", None, Some(json!({"email": "admin@shared.test", "password": PASSWORD})))
            .await
            .ok();
    let admin = admin["token"].as_str().unwrap().to_owned();
    api(&b, Method::GET, "/me", Some(&admin), None).await.ok();

    // Concurrent accepts of one invitation, half on each instance: one membership.
    api(
        &b,
        Method::POST,
        "/orgs/shared/invitations",
        Some(&admin),
        Some(json!({"email": "joiner@shared.test", "role": "user"})),
    )
    .await
    .ok();
    api(
        &a,
        Method::POST,
        "/auth/signup",
        None,
        Some(json!({"email": "joiner@shared.test", "password": PASSWORD, "first_name": "Jo", "last_name": "Joiner"})),
    )
    .await
    .ok();
    let verify = wait_for_emails(&outboxes, "joiner@shared.test", "onfirm", 1).await.remove(0);
    api(&b, Method::POST, "/auth/verify-email", None, Some(json!({"token": verify.token()}))).await.ok();
    let joiner =
        api(&b, Method::POST, "/auth/login", None, Some(json!({"email": "joiner@shared.test", "password": PASSWORD})))
            .await
            .ok();
    let joiner = joiner["token"].as_str().unwrap().to_owned();
    let invitation = wait_for_emails(&outboxes, "joiner@shared.test", "invited you", 1).await.remove(0).token();
    let attempts = (0..12).map(|i| {
        let target = if i % 2 == 0 { &a } else { &b };
        api(target, Method::POST, "/invitations/accept", Some(&joiner), Some(json!({"token": invitation})))
    });
    let replies = futures::future::join_all(attempts).await;
    let accepted = replies.iter().filter(|r| (200..300).contains(&r.status)).count();
    assert_eq!(accepted, 1, "{replies:#?}");
    assert!(replies.iter().all(|r| (200..300).contains(&r.status) || [409, 410].contains(&r.status)), "{replies:#?}");
    let members = api(&a, Method::GET, "/orgs/shared/members?limit=100", Some(&admin), None).await.ok();
    let joined = members["items"].as_array().unwrap().iter().filter(|m| m["email"] == "joiner@shared.test").count();
    assert_eq!(joined, 1, "{members}");

    // One outbox, two dispatchers: 30 invitations, each delivered exactly once.
    for i in 0..30 {
        let target = if i % 2 == 0 { &a } else { &b };
        api(
            target,
            Method::POST,
            "/orgs/shared/invitations",
            Some(&admin),
            Some(json!({"email": format!("guest{i}@shared.test"), "role": "user"})),
        )
        .await
        .ok();
    }
    let delivered = wait_for_emails(&outboxes, "@shared.test", "invited you", 31).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let all = read_outboxes(&outboxes);
    let invitations: Vec<_> = all.values().filter(|e| e.subject.contains("invited you")).collect();
    assert_eq!(invitations.len(), 31, "every invitation email exactly once: {delivered:#?}");
    let ids: BTreeSet<&str> = all.values().map(|e| e.message_id.as_str()).collect();
    assert_eq!(ids.len(), all.len(), "no message was written by both instances");
    let recipients: BTreeSet<&str> = invitations.iter().map(|e| e.to.as_str()).collect();
    assert_eq!(recipients.len(), 31);

    drop((a, b));
    std::fs::remove_dir_all(&setup_dir).ok();
    drop_database(database);
}
