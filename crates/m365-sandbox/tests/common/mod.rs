//! Helpers shared by the integration tests.
#![allow(dead_code)]

use m365_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use serde_json::Value;

/// A started sandbox with a signed-in client for its first (work) user.
pub struct Env {
    pub sandbox: SandboxHandle,
    pub http: reqwest::Client,
    pub token: String,
    pub username: String,
}

pub async fn start() -> Env {
    start_with(SandboxConfig::default()).await
}

pub async fn start_with(config: SandboxConfig) -> Env {
    let sandbox = Sandbox::start(config).await.expect("sandbox starts");
    let username = sandbox.users()[0].username.clone();
    let tokens = sandbox.issue_tokens(&username).expect("tokens");
    let token = tokens["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Env {
        sandbox,
        http,
        token,
        username,
    }
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sandbox.graph_url(), path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            self.url(path)
        };
        let r = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, body).await
    }

    pub async fn delete(&self, path: &str) -> u16 {
        let r = self
            .http
            .delete(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("send");
        r.status().as_u16()
    }
}

/// Percent-encodes one path segment.
pub fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
