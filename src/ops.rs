//! Operator endpoints: `/healthz` (the process answers), `/readyz` (log and read store
//! reachable, projections not lagging), `/metrics` (Prometheus), `/api/openapi.json`, and for
//! the `/ops` page (admin token): `GET /api/ops/status` (log position, projections and their
//! lag, nodes and sockets) and `POST /api/ops/audit/verify` (`chat audit verify` over HTTP).
//! Reads only: nothing here writes to the log or the read store.

use api::{ApiError, Identity, JwtKeys};
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use command::metrics::Metrics;
use eventlog::EventLog;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wire::rest::{AuditVerified, NodeLoad, OpsLog, OpsStatus, OpsStore, ProjectionLag};

/// A projection further behind the log than this many positions makes the node not ready.
pub const READY_MAX_LAG: u64 = 1000;

#[derive(Clone)]
pub struct Ops<L> {
    pub log: L,
    /// `jetstream` or `embedded`.
    pub log_backend: &'static str,
    pub pool: sqlx::AnyPool,
    /// `postgres` or `sqlite`.
    pub store_backend: &'static str,
    pub metrics: Arc<Metrics>,
    /// The projections this node runs, and whether each is a read model (only read models
    /// hold readiness back: a lagging webhook does not).
    pub projections: Vec<(&'static str, bool)>,
    pub keys: Arc<JwtKeys>,
    /// The subjects of this deployment's events (what `audit verify` walks).
    pub subjects: events::Subjects,
    /// This node's sockets and presence, when it runs the command role.
    pub live: Option<(socketioxide::SocketIo, Arc<command::live::Live>)>,
}

impl<L> FromRef<Ops<L>> for Arc<JwtKeys> {
    fn from_ref(s: &Ops<L>) -> Self {
        s.keys.clone()
    }
}

pub fn router<L: EventLog>(ops: Ops<L>) -> Router {
    Router::new()
        .route("/api/ops/status", get(status::<L>))
        .route("/api/ops/audit/verify", post(verify::<L>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz::<L>))
        .route("/metrics", get(metrics::<L>))
        .route("/api/openapi.json", get(openapi))
        .with_state(ops)
}

/// Each projection's checkpoint and lag, and the log's last position.
async fn lags<L: EventLog>(ops: &Ops<L>) -> Result<(u64, Vec<(&'static str, u64, u64)>), String> {
    let last = tokio::time::timeout(Duration::from_secs(2), ops.log.last_position())
        .await
        .map_err(|_| "the log did not answer".to_owned())?
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (name, _) in &ops.projections {
        let name = *name;
        let at = projector::checkpoint(&ops.pool, name)
            .await
            .map_err(|e| e.to_string())?;
        out.push((name, at, last.saturating_sub(at)));
    }
    Ok((last, out))
}

async fn readyz<L: EventLog>(State(ops): State<Ops<L>>) -> impl IntoResponse {
    let log = match tokio::time::timeout(Duration::from_secs(2), ops.log.last_position()).await {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "the log did not answer".to_owned(),
    };
    let store = match sqlx::query("SELECT 1").execute(&ops.pool).await {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    let (projections, lagging) = match lags(&ops).await {
        Ok((_, l)) => {
            let lagging = l.iter().any(|(name, _, lag)| {
                *lag > READY_MAX_LAG && ops.projections.iter().any(|(n, read)| n == name && *read)
            });
            let v: serde_json::Map<String, Value> = l
                .into_iter()
                .map(|(n, at, lag)| (n.to_owned(), json!({"checkpoint": at, "lag": lag})))
                .collect();
            (Value::Object(v), lagging)
        }
        Err(e) => (json!({"error": e}), true),
    };
    let ready = log == "ok" && store == "ok" && !lagging;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "log": {"backend": ops.log_backend, "status": log},
        "readStore": {"backend": ops.store_backend, "status": store},
        "projections": projections,
    });
    (status, Json(body))
}

async fn status<L: EventLog>(
    State(ops): State<Ops<L>>,
    who: Identity,
) -> Result<Json<OpsStatus>, ApiError> {
    who.require_admin()?;
    let (position, lags) = lags(&ops).await.map_err(ApiError::unavailable)?;
    let mut nodes = Vec::new();
    if let Some((io, live)) = &ops.live {
        for (i, (id, users)) in live.nodes().into_iter().enumerate() {
            nodes.push(NodeLoad {
                id: id.to_string(),
                this_node: i == 0,
                users: users as u64,
                sockets: (i == 0).then(|| io.sockets().len() as u64),
            });
        }
    }
    Ok(Json(OpsStatus {
        log: OpsLog {
            backend: ops.log_backend,
            position,
        },
        read_store: OpsStore {
            backend: ops.store_backend,
        },
        projections: lags
            .into_iter()
            .map(|(name, checkpoint, lag)| ProjectionLag {
                name: name.to_owned(),
                checkpoint,
                lag,
            })
            .collect(),
        nodes,
    }))
}

/// Walks the whole log and checks every chain, as `chat audit verify` does (without counting
/// sealed fields).
async fn verify<L: EventLog>(
    State(ops): State<Ops<L>>,
    who: Identity,
) -> Result<Json<AuditVerified>, ApiError> {
    who.require_admin()?;
    let start = std::time::Instant::now();
    let outcome = eventlog::verify::verify_log(&ops.log, &ops.subjects.all())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let took_ms = start.elapsed().as_millis() as u64;
    Ok(Json(match outcome {
        eventlog::verify::Outcome::Intact {
            commits,
            events,
            aggregates,
        } => AuditVerified {
            intact: true,
            commits: Some(commits),
            events: Some(events),
            aggregates: Some(aggregates as u64),
            broken_at: None,
            reason: None,
            took_ms,
        },
        eventlog::verify::Outcome::Broken(b) => AuditVerified {
            intact: false,
            commits: None,
            events: None,
            aggregates: None,
            broken_at: Some(b.position()),
            reason: Some(b.to_string()),
            took_ms,
        },
    }))
}

async fn metrics<L: EventLog>(State(ops): State<Ops<L>>) -> impl IntoResponse {
    if let Ok((_, l)) = lags(&ops).await {
        for (name, _, lag) in l {
            ops.metrics.set_lag(name, lag);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ops.metrics.render(),
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// The OpenAPI document of the REST API (`docs/openapi.json`).
pub const OPENAPI: &str = include_str!("../docs/openapi.json");

#[cfg(test)]
mod tests {
    /// Every route the app serves, as (method, path); keep in step with the routers.
    const ROUTES: &[(&str, &str)] = &[
        ("put", "/api/users/{id}"),
        ("get", "/api/users/{id}"),
        ("post", "/api/users/{id}/suspend"),
        ("post", "/api/users/{id}/reinstate"),
        ("post", "/api/conversations"),
        ("get", "/api/conversations"),
        ("get", "/api/conversations/{id}"),
        ("post", "/api/conversations/{id}/participants"),
        ("delete", "/api/conversations/{id}/participants/{userId}"),
        ("put", "/api/conversations/{id}/retention"),
        ("post", "/api/messages"),
        ("get", "/api/messages"),
        ("post", "/api/messages/read"),
        ("patch", "/api/messages/{id}"),
        ("delete", "/api/messages/{id}"),
        ("get", "/api/messages/{id}/history"),
        ("post", "/api/messages/{id}/pin"),
        ("delete", "/api/messages/{id}/pin"),
        ("get", "/api/mentions"),
        ("post", "/api/demo/session"),
        ("get", "/api/search"),
        ("post", "/api/messages/{id}/reactions"),
        ("delete", "/api/messages/{id}/reactions/{reactionId}"),
        ("get", "/api/audit"),
        ("post", "/api/users/{id}/erase"),
        ("put", "/api/holds/users/{id}"),
        ("delete", "/api/holds/users/{id}"),
        ("put", "/api/holds/conversations/{id}"),
        ("delete", "/api/holds/conversations/{id}"),
        ("get", "/api/holds"),
        ("get", "/api/users/{id}/export"),
        ("get", "/api/conversations/{id}/export"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/api/openapi.json"),
        ("get", "/api/ops/status"),
        ("post", "/api/ops/audit/verify"),
    ];

    #[test]
    fn the_openapi_document_describes_every_route() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        for (method, path) in ROUTES {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing"
            );
        }
        let documented: usize = doc["paths"]
            .as_object()
            .map(|p| {
                p.values()
                    .map(|ops| {
                        ops.as_object()
                            .map_or(0, |o| o.keys().filter(|k| *k != "parameters").count())
                    })
                    .sum()
            })
            .unwrap_or(0);
        assert_eq!(
            documented,
            ROUTES.len(),
            "the document lists a route the app does not serve"
        );
    }
}
