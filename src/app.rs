//! Wiring of the roles into one axum app. Each role is started by a function that takes the
//! typed config and returns what it serves, so tests and `chat serve` build it the same way.

use crate::config::Config;
use anyhow::Context;
use api::JwtKeys;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use command::Service;
use command::executor::Executor;
use command::live::Bus;
use eventlog::{FileSnapshots, JetStreamLog, JetStreamSnapshots, Log, Snapshots};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Command,
    Query,
    Projector,
}

/// A running node: its address and the tasks it owns (dropped with it).
pub struct Node {
    pub addr: std::net::SocketAddr,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Cancelled by [`Node::shutdown`]: the listener stops accepting, projectors stop after
    /// their batch.
    stop: CancellationToken,
    /// Tasks that end by themselves once `stop` is cancelled (the projectors).
    stoppable: Vec<tokio::task::JoinHandle<()>>,
    /// The socket edge, when this node has the command role.
    sockets: Option<(
        Arc<command::drain::Drain>,
        socketioxide::SocketIo,
        Arc<command::live::Live>,
    )>,
}

impl Node {
    /// Graceful shutdown (SIGTERM): stop accepting connections; refuse new socket events with
    /// `UNAVAILABLE` and let those in hand finish (appended, acknowledged); close every socket's
    /// transport, so clients reconnect (elsewhere, behind a load balancer); let each projector
    /// commit the batch it is writing; then stop. Each step waits at most `grace`.
    pub async fn shutdown(mut self, grace: std::time::Duration) {
        use tokio::time::timeout;
        self.stop.cancel();
        if let Some((drain, io, live)) = self.sockets.take() {
            drain.start();
            if timeout(grace, drain.idle()).await.is_err() {
                tracing::warn!("shutdown: socket events still in hand after the grace period");
            }
            if timeout(grace, io.close()).await.is_err() {
                tracing::warn!("shutdown: sockets still open after the grace period");
            }
            if timeout(grace, live.settled()).await.is_err() {
                tracing::warn!("shutdown: presence still holding disconnected sockets");
            }
        }
        for task in std::mem::take(&mut self.stoppable) {
            if timeout(grace, task).await.is_err() {
                tracing::warn!("shutdown: a projector did not finish its batch in time");
            }
        }
        if timeout(grace, &mut self.server).await.is_err() {
            tracing::warn!("shutdown: HTTP requests still running after the grace period");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for t in self.tasks.iter().chain(&self.stoppable) {
            t.abort();
        }
        self.server.abort();
    }
}

/// Connects to NATS; `CHAT_NATS_URL` may list a cluster's servers, comma-separated (the client
/// also learns the others from the cluster and fails over between them).
pub async fn connect_nats(config: &Config) -> anyhow::Result<async_nats::Client> {
    let servers: Vec<&str> = config.nats_url()?.split(',').map(str::trim).collect();
    async_nats::ConnectOptions::new()
        .name("chat")
        .connect(servers)
        .await
        .context("cannot connect to NATS")
}

pub async fn connect_log(config: &Config) -> anyhow::Result<JetStreamLog> {
    let client = connect_nats(config).await?;
    Ok(JetStreamLog::open(client, config.subjects(), config.stream_replicas).await?)
}

/// Starts the given roles (all when empty) on `config.listen`: on NATS JetStream when
/// `CHAT_NATS_URL` is set, else on the embedded log under `CHAT_DATA_DIR` (one node).
pub async fn start(config: &Config, roles: &[Role]) -> anyhow::Result<Node> {
    let (log, snapshots, bus, keys) = if config.nats_url.is_some() {
        let nats = connect_nats(config).await?;
        let log =
            JetStreamLog::open(nats.clone(), config.subjects(), config.stream_replicas).await?;
        let shared = JetStreamSnapshots::open(&log, config.stream_replicas).await?;
        let copies = config
            .data_dir
            .join("snapshots")
            .join(&log.subjects().stream);
        let snapshots = Snapshots::jetstream(shared, Some(&copies));
        let keys = JwtKeys::new(config.jwt_secret()?);
        (
            Log::JetStream(Arc::new(log)),
            snapshots,
            Bus::Nats(nats),
            keys,
        )
    } else {
        let log = eventlog::EmbeddedLog::open(&crate::cli::embedded_log_path(config))?;
        let snapshots = FileSnapshots::open(&config.data_dir.join("snapshots"))?;
        let keys = JwtKeys::new(&crate::config::embedded_secret(config)?);
        (
            Log::Embedded(log),
            Snapshots::Embedded(snapshots),
            Bus::local(),
            keys,
        )
    };
    let log_backend = log.backend();
    let settings = config.projections()?;
    let keyring = crate::cli::open_keyring(config, crate::cli::Access::Owner)
        .await
        .context("cannot open the key store")?;
    let keys = Arc::new(keys);
    let all = roles.is_empty();
    let has = |r: Role| all || roles.contains(&r);
    let store = readstore::ReadStore::open(&config.read_store_url())
        .await
        .context("cannot prepare the read-model store")?;
    let pool = store.pool().clone();
    let mut tasks = Vec::new();
    let stop = CancellationToken::new();
    let mut stoppable = Vec::new();
    let mut sockets = None;
    let mut app = Router::new();
    let mut metrics = Arc::new(command::metrics::Metrics::default());
    let mut socket_layer = None;

    if has(Role::Projector) {
        for projection in projector::registry::enabled(&settings) {
            if let Some(run) = projection.run(
                log.clone(),
                store.clone(),
                config.subjects().all(),
                keyring.clone(),
                &settings,
                stop.clone(),
            ) {
                stoppable.push(tokio::spawn(run));
            }
        }
    }
    if has(Role::Query) {
        app = app.merge(query::router(query::QueryState {
            pool: pool.clone(),
            backend: store.backend(),
            log: log.clone(),
            subjects: config.subjects(),
            keyring: keyring.clone(),
            keys: keys.clone(),
        }));
    }
    if has(Role::Command) {
        let executor = Arc::new(
            Executor::new(log.clone(), config.subjects())
                .with_cache_bytes(config.cache_mb.saturating_mul(1 << 20))
                .with_snapshots(snapshots, command::executor::SNAPSHOT_EVERY),
        );
        metrics = executor.metrics().clone();
        let service = Arc::new(Service::new(executor.clone(), keyring.clone()));
        stoppable.push(tokio::spawn(sweep_retention(
            service.clone(),
            store.clone(),
            std::time::Duration::from_secs(config.retention_sweep_secs),
            stop.clone(),
        )));
        let (layer, io) = socketioxide::SocketIo::builder()
            .max_payload(MAX_BODY as u64)
            .ws_max_message_size(MAX_BODY)
            .ws_max_frame_size(MAX_BODY)
            .max_buffer_size(1024)
            // Allocated per socket for its whole life. Frames are small (an event is well under
            // 1 KB; `content` is at most 10,000 characters, a few reads); 4 KB by default.
            .ws_read_buffer_size(1024)
            .build_layer();
        let (live, live_tasks) = command::live::Live::start(
            bus,
            &config.subjects(),
            io.clone(),
            std::time::Duration::from_millis(config.presence_grace_ms),
            metrics.presence_held.clone(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot start presence: {e}"))?;
        tasks.extend(live_tasks);
        let limits = command::rate::RateLimits {
            messages_per_min: config.rate_messages_per_min,
            events_per_min: config.rate_events_per_min,
        };
        let state = Arc::new(command::node::NodeState::new(
            service,
            keys.clone(),
            live,
            limits,
        ));
        command::edge::socket::register(&io, state.clone());
        sockets = Some((state.drain.clone(), io.clone(), state.live.clone()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tasks.push(tokio::spawn(command::push::broadcaster::run(
            state.clone(),
            io,
            ready_tx,
        )));
        ready_rx.await.context("broadcaster did not start")?;
        if config.demo {
            app = app.merge(crate::demo::router(crate::demo::Demo {
                node: state.clone(),
                keys: keys.clone(),
            }));
        }
        app = app
            .merge(command::edge::rest::router(
                command::edge::rest::RestState {
                    node: state,
                    locate: locator(pool.clone()),
                    holds: hold_finder(pool.clone()),
                },
            ))
            .merge(command::edge::audit::router(
                command::edge::audit::AuditState {
                    log: log.clone(),
                    subjects: config.subjects(),
                    keys: keys.clone(),
                    keyring: keyring.clone(),
                },
            ));
        socket_layer = Some(layer);
    }
    let store_backend = store.backend().name();
    app = app.merge(crate::ops::router(crate::ops::Ops {
        log,
        log_backend,
        pool,
        store_backend,
        metrics,
        projections: projector::registry::enabled(&settings)
            .map(|r| (r.name, r.read_model))
            .collect(),
        keys: keys.clone(),
        subjects: config.subjects(),
        live: sockets
            .as_ref()
            .map(|(_, io, live)| (io.clone(), live.clone())),
    }));
    app = app.merge(crate::web::router());
    // The Socket.IO layer goes on last: it answers `/socket.io/` before routing, for every
    // route merged above.
    if let Some(layer) = socket_layer {
        app = app
            .layer(layer)
            .layer(middleware::map_request(detach_from_read_buffer));
    }
    let app = app
        .layer(cors(&config.allowed_origins))
        .layer(middleware::from_fn_with_state(
            Arc::new(config.allowed_origins.clone()),
            refuse_foreign_origin,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .layer(middleware::map_response(body_too_large_as_json));
    let app = answer_panics(app);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Small frames (acks, events) must leave at once: without TCP_NODELAY, Nagle's algorithm
    // holds them until the client's delayed ACK, some 40 ms later.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server = {
        let stop = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        })
    };
    Ok(Node {
        addr,
        server,
        tasks,
        stop,
        stoppable,
        sockets,
    })
}

/// The retention sweeper, while this node holds the deployment's sweeper lock (one active,
/// the others waiting to take over), until `stop`.
async fn sweep_retention<L: eventlog::EventLog>(
    service: Arc<Service<L>>,
    store: readstore::ReadStore,
    every: std::time::Duration,
    stop: CancellationToken,
) {
    let pool = store.pool().clone();
    let due: command::retention::Due = Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            let ids = query::conversations::with_retention(&pool)
                .await
                .map_err(|e| e.to_string())?;
            Ok(ids
                .iter()
                .filter_map(|id| events::ConversationId::parse(id).ok())
                .collect())
        })
    });
    let key = projector::runner::lock_key("retention/sweeper");
    while !stop.is_cancelled() {
        let lock = tokio::select! {
            () = stop.cancelled() => return,
            lock = store.lock_session(key) => lock,
        };
        match lock {
            Ok(lock) => {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = command::retention::run(service.clone(), due.clone(), every) => {}
                }
                lock.release().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot take the sweeper lock");
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Finds a message's conversation in the read models (for the REST message routes).
fn locator(pool: sqlx::AnyPool) -> command::edge::rest::MessageLocator {
    Arc::new(move |id: events::MessageId, min_position: Option<u64>| {
        let pool = pool.clone();
        Box::pin(async move {
            query::wait::until(&pool, min_position).await?;
            query::messages::locate(&pool, id.as_str()).await
        })
    })
}

/// Finds a held conversation with a message of a user in the read models (for erasure).
fn hold_finder(pool: sqlx::AnyPool) -> command::edge::rest::HoldFinder {
    Arc::new(move |user: events::UserId| {
        let pool = pool.clone();
        Box::pin(async move { query::holds::held_conversation_of(&pool, user.as_str()).await })
    })
}

fn cors(origins: &[String]) -> CorsLayer {
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(list))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
}

/// Copies a Socket.IO request's URI and header values into allocations of their own.
///
/// hyper parses them as slices of the connection's read buffer (8–16 KB), and engine.io keeps
/// the request's parts for the socket's whole life (`socket.req_parts()`): without the copy,
/// every idle socket pins the buffer its handshake was read into. Measured with heaptrack and
/// the benchmark's `connections` scenario (ADR 10); a few hundred bytes copied once per
/// connection.
async fn detach_from_read_buffer(mut req: Request) -> Request {
    if !req.uri().path().starts_with("/socket.io") {
        return req;
    }
    for value in req.headers_mut().values_mut() {
        // `from_bytes` copies; a value hyper accepted is always accepted again.
        if let Ok(copy) = HeaderValue::from_bytes(value.as_bytes()) {
            *value = copy;
        }
    }
    if let Ok(uri) = req.uri().to_string().parse::<axum::http::Uri>() {
        // axum's router keeps its own clone of the URI in the extensions.
        if let Some(original) = req.extensions_mut().get_mut::<axum::extract::OriginalUri>() {
            original.0 = uri.clone();
        }
        *req.uri_mut() = uri;
    }
    req
}

/// Largest request body (REST and long-polling), as the Socket.IO `maxPayload`.
const MAX_BODY: usize = 1_000_000;

/// A handler that panics answers 500 `INTERNAL` (the panic logged) instead of dropping the
/// client's connection; the node goes on serving.
fn answer_panics(app: Router) -> Router {
    app.layer(tower_http::catch_panic::CatchPanicLayer::custom(
        |panic: Box<dyn std::any::Any + Send + 'static>| {
            let detail = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            api::ApiError::internal(format!("handler panicked: {detail}")).into_response()
        },
    ))
}

/// The body limit answers 413 in plain text; every error here is JSON with a code.
async fn body_too_large_as_json(res: Response) -> Response {
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if res.status() != StatusCode::PAYLOAD_TOO_LARGE || json {
        return res;
    }
    let body = serde_json::json!({"error": {
        "message": format!("Request body too large (at most {MAX_BODY} bytes)"),
        "code": "INVALID_INPUT",
    }});
    (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response()
}

/// Browsers do not apply CORS to WebSocket upgrades, and CORS alone does not stop a request
/// from being processed: a request that names a foreign `Origin` is refused outright.
/// Requests without `Origin` (servers, CLI, Node clients) and those of the server's own pages
/// (same origin) pass.
async fn refuse_foreign_origin(
    axum::extract::State(allowed): axum::extract::State<Arc<Vec<String>>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let ok = origin
            .to_str()
            .is_ok_and(|o| allowed.iter().any(|a| a.trim() == o) || same_origin(o, host));
        if !ok {
            let body = serde_json::json!({"error": {"message": "Origin not allowed", "code": "UNAUTHORIZED"}});
            return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
        }
    }
    next.run(req).await
}

/// A page served by this server itself (the web app at `/`): its `Origin` names the `Host`
/// the browser sent the request to, which a page of another origin cannot choose.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::OriginalUri;

