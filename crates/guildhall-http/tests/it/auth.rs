//! Sign-up, sign-in, sessions, cookies, throttling and the error contract.

use serde_json::json;

use crate::support::spawn_app;

#[tokio::test]
async fn a_person_signs_up_verifies_signs_in_and_sees_themselves() {
    let app = spawn_app().await;
    let token = app.signed_in("ada@example.org").await;
    let me = app.get("/me", &token).await.ok();
    assert_eq!(me["user"]["email"], "ada@example.org");
    assert_eq!(me["user"]["email_verified"], true);
    assert_eq!(me["memberships"], json!([]));
}
