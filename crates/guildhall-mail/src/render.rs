//! Turning an [`OutboundEmail`] into a subject, a plain-text body and an HTML body.
//!
//! Every [`Notification`] has two askama templates under `templates/`, named after
//! [`Notification::template`]: `<name>.txt`, which is not escaped, and `<name>.html`,
//! which extends `layout.html` and escapes everything it prints. [`Renderer::render`]
//! matches every variant without a wildcard arm, so a new variant does not compile until
//! it has its templates.
//!
//! - Links are built by [`Links`] from the configured public base URL, with query values
//!   percent-encoded.
//! - Subjects are built here, on one line: control characters and line breaks in names a
//!   person typed become spaces, so nothing can add a mail header.
//! - Plain-text templates write each paragraph on one line; [`Renderer::render`] wraps
//!   lines longer than 78 characters at spaces, keeping their indentation. A word longer
//!   than that (a link) stays whole on its own line.

use std::fmt;

use askama::Template;
use chrono::{DateTime, Utc};
use guildhall_domain::ids::{JoinRequestId, OrgId};
use guildhall_domain::notification::{Notification, OutboundEmail};
use guildhall_domain::token::Token;
use guildhall_domain::values::{EmailAddress, Note};

/// The longest line the plain-text part has, unless a single word (a link) is longer.
const TEXT_WIDTH: usize = 78;

// ---------------------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------------------

/// The public base URL that links in emails are built from.
///
/// It has the form `http(s)://host[:port][/path]` and is stored without a trailing slash,
/// so `https://example.org/app/` and `https://example.org/app` build the same links.
/// Anything else is refused when the renderer is configured rather than producing
/// broken links later: another scheme, a query, a fragment, a user name or password, an
/// empty host, and whitespace or control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    base: String,
}

impl Links {
    /// Checks `public_url` and keeps it without its trailing slashes.
    ///
    /// The scheme may be written in any case and is stored in lower case.
    ///
    /// # Errors
    /// Returns [`InvalidBaseUrl`], whose message says what is wrong, when `public_url` is
    /// not of the form `http(s)://host[:port][/path]`.
    pub fn new(public_url: &str) -> Result<Self, InvalidBaseUrl> {
        if public_url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidBaseUrl::new(
                "the public URL must not contain spaces, line breaks or control characters",
            ));
        }
        let (scheme, rest) = split_scheme(public_url).ok_or(InvalidBaseUrl::new(
            "the public URL must start with http:// or https://, as in https://members.example.org",
        ))?;
        if rest.contains('?') {
            return Err(InvalidBaseUrl::new("the public URL must not contain a query (the part from ?)"));
        }
        if rest.contains('#') {
            return Err(InvalidBaseUrl::new("the public URL must not contain a fragment (the part from #)"));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(InvalidBaseUrl::new("the public URL must not contain a user name or password (user@host)"));
        }
        check_authority(authority)?;
        check_path(path)?;
        Ok(Self { base: format!("{scheme}://{authority}{}", path.trim_end_matches('/')) })
    }

    /// The base URL, without a trailing slash (`https://example.org/app`).
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Where an invitation is accepted: `{base}/invitations/accept?token=…`.
    #[must_use]
    pub fn accept_invitation(&self, token: &Token) -> String {
        format!("{}/invitations/accept?token={}", self.base, query_value(token.expose()))
    }

    /// Where an email address is confirmed: `{base}/verify-email?token=…`.
    #[must_use]
    pub fn verify_email(&self, token: &Token) -> String {
        format!("{}/verify-email?token={}", self.base, query_value(token.expose()))
    }

    /// Where a new password is chosen with a reset token: `{base}/reset-password?token=…`.
    #[must_use]
    pub fn reset_password(&self, token: &Token) -> String {
        format!("{}/reset-password?token={}", self.base, query_value(token.expose()))
    }

    /// Where a password reset is asked for: `{base}/reset-password`.
    #[must_use]
    pub fn forgot_password(&self) -> String {
        format!("{}/reset-password", self.base)
    }

    /// The sign-in page with the address filled in: `{base}/login?email=…`.
    #[must_use]
    pub fn sign_in(&self, email: &EmailAddress) -> String {
        format!("{}/login?email={}", self.base, query_value(email.as_str()))
    }

    /// A join request, for those who decide on it: `{base}/orgs/{org}/join-requests/{id}`.
    #[must_use]
    pub fn join_request(&self, org: OrgId, id: JoinRequestId) -> String {
        format!("{}/orgs/{org}/join-requests/{id}", self.base)
    }

    /// An organisation's home page: `{base}/orgs/{org}`.
    #[must_use]
    pub fn organisation(&self, org: OrgId) -> String {
        format!("{}/orgs/{org}", self.base)
    }

    /// An organisation's undelivered messages: `{base}/orgs/{org}/undelivered`.
    #[must_use]
    pub fn undelivered(&self, org: OrgId) -> String {
        format!("{}/orgs/{org}/undelivered", self.base)
    }

    /// The signed-in person's own account page: `{base}/me`.
    #[must_use]
    pub fn account(&self) -> String {
        format!("{}/me", self.base)
    }
}

