//! `/auth`: sign-up, email verification, sign-in and out, passwords.

use guildhall_domain::usecases::{
    ChangePassword, ChangePasswordError, ConfirmPasswordResetError, RequestPasswordResetError, SignInError,
    SignOutError, SignUp, SignUpError, SignUpOutcome, VerifyEmailError,
};
use poem::http::StatusCode;
use poem::web::RemoteAddr;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{Done, Tag};
use crate::problem::{ApiError, ApiResult, field_errors, password_errors};
use crate::session::{Credentials, SESSION_COOKIE};
use crate::state::ApiState;

/// `/auth` endpoints.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct AuthApi(pub ApiState);

/// A sign-up form.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SignUpRequest {
    /// The email address; it becomes the username.
    pub email: String,
    /// The chosen password.
    #[oai(write_only)]
    pub password: String,
    /// First (given) name.
    pub first_name: String,
    /// Last (family) name.
    pub last_name: String,
    /// Phone number in international form.
    pub phone: Option<String>,
    /// The token of the invitation link followed, if any: the address then counts as
    /// verified.
    #[oai(write_only)]
    pub invitation_token: Option<String>,
}

/// What a sign-up did.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SignUpResult {
    /// `verification_sent` ("check your inbox", also said when the address has an
    /// account already) or `verified` (signed up through an invitation: sign in now).
    pub outcome: String,
}

/// A token from a link.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TokenRequest {
    /// The token from the link.
    #[oai(write_only)]
    pub token: String,
}

/// Credentials.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LoginRequest {
    /// Email address.
    pub email: String,
    /// Password (or the temporary password from a welcome email).
    #[oai(write_only)]
    pub password: String,
}

/// An open session.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SessionOpened {
    /// The session token: send it as `Authorization: Bearer <token>`. Browsers get it in
    /// an HttpOnly cookie as well. Shown once; only its hash is kept.
    pub token: String,
    /// The account.
    pub user_id: String,
    /// When the session ends at the latest.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The session may do nothing but change the password (`POST /auth/password`).
    pub password_change_required: bool,
}

/// `POST /auth/login` succeeded.
#[derive(Debug, ApiResponse)]
pub enum LoginResponse {
    /// Signed in; the session cookie is set.
    #[oai(status = 200)]
    SignedIn(Json<SessionOpened>, #[oai(header = "Set-Cookie")] String),
}

/// `POST /auth/logout` succeeded.
#[derive(Debug, ApiResponse)]
pub enum LogoutResponse {
    /// Signed out; the session cookie is cleared.
    #[oai(status = 200)]
    SignedOut(Json<Done>, #[oai(header = "Set-Cookie")] String),
}

/// A password change.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PasswordChangeRequest {
    /// The current password; not needed when the session may only change the password.
    #[oai(write_only)]
    pub current_password: Option<String>,
    /// The new password.
    #[oai(write_only)]
    pub new_password: String,
}

/// A password-reset request.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PasswordResetRequest {
    /// The account's email address.
    pub email: String,
}

/// A new password set through a reset link.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PasswordResetConfirmation {
    /// The token from the link.
    #[oai(write_only)]
    pub token: String,
    /// The new password.
    #[oai(write_only)]
    pub new_password: String,
}

fn session_cookie(token: &str, max_age_seconds: i64) -> String {
    format!("{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age_seconds}; HttpOnly; Secure; SameSite=Strict")
}

fn link_problem(kind: &str, what: &str, detail: String) -> ApiError {
    match kind {
        "invalid" => ApiError::new(StatusCode::NOT_FOUND, "invalid-token", "Link not valid", detail),
        "expired" => ApiError::new(StatusCode::GONE, "token-expired", "Link expired", detail),
        _ => ApiError::new(StatusCode::GONE, "token-used", &format!("{what} already used"), detail),
    }
}

impl From<SignUpError> for ApiError {
    fn from(error: SignUpError) -> Self {
        match error {
            SignUpError::Invalid { fields, password } => {
                let mut errors = field_errors(&fields);
                if let Some(rejected) = &password {
                    errors.extend(password_errors("password", rejected));
                }
                ApiError::invalid(errors)
            }
            SignUpError::AccountExists => {
                ApiError::new(StatusCode::CONFLICT, "account-exists", "Account exists", error.to_string())
            }
            SignUpError::Unexpected(e) => e.into(),
        }
    }
}

