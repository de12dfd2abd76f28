//! Guildhall's HTTP adapter: the REST API v1 over the domain's use cases.
//!
//! It holds DTOs, session extraction and error mapping only; every rule stays in
//! `guildhall-domain`. [`routes`] gives the whole HTTP surface:
//!
//! - `/api/v1/...`: the API ([`api`]), JSON in and out, errors as RFC 9457 problems
//!   ([`problem`]);
//! - `/openapi.json` and Swagger UI at `/docs`;
//! - `/healthz` (the process answers) and `/readyz` (its dependencies do).
//!
//! [`system`] has the production implementations of the clock, randomness, identifier
//! and Argon2id hashing ports.

#![warn(missing_docs)]

pub mod api;
pub mod conformance;
pub mod problem;
pub mod session;
pub mod state;
pub mod system;
pub mod throttle;

use poem::http::StatusCode;
use poem::http::header::CONTENT_LENGTH;
use poem::web::Json as PoemJson;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler};
use tokio::io::AsyncReadExt;

pub use problem::{ApiError, ApiResult};
pub use state::{AlwaysReady, ApiState, HttpSettings, Readiness};

/// The OpenAPI document of the API, as served at `/openapi.json`.
#[must_use]
pub fn openapi_json(state: &ApiState) -> String {
    conformance::strict_document(&api::service(state).spec())
}

/// The whole HTTP surface, ready to serve.
pub fn routes(state: ApiState) -> impl Endpoint<Output = Response> {
    let service = api::service(&state);
    let document = std::sync::Arc::new(openapi_json(&state));
    let docs = service.swagger_ui();
    let limit = state.settings.body_limit;
    let conformance = std::sync::Arc::new(conformance::Conformance::from_document(&document, "/api/v1"));
    Route::new()
        .nest("/api/v1", service)
        .at(
            "/openapi.json",
            get(poem::endpoint::make_sync(move |_| {
                Response::builder().content_type("application/json; charset=utf-8").body(document.as_str().to_owned())
            })),
        )
        .nest("/docs", docs)
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .around(move |next, request| guard(next, request, limit, conformance.clone()))
        .data(state)
        .catch_all_error(|error| async move {
            // Keep the operation's id on the problem response, for access logs and metrics.
            let operation = error.data::<poem_openapi::OperationId>().copied();
            let mut response = problem::from_poem_error(&error).into_response();
            if let Some(operation) = operation {
                response.set_data(operation);
            }
            response
        })
}

/// Refuses bodies over `limit` bytes with `413`, whether or not they declare a length,
/// without reading more than `limit + 1` bytes of them; then holds the request to the
/// document ([`conformance`]).
async fn guard<E: Endpoint>(
    next: E,
    mut request: Request,
    limit: usize,
    conformance: std::sync::Arc<conformance::Conformance>,
) -> poem::Result<Response> {
    let declared =
        request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(problem::request_too_large().into());
    }
    let body = request.take_body();
    let mut bytes = Vec::new();
    body.into_async_read()
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed-request", "Malformed request", e))?;
    if bytes.len() > limit {
        return Err(problem::request_too_large().into());
    }
    let path = request.uri().path();
    let read_only = ["/healthz", "/readyz", "/openapi.json"].contains(&path) || path.starts_with("/docs");
    if read_only && !matches!(*request.method(), poem::http::Method::GET | poem::http::Method::HEAD) {
        return Ok(method_not_allowed("GET, HEAD"));
    }
    match conformance.check(request.method(), path, &bytes) {
        Ok(()) => {}
        Err(conformance::Refusal::Malformed(problem)) => return Err(problem.into()),
        Err(conformance::Refusal::MethodNotAllowed(allowed)) => {
            let allow = allowed.iter().map(poem::http::Method::as_str).collect::<Vec<_>>().join(", ");
            return Ok(method_not_allowed(&allow));
        }
    }
    request.set_body(bytes);
    Ok(next.call(request).await?.into_response())
}

/// `405` with the `Allow` header RFC 9110 requires.
fn method_not_allowed(allow: &str) -> Response {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("this address accepts {allow}"),
    )
    .into_response();
    if let Ok(value) = allow.parse() {
        response.headers_mut().insert(poem::http::header::ALLOW, value);
    }
    response
}

#[handler]
fn healthz() -> PoemJson<serde_json::Value> {
    PoemJson(serde_json::json!({ "status": "ok" }))
}

#[handler]
async fn readyz(state: poem::web::Data<&ApiState>) -> Response {
    match state.readiness.check().await {
        Ok(()) => PoemJson(serde_json::json!({ "status": "ready" })).into_response(),
        Err(reason) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", reason).into_response(),
    }
}
