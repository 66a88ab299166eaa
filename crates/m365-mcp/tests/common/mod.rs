//! Helpers for driving the real binary against the sandbox.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use m365_mcp::demo::{self, Client};
use m365_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use m365_store::CacheKey;

/// The built binary.
pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_m365-mcp"))
}

/// A sandbox, a data directory, a key, and the server environment for them.
pub struct World {
    pub sandbox: SandboxHandle,
    pub dir: tempfile::TempDir,
    pub key: CacheKey,
    pub env: Vec<(String, String)>,
}

impl World {
    pub async fn start(config: SandboxConfig) -> World {
        let sandbox = Sandbox::start(config).await.expect("sandbox starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let key = CacheKey::generate();
        let env = demo::sandbox_env(&sandbox, dir.path(), &key);
        World {
            sandbox,
            dir,
            key,
            env,
        }
    }

    /// A default sandbox whose device codes are approved by the test.
    pub async fn manual() -> World {
        World::start(SandboxConfig {
            auto_approve_device_code: false,
            ..SandboxConfig::default()
        })
        .await
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn with_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    pub async fn client(&self) -> Client {
        demo::spawn_server(&exe(), &self.env)
            .await
            .expect("server starts")
            .0
    }

    pub fn username(&self, i: usize) -> String {
        self.sandbox.users()[i].username.clone()
    }
}
