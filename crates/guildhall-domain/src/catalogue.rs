//! The catalogue: every permission, notification topic, resource kind, member alert and
//! capability that organisations can use.
//!
//! Guildhall ships built-in entries (the ones the seed products need); an embedder adds
//! its own through [`CatalogueBuilder`] when it wires the use cases. Settings and roles
//! may refer only to keys the catalogue knows, so a typo is an error, not a silent no-op.

use std::collections::{BTreeMap, BTreeSet};

use crate::values::{AlertKind, CapabilityKey, Permission, ResourceKind, Topic};

/// The built-in permissions.
pub mod permissions {
    use crate::values::Permission;

    /// See every report.
    pub const REPORTS_VIEW: Permission = Permission::from_static("reports.view");
    /// Download reports.
    pub const REPORTS_DOWNLOAD: Permission = Permission::from_static("reports.download");
    /// Use campaigns.
    pub const CAMPAIGNS_ACCESS: Permission = Permission::from_static("campaigns.access");
    /// See financials.
    pub const FINANCIALS_ACCESS: Permission = Permission::from_static("financials.access");
    /// Have patients assigned. Never held by aides.
    pub const PATIENTS_ASSIGN: Permission = Permission::from_static("patients.assign");
    /// Message patients through the patient portal. Never held by aides.
    pub const PATIENTS_MESSAGE: Permission = Permission::from_static("patients.message");
    /// Add, invite, suspend, remove members, decide join requests and change members'
    /// roles and settings.
    pub const MEMBERS_MANAGE: Permission = Permission::from_static("members.manage");
    /// Create, edit and delete roles.
    pub const ROLES_MANAGE: Permission = Permission::from_static("roles.manage");
    /// Change the organisation's settings, facilities, notification routing and capabilities.
    pub const ORG_SETTINGS: Permission = Permission::from_static("org.settings");
    /// Read the organisation's audit log.
    pub const AUDIT_VIEW: Permission = Permission::from_static("audit.view");
    /// Record and read runs of automated services (recall runs and the like).
    pub const RUNS_RECORD: Permission = Permission::from_static("runs.record");
}

/// The built-in notification topics an organisation can route to shared addresses.
pub mod topics {
    use crate::values::Topic;

    /// Messages that could not be delivered.
    pub const FAILED_MESSAGING: Topic = Topic::from_static("failed_messaging");
    /// Responses to questionnaires.
    pub const QUESTIONNAIRE_RESPONSES: Topic = Topic::from_static("questionnaire_responses");
    /// Patients' booking requests.
    pub const BOOKING_REQUESTS: Topic = Topic::from_static("booking_requests");
    /// People asking to join the organisation.
    pub const JOIN_REQUESTS: Topic = Topic::from_static("join_requests");
}

/// The built-in resource kinds whose access a membership scopes.
pub mod resource_kinds {
    use crate::values::ResourceKind;

    /// Patients.
    pub const PATIENTS: ResourceKind = ResourceKind::from_static("patients");
    /// Patient lists.
    pub const LISTS: ResourceKind = ResourceKind::from_static("lists");
    /// Content (templates, articles).
    pub const CONTENT: ResourceKind = ResourceKind::from_static("content");
    /// Workflows.
    pub const WORKFLOWS: ResourceKind = ResourceKind::from_static("workflows");
    /// Net-promoter-score results.
    pub const NPS: ResourceKind = ResourceKind::from_static("nps");
}

/// The built-in alerts a member can opt into.
pub mod alerts {
    use crate::values::AlertKind;

    /// A new lead was submitted.
    pub const NEW_LEADS: AlertKind = AlertKind::from_static("new_leads");
    /// A new intake was submitted.
    pub const NEW_INTAKES: AlertKind = AlertKind::from_static("new_intakes");
    /// A low (detractor) NPS score arrived.
    pub const NPS_LOW: AlertKind = AlertKind::from_static("nps_low");
    /// A passive NPS score arrived.
    pub const NPS_PASSIVE: AlertKind = AlertKind::from_static("nps_passive");
    /// A promoter NPS score arrived.
    pub const NPS_PROMOTER: AlertKind = AlertKind::from_static("nps_promoter");
}

/// What sort of thing a capability is; it changes only how it is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum CapabilityKind {
    /// A service offered to the organisation's clients (patient tasks, questionnaires).
    Service,
    /// An automation that runs and reports runs (automated recall).
    Automation,
    /// A rule the organisation can enable or disable (a monitoring rule).
    Rule,
    /// Any other feature.
    Feature,
}

/// An embedder-declared capability: something organisations switch on or off.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CapabilityDef {
    /// Its key.
    pub key: CapabilityKey,
    /// What sort of capability it is.
    pub kind: CapabilityKind,
    /// Whether a new organisation has it on.
    pub enabled_by_default: bool,
    /// One sentence for administrators.
    pub description: String,
}

