//! The whole node in-process (`chat::app::start` on port 0, embedded storage in a temporary
//! directory): a REST write and Socket.IO events driven through it, with the correlation id of
//! `X-Request-Id` followed into the log. The socket speaks Engine.IO long-polling by hand (the
//! stock client is exercised by the e2e suites; this checks the wiring from Rust).

use chat::app;
use clap::Parser;
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: chat::config::Config,
}

const SECRET: &str = "in-process-test-secret";

async fn start(dir: &std::path::Path) -> anyhow::Result<app::Node> {
    let data_dir = dir.to_string_lossy().into_owned();
    let args = Args::try_parse_from([
        "chat",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
        "--jwt-secret",
        SECRET,
    ])?;
    app::start(&args.config, &[]).await
}

fn token(user: &str, admin: bool) -> anyhow::Result<String> {
    let keys = api::JwtKeys::new(SECRET.as_bytes());
    Ok(keys.sign(&events::UserId::parse(user)?, admin, None))
}

/// One Socket.IO client over Engine.IO v4 long-polling.
struct Polling {
    http: reqwest::Client,
    url: String,
    /// Packets received and not yet looked at.
    inbox: Vec<String>,
}

impl Polling {
    async fn connect(base: &str, token: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::new();
        let open = http
            .get(format!("{base}/socket.io/?EIO=4&transport=polling"))
            .send()
            .await?
            .text()
            .await?;
        let handshake: Value = serde_json::from_str(open.trim_start_matches('0'))?;
        let sid = handshake["sid"].as_str().unwrap_or_default().to_owned();
        let url = format!("{base}/socket.io/?EIO=4&transport=polling&sid={sid}");
        let client = Self {
            http,
            url,
            inbox: vec![],
        };
        client
            .send(&format!("40{}", json!({"token": token})))
            .await?;
        Ok(client)
    }

    async fn send(&self, packet: &str) -> anyhow::Result<()> {
        let status = self
            .http
            .post(&self.url)
            .body(packet.to_owned())
            .send()
            .await?
            .status();
        anyhow::ensure!(status.is_success(), "POST {status}");
        Ok(())
    }

    /// Waits for the first Socket.IO packet starting with `prefix` (e.g. `42["auth:success"`
    /// or `431`), answering pings meanwhile; returns its JSON payload.
    async fn expect(&mut self, prefix: &str) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(i) = self.inbox.iter().position(|p| p.starts_with(prefix)) {
                let packet = self.inbox.remove(i);
                let digits = packet[2..].chars().take_while(char::is_ascii_digit).count();
                return Ok(serde_json::from_str(&packet[2 + digits..])?);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "no {prefix} in time"
            );
            let body = self.http.get(&self.url).send().await?.text().await?;
            for packet in body.split('\u{1e}') {
                if packet == "2" {
                    self.send("3").await?;
                } else {
                    self.inbox.push(packet.to_owned());
                }
            }
        }
    }
}

#[tokio::test]
async fn a_rest_write_and_socket_events_run_through_the_in_process_node() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = start(dir.path()).await?;
    let base = format!("http://{}", node.addr);
    let http = reqwest::Client::new();
    let admin = token("ops", true)?;
    for (id, name) in [("alice", "Alice"), ("bob", "Bob")] {
        let res = http
            .put(format!("{base}/api/users/{id}"))
            .bearer_auth(&admin)
            .json(&json!({"name": name}))
            .send()
            .await?;
        assert_eq!(res.status(), 200);
    }

    let res = http
        .post(format!("{base}/api/conversations"))
        .bearer_auth(token("alice", false)?)
        .header("x-request-id", "req-in-process-1")
        .json(&json!({"title": "T", "participantIds": ["bob"]}))
        .send()
        .await?;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await?;
    let conv = created["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        created["participants"],
        json!([{"userId": "alice", "role": "admin"}, {"userId": "bob", "role": "member"}])
    );

    let audit: Value = http
        .get(format!("{base}/api/audit?conversationId={conv}"))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 3, "created + two participants: {audit}");
    for e in &entries {
        assert_eq!(e["correlationId"], "req-in-process-1");
        assert_eq!(e["actor"], "alice");
    }

    let mut bob = Polling::connect(&base, &token("bob", false)?).await?;
    let success = bob.expect(r#"42["auth:success""#).await?;
    assert_eq!(success[1]["userId"], "bob");
    assert_eq!(success[1]["message"], "Authentication successful");

    bob.send(&format!(
        r#"421["message:send",{}]"#,
        json!({"conversationId": conv, "content": "Hello", "tempId": "t1"})
    ))
    .await?;
    let ack = bob.expect("431").await?;
    assert_eq!(ack[0]["success"], true);
    assert_eq!(ack[0]["seq"], 1);
    let message_id = ack[0]["messageId"].as_str().unwrap_or_default().to_owned();
    assert!(message_id.starts_with("msg_"), "{ack}");

    bob.send(r#"422["message:send",{"conversationId":"bad id","content":"x"}]"#)
        .await?;
    let refused = bob.expect("432").await?;
    assert_eq!(refused[0]["success"], false);
    assert_eq!(refused[0]["error"]["code"], "INVALID_INPUT");

    let audit: Value = http
        .get(format!(
            "{base}/api/audit?conversationId={conv}&after=0&limit=10"
        ))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    let sent = audit["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["type"] == "MessageSent").cloned())
        .unwrap_or_default();
    assert_eq!(sent["actor"], "bob");
    let correlation = sent["correlationId"].as_str().unwrap_or_default();
    assert_eq!(correlation.len(), 26, "a generated ULID: {sent}");

    let position = sent["position"].as_u64().unwrap_or(u64::MAX);
    let page: Value = http
        .get(format!(
            "{base}/api/messages?conversationId={conv}&minPosition={position}"
        ))
        .bearer_auth(token("alice", false)?)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(page["messages"][0]["id"], message_id.as_str());
    assert_eq!(page["messages"][0]["content"], "Hello");
    node.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
