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

/// A token source that always hands out one access token.
pub struct StaticToken(pub String);

impl m365_graph::TokenSource for StaticToken {
    fn access_token<'a>(
        &'a self,
        _: &'a str,
    ) -> m365_graph::BoxFuture<'a, Result<String, m365_graph::GraphError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
    fn refresh<'a>(
        &'a self,
        _: &'a str,
    ) -> m365_graph::BoxFuture<'a, Result<String, m365_graph::GraphError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

impl World {
    /// A Graph client acting as `username` directly against the sandbox:
    /// changes made through it happen "behind the server's back".
    pub fn graph_as(&self, username: &str) -> m365_graph::GraphClient {
        let tokens = self.sandbox.issue_tokens(username).expect("tokens");
        let token = tokens["access_token"]
            .as_str()
            .expect("access token")
            .to_string();
        let config = m365_graph::GraphConfig::default()
            .with_base_url(&self.sandbox.graph_url())
            .expect("sandbox URL");
        m365_graph::GraphClient::new(config, std::sync::Arc::new(StaticToken(token)))
            .expect("client")
    }

    /// Runs the binary with this world's environment and `args`, to the end.
    pub fn run_cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(exe())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run m365-mcp")
    }
}

/// Builds tool arguments for `account`: `{"account_id": account}` plus the
/// members of the object it is given.
pub fn for_account(account: &str) -> impl Fn(serde_json::Value) -> serde_json::Value + '_ {
    move |extra| {
        let mut args = serde_json::json!({ "account_id": account });
        if let (Some(obj), serde_json::Value::Object(more)) = (args.as_object_mut(), extra) {
            obj.extend(more);
        }
        args
    }
}

/// Calls a tool that must succeed; returns its structured result.
pub async fn ok(client: &Client, tool: &str, args: serde_json::Value) -> serde_json::Value {
    let (value, err, _) = demo::call(client, tool, args.clone()).await.unwrap();
    assert!(!err, "{tool} {args} failed: {value}");
    value
}

/// Calls a tool that must fail with `expected` in its message.
pub async fn fails(
    client: &Client,
    tool: &str,
    args: serde_json::Value,
    expected: &str,
) -> serde_json::Value {
    let (value, err, _) = demo::call(client, tool, args.clone()).await.unwrap();
    assert!(err, "{tool} {args} should fail: {value}");
    let text = value["error"]["text"].as_str().unwrap_or_default();
    assert!(text.contains(expected), "{tool} {args}: {text}");
    value
}