impl From<VerifyEmailError> for ApiError {
    fn from(error: VerifyEmailError) -> Self {
        let detail = error.to_string();
        match error {
            VerifyEmailError::InvalidToken => link_problem("invalid", "Link", detail),
            VerifyEmailError::Expired { .. } => link_problem("expired", "Link", detail),
            VerifyEmailError::AlreadyUsed => link_problem("used", "Link", detail),
            VerifyEmailError::AddressTaken => {
                ApiError::new(StatusCode::CONFLICT, "address-taken", "Address taken", detail)
            }
            VerifyEmailError::Unexpected(e) => e.into(),
        }
    }
}

impl From<SignInError> for ApiError {
    fn from(error: SignInError) -> Self {
        let detail = error.to_string();
        match error {
            SignInError::InvalidCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid-credentials", "Wrong email or password", detail)
            }
            SignInError::AccountDisabled => {
                ApiError::new(StatusCode::FORBIDDEN, "account-disabled", "Account disabled", detail)
            }
            SignInError::TemporaryPasswordExpired { .. } => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "temporary-password-expired",
                "Temporary password expired",
                detail,
            ),
            SignInError::Unexpected(e) => e.into(),
        }
    }
}

impl From<SignOutError> for ApiError {
    fn from(error: SignOutError) -> Self {
        match error {
            SignOutError::Unexpected(e) => e.into(),
        }
    }
}

impl From<ChangePasswordError> for ApiError {
    fn from(error: ChangePasswordError) -> Self {
        let detail = error.to_string();
        match error {
            ChangePasswordError::InvalidSession => ApiError::unauthenticated(detail),
            ChangePasswordError::CurrentPasswordRequired => ApiError::invalid_field("current_password", detail),
            ChangePasswordError::WrongPassword => ApiError::invalid_field("current_password", detail),
            ChangePasswordError::PasswordRejected(rejected) => {
                ApiError::invalid(password_errors("new_password", &rejected))
            }
            ChangePasswordError::Unexpected(e) => e.into(),
        }
    }
}

impl From<RequestPasswordResetError> for ApiError {
    fn from(error: RequestPasswordResetError) -> Self {
        match error {
            RequestPasswordResetError::Unexpected(e) => e.into(),
        }
    }
}

impl From<ConfirmPasswordResetError> for ApiError {
    fn from(error: ConfirmPasswordResetError) -> Self {
        let detail = error.to_string();
        match error {
            ConfirmPasswordResetError::InvalidToken => link_problem("invalid", "Link", detail),
            ConfirmPasswordResetError::Expired { .. } => link_problem("expired", "Link", detail),
            ConfirmPasswordResetError::AlreadyUsed => link_problem("used", "Link", detail),
            ConfirmPasswordResetError::AccountDisabled => {
                ApiError::new(StatusCode::FORBIDDEN, "account-disabled", "Account disabled", detail)
            }
            ConfirmPasswordResetError::PasswordRejected(rejected) => {
                ApiError::invalid(password_errors("new_password", &rejected))
            }
            ConfirmPasswordResetError::Unexpected(e) => e.into(),
        }
    }
}

/// The throttling keys of a sign-in: the address as typed (trimmed, lower-case) and the
/// client's IP address.
fn throttle_keys(email: &str, remote: &RemoteAddr) -> (String, String) {
    let ip = remote.as_socket_addr().map_or_else(|| remote.to_string(), |addr| addr.ip().to_string());
    (format!("account:{}", email.trim().to_lowercase()), format!("ip:{ip}"))
}

#[OpenApi(prefix_path = "/auth", tag = "Tag::Auth")]
impl AuthApi {
    /// Sign up.
    ///
    /// Creates an account and emails a verification link. An address that has an account
    /// already gets the same answer (its owner is told by email instead), so nobody
    /// learns who has an account.
    #[oai(path = "/signup", method = "post", operation_id = "sign_up")]
    async fn sign_up(&self, body: Json<SignUpRequest>) -> ApiResult<Json<SignUpResult>> {
        let Json(body) = body;
        let outcome = self
            .0
            .guildhall
            .accounts()
            .sign_up(SignUp {
                email: body.email,
                password: body.password,
                first_name: body.first_name,
                last_name: body.last_name,
                phone: body.phone,
                invitation_token: body.invitation_token,
            })
            .await?;
        let outcome = match outcome {
            SignUpOutcome::VerificationSent => "verification_sent",
            SignUpOutcome::Verified { .. } => "verified",
        };
        Ok(Json(SignUpResult { outcome: outcome.to_owned() }))
    }

