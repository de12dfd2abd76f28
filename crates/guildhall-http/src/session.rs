//! Who is calling: the session token from `Authorization: Bearer` or the session cookie,
//! and the cookie's cross-site guard.

use guildhall_domain::usecases::{AuthenticateError, Authenticated};
use poem::Request;
use poem::http::header::{AUTHORIZATION, COOKIE, ORIGIN};
use poem::http::{Method, StatusCode};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::problem::{ApiError, password_change_required};
use crate::state::{ApiState, HttpSettings};

/// The name of the session cookie. The `__Host-` prefix makes browsers refuse it unless
/// it is `Secure`, for the whole host, and set by this host.
pub const SESSION_COOKIE: &str = "__Host-guildhall_session";

const BEARER_SCHEME: &str = "bearer";
const COOKIE_SCHEME: &str = "session_cookie";

/// The session token a request presents.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    token: String,
    /// Whether it came in the cookie (then the request passed the `Origin` check).
    pub from_cookie: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("token", &"<redacted>").field("from_cookie", &self.from_cookie).finish()
    }
}

impl Credentials {
    /// The token.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.token
    }
}

fn bearer(request: &Request) -> Option<String> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// The session cookie's value, if the request carries one.
#[must_use]
pub fn session_cookie(request: &Request) -> Option<String> {
    request
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

/// A cookie request that changes state must come from one of our own pages: browsers
/// send `Origin` on such requests, and an attacker's page cannot forge it.
fn check_origin(request: &Request, settings: &HttpSettings) -> Result<(), ApiError> {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let origin = request.headers().get(ORIGIN).and_then(|v| v.to_str().ok());
    match origin {
        Some(origin) if settings.allowed_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-origin-request",
            "Request from another site refused",
            "a request that changes something and is authenticated by the session cookie must come from this site's own pages (its Origin header did not match); API clients should send `Authorization: Bearer <token>` instead",
        )),
    }
}

impl<'a> ApiExtractor<'a> for Credentials {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            BEARER_SCHEME,
            MetaSecurityScheme {
                ty: "http",
                description: Some("The session token returned by `POST /auth/login`."),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("opaque"),
                flows: None,
                openid_connect_url: None,
            },
        );
        registry.create_security_scheme(
            COOKIE_SCHEME,
            MetaSecurityScheme {
                ty: "apiKey",
                description: Some(
                    "The session cookie set by `POST /auth/login` (HttpOnly, Secure, SameSite=Strict). Requests that change state must carry an `Origin` header naming this site.",
                ),
                name: Some(SESSION_COOKIE),
                key_in: Some("cookie"),
                scheme: None,
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![BEARER_SCHEME, COOKIE_SCHEME]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut poem::RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        if let Some(token) = bearer(request) {
            return Ok(Self { token, from_cookie: false });
        }
        if let Some(token) = session_cookie(request) {
            let settings = request.data::<ApiState>().map(|state| state.settings.clone()).unwrap_or_default();
            check_origin(request, &settings)?;
            return Ok(Self { token, from_cookie: true });
        }
        Err(ApiError::unauthenticated(
            "sign in first, then send the session token as `Authorization: Bearer <token>` or in the session cookie",
        )
        .into())
    }
}

/// The signed-in caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account and the session.
    pub authenticated: Authenticated,
    /// The token the request presented.
    pub credentials: Credentials,
}

impl Caller {
    /// The account.
    #[must_use]
    pub fn user(&self) -> guildhall_domain::ids::UserId {
        self.authenticated.user.id
    }
}

impl From<AuthenticateError> for ApiError {
    fn from(error: AuthenticateError) -> Self {
        match error {
            AuthenticateError::InvalidSession => ApiError::unauthenticated(error.to_string()),
            AuthenticateError::PasswordChangeRequired => password_change_required(),
            AuthenticateError::Unexpected(e) => e.into(),
        }
    }
}

impl ApiState {
    /// The caller, whose session may be restricted to changing the password.
    ///
    /// # Errors
    /// `401` when the session is not valid.
    pub async fn caller_restricted(&self, credentials: &Credentials) -> Result<Caller, ApiError> {
        let authenticated = self.guildhall.accounts().authenticate(credentials.token()).await?;
        Ok(Caller { authenticated, credentials: credentials.clone() })
    }

    /// The caller, with a session that may do everything its permissions allow.
    ///
    /// # Errors
    /// `401` when the session is not valid; `403 password-change-required` while the
    /// password must be changed.
    pub async fn caller(&self, credentials: &Credentials) -> Result<Caller, ApiError> {
        let caller = self.caller_restricted(credentials).await?;
        caller.authenticated.require_full_access()?;
        Ok(caller)
    }
}
