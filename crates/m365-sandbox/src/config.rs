//! Configuration of a sandbox: the seed, the size of the seeded tenant, latency and faults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything [`crate::Sandbox::start`] needs to know.
///
/// The same `seed` always produces the same tenant (names, subjects, ids, tree shapes), and the
/// same sequence of injected faults for the same sequence of requests.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Seed of every generator in the sandbox (tenant content, ids, fault draws).
    pub seed: u64,
    /// How much data each seeded user gets.
    pub tenant: TenantSize,
    /// Latency added to every Graph request (a `$batch` counts as one request).
    pub latency: Latency,
    /// Injected throttling and outages.
    pub faults: FaultConfig,
    /// When true, a device code is approved after its first poll for the first seeded user that
    /// has not yet signed in (then the next, and so on); when false, only
    /// [`crate::SandboxHandle::approve_device_code`] (or the control API) approves one.
    pub auto_approve_device_code: bool,
    /// Port to bind on 127.0.0.1; `0` picks a free one.
    pub port: u16,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            tenant: TenantSize::small(),
            latency: Latency::none(),
            faults: FaultConfig::none(),
            auto_approve_device_code: true,
            port: 0,
        }
    }
}

/// Size of the seeded tenant, per user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSize {
    /// Messages spread over the mailbox (Inbox gets the largest share).
    pub messages_per_user: usize,
    /// User-created mail folders (under Inbox and Archive), on top of the well-known ones.
    pub mail_folders: usize,
    /// Maximum depth of user-created mail folders below their top-level parent.
    pub mail_folder_depth: usize,
    /// Folders in the OneDrive tree (besides the root).
    pub drive_folders: usize,
    /// Maximum depth of the OneDrive tree.
    pub drive_depth: usize,
    /// Files per OneDrive folder (the root included).
    pub files_per_drive_folder: usize,
    /// Contacts in the default contact folder.
    pub contacts: usize,
    /// Single (non-recurring) events around the anchor date.
    pub events: usize,
}

impl TenantSize {
    /// A small tenant for tests: fast to seed, big enough to page through.
    pub fn small() -> Self {
        Self {
            messages_per_user: 60,
            mail_folders: 8,
            mail_folder_depth: 3,
            drive_folders: 12,
            drive_depth: 3,
            files_per_drive_folder: 3,
            contacts: 25,
            events: 20,
        }
    }

    /// A large tenant for benchmarks: 10 000+ messages in 200 folders, a drive of 500+ folders
    /// six levels deep.
    pub fn large() -> Self {
        Self {
            messages_per_user: 10_500,
            mail_folders: 200,
            mail_folder_depth: 3,
            drive_folders: 540,
            drive_depth: 6,
            files_per_drive_folder: 4,
            contacts: 500,
            events: 400,
        }
    }
}

impl Default for TenantSize {
    fn default() -> Self {
        Self::small()
    }
}

/// Latency added to each Graph request: `fixed` plus a uniform draw in `[0, jitter]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Latency {
    /// Always added.
    #[serde(with = "duration_ms")]
    pub fixed: Duration,
    /// Upper bound of the random part.
    #[serde(with = "duration_ms")]
    pub jitter: Duration,
}

impl Latency {
    /// No added latency.
    pub fn none() -> Self {
        Self::default()
    }

    /// Roughly what Graph feels like from a laptop: 80 ms plus up to 60 ms.
    pub fn realistic() -> Self {
        Self {
            fixed: Duration::from_millis(80),
            jitter: Duration::from_millis(60),
        }
    }
}

/// Injected faults, drawn per Graph request (and per `$batch` item) from the seeded generator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaultConfig {
    /// Share of requests answered `429 Too Many Requests` with a `Retry-After` header.
    pub throttle_ratio: f64,
    /// Value of `Retry-After` on injected 429 and 503 answers (whole seconds, rounded up).
    #[serde(with = "duration_ms")]
    pub throttle_retry_after: Duration,
    /// Share of requests answered `503 Service Unavailable`.
    pub unavailable_ratio: f64,
}

impl FaultConfig {
    /// No injected faults.
    pub fn none() -> Self {
        Self {
            throttle_ratio: 0.0,
            throttle_retry_after: Duration::from_secs(1),
            unavailable_ratio: 0.0,
        }
    }
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self::none()
    }
}

/// Durations travel as whole milliseconds on the control API.
mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}