/// A catalogue entry could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    /// The key is already in the catalogue.
    #[error("the catalogue already has a {what} called {key:?}")]
    Duplicate {
        /// Which part of the catalogue (`permission`, `topic`, ...).
        what: &'static str,
        /// The key.
        key: String,
    },
}

/// Every key organisations can use. Cheap to clone behind an `Arc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    permissions: BTreeMap<Permission, String>,
    aide_forbidden: BTreeSet<Permission>,
    topics: BTreeMap<Topic, String>,
    resource_kinds: BTreeMap<ResourceKind, String>,
    alerts: BTreeMap<AlertKind, String>,
    capabilities: BTreeMap<CapabilityKey, CapabilityDef>,
}

impl Catalogue {
    /// The built-in catalogue, with no embedder entries and no capabilities.
    #[must_use]
    pub fn builtin() -> Self {
        use permissions as p;
        let permissions = [
            (p::REPORTS_VIEW, "See every report"),
            (p::REPORTS_DOWNLOAD, "Download reports"),
            (p::CAMPAIGNS_ACCESS, "Use campaigns"),
            (p::FINANCIALS_ACCESS, "See financials"),
            (p::PATIENTS_ASSIGN, "Have patients assigned"),
            (p::PATIENTS_MESSAGE, "Message patients through the patient portal"),
            (p::MEMBERS_MANAGE, "Add, invite, suspend and remove members, decide join requests, change members' roles"),
            (p::ROLES_MANAGE, "Create, edit and delete roles"),
            (p::ORG_SETTINGS, "Change organisation settings, facilities, email routing and services"),
            (p::AUDIT_VIEW, "Read the audit log"),
            (p::RUNS_RECORD, "Record and read runs of automated services"),
        ];
        let topics = [
            (topics::FAILED_MESSAGING, "Messages that could not be delivered"),
            (topics::QUESTIONNAIRE_RESPONSES, "Questionnaire responses"),
            (topics::BOOKING_REQUESTS, "Booking requests"),
            (topics::JOIN_REQUESTS, "People asking to join"),
        ];
        let kinds = [
            (resource_kinds::PATIENTS, "Patients"),
            (resource_kinds::LISTS, "Lists"),
            (resource_kinds::CONTENT, "Content"),
            (resource_kinds::WORKFLOWS, "Workflows"),
            (resource_kinds::NPS, "NPS results"),
        ];
        let alerts = [
            (alerts::NEW_LEADS, "New lead submissions"),
            (alerts::NEW_INTAKES, "New intake submissions"),
            (alerts::NPS_LOW, "Low score alerts"),
            (alerts::NPS_PASSIVE, "Passive score alerts"),
            (alerts::NPS_PROMOTER, "Promoter score alerts"),
        ];
        Self {
            permissions: permissions.into_iter().map(|(k, d)| (k, d.to_owned())).collect(),
            aide_forbidden: [p::PATIENTS_ASSIGN, p::PATIENTS_MESSAGE].into_iter().collect(),
            topics: topics.into_iter().map(|(k, d)| (k, d.to_owned())).collect(),
            resource_kinds: kinds.into_iter().map(|(k, d)| (k, d.to_owned())).collect(),
            alerts: alerts.into_iter().map(|(k, d)| (k, d.to_owned())).collect(),
            capabilities: BTreeMap::new(),
        }
    }

    /// Starts from the built-in catalogue and adds an embedder's entries.
    #[must_use]
    pub fn builder() -> CatalogueBuilder {
        CatalogueBuilder { catalogue: Self::builtin() }
    }

    /// Every permission with its description.
    pub fn permissions(&self) -> impl Iterator<Item = (&Permission, &str)> {
        self.permissions.iter().map(|(k, d)| (k, d.as_str()))
    }

    /// The set of every permission (what an administrator holds).
    #[must_use]
    pub fn all_permissions(&self) -> BTreeSet<Permission> {
        self.permissions.keys().cloned().collect()
    }

    /// Whether the catalogue has this permission.
    #[must_use]
    pub fn has_permission(&self, permission: &Permission) -> bool {
        self.permissions.contains_key(permission)
    }

    /// Permissions an aide never holds, whatever their role.
    #[must_use]
    pub fn aide_forbidden(&self) -> &BTreeSet<Permission> {
        &self.aide_forbidden
    }

    /// Every notification topic with its description.
    pub fn topics(&self) -> impl Iterator<Item = (&Topic, &str)> {
        self.topics.iter().map(|(k, d)| (k, d.as_str()))
    }

    /// Whether the catalogue has this topic.
    #[must_use]
    pub fn has_topic(&self, topic: &Topic) -> bool {
        self.topics.contains_key(topic)
    }

