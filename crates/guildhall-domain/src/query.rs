//! Queries and pages: member search with keyset pagination, and generic pages.

use chrono::{DateTime, Utc};

use crate::ids::{FacilityId, OrgId, UserId};
use crate::membership::{MemberState, Membership};
use crate::token::hex;
use crate::values::{EmailAddress, InvalidValue, PersonName, RoleKey};

impl PersonName {
    /// The key members are listed by: last name, then first name, lower-cased, joined by
    /// U+001F. Stores compare it byte-wise (`COLLATE "C"` / `BINARY`) and break ties by
    /// user id, so every adapter lists members in the same order.
    #[must_use]
    pub fn sort_key(&self) -> String {
        format!("{}\u{1f}{}", self.last().to_lowercase(), self.first().to_lowercase())
    }
}

/// Where a page of members ends: the last member's sort key and id. Opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemberCursor {
    /// The last member's [`PersonName::sort_key`].
    pub sort_key: String,
    /// The last member's id.
    pub user: UserId,
}

impl MemberCursor {
    /// The cursor as an opaque string for clients.
    #[must_use]
    pub fn encode(&self) -> String {
        format!("{}.{}", hex(self.sort_key.as_bytes()), self.user.as_uuid().simple())
    }

    /// Reads a cursor a client sent back.
    ///
    /// # Errors
    /// [`InvalidValue`] (field `cursor`) when it is not a cursor this domain encoded.
    pub fn decode(text: &str) -> Result<Self, InvalidValue> {
        let invalid = || InvalidValue::new("cursor", "is not a cursor from a previous page; start again without it");
        let (key_hex, id) = text.split_once('.').ok_or_else(invalid)?;
        if key_hex.len() % 2 != 0 || key_hex.len() > 2048 {
            return Err(invalid());
        }
        let bytes = (0..key_hex.len())
            .step_by(2)
            .map(|i| key_hex.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(invalid)?;
        let sort_key = String::from_utf8(bytes).map_err(|_| invalid())?;
        let user = UserId::parse(id).map_err(|_| invalid())?;
        Ok(Self { sort_key, user })
    }
}

/// A search of one organisation's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberQuery {
    /// The organisation (every query is scoped to exactly one).
    pub org: OrgId,
    /// Case-insensitive substring of the first name, last name, "first last" or email.
    pub text: Option<String>,
    /// Only members with this role.
    pub role: Option<RoleKey>,
    /// Only members attributed to this facility.
    pub facility: Option<FacilityId>,
    /// Only members in this state at `as_of`.
    pub state: Option<MemberState>,
    /// The instant states are derived at.
    pub as_of: DateTime<Utc>,
    /// Page size, 1..=[`MemberQuery::MAX_LIMIT`].
    pub limit: u32,
    /// Start after this member.
    pub after: Option<MemberCursor>,
}

impl MemberQuery {
    /// The largest page.
    pub const MAX_LIMIT: u32 = 200;
    /// The page size when none is asked for.
    pub const DEFAULT_LIMIT: u32 = 50;

    /// Whether a member with this name and email matches [`text`](Self::text). Stores
    /// MUST implement the same rule (a lower-cased `LIKE '%text%'` over those fields).
    #[must_use]
    pub fn matches_text(&self, name: &PersonName, email: &EmailAddress) -> bool {
        let Some(text) = self.text.as_deref().map(str::to_lowercase) else { return true };
        name.first().to_lowercase().contains(&text)
            || name.last().to_lowercase().contains(&text)
            || name.full().to_lowercase().contains(&text)
            || email.normalized().contains(&text)
    }
}

/// One member in a search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSummary {
    /// The membership.
    pub membership: Membership,
    /// The member's name.
    pub name: PersonName,
    /// The member's address.
    pub email: EmailAddress,
}

/// One page of members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPage {
    /// The members, in order.
    pub items: Vec<MemberSummary>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<MemberCursor>,
}

/// A page request for time-ordered lists (audit, runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Page size.
    pub limit: u32,
    /// The opaque cursor of the previous page's `next`.
    pub after: Option<String>,
}

impl PageRequest {
    /// The first page of `limit` items.
    #[must_use]
    pub fn first(limit: u32) -> Self {
        Self { limit, after: None }
    }
}

/// A page of a time-ordered list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The cursor for the next page; `None` on the last page.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_cursor_survives_encoding_and_rejects_tampering() {
        let cursor = MemberCursor {
            sort_key: "o'brien\u{1f}siân".into(),
            user: UserId::parse("0192f4c6-7d3a-7b8e-9c1d-2e3f4a5b6c7d").unwrap(),
        };
        assert_eq!(MemberCursor::decode(&cursor.encode()).unwrap(), cursor);
        assert!(MemberCursor::decode("zz.0192f4c67d3a7b8e9c1d2e3f4a5b6c7d").is_err());
        assert!(MemberCursor::decode("abc").is_err());
        assert!(MemberCursor::decode("6162.not-a-uuid").is_err());
    }

    #[test]
    fn sort_key_orders_by_last_then_first_name_ignoring_case() {
        let a = PersonName::parse("zoe", "Adams").unwrap();
        let b = PersonName::parse("Adam", "baker").unwrap();
        let c = PersonName::parse("Bea", "Baker").unwrap();
        assert!(a.sort_key() < b.sort_key());
        assert!(b.sort_key() < c.sort_key());
    }
}
