//! In-memory state of the sandbox: users and their data, tokens, device codes, upload sessions.

use std::collections::HashMap;
use std::time::Instant;

use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Tenant id of every personal Microsoft account (the MSA consumer tenant).
pub const CONSUMER_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Tenant id of the seeded work/school organisation.
pub const WORK_TENANT_ID: &str = "5b4e1c6a-2f3d-4e8a-9b71-0c6d8e2f4a13";

/// A seeded account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxUser {
    /// Sign-in name (`preferred_username`), also the mail address.
    pub username: String,
    /// Object id of the user (`oid` claim, Graph `id` of `/me`).
    pub oid: String,
    /// Tenant id (`tid` claim); [`CONSUMER_TENANT_ID`] for a personal account.
    pub tid: String,
    /// Display name (`name` claim).
    pub display_name: String,
    /// True for a personal Microsoft account.
    pub personal: bool,
}

impl SandboxUser {
    /// The account id the server uses: `<oid>.<tid>`.
    pub fn account_id(&self) -> String {
        format!("{}.{}", self.oid, self.tid)
    }
}

/// A OneDrive of one user. Items are JSON objects; `_parent` holds the parent id and content
/// lives beside them.
#[derive(Debug, Default)]
pub(crate) struct Drive {
    pub id: String,
    pub root_id: String,
    pub items: Vec<Value>,
    pub content: HashMap<String, Vec<u8>>,
}

/// Everything one user owns.
#[derive(Debug)]
pub(crate) struct UserData {
    pub user: SandboxUser,
    pub given_name: String,
    pub surname: String,
    pub job_title: String,
    pub time_zone: String,
    /// Mail folders; well-known ones carry `_wellKnownName`.
    pub folders: Vec<Value>,
    pub messages: Vec<Value>,
    /// Attachments by message id.
    pub attachments: HashMap<String, Vec<Value>>,
    pub rules: Vec<Value>,
    pub calendars: Vec<Value>,
    /// Events; `_calendarId` holds the calendar.
    pub events: Vec<Value>,
    pub contact_folders: Vec<Value>,
    /// Contacts; `parentFolderId` holds the folder.
    pub contacts: Vec<Value>,
    pub drive: Drive,
}

/// An issued access token.
#[derive(Debug, Clone)]
pub(crate) struct AccessGrant {
    pub user: usize,
    pub expires_at: Instant,
}

/// Where a device-code flow stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceState {
    Pending { polled: bool },
    Approved(usize),
    Declined,
    Redeemed,
}

/// A device-code flow.
#[derive(Debug, Clone)]
pub(crate) struct DeviceFlow {
    pub device_code: String,
    pub user_code: String,
    pub scope: String,
    pub expires_at: Instant,
    pub state: DeviceState,
}

/// Target of an upload session.
#[derive(Debug, Clone)]
pub(crate) enum UploadTarget {
    /// A file attachment of a message.
    Attachment {
        user: usize,
        message_id: String,
        name: String,
        content_type: String,
    },
    /// A OneDrive file: parent id and name (an existing item is replaced).
    DriveItem {
        user: usize,
        parent_id: String,
        name: String,
    },
}

/// A resumable upload in progress.
#[derive(Debug, Clone)]
pub(crate) struct UploadSession {
    pub target: UploadTarget,
    pub size: u64,
    pub received: Vec<u8>,
    pub expiration: OffsetDateTime,
}

/// The whole mutable world, behind one lock.
pub(crate) struct World {
    pub users: Vec<UserData>,
    pub access_tokens: HashMap<String, AccessGrant>,
    pub refresh_tokens: HashMap<String, usize>,
    pub device_flows: Vec<DeviceFlow>,
    /// Users already handed out by automatic device-code approval.
    pub signed_in: Vec<bool>,
    pub uploads: HashMap<String, UploadSession>,
    /// Copy monitors: id → status JSON.
    pub monitors: HashMap<String, Value>,
    pub rng: StdRng,
    /// Secret in pre-authenticated download URLs.
    pub download_secret: String,
    /// Start of the UTC day the sandbox started on: seeded dates are relative to it.
    pub anchor: OffsetDateTime,
}

impl World {
    pub fn new(seed: u64, anchor: OffsetDateTime) -> Self {
        Self {
            users: Vec::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            device_flows: Vec::new(),
            signed_in: Vec::new(),
            uploads: HashMap::new(),
            monitors: HashMap::new(),
            rng: StdRng::seed_from_u64(seed ^ 0x0005_eed0_f1d5),
            download_secret: String::new(),
            anchor,
        }
    }

    /// Random URL-safe token of `bytes` random bytes.
    pub fn token(&mut self, bytes: usize) -> String {
        let data: Vec<u8> = (0..bytes).map(|_| self.rng.random::<u8>()).collect();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    }

    /// An Outlook-style item id (`AAMkA…=`), URL-safe apart from the trailing `=`.
    pub fn outlook_id(&mut self) -> String {
        format!("AAMkA{}AAA=", self.token(36))
    }

    /// A OneDrive-style item id (`01ABC…`).
    pub fn drive_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut id = String::from("01");
        for _ in 0..32 {
            id.push(char::from(
                ALPHABET[self.rng.random_range(0..ALPHABET.len())],
            ));
        }
        id
    }

    /// A random GUID.
    pub fn guid(&mut self) -> String {
        let bytes: [u8; 16] = self.rng.random();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string()
    }

    /// A new change key, also written as `@odata.etag` and `lastModifiedDateTime`.
    pub fn touch(&mut self, item: &mut Value) {
        let key = format!("CQAAABYAAA{}", self.token(12));
        if let Some(map) = item.as_object_mut() {
            map.insert("changeKey".into(), Value::String(key.clone()));
            map.insert("@odata.etag".into(), Value::String(format!("W/\"{key}\"")));
            map.insert("lastModifiedDateTime".into(), Value::String(now_string()));
        }
    }

    pub fn user_index(&self, username: &str) -> Option<usize> {
        self.users
            .iter()
            .position(|u| u.user.username.eq_ignore_ascii_case(username))
    }
}

/// `2025-01-01T10:00:00Z` for a time.
pub(crate) fn format_time(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Now, as Graph writes it.
pub(crate) fn now_string() -> String {
    format_time(OffsetDateTime::now_utc())
}

/// A copy without the sandbox's internal `_…` keys.
pub(crate) fn public(item: &Value) -> Value {
    match item {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// String property of an item.
pub(crate) fn str_of<'a>(item: &'a Value, key: &str) -> &'a str {
    item.get(key).and_then(Value::as_str).unwrap_or_default()
}