/// The public base URL given to [`Links::new`] is not `http(s)://host[:port][/path]`.
///
/// The message says what is wrong, for example `the public URL must start with http:// or
/// https://, as in https://members.example.org`. It does not repeat the value, which might
/// hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct InvalidBaseUrl {
    problem: &'static str,
}

impl InvalidBaseUrl {
    const fn new(problem: &'static str) -> Self {
        Self { problem }
    }
}

/// Splits off `http://` or `https://`, in any case.
fn split_scheme(url: &str) -> Option<(&'static str, &str)> {
    ["https", "http"].into_iter().find_map(|scheme| {
        let rest = url.get(scheme.len()..)?.strip_prefix("://")?;
        url.get(..scheme.len())?.eq_ignore_ascii_case(scheme).then_some((scheme, rest))
    })
}

/// Checks `host[:port]`, where the host is a name, an IPv4 address or `[IPv6]`.
fn check_authority(authority: &str) -> Result<(), InvalidBaseUrl> {
    const NO_HOST: &str = "the public URL must name a host after the scheme, as in https://members.example.org";
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (address, after) = bracketed
            .split_once(']')
            .ok_or(InvalidBaseUrl::new("the public URL's IPv6 address must be closed with ]"))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(InvalidBaseUrl::new(
                "the public URL's IPv6 address must be followed by nothing, a :port or a /path",
            ))?),
        };
        if address.is_empty() || !address.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err(InvalidBaseUrl::new("the public URL's IPv6 address is not valid"));
        }
        (address, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        if !host.is_empty() && !host.chars().all(valid) {
            return Err(InvalidBaseUrl::new(
                "the public URL's host may contain only letters, digits, '-', '_' and '.' \
                 (write an international domain name in its xn-- form)",
            ));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(InvalidBaseUrl::new(NO_HOST));
    }
    match port {
        None => Ok(()),
        Some(port) if port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0) => Ok(()),
        Some(_) => Err(InvalidBaseUrl::new("the public URL's port must be a number from 1 to 65535")),
    }
}

/// Checks that the path holds only characters a URL path may hold as they are.
fn check_path(path: &str) -> Result<(), InvalidBaseUrl> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%".contains(c);
    let escapes_complete = path.split('%').skip(1).all(|after| after.get(..2).is_some_and(is_hex_pair));
    if path.chars().all(allowed) && escapes_complete {
        Ok(())
    } else {
        Err(InvalidBaseUrl::new(
            "the public URL's path may contain only letters, digits, -._~!$&'()*+,;=:@/ and %-escapes \
             such as %20",
        ))
    }
}

fn is_hex_pair(text: &str) -> bool {
    text.len() == 2 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Percent-encodes everything but the unreserved characters of RFC 3986.
fn query_value(value: &str) -> String {
    let Ok(encoded) = askama::filters::urlencode_strict(value);
    encoded.to_string()
}

// ---------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------

/// A rendered message: its subject and its plain-text and HTML bodies.
///
/// `Debug` prints the subject and the lengths of the bodies only, because a body can hold
/// a token or a temporary password.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// The subject, on one line.
    pub subject: String,
    /// The plain-text body, ending with a line break.
    pub text: String,
    /// The HTML body, a complete document ending with a line break.
    pub html: String,
}

impl fmt::Debug for RenderedEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedEmail")
            .field("subject", &self.subject)
            .field("text_len", &self.text.len())
            .field("html_len", &self.html.len())
            .finish()
    }
}

