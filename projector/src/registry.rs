//! Every projection, declared once. `chat serve` starts each of [`ALL`] that is enabled,
//! `chat projections status`, `/readyz` and `/metrics` report each, `chat projections rebuild
//! NAME` finds it here, and a read carrying `minPosition` waits for each that is a read model.
//! A projection writes tables (rebuildable) or feeds a sink outside (the webhook: enabled when
//! configured, never rebuilt). Adding one is a line in [`ALL`] (plus its module, and its
//! migration or its settings).
//!
//! Must not hold projection logic: a registration only names what runs.

use crate::rebuild::Rebuilt;
use crate::runner::RunError;
use crate::{Projection, Projector, ProjectorConfig, Settings, chat, search, unread, webhook};
use eventlog::Log;
use futures::future::BoxFuture;
use readstore::ReadStore;
use tokio_util::sync::CancellationToken;

/// `progress(done, target)` of a rebuild.
pub type Progress<'a> = &'a mut (dyn FnMut(u64, u64) + Send);

type Keyring = std::sync::Arc<keys::Keyring>;
/// Runs the projection, or `None` when the settings leave it off.
type RunFn = fn(
    Log,
    ReadStore,
    String,
    Keyring,
    &Settings,
    CancellationToken,
) -> Option<BoxFuture<'static, ()>>;
type RebuildFn = for<'a> fn(
    Log,
    &'a ReadStore,
    String,
    Keyring,
    Progress<'a>,
) -> BoxFuture<'a, Result<Rebuilt, RunError>>;

/// One projection, type-erased: what the runner, rebuild, status and waiting need.
pub struct Registered {
    pub name: &'static str,
    /// Whether the query side reads its tables (reads with `minPosition` wait for it, and a
    /// node is not ready while it lags).
    pub read_model: bool,
    enabled: fn(&Settings) -> bool,
    run: RunFn,
    /// `None` for a sink: what it delivered cannot be taken back.
    rebuild: Option<RebuildFn>,
}

/// Every projection of the product.
pub const ALL: &[Registered] = &[
    Registered::of::<chat::Chat>(true),
    Registered::of::<unread::Unread>(true),
    Registered::of::<search::Search>(true),
    Registered {
        name: webhook::NAME,
        read_model: false,
        enabled: |s| s.webhook.is_some(),
        run: run_webhook,
        rebuild: None,
    },
];

/// The projection called `name`.
pub fn find(name: &str) -> Option<&'static Registered> {
    ALL.iter().find(|r| r.name == name)
}

/// The names of every projection, in [`ALL`]'s order.
pub fn names() -> impl Iterator<Item = &'static str> {
    ALL.iter().map(|r| r.name)
}

/// The projections `settings` turn on.
pub fn enabled(settings: &Settings) -> impl Iterator<Item = &'static Registered> + '_ {
    ALL.iter().filter(|r| (r.enabled)(settings))
}

/// The names of the read models the query side waits for.
pub fn read_models() -> impl Iterator<Item = &'static str> {
    ALL.iter().filter(|r| r.read_model).map(|r| r.name)
}

impl Registered {
    const fn of<P: Projection + Clone + Default>(read_model: bool) -> Self {
        Self {
            name: P::NAME,
            read_model,
            enabled: |_| true,
            run: run::<P>,
            rebuild: Some(rebuild::<P>),
        }
    }

    /// Follows the log (`filter`) into `store` (or its sink) until `stop`, one active instance
    /// per projection (the others wait for its lock); `None` when `settings` leave it off.
    pub fn run(
        &self,
        log: Log,
        store: ReadStore,
        filter: String,
        keyring: Keyring,
        settings: &Settings,
        stop: CancellationToken,
    ) -> Option<BoxFuture<'static, ()>> {
        (self.run)(log, store, filter, keyring, settings, stop)
    }

    /// Replays the whole log into fresh tables, then swaps them in (see `rebuild.rs`); `None`
    /// for a sink, which cannot be rebuilt.
    pub fn rebuild<'a>(
        &self,
        log: Log,
        store: &'a ReadStore,
        filter: String,
        keyring: Keyring,
        progress: Progress<'a>,
    ) -> Option<BoxFuture<'a, Result<Rebuilt, RunError>>> {
        self.rebuild
            .map(|rebuild| rebuild(log, store, filter, keyring, progress))
    }
}

