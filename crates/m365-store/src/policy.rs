//! Time-to-live per resource type: how long an entry is fresh (served as is)
//! and when it expires (served only if Graph fails, then swept).
//!
//! Between `fresh` and `expires` an entry is stale: served at once and
//! refreshed in the background. The values follow the product's cache model.

use std::time::Duration;

/// Fresh and expiry ages of one resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    /// Age up to which an entry is served without a refresh.
    pub fresh: Duration,
    /// Age after which an entry is expired (fetched again before answering).
    pub expires: Duration,
}

const fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

const fn policy(fresh: Duration, expires: Duration) -> TtlPolicy {
    TtlPolicy { fresh, expires }
}

/// The policy used for resource types not in the table.
pub const DEFAULT_POLICY: TtlPolicy = policy(minutes(5), minutes(30));

/// Resource type → policy. Resource types are the cached tools' names.
pub const POLICIES: &[(&str, TtlPolicy)] = &[
    // Folder trees change rarely and are the most expensive to build.
    ("emailfolders_get_tree", policy(minutes(30), minutes(120))),
    ("folder_get_tree", policy(minutes(30), minutes(120))),
    // Mail folder metadata carries unread/total counts, which move with mail.
    ("emailfolders_list", policy(minutes(5), minutes(30))),
    ("emailfolders_get", policy(minutes(5), minutes(30))),
    ("emailrules_list", policy(minutes(30), minutes(120))),
    ("email_list", policy(minutes(2), minutes(10))),
    ("email_get", policy(minutes(15), minutes(60))),
    ("file_list", policy(minutes(10), minutes(60))),
    ("folder_list", policy(minutes(10), minutes(60))),
    ("folder_get", policy(minutes(20), minutes(120))),
    ("file_get", policy(minutes(20), minutes(120))),
    ("contact_list", policy(minutes(20), minutes(120))),
    ("contact_get", policy(minutes(30), minutes(240))),
    ("calendar_list_events", policy(minutes(5), minutes(30))),
    ("calendar_get_event", policy(minutes(10), minutes(60))),
    ("calendar_list_calendars", policy(minutes(30), minutes(120))),
    ("search_files", policy(minutes(1), minutes(5))),
    ("search_emails", policy(minutes(1), minutes(5))),
    ("search_events", policy(minutes(1), minutes(5))),
    ("search_contacts", policy(minutes(1), minutes(5))),
    ("search_unified", policy(minutes(1), minutes(5))),
];

/// The policy of `resource_type`, or [`DEFAULT_POLICY`].
pub fn policy_for(resource_type: &str) -> TtlPolicy {
    POLICIES
        .iter()
        .find(|(name, _)| *name == resource_type)
        .map(|(_, p)| *p)
        .unwrap_or(DEFAULT_POLICY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_cache_model() {
        assert_eq!(
            policy_for("folder_get_tree"),
            policy(minutes(30), minutes(120))
        );
        assert_eq!(policy_for("email_list"), policy(minutes(2), minutes(10)));
        assert_eq!(policy_for("contact_get"), policy(minutes(30), minutes(240)));
        assert_eq!(policy_for("search_unified"), policy(minutes(1), minutes(5)));
        assert_eq!(policy_for("no_such_tool"), DEFAULT_POLICY);
        for (name, p) in POLICIES {
            assert!(p.fresh < p.expires, "{name}: fresh must end before expiry");
        }
    }
}
