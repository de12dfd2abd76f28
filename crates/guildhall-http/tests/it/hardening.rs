//! Hardening found in review: throttling under concurrency and on password changes, the
//! hashing semaphore under cancelled requests, `Allow` on every 405.

use std::time::Instant;

use guildhall_domain::password::Password;
use guildhall_domain::ports::PasswordHasher as _;
use guildhall_http::system::{Argon2Hasher, Argon2Settings};
use serde_json::json;

use crate::support::{PASSWORD, spawn_app};

/// Finding 1: the throttle is checked before the sign-in and only charged after it, so
/// a burst of concurrent guesses all pass the check: ten "free" failures become as many
/// as the attacker can send at once, and again each time a delay runs out.
#[tokio::test]
async fn concurrent_wrong_sign_ins_cannot_exceed_the_free_failures() {
    let app = spawn_app().await;
    app.signed_in("ada@example.org").await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let request = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": "ada@example.org", "password": format!("Wrong-password-{i}!")}));
        tasks.push(tokio::spawn(async move { request.send().await.unwrap().status().as_u16() }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let evaluated = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        evaluated <= 10,
        "{evaluated} of 40 concurrent guesses had their password checked ({throttled} throttled); at most 10 free failures allowed"
    );
}

/// Finding 2: `Argon2Hasher::run` holds its semaphore permit in the async caller, not in
/// the blocking task. When the caller is dropped (hyper drops a handler's future when the
/// client disconnects), the permit is released while the hash keeps running on the
/// blocking pool, so `concurrency` does not bound the hashes actually running.
#[test]
fn a_cancelled_hash_keeps_its_permit_until_the_hash_ends() {
    const NAME: &str = "argon-review";
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().thread_name(NAME).build().unwrap();
    let hasher =
        Argon2Hasher::new(Argon2Settings { memory_kib: 16 * 1024, iterations: 4, parallelism: 1, concurrency: 1 })
            .unwrap();
    let blocking_threads = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim() == NAME)
            .count()
    };
    runtime.block_on(async {
        let password = Password::new(PASSWORD);
        let started = Instant::now();
        hasher.verify_dummy(&password).await.unwrap();
        let one_hash = started.elapsed();
        // Start a hash and walk away from it, four times, well within one hash's time.
        for _ in 0..4 {
            let _ = tokio::time::timeout(one_hash / 10, hasher.verify_dummy(&password)).await;
        }
        let running = blocking_threads();
        assert!(running <= 2, "{running} blocking threads hash at once with concurrency 1 (one hash: {one_hash:?})");
    });
}

/// Finding 3: wrong current passwords on `POST /auth/password` are never throttled, so
/// whoever holds a session token (a stolen bearer token) can guess the account's password
/// at the hash rate, and keep it after the session ends.
#[tokio::test]
async fn wrong_current_passwords_on_a_password_change_are_throttled() {
    let app = spawn_app().await;
    let token = app.signed_in("ada@example.org").await;
    let mut last = None;
    for i in 0..15 {
        let reply = app
            .post(
                "/auth/password",
                &token,
                json!({"current_password": format!("Guess-{i}-xyz!"), "new_password": "Another-horse-battery-43!"}),
            )
            .await;
        last = Some(reply.status);
        if reply.status == 429 {
            break;
        }
    }
    assert_eq!(last, Some(429), "15 wrong current passwords in a row were all checked");
}

/// Finding 4 (low): outside `/api/v1` a wrong method gets `405` from the framework via the
/// catch-all, which has no `Allow` header (RFC 9110 §15.5.6 requires one).
#[tokio::test]
async fn a_405_outside_the_api_names_the_allowed_methods() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let reply = crate::support::TestApp::read(app.client.post(app.url(path)).send().await.unwrap()).await;
        assert_eq!(reply.header("allow"), Some("GET, HEAD"), "POST {path}: {}", reply.body);
        reply.expect(405, "method-not-allowed");
    }
}