    /// Verify an email address with the token from the emailed link.
    #[oai(path = "/verify-email", method = "post", operation_id = "verify_email")]
    async fn verify_email(&self, body: Json<TokenRequest>) -> ApiResult<Json<Done>> {
        self.0.guildhall.accounts().verify_email(&body.0.token).await?;
        Ok(Json(Done::new("your email address is verified")))
    }

    /// Sign in.
    ///
    /// Returns the session token and sets the session cookie. Failed attempts are
    /// throttled per account and per client address (`429` with `Retry-After`).
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(&self, body: Json<LoginRequest>, remote: &RemoteAddr) -> ApiResult<LoginResponse> {
        let Json(body) = body;
        let (account, ip) = throttle_keys(&body.email, remote);
        let keys = [account.as_str(), ip.as_str()];
        self.0.throttle.attempt(&keys).await?;
        match self.0.guildhall.accounts().sign_in(&body.email, &body.password).await {
            Ok(signed_in) => {
                self.0.throttle.succeeded(&account).await;
                self.0.throttle.refund(&[&ip]).await;
                let token = signed_in.token.expose().to_owned();
                let max_age = (signed_in.session.expires_at - signed_in.session.created_at).num_seconds();
                let cookie = session_cookie(&token, max_age);
                Ok(LoginResponse::SignedIn(
                    Json(SessionOpened {
                        token,
                        user_id: signed_in.user.to_string(),
                        expires_at: signed_in.session.expires_at,
                        password_change_required: signed_in.password_change_required,
                    }),
                    cookie,
                ))
            }
            Err(error) => {
                // A wrong guess stays counted; anything else was not one.
                if !matches!(error, SignInError::InvalidCredentials) {
                    self.0.throttle.refund(&keys).await;
                }
                Err(error.into())
            }
        }
    }

    /// Sign out: ends this session and clears the cookie.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, credentials: Credentials) -> ApiResult<LogoutResponse> {
        self.0.guildhall.accounts().sign_out(credentials.token()).await?;
        Ok(LogoutResponse::SignedOut(Json(Done::new("you are signed out")), session_cookie("", 0)))
    }

    /// Change the password.
    ///
    /// Also the forced change after signing in with a temporary password (then the
    /// current password is not needed). Every other session of the account ends.
    #[oai(path = "/password", method = "post", operation_id = "change_password")]
    async fn change_password(
        &self,
        credentials: Credentials,
        body: Json<PasswordChangeRequest>,
        remote: &RemoteAddr,
    ) -> ApiResult<Json<Done>> {
        let caller = self.0.caller_restricted(&credentials).await?;
        let Json(body) = body;
        // A wrong current password is a guess at the account's password: it counts
        // against the same limits as a failed sign-in.
        let guessing = body.current_password.is_some();
        let (account, ip) = throttle_keys(caller.authenticated.user.email.as_str(), remote);
        let keys = [account.as_str(), ip.as_str()];
        if guessing {
            self.0.throttle.attempt(&keys).await?;
        }
        let changed = self
            .0
            .guildhall
            .accounts()
            .change_password(ChangePassword {
                user: caller.user(),
                session_token: credentials.token().to_owned(),
                current_password: body.current_password,
                new_password: body.new_password,
            })
            .await;
        if guessing && !matches!(changed, Err(ChangePasswordError::WrongPassword)) {
            self.0.throttle.refund(&keys).await;
        }
        changed?;
        Ok(Json(Done::new("your password is changed; your other sessions have ended")))
    }

    /// Ask for a password-reset link.
    ///
    /// The answer is the same whether or not the address has an account.
    #[oai(path = "/password-reset", method = "post", operation_id = "request_password_reset")]
    async fn request_password_reset(&self, body: Json<PasswordResetRequest>) -> ApiResult<Json<Done>> {
        self.0.guildhall.accounts().request_password_reset(&body.0.email).await?;
        Ok(Json(Done::new("if this address has an account, a password-reset link is on its way")))
    }

    /// Set a new password with the token from a reset link.
    #[oai(path = "/password-reset/confirm", method = "post", operation_id = "confirm_password_reset")]
    async fn confirm_password_reset(&self, body: Json<PasswordResetConfirmation>) -> ApiResult<Json<Done>> {
        let Json(body) = body;
        self.0.guildhall.accounts().confirm_password_reset(&body.token, &body.new_password).await?;
        Ok(Json(Done::new("your password is set; sign in with it")))
    }
}
