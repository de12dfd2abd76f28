//! Guildhall's email adapter: the far side of the domain's transactional outbox.
//!
//! Use cases queue [`OutboundEmail`](guildhall_domain::notification::OutboundEmail)s in
//! the same commit as the change that causes them. This crate delivers them:
//!
//! * [`render`]: a plain-text and an HTML template for every
//!   [`Notification`](guildhall_domain::notification::Notification), with links built
//!   from the configured public base URL;
//! * [`compose`]: the MIME message (`multipart/alternative`, a stable `Message-ID`,
//!   `Auto-Submitted`);
//! * [`transport`]: SMTP through lettre (STARTTLS or implicit TLS with rustls, optional
//!   authentication, timeouts, pooled connections), or `.eml` files in a directory, the
//!   embedded default;
//! * [`dispatch`]: the dispatcher that claims, sends, retries with backoff, gives up
//!   into dead letters with a report to the organisation, and shuts down without losing
//!   a claim.
//!
//! Nothing here logs a message's body: bodies can hold a sign-in link or a temporary
//! password.
#![warn(missing_docs)]

pub mod compose;
pub mod dispatch;
pub mod render;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;

pub use compose::Composer;
pub use dispatch::{DispatchPorts, DispatchReport, DispatchSettings, Dispatcher, InvalidDispatchSettings};
pub use render::{Links, Renderer};
pub use transport::{FileTransport, SendError, SmtpSecurity, SmtpSettings, SmtpTransport, Transport};