/// A message could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template failed while rendering; this is a bug in the template or in the values
    /// handed to it, not something the recipient or an administrator can fix.
    #[error("could not render the {template} email")]
    Template {
        /// The template's name ([`Notification::template`]).
        template: &'static str,
        /// What askama reported.
        #[source]
        source: askama::Error,
    },
}

/// Renders every [`Notification`] with its templates.
#[derive(Debug, Clone)]
pub struct Renderer {
    links: Links,
    product_name: String,
}

impl Renderer {
    /// A renderer whose links start at `links` and whose messages speak of the product as
    /// `product_name` ("Guildhall"). Line breaks and control characters in the name become
    /// spaces, as it appears in subjects.
    #[must_use]
    pub fn new(links: Links, product_name: impl Into<String>) -> Self {
        Self { links, product_name: one_line(&product_name.into()) }
    }

    /// The links messages are built with.
    #[must_use]
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// Renders `email` for its recipient.
    ///
    /// A message that concerns an organisation links to that organisation's pages. When
    /// `email.org` is `None`, it links to the recipient's account page instead and says to
    /// sign in from there, so every notification can always be rendered.
    ///
    /// # Errors
    /// Returns [`RenderError::Template`] when a template fails; with the bundled templates
    /// that would be a bug.
    pub fn render(&self, email: &OutboundEmail) -> Result<RenderedEmail, RenderError> {
        let links = &self.links;
        let product = self.product_name.as_str();
        match &email.notification {
            Notification::Invitation { invitation: _, org_name, invited_by, role_name, token, expires_at } => {
                let mail = InvitationMail {
                    org_name: one_line(org_name),
                    invited_by: one_line(invited_by),
                    role_name: one_line(role_name),
                    accept_url: links.accept_invitation(token),
                    expires: Moment(*expires_at),
                };
                let subject = format!("{} invited you to join {} on {product}", mail.invited_by, mail.org_name);
                self.compose(email, subject, &mail)
            }
            Notification::AccountCreated { org_name, created_by, temporary_password, expires_at } => {
                let mail = AccountCreatedMail {
                    org_name: one_line(org_name),
                    created_by: one_line(created_by),
                    temporary_password: temporary_password.expose().to_owned(),
                    expires: Moment(*expires_at),
                    sign_in_url: links.sign_in(&email.to),
                };
                let subject = format!("Your new {product} account for {}", mail.org_name);
                self.compose(email, subject, &mail)
            }
            Notification::AdministratorAppointed { org_name, set_password } => {
                let mail = AdministratorAppointedMail {
                    org_name: one_line(org_name),
                    set_password: set_password.as_ref().map(|link| SetPasswordMail {
                        url: links.reset_password(&link.token),
                        expires: Moment(link.expires_at),
                    }),
                    sign_in_url: links.sign_in(&email.to),
                };
                let subject = format!("You are the administrator of {} on {product}", mail.org_name);
                self.compose(email, subject, &mail)
            }
            Notification::SignUpAttemptWithExistingAccount => {
                let mail = SignUpAttemptMail {
                    sign_in_url: links.sign_in(&email.to),
                    forgot_password_url: links.forgot_password(),
                };
                let subject = format!("Someone tried to use your email address on {product}");
                self.compose(email, subject, &mail)
            }
            Notification::EmailChangeRequested { new_email } => {
                let mail = EmailChangeRequestedMail {
                    new_email: new_email.as_str().to_owned(),
                    forgot_password_url: links.forgot_password(),
                };
                let subject = format!("Request to change the email address of your {product} account");
                self.compose(email, subject, &mail)
            }
            Notification::EmailChanged { new_email } => {
                let mail = EmailChangedMail { new_email: new_email.as_str().to_owned() };
                let subject = format!("The email address of your {product} account was changed");
                self.compose(email, subject, &mail)
            }
            Notification::VerifyEmail { token, expires_at } => {
                let mail = VerifyEmailMail { verify_url: links.verify_email(token), expires: Moment(*expires_at) };
                let subject = format!("Confirm your email address for {product}");
                self.compose(email, subject, &mail)
            }
            Notification::PasswordReset { token, expires_at } => {
                let mail = PasswordResetMail { reset_url: links.reset_password(token), expires: Moment(*expires_at) };
                let subject = format!("Reset your {product} password");
                self.compose(email, subject, &mail)
            }
            Notification::PasswordChanged { at } => {
                let mail = PasswordChangedMail { at: Moment(*at), forgot_password_url: links.forgot_password() };
                let subject = format!("Your {product} password was changed");
                self.compose(email, subject, &mail)
            }
            Notification::JoinRequestReceived { request, org_name, requester_name, requester_email, message } => {
                let mail = JoinRequestReceivedMail {
                    org_name: one_line(org_name),
                    requester_name: one_line(requester_name),
                    requester_email: requester_email.as_str().to_owned(),
                    message: message.as_ref().map(Note::to_string),
                    review: email.org.map_or_else(
                        || Link::Account(links.account()),
                        |org| Link::Direct(links.join_request(org, *request)),
                    ),
                };
                let subject = format!("{} asks to join {}", mail.requester_name, mail.org_name);
                self.compose(email, subject, &mail)
            }
            Notification::JoinRequestApproved { org_name, role_name } => {
                let mail = JoinRequestApprovedMail {
                    org_name: one_line(org_name),
                    role_name: one_line(role_name),
                    open: email
                        .org
                        .map_or_else(|| Link::Account(links.account()), |org| Link::Direct(links.organisation(org))),
                };
                let subject = format!("Your request to join {} was approved", mail.org_name);
                self.compose(email, subject, &mail)
            }
            Notification::JoinRequestRejected { org_name, reason } => {
                let mail = JoinRequestRejectedMail {
                    org_name: one_line(org_name),
                    reason: reason.as_ref().map(Note::to_string),
                };
                let subject = format!("Your request to join {} was not approved", mail.org_name);
                self.compose(email, subject, &mail)
            }
            Notification::DeliveryFailed { original_recipient, what, error } => {
                let mail = DeliveryFailedMail {
                    original_recipient: original_recipient.as_str().to_owned(),
                    what: describe_template(what),
                    error: one_line(error),
                    undelivered: email
                        .org
                        .map_or_else(|| Link::Account(links.account()), |org| Link::Direct(links.undelivered(org))),
                };
                let subject = format!("An email to {} could not be delivered", mail.original_recipient);
                self.compose(email, subject, &mail)
            }
        }
    }