    /// Every resource kind with its description.
    pub fn resource_kinds(&self) -> impl Iterator<Item = (&ResourceKind, &str)> {
        self.resource_kinds.iter().map(|(k, d)| (k, d.as_str()))
    }

    /// Whether the catalogue has this resource kind.
    #[must_use]
    pub fn has_resource_kind(&self, kind: &ResourceKind) -> bool {
        self.resource_kinds.contains_key(kind)
    }

    /// Every member alert with its description.
    pub fn alerts(&self) -> impl Iterator<Item = (&AlertKind, &str)> {
        self.alerts.iter().map(|(k, d)| (k, d.as_str()))
    }

    /// Whether the catalogue has this alert.
    #[must_use]
    pub fn has_alert(&self, alert: &AlertKind) -> bool {
        self.alerts.contains_key(alert)
    }

    /// Every declared capability.
    pub fn capabilities(&self) -> impl Iterator<Item = &CapabilityDef> {
        self.capabilities.values()
    }

    /// The declaration of one capability.
    #[must_use]
    pub fn capability(&self, key: &CapabilityKey) -> Option<&CapabilityDef> {
        self.capabilities.get(key)
    }
}

/// Adds an embedder's entries to the built-in catalogue.
#[derive(Debug)]
pub struct CatalogueBuilder {
    catalogue: Catalogue,
}

fn insert_unique<K: Ord + ToString, V>(
    map: &mut BTreeMap<K, V>,
    what: &'static str,
    key: K,
    value: V,
) -> Result<(), CatalogueError> {
    if map.contains_key(&key) {
        return Err(CatalogueError::Duplicate { what, key: key.to_string() });
    }
    map.insert(key, value);
    Ok(())
}

impl CatalogueBuilder {
    /// Registers a permission. Administrators hold it at once.
    ///
    /// # Errors
    /// [`CatalogueError::Duplicate`] when the key exists.
    pub fn permission(mut self, key: Permission, description: &str) -> Result<Self, CatalogueError> {
        insert_unique(&mut self.catalogue.permissions, "permission", key, description.to_owned())?;
        Ok(self)
    }

    /// Registers a permission that aides never hold (like patient assignment).
    ///
    /// # Errors
    /// [`CatalogueError::Duplicate`] when the key exists.
    pub fn aide_forbidden_permission(mut self, key: Permission, description: &str) -> Result<Self, CatalogueError> {
        self.catalogue.aide_forbidden.insert(key.clone());
        insert_unique(&mut self.catalogue.permissions, "permission", key, description.to_owned())?;
        Ok(self)
    }

    /// Registers a notification topic.
    ///
    /// # Errors
    /// [`CatalogueError::Duplicate`] when the key exists.
    pub fn topic(mut self, key: Topic, description: &str) -> Result<Self, CatalogueError> {
        insert_unique(&mut self.catalogue.topics, "topic", key, description.to_owned())?;
        Ok(self)
    }

    /// Registers a resource kind for access scopes.
    ///
    /// # Errors
    /// [`CatalogueError::Duplicate`] when the key exists.
    pub fn resource_kind(mut self, key: ResourceKind, description: &str) -> Result<Self, CatalogueError> {
        insert_unique(&mut self.catalogue.resource_kinds, "resource kind", key, description.to_owned())?;
        Ok(self)
    }

    /// Registers a member alert.
    ///
    /// # Errors
    /// [`CatalogueError::Duplicate`] when the key exists.
    pub fn alert(mut self, key: AlertKind, description: &str) -> Result<Self, CatalogueError> {
        insert_unique(&mut self.catalogue.alerts, "alert", key, description.to_owned())?;
        Ok(self)
    }

    /// Declares a capability organisations can toggle.
    ///
    /// # Errors
    /// [`CatalogueError::Duplicate`] when the key exists.
    pub fn capability(mut self, def: CapabilityDef) -> Result<Self, CatalogueError> {
        insert_unique(&mut self.catalogue.capabilities, "capability", def.key.clone(), def)?;
        Ok(self)
    }

    /// The finished catalogue.
    #[must_use]
    pub fn build(self) -> Catalogue {
        self.catalogue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registering_a_permission_twice_is_refused() {
        let err = Catalogue::builder().permission(permissions::REPORTS_VIEW, "again").unwrap_err();
        assert_eq!(err, CatalogueError::Duplicate { what: "permission", key: "reports.view".into() });
    }

    #[test]
    fn embedder_permissions_join_the_full_set_and_aide_mask() {
        let key = Permission::parse("prescriptions.sign").unwrap();
        let catalogue =
            Catalogue::builder().aide_forbidden_permission(key.clone(), "Sign prescriptions").unwrap().build();
        assert!(catalogue.all_permissions().contains(&key));
        assert!(catalogue.aide_forbidden().contains(&key));
        assert!(catalogue.aide_forbidden().contains(&permissions::PATIENTS_MESSAGE));
    }
}
