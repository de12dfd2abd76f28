//! RFC 9457 problem details: the one shape of every error this API returns.
//!
//! Each kind of error has a stable `type` URI (`urn:guildhall:problem:<slug>`) that
//! clients may branch on; `title` is fixed per type, `detail` says what happened and what
//! to do, and validation problems list every field error at once. Mapping a domain error
//! to a problem is an exhaustive `match` in the module of the resource that calls it, so
//! a new domain error does not compile until someone decides its status.

use std::fmt;

use guildhall_domain::error::{AccessError, Invalid, Unexpected};
use guildhall_domain::password::PasswordRejected;
use guildhall_domain::values::InvalidValue;
use poem::http::StatusCode;
use poem::http::header::{CONTENT_TYPE, RETRY_AFTER};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type as _;
use poem_openapi::{ApiResponse, Object};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The prefix of every problem `type`.
pub const TYPE_PREFIX: &str = "urn:guildhall:problem:";

/// An RFC 9457 problem.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename = "Problem")]
pub struct ProblemBody {
    /// A stable URI naming the kind of problem (`urn:guildhall:problem:<slug>`).
    #[oai(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem; the same for every occurrence.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What happened in this occurrence, and what to do about it.
    pub detail: String,
    /// Every invalid field, for validation problems.
    #[oai(skip_serializing_if_is_empty, default)]
    pub errors: Vec<FieldError>,
    /// For `429`: seconds to wait before trying again (also sent as `Retry-After`).
    #[oai(skip_serializing_if_is_none)]
    pub retry_after: Option<u64>,
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FieldError {
    /// The field, as the request names it (`email`, `password`, `settings.join_policy`).
    pub field: String,
    /// What is wrong with it, as a sentence a person can act on.
    pub message: String,
}

/// An error response: a problem with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError(pub ProblemBody);

/// `Result` with this API's error.
pub type ApiResult<T> = Result<T, ApiError>;

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.0.status, self.0.title, self.0.detail)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// A problem of type `slug` with this status, title and detail.
    #[must_use]
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl fmt::Display) -> Self {
        Self(ProblemBody {
            kind: format!("{TYPE_PREFIX}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.to_string(),
            errors: Vec::new(),
            retry_after: None,
        })
    }

    /// Adds field errors.
    #[must_use]
    pub fn with_errors(mut self, errors: impl IntoIterator<Item = FieldError>) -> Self {
        self.0.errors.extend(errors);
        self
    }

    /// The status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The problem's slug (the part of `type` after the prefix).
    #[must_use]
    pub fn slug(&self) -> &str {
        self.0.kind.strip_prefix(TYPE_PREFIX).unwrap_or(&self.0.kind)
    }

    /// `422 invalid-input`, listing every invalid field.
    #[must_use]
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = if errors.is_empty() {
            "the request is not valid".to_owned()
        } else {
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
        };
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", "Some fields are not valid", detail)
            .with_errors(errors)
    }

    /// `422 invalid-input` for one field.
    #[must_use]
    pub fn invalid_field(field: &str, message: impl fmt::Display) -> Self {
        Self::invalid(vec![FieldError { field: field.to_owned(), message: message.to_string() }])
    }

    /// `401 unauthenticated`.
    #[must_use]
    pub fn unauthenticated(detail: impl fmt::Display) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Sign-in required", detail)
    }

    /// `404 not-found`, for anything the caller may not know exists.
    #[must_use]
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("{what} not found"))
    }

    /// `429 too-many-attempts` with `Retry-After`.
    #[must_use]
    pub fn too_many_attempts(retry_after_seconds: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-attempts",
            "Too many attempts",
            format!("too many failed sign-in attempts; try again in {retry_after_seconds} seconds"),
        );
        error.0.retry_after = Some(retry_after_seconds);
        error
    }

    /// `500 internal`: logs the cause and tells the client nothing about it.
    #[must_use]
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %DisplayChain(cause), "request failed unexpectedly");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side",
            "the request could not be completed because of a problem on the server; nothing was changed, try again later",
        )
    }
}

/// An error and its sources, for logs.
struct DisplayChain<'a>(&'a dyn std::error::Error);

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The field errors of a domain validation failure.
#[must_use]
pub fn field_errors(invalid: &[InvalidValue]) -> Vec<FieldError> {
    invalid.iter().map(|v| FieldError { field: v.field().to_owned(), message: v.problem().to_owned() }).collect()
}

/// Every rule a password breaks, as field errors on `field`.
#[must_use]
pub fn password_errors(field: &str, rejected: &PasswordRejected) -> Vec<FieldError> {
    rejected.violations().iter().map(|v| FieldError { field: field.to_owned(), message: v.to_string() }).collect()
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        Self::invalid(field_errors(&invalid.0))
    }
}

impl From<Unexpected> for ApiError {
    fn from(error: Unexpected) -> Self {
        Self::internal(&error)
    }
}

