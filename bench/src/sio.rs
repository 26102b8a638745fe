//! A minimal Socket.IO v5 client over Engine.IO v4 on WebSocket, enough for load: connect with
//! `auth: {token}`, wait for `auth:success`, emit with or without ack, receive events, answer
//! pings. Written by hand: the one maintained Rust client (`rust_socketio`) spawns more per
//! socket than twenty thousand sockets in one process can afford, and a load generator must see
//! each frame's arrival time without a callback layer in between.
//!
//! Frames (text only): `0{…}` open, `2`/`3` ping/pong, `40{auth}` connect, `40{…}` connected,
//! `42[event, payload]` event, `42<id>[…]` event wanting an ack, `43<id>[payload]` ack,
//! `44{…}` connect error.

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Called for every event the server pushes: (event name, the raw frame after `42`).
pub type OnEvent = Arc<dyn Fn(&str, &str) + Send + Sync>;

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A connected, authenticated socket. Dropping it closes the connection.
pub struct Client {
    tx: mpsc::UnboundedSender<Message>,
    acks: Acks,
    next: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Connects to `base` (`http://host:port`), authenticates with `token`, and returns once the
/// server said `auth:success`.
pub async fn connect(base: &str, token: &str, on_event: OnEvent) -> anyhow::Result<Client> {
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        base.replacen("http", "ws", 1)
    );
    // tungstenite zero-fills its whole read buffer before every read: at the default 128 KiB that
    // memset was a tenth of the machine's CPU under load, taken from the server being measured.
    // Frames here are small; 4 KiB is what the server side (engineioxide) reads with too.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
        .await
        .with_context(|| format!("websocket to {url}"))?;
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let acks: Acks = Arc::default();
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
    let auth = format!("40{}", serde_json::json!({ "token": token }));
    let (tx2, acks2) = (tx.clone(), acks.clone());
    let reader = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Text(text) = msg else { continue };
            let frame = text.as_str();
            match frame.as_bytes().first() {
                Some(b'0') => {
                    let _ = tx2.send(Message::text(auth.clone()));
                }
                Some(b'2') => {
                    let _ = tx2.send(Message::text("3"));
                }
                Some(b'4') => handle_packet(&frame[1..], &acks2, &on_event, &mut ready),
                _ => {}
            }
        }
        if let Some(r) = ready.take() {
            let _ = r.send(Err("connection closed before auth:success".into()));
        }
    });
    match tokio::time::timeout(Duration::from_secs(60), ready_rx).await {
        Ok(Ok(Ok(()))) => Ok(Client {
            tx,
            acks,
            next: AtomicU64::new(1),
            reader,
        }),
        Ok(Ok(Err(e))) => bail!("{e}"),
        Ok(Err(_)) => bail!("connection ended before auth:success"),
        Err(_) => bail!("no auth:success within 60 s"),
    }
}

/// A Socket.IO packet (the Engine.IO `4` already taken off).
fn handle_packet(
    packet: &str,
    acks: &Acks,
    on_event: &OnEvent,
    ready: &mut Option<oneshot::Sender<Result<(), String>>>,
) {
    let (kind, rest) = packet.split_at(packet.len().min(1));
    match kind {
        "2" => {
            // An event: `[name, …]`, perhaps after an ack id the server wants answered (never,
            // from these servers).
            let body = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            let Some(name) = event_name(body) else { return };
            if name == "auth:success" {
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
            } else if name == "auth:error"
                && let Some(r) = ready.take()
            {
                let _ = r.send(Err(format!("auth:error {body}")));
            }
            on_event(name, body);
        }
        "3" => {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let Ok(id) = rest[..digits].parse::<u64>() else {
                return;
            };
            let payload = serde_json::from_str::<Vec<Value>>(&rest[digits..])
                .ok()
                .and_then(|mut v| (!v.is_empty()).then(|| v.swap_remove(0)))
                .unwrap_or(Value::Null);
            let waiter = acks.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            if let Some(w) = waiter {
                let _ = w.send(payload);
            }
        }
        "4" => {
            if let Some(r) = ready.take() {
                let _ = r.send(Err(format!("connect error {rest}")));
            }
        }
        _ => {}
    }
}

/// The event name of `["name", …]`, without parsing the rest.
fn event_name(body: &str) -> Option<&str> {
    let rest = body.strip_prefix("[\"")?;
    let end = rest.find('"')?;
    Some(&rest[..end])
}

impl Client {
    /// Emits and waits for the ack's payload.
    pub async fn emit_ack(&self, event: &str, payload: &Value) -> anyhow::Result<Value> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let frame = format!("42{id}{}", serde_json::json!([event, payload]));
        self.tx
            .send(Message::text(frame))
            .map_err(|_| anyhow::anyhow!("socket closed"))?;
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => bail!("socket closed before the ack"),
            Err(_) => {
                self.acks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                bail!("no ack within 30 s")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_come_off_the_frame() {
        assert_eq!(
            event_name(r#"["message:new",{"a":1}]"#),
            Some("message:new")
        );
        assert_eq!(event_name("garbage"), None);
    }
}
