//! Turning an outbox message into a MIME message: the rendered parts as
//! `multipart/alternative`, and the headers every Guildhall email carries.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use guildhall_domain::notification::OutboundEmail;
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart, header};

use crate::render::{RenderError, Renderer};

/// The sender and the renderer: everything needed to compose a message.
#[derive(Debug, Clone)]
pub struct Composer {
    renderer: Renderer,
    from: Mailbox,
    id_domain: String,
}

/// The `From` address could not be used.
#[derive(Debug, thiserror::Error)]
#[error("the sender address {address:?} is not usable: {problem}")]
pub struct InvalidSender {
    address: String,
    problem: String,
}

/// A message could not be composed. Composing again will fail again: the message is given
/// up.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A template failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The recipient's address is one the mail library cannot put in a header.
    #[error("the recipient address cannot be used: {0}")]
    Recipient(String),
    /// The MIME message could not be built.
    #[error("the message cannot be built: {0}")]
    Build(String),
}

impl Composer {
    /// A composer sending as `from` (`Guildhall <no-reply@example.org>` or a bare address).
    ///
    /// # Errors
    /// [`InvalidSender`] when `from` is not a mailbox.
    pub fn new(renderer: Renderer, from: &str) -> Result<Self, InvalidSender> {
        let invalid = |problem: String| InvalidSender { address: from.to_owned(), problem };
        let mailbox: Mailbox =
            from.parse().map_err(|error: lettre::address::AddressError| invalid(error.to_string()))?;
        let id_domain = mailbox.email.domain().to_owned();
        Ok(Self { renderer, from: mailbox, id_domain })
    }

    /// The renderer.
    #[must_use]
    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// The `Message-ID` of an outbox message: stable across attempts, so that a message
    /// delivered twice (a crash between sending and recording it) can be recognised.
    #[must_use]
    pub fn message_id(&self, email: &OutboundEmail) -> String {
        format!("<{}@{}>", email.id, self.id_domain)
    }

    /// The MIME message for `email`, dated `now`.
    ///
    /// # Errors
    /// [`ComposeError`] when it cannot be rendered or built; trying again cannot help.
    pub fn compose(&self, email: &OutboundEmail, now: DateTime<Utc>) -> Result<Message, ComposeError> {
        let rendered = self.renderer.render(email)?;
        let to: Mailbox = email
            .to
            .as_str()
            .parse()
            .map_err(|error: lettre::address::AddressError| ComposeError::Recipient(error.to_string()))?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .date(SystemTime::from(now))
            .message_id(Some(self.message_id(email)))
            .header(AutoSubmitted)
            .header(Template(email.notification.template()));
        let body = MultiPart::alternative()
            .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(rendered.text))
            .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(rendered.html));
        builder.multipart(body).map_err(|error| ComposeError::Build(error.to_string()))
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): out-of-office replies must not answer it.
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl header::Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// `X-Guildhall-Template: invitation`: which template made the message, for filters and
/// for support.
#[derive(Debug, Clone)]
struct Template(&'static str);

impl header::Header for Template {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Guildhall-Template")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Err("X-Guildhall-Template is only written".into())
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.to_owned())
    }
}