impl From<AccessError> for ApiError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::NotFound => Self::not_found("organisation"),
            AccessError::Forbidden { .. } => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", "Permission needed", error.to_string())
            }
            AccessError::Inactive(_) => {
                Self::new(StatusCode::FORBIDDEN, "membership-inactive", "Membership not active", error.to_string())
            }
            AccessError::PasswordChangeRequired => password_change_required(),
        }
    }
}

/// `403 password-change-required`: the session may only change the password.
#[must_use]
pub fn password_change_required() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "password-change-required",
        "Password change required",
        "change your password first (POST /api/v1/auth/password); until then this session can do nothing else",
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.0.retry_after;
        let body = serde_json::to_vec(&poem_openapi::types::ToJSON::to_json(&self.0)).unwrap_or_default();
        let mut response = Response::builder().status(status).header(CONTENT_TYPE, PROBLEM_JSON).body(body);
        if let Some(seconds) = retry_after {
            if let Ok(value) = seconds.to_string().parse() {
                response.headers_mut().insert(RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<ApiError> for poem::Error {
    fn from(error: ApiError) -> Self {
        let status = error.status();
        poem::Error::new(error, status)
    }
}

/// Every status an error of this API may have, with what it means.
const STATUSES: &[(u16, &str)] = &[
    (400, "The request is malformed (unreadable JSON, a missing or mistyped parameter)."),
    (401, "No valid session, or wrong credentials."),
    (
        403,
        "Not allowed: a permission is missing, the membership is inactive, the password must be changed first, or a cookie request came from another origin.",
    ),
    (404, "Not found, or in an organisation the caller does not belong to."),
    (409, "Conflicts with the current state (taken, already done, or an invariant would break)."),
    (410, "The link or token has expired or was already used."),
    (413, "The request body is too large."),
    (415, "The request body is not JSON."),
    (422, "Some fields are not valid; every problem is listed in `errors`."),
    (429, "Too many failed attempts; wait for `Retry-After` seconds."),
    (500, "Something went wrong on the server; nothing was changed."),
];

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: STATUSES
                .iter()
                .map(|&(status, description)| MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType { content_type: PROBLEM_JSON, schema: ProblemBody::schema_ref() }],
                    headers: if status == 429 {
                        vec![MetaHeader {
                            name: "Retry-After".to_owned(),
                            description: Some("Seconds to wait before trying again.".to_owned()),
                            required: true,
                            deprecated: false,
                            schema: u64::schema_ref(),
                        }]
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ProblemBody::register(registry);
    }
}

/// Turns any error the framework raises (unreadable JSON, a missing parameter, an unknown
/// path, a wrong method) into a problem, so that every error body has the same shape.
pub fn from_poem_error(error: &poem::Error) -> ApiError {
    if let Some(api) = error.downcast_ref::<ApiError>() {
        return api.clone();
    }
    let status = error.status();
    let detail = error.to_string();
    match status {
        StatusCode::NOT_FOUND => ApiError::new(status, "not-found", "Not found", "there is nothing at this address"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method-not-allowed",
            "Method not allowed",
            "this address does not accept this method",
        ),
        StatusCode::UNAUTHORIZED => ApiError::unauthenticated(
            "sign in, then send the session token as `Authorization: Bearer <token>` or in the session cookie",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => request_too_large(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "unsupported-media-type",
            "Unsupported media type",
            format!("{detail}; send JSON with `Content-Type: application/json`"),
        ),
        s if s.is_client_error() => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed-request", "Malformed request", detail)
        }
        _ => ApiError::internal(error),
    }
}

/// `413 request-too-large`.
#[must_use]
pub fn request_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request-too-large",
        "Request too large",
        "the request body is larger than this server accepts",
    )
}

/// A change refused because it would break an invariant. The caller's own limits are
/// `403` (they lack the authority the change needs); the last administrator rule is `409`
/// (the organisation's state forbids it); a facility of another organisation is `422`.
#[must_use]
pub fn violation(violation: &guildhall_domain::policy::InvariantViolation) -> ApiError {
    use guildhall_domain::policy::InvariantViolation;
    let detail = violation.to_string();
    let (status, slug, title) = match violation {
        InvariantViolation::NoAdministratorLeft => {
            (StatusCode::CONFLICT, "last-administrator", "An administrator must remain")
        }
        InvariantViolation::Escalation { .. } => (StatusCode::FORBIDDEN, "escalation", "Beyond your own permissions"),
        InvariantViolation::WiderAccess { .. } => (StatusCode::FORBIDDEN, "wider-access", "Wider access than your own"),
        InvariantViolation::Outranked { .. } => (StatusCode::FORBIDDEN, "outranked", "Holds more than you do"),
        InvariantViolation::ForeignFacility { .. } => return ApiError::invalid_field("facilities", detail),
    };
    ApiError::new(status, slug, title, detail)
}