    fn compose(&self, email: &OutboundEmail, subject: String, mail: &impl Mail) -> Result<RenderedEmail, RenderError> {
        let template = email.notification.template();
        let failed = |source| RenderError::Template { template, source };
        let subject = one_line(&subject);
        let parts = Parts { product: &self.product_name, recipient: email.to.as_str(), subject: &subject };
        let text = wrap_text(&mail.text(&parts).map_err(failed)?, TEXT_WIDTH);
        let mut html = mail.html(&parts).map_err(failed)?;
        // askama drops the template file's final line break; a file ends with one.
        if !html.ends_with('\n') {
            html.push('\n');
        }
        Ok(RenderedEmail { subject, text, html })
    }
}

/// What every template can print besides its own values.
struct Parts<'a> {
    product: &'a str,
    recipient: &'a str,
    subject: &'a str,
}

/// A link to the page a message is about, or to the account page when the message does
/// not say which organisation it concerns.
enum Link {
    Direct(String),
    Account(String),
}

impl Link {
    fn url(&self) -> &str {
        match self {
            Self::Direct(url) | Self::Account(url) => url,
        }
    }

    fn is_direct(&self) -> bool {
        matches!(self, Self::Direct(_))
    }
}

/// The link a new account's first password is chosen with, and when it stops working.
struct SetPasswordMail {
    url: String,
    expires: Moment,
}

