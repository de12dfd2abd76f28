//! The API over a fresh SQLite file on a random loopback port, with one signed-in
//! administrator of one organisation: what `.ci/run` points schemathesis at, and a quick
//! way to try the API before the `guildhall` binary exists.
//!
//! Prints one JSON line (`{"base_url", "token", "org"}`) once it is listening, then
//! serves until it is stopped.
//!
//! `cargo run -p guildhall-http --example api_server [-- --openapi]` (`--openapi` prints
//! the OpenAPI document and exits).

use std::process::ExitCode;
use std::sync::Arc;

use chrono::Duration;
use guildhall_domain::catalogue::Catalogue;
use guildhall_domain::notification::Notification;
use guildhall_domain::ports::{Clock, Outbox};
use guildhall_domain::usecases::{Guildhall, Ports, Settings, SignUp};
use guildhall_http::system::{Argon2Hasher, Argon2Settings, OsTokens, SystemClock, UuidV7Ids};
use guildhall_http::{AlwaysReady, ApiState, HttpSettings};
use guildhall_store::Store;
use poem::listener::{Acceptor, Listener, TcpListener};

const EMAIL: &str = "owner@guildhall.test";
const PASSWORD: &str = "Example-admin-password-1!";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("api_server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let openapi_only = std::env::args().any(|a| a == "--openapi");
    let path = std::env::temp_dir().join(format!("guildhall-api-server-{}.db", uuid::Uuid::now_v7().simple()));
    let url = if openapi_only { "sqlite::memory:".to_owned() } else { format!("sqlite://{}", path.display()) };
    let store = Arc::new(Store::connect(&url).await?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let hasher = Arc::new(Argon2Hasher::new(Argon2Settings::default())?);
    let ports = Ports::from_store(store.clone(), hasher, clock.clone(), Arc::new(OsTokens), Arc::new(UuidV7Ids));
    let guildhall = Guildhall::new(ports, Arc::new(Catalogue::builtin()), Settings::default());
    let state = ApiState::new(guildhall.clone(), HttpSettings::default(), clock.clone(), Arc::new(AlwaysReady));
    if openapi_only {
        println!("{}", guildhall_http::openapi_json(&state));
        return Ok(());
    }

    store.migrate().await?;
    let accounts = guildhall.accounts();
    accounts
        .sign_up(SignUp {
            email: EMAIL.into(),
            password: PASSWORD.into(),
            first_name: "Example".into(),
            last_name: "Administrator".into(),
            phone: None,
            invitation_token: None,
        })
        .await?;
    let claimed = store.claim(10, clock.now() + Duration::days(1), Duration::minutes(1)).await?;
    let token = claimed
        .iter()
        .find_map(|c| match &c.email.notification {
            Notification::VerifyEmail { token, .. } => Some(token.expose().to_owned()),
            _ => None,
        })
        .ok_or("no verification email was queued")?;
    accounts.verify_email(&token).await?;
    let signed_in = accounts.sign_in(EMAIL, PASSWORD).await?;
    let org = guildhall.organisations().create(signed_in.user, "example-practice", "Example Practice").await?;

    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let address = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).ok_or("no local address")?;
    println!(
        "{}",
        serde_json::json!({
            "base_url": format!("http://{address}"),
            "token": signed_in.token.expose(),
            "org": org.id.to_string(),
        })
    );
    let stopped = async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = async { if let Some(t) = terminate.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
        }
    };
    let served = poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(guildhall_http::routes(state), stopped, Some(std::time::Duration::from_secs(5)))
        .await;
    store.connection().clone().close().await.ok();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(served?)
}