fn run<P: Projection + Default>(
    log: Log,
    store: ReadStore,
    filter: String,
    keyring: Keyring,
    _settings: &Settings,
    stop: CancellationToken,
) -> Option<BoxFuture<'static, ()>> {
    let config = ProjectorConfig::default();
    let projector = Projector::new(P::default(), log, store, filter, config, keyring);
    Some(Box::pin(projector.run_until(stop)))
}

fn run_webhook(
    log: Log,
    store: ReadStore,
    filter: String,
    keyring: Keyring,
    settings: &Settings,
    stop: CancellationToken,
) -> Option<BoxFuture<'static, ()>> {
    let target = settings.webhook.clone()?;
    Some(Box::pin(webhook::run(
        log, store, filter, keyring, target, stop,
    )))
}

fn rebuild<'a, P: Projection + Clone + Default>(
    log: Log,
    store: &'a ReadStore,
    filter: String,
    keyring: Keyring,
    progress: Progress<'a>,
) -> BoxFuture<'a, Result<Rebuilt, RunError>> {
    Box::pin(crate::rebuild::rebuild(
        P::default(),
        log,
        store,
        filter,
        keyring,
        true,
        progress,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        let names: Vec<_> = names().collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        for n in &names {
            assert_eq!(find(n).map(|r| r.name), Some(*n));
        }
        assert!(find("nope").is_none());
    }

    /// A rebuild creates a projection's tables from its `ddl()` alone: a migration missing
    /// there would leave rebuilt tables without its columns. The shared migrations go to both
    /// engines, those under `postgres/` and `sqlite/` to theirs.
    #[test]
    fn every_migration_belongs_to_a_projection() {
        use readstore::Backend;
        let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"));
        for (backend, own) in [(Backend::Postgres, "postgres"), (Backend::Sqlite, "sqlite")] {
            let listed: Vec<&str> = [
                chat::Chat.ddl(backend),
                unread::Unread.ddl(backend),
                search::Search.ddl(backend),
            ]
            .concat();
            let mut files = 0;
            for dir in [root.to_path_buf(), root.join(own)] {
                for entry in std::fs::read_dir(&dir).expect("migrations") {
                    let path = entry.expect("entry").path();
                    if path.is_dir() {
                        continue;
                    }
                    let sql = std::fs::read_to_string(&path).expect("readable");
                    assert_eq!(
                        listed.iter().filter(|d| **d == sql).count(),
                        1,
                        "{} is in no projection's ddl (or in several) on {backend:?}",
                        path.display()
                    );
                    files += 1;
                }
            }
            let checkpoints = listed
                .iter()
                .filter(|d| **d == crate::CHECKPOINTS_DDL)
                .count();
            assert_eq!(
                files + checkpoints,
                listed.len(),
                "the checkpoints table and each migration"
            );
        }
    }

    #[test]
    fn the_query_side_waits_for_every_read_model() {
        assert_eq!(
            read_models().collect::<Vec<_>>(),
            ["chat", "unread", "search"]
        );
    }

    #[test]
    fn the_webhook_runs_only_when_configured_and_is_never_rebuilt() {
        let off = Settings::default();
        let names = |s: &Settings| enabled(s).map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names(&off), ["chat", "unread", "search"]);
        let on = Settings {
            webhook: Some(
                webhook::Target::new("http://127.0.0.1:9/", "s", webhook::BACKOFF_MIN)
                    .expect("valid"),
            ),
        };
        assert_eq!(names(&on), ["chat", "unread", "search", "webhook"]);
        assert!(find("webhook").is_some_and(|r| r.rebuild.is_none() && !r.read_model));
    }
}