/// The values of one notification, and its two templates.
trait Mail {
    fn text(&self, parts: &Parts<'_>) -> askama::Result<String>;
    fn html(&self, parts: &Parts<'_>) -> askama::Result<String>;
}

/// Declares the values of a notification and the plain-text and HTML templates that
/// print them (as `mail.<field>`, next to `product`, `recipient` and `subject`).
macro_rules! mail {
    ($(
        $(#[$doc:meta])*
        $mail:ident { $($field:ident: $ty:ty,)* }
        text $text:ident = $text_path:tt, html $html:ident = $html_path:tt;
    )*) => {$(
        $(#[$doc])*
        struct $mail {
            $($field: $ty,)*
        }

        #[derive(Template)]
        #[template(path = $text_path)]
        struct $text<'a> {
            product: &'a str,
            recipient: &'a str,
            mail: &'a $mail,
        }

        #[derive(Template)]
        #[template(path = $html_path)]
        struct $html<'a> {
            product: &'a str,
            recipient: &'a str,
            subject: &'a str,
            mail: &'a $mail,
        }

        impl Mail for $mail {
            fn text(&self, parts: &Parts<'_>) -> askama::Result<String> {
                $text { product: parts.product, recipient: parts.recipient, mail: self }.render()
            }

            fn html(&self, parts: &Parts<'_>) -> askama::Result<String> {
                $html { product: parts.product, recipient: parts.recipient, subject: parts.subject, mail: self }
                    .render()
            }
        }
    )*};
}

mail! {
    /// `invitation`
    InvitationMail {
        org_name: String,
        invited_by: String,
        role_name: String,
        accept_url: String,
        expires: Moment,
    }
    text InvitationText = "invitation.txt", html InvitationHtml = "invitation.html";

    /// `account_created`
    AccountCreatedMail {
        org_name: String,
        created_by: String,
        temporary_password: String,
        expires: Moment,
        sign_in_url: String,
    }
    text AccountCreatedText = "account_created.txt", html AccountCreatedHtml = "account_created.html";

    /// `administrator_appointed`
    AdministratorAppointedMail {
        org_name: String,
        set_password: Option<SetPasswordMail>,
        sign_in_url: String,
    }
    text AdministratorAppointedText = "administrator_appointed.txt",
    html AdministratorAppointedHtml = "administrator_appointed.html";

    /// `sign_up_attempt_with_existing_account`
    SignUpAttemptMail {
        sign_in_url: String,
        forgot_password_url: String,
    }
    text SignUpAttemptText = "sign_up_attempt_with_existing_account.txt",
    html SignUpAttemptHtml = "sign_up_attempt_with_existing_account.html";

    /// `email_change_requested`
    EmailChangeRequestedMail {
        new_email: String,
        forgot_password_url: String,
    }
    text EmailChangeRequestedText = "email_change_requested.txt",
    html EmailChangeRequestedHtml = "email_change_requested.html";

    /// `email_changed`
    EmailChangedMail {
        new_email: String,
    }
    text EmailChangedText = "email_changed.txt", html EmailChangedHtml = "email_changed.html";

    /// `verify_email`
    VerifyEmailMail {
        verify_url: String,
        expires: Moment,
    }
    text VerifyEmailText = "verify_email.txt", html VerifyEmailHtml = "verify_email.html";

    /// `password_reset`
    PasswordResetMail {
        reset_url: String,
        expires: Moment,
    }
    text PasswordResetText = "password_reset.txt", html PasswordResetHtml = "password_reset.html";

    /// `password_changed`
    PasswordChangedMail {
        at: Moment,
        forgot_password_url: String,
    }
    text PasswordChangedText = "password_changed.txt", html PasswordChangedHtml = "password_changed.html";

    /// `join_request_received`
    JoinRequestReceivedMail {
        org_name: String,
        requester_name: String,
        requester_email: String,
        message: Option<String>,
        review: Link,
    }
    text JoinRequestReceivedText = "join_request_received.txt",
    html JoinRequestReceivedHtml = "join_request_received.html";

    /// `join_request_approved`
    JoinRequestApprovedMail {
        org_name: String,
        role_name: String,
        open: Link,
    }
    text JoinRequestApprovedText = "join_request_approved.txt",
    html JoinRequestApprovedHtml = "join_request_approved.html";

    /// `join_request_rejected`
    JoinRequestRejectedMail {
        org_name: String,
        reason: Option<String>,
    }
    text JoinRequestRejectedText = "join_request_rejected.txt",
    html JoinRequestRejectedHtml = "join_request_rejected.html";

    /// `delivery_failed`
    DeliveryFailedMail {
        original_recipient: String,
        what: String,
        error: String,
        undelivered: Link,
    }
    text DeliveryFailedText = "delivery_failed.txt", html DeliveryFailedHtml = "delivery_failed.html";
}

// ---------------------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------------------

/// Joins words the plain-text wrapping must keep on one line; printed as a space.
const NO_BREAK: char = '\u{a0}';

/// A point in time as messages state it: `Monday 30 November 2026, 09:00 UTC`.
struct Moment(DateTime<Utc>);

impl Moment {
    /// The same text, kept on one line by the plain-text wrapping.
    fn unbroken(&self) -> String {
        self.to_string().replace(' ', &NO_BREAK.to_string())
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%A %-d %B %Y, %H:%M UTC"))
    }
}

/// `text` on one line: whitespace and control characters (CR, LF, tab, ...) become single
/// spaces, and the ends are trimmed.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a failed message was, for the person who has to deal with it. `what` is the
/// failed message's [`Notification::template`] name.
fn describe_template(what: &str) -> String {
    let known = match what {
        "invitation" => "an invitation to join the organisation",
        "account_created" => "the details of a new account, with its temporary password",
        "administrator_appointed" => "the news that someone was made the administrator of the organisation",
        "sign_up_attempt_with_existing_account" => {
            "a notice that someone tried to sign up with an address that already has an account"
        }
        "email_change_requested" => "a notice that someone asked to change an account's email address",
        "email_changed" => "a notice that an account's email address was changed",
        "verify_email" => "a link to confirm an email address",
        "password_reset" => "a link to reset a password",
        "password_changed" => "a notice that a password was changed",
        "join_request_received" => "a request to join the organisation",
        "join_request_approved" => "the news that a request to join the organisation was approved",
        "join_request_rejected" => "the news that a request to join the organisation was not approved",
        "delivery_failed" => "a notice that another email could not be delivered",
        other => return format!("a message of the kind ‘{}’", one_line(&other.replace('_', " "))),
    };
    known.to_owned()
}

/// Wraps every line of `text` longer than `width` characters at spaces. Continuation
/// lines keep the line's indentation; a word longer than the width stays whole, and so do
/// words joined by [`NO_BREAK`], which then becomes a space. The result ends with exactly
/// one line break.
fn wrap_text(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width);
    for line in text.trim_end().lines() {
        let line = line.trim_end();
        if line.chars().count() <= width {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let mut current = String::from(indent);
        let mut current_len = indent.chars().count();
        let mut empty = true;
        for word in body.split(' ').filter(|word| !word.is_empty()) {
            let word_len = word.chars().count();
            if !empty && current_len + 1 + word_len > width {
                out.push_str(&current);
                out.push('\n');
                current = String::from(indent);
                current_len = indent.chars().count();
                empty = true;
            }
            if !empty {
                current.push(' ');
                current_len += 1;
            }
            current.push_str(word);
            current_len += word_len;
            empty = false;
        }
        out.push_str(&current);
        out.push('\n');
    }
    out.replace(NO_BREAK, " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_wrapped_at_spaces_keeping_their_indentation() {
        let text = "short\n    one two three four five six\n";
        assert_eq!(wrap_text(text, 16), "short\n    one two\n    three four\n    five six\n");
    }

    #[test]
    fn a_word_longer_than_the_width_stays_whole() {
        let url = "https://example.org/a/very/long/path";
        assert_eq!(wrap_text(&format!("Open {url} now"), 10), format!("Open\n{url}\nnow\n"));
    }

    #[test]
    fn words_joined_by_no_break_stay_on_one_line_and_are_printed_with_spaces() {
        let text = format!("works until {}.", Moment(DateTime::UNIX_EPOCH).unbroken());
        assert_eq!(wrap_text(&text, 20), "works until\nThursday 1 January 1970, 00:00 UTC.\n");
    }

    #[test]
    fn wrapped_text_ends_with_exactly_one_line_break() {
        assert_eq!(wrap_text("a\n\n\n", 78), "a\n");
        assert_eq!(wrap_text("a", 78), "a\n");
    }

    #[test]
    fn one_line_turns_breaks_and_control_characters_into_single_spaces() {
        assert_eq!(one_line(" Acme\r\nBcc: x@y\t\u{7}Ltd "), "Acme Bcc: x@y Ltd");
    }

    #[test]
    fn unknown_template_names_are_still_described() {
        assert_eq!(describe_template("weekly_digest"), "a message of the kind ‘weekly digest’");
    }
}