    #[test]
    fn the_servers_own_pages_are_same_origin() {
        assert!(same_origin("http://127.0.0.1:3000", Some("127.0.0.1:3000")));
        assert!(same_origin("https://chat.example", Some("chat.example")));
        assert!(!same_origin("http://evil.example", Some("127.0.0.1:3000")));
        assert!(!same_origin(
            "http://127.0.0.1:3000",
            Some("127.0.0.1:3001")
        ));
        assert!(!same_origin("http://127.0.0.1:3000", None));
        assert!(!same_origin("null", Some("null")));
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_internal_and_the_router_serves_on() {
        use tower::ServiceExt;
        async fn boom() -> &'static str {
            panic!("missing column")
        }
        let app = answer_panics(
            Router::new()
                .route("/boom", axum::routing::get(boom))
                .route("/ok", axum::routing::get(|| async { "fine" })),
        );
        let get = |path: &str| {
            Request::builder()
                .uri(path)
                .body(Body::empty())
                .expect("request")
        };
        let res = app.clone().oneshot(get("/boom")).await.expect("answered");
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .expect("body");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).expect("json"),
            serde_json::json!({"error": {"code": "INTERNAL", "message": "Internal error"}})
        );
        let res = app.oneshot(get("/ok")).await.expect("answered");
        assert_eq!(res.status(), StatusCode::OK);
    }

    /// The copy keeps every value and no longer points into the buffer the request was read
    /// into (here: one `Bytes` standing for hyper's read buffer).
    #[tokio::test]
    async fn socket_io_request_parts_stop_sharing_the_read_buffer() {
        let buffer =
            axum::body::Bytes::from_static(b"/socket.io/?EIO=4&transport=websocket|http://a.test");
        let bar = buffer.iter().position(|b| *b == b'|').expect("separator");
        let uri = axum::http::Uri::from_maybe_shared(buffer.slice(..bar)).expect("uri");
        let origin = HeaderValue::from_maybe_shared(buffer.slice(bar + 1..)).expect("header");
        let mut req = Request::builder()
            .uri(uri.clone())
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .expect("request");
        req.extensions_mut().insert(OriginalUri(uri));
        let range = buffer.as_ptr_range();
        let inside = |p: *const u8| range.contains(&p);

        let req = detach_from_read_buffer(req).await;

        assert_eq!(req.uri(), "/socket.io/?EIO=4&transport=websocket");
        let origin = &req.headers()[header::ORIGIN];
        assert_eq!(origin, "http://a.test");
        assert!(!inside(origin.as_bytes().as_ptr()));
        assert!(!inside(req.uri().path().as_ptr()));
        let original = req.extensions().get::<OriginalUri>().expect("original uri");
        assert_eq!(original.0, "/socket.io/?EIO=4&transport=websocket");
        assert!(!inside(original.0.path().as_ptr()));
    }
}
