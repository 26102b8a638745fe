//! The key store's contract, on both stores: keys are created once, shared, destroyed for
//! good (their bytes leave the store's files), and the keyring seals and opens over them.

use anyhow::Context;
use events::{ConversationId, MessageId, Opened, Place, UserId};
use keys::{Entry, FileKeys, JetStreamKeys, KeyStore, KeyStores, Keyring, MasterKey};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A store and the directory holding its files.
struct Store {
    keys: KeyStores,
    files: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

async fn jetstream() -> anyhow::Result<Store> {
    let client = async_nats::connect(testkit::nats_url()?).await?;
    let stream = testkit::unique().to_uppercase();
    let keys = JetStreamKeys::open(client, &stream, 1).await?;
    let files = match std::env::var("CHAT_TEST_NATS_STORE") {
        Ok(dir) => Some(
            PathBuf::from(dir)
                .join("jetstream")
                .join("$G")
                .join("streams")
                .join(keys.stream_name()),
        ),
        Err(_) => {
            eprintln!("CHAT_TEST_NATS_STORE unset: the server's files are not checked");
            None
        }
    };
    Ok(Store {
        keys: KeyStores::JetStream(std::sync::Arc::new(keys)),
        files,
        _dir: None,
    })
}

async fn embedded() -> anyhow::Result<Store> {
    let dir = tempfile::tempdir()?;
    let keys = FileKeys::open(dir.path())?;
    Ok(Store {
        files: Some(keys.path().await),
        keys: KeyStores::File(keys),
        _dir: Some(dir),
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether any file under `path` (a file or a directory) holds `needle`, as bytes or hex.
fn files_hold(path: &std::path::Path, needle: &[u8]) -> anyhow::Result<bool> {
    if path.is_file() {
        let bytes = std::fs::read(path)?;
        return Ok(contains(&bytes, needle) || contains(&bytes, hex::encode(needle).as_bytes()));
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return Ok(false);
    };
    for entry in entries {
        if files_hold(&entry?.path(), needle)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Waits (the server flushes its files by itself) until the files hold `needle` or not.
async fn wait_files(store: &Store, needle: &[u8], held: bool) -> anyhow::Result<()> {
    let Some(path) = &store.files else {
        return Ok(());
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while files_hold(path, needle)? != held {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} {} the bytes",
            path.display(),
            if held { "never held" } else { "still holds" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn entries_are_created_once_and_destroyed_for_good(store: Store) -> anyhow::Result<()> {
    let s = &store.keys;
    assert_eq!(s.get("u.ann").await?, None);
    let first = vec![1u8, 0xc4, 0x7a, 0x11, 0x5e, 0xed, 0xfa, 0xce, 0x99];
    assert_eq!(
        s.create("u.ann", first.clone()).await?,
        Entry::Live(first.clone())
    );
    assert_eq!(
        s.create("u.ann", vec![1, 2, 3]).await?,
        Entry::Live(first.clone()),
        "a second create keeps the first key"
    );
    assert_eq!(s.get("u.ann").await?, Some(Entry::Live(first.clone())));
    s.create("u.bob", vec![1, 9, 9]).await?;
    wait_files(&store, &first, true).await?;

    assert!(s.destroy("u.ann").await?);
    assert_eq!(s.get("u.ann").await?, Some(Entry::Destroyed));
    wait_files(&store, &first, false).await?;
    assert_eq!(
        s.create("u.ann", vec![1, 4, 4]).await?,
        Entry::Destroyed,
        "a destroyed key is never made again"
    );
    assert!(
        !s.destroy("u.ann").await?,
        "destroying twice finds nothing live"
    );
    assert!(!s.destroy("u.nobody").await?);
    assert_eq!(s.get("u.nobody").await?, Some(Entry::Destroyed));
    assert_eq!(s.get("u.bob").await?, Some(Entry::Live(vec![1, 9, 9])));
    Ok(())
}

/// Another node's view of the same store (a fresh cache).
fn node(store: &Store, master: &MasterKey) -> Keyring {
    Keyring::new(store.keys.clone(), master.clone(), 1000)
}

async fn the_keyring_seals_opens_and_shreds(store: Store) -> anyhow::Result<()> {
    let master = MasterKey::generate();
    let (a, b) = (node(&store, &master), node(&store, &master));
    let conv = ConversationId::parse("conv_1")?;
    let (ann, bob) = (UserId::parse("ann")?, UserId::parse("bob")?);
    let (m1, m2, m3) = (
        MessageId::parse("m1")?,
        MessageId::parse("m2")?,
        MessageId::parse("m3")?,
    );
    let s1 = a
        .seal_message(&conv, "MessageSent", &m1, &ann, 1500, "from ann")
        .await?;
    let s2 = b
        .seal_message(&conv, "MessageSent", &m2, &bob, 1700, "from bob")
        .await?;
    let s3 = a
        .seal_message(&conv, "MessageSent", &m3, &bob, 2100, "later")
        .await?;
    assert_eq!(
        (s1.period, s2.period, s3.period),
        (Some(1000), Some(1000), Some(2000))
    );
    let place = |m: &MessageId| Place::message_content("conv_1", "MessageSent", m.as_str());
    let open = |set: &keys::KeySet, s, m| events::Open::open(set, &place(m), s);

    let set = b.prepare(Some("conv_1"), &[&s1, &s2, &s3]).await?;
    assert_eq!(open(&set, &s1, &m1), Opened::Text("from ann".into()));
    assert_eq!(open(&set, &s2, &m2), Opened::Text("from bob".into()));
    assert_eq!(open(&set, &s3, &m3), Opened::Text("later".into()));
    assert_eq!(
        open(&set, &s1, &m2),
        Opened::Erased,
        "moved to another message"
    );
    let foreign = b.prepare(Some("conv_2"), &[&s1]).await?;
    assert_eq!(
        events::Open::open(&foreign, &place(&m1), &s1),
        Opened::Expired,
        "no key of that period in another conversation"
    );

    let name = a.seal_profile(&ann, "name", "Ann").await?;
    let profile = Place::profile("ann", "name");
    let set = b.prepare(None, &[&name]).await?;
    assert_eq!(
        events::Open::open(&set, &profile, &name),
        Opened::Text("Ann".into())
    );

    assert!(a.destroy_user(&ann).await?);
    let c = node(&store, &master);
    let set = c.prepare(Some("conv_1"), &[&s1, &s2, &s3]).await?;
    assert_eq!(open(&set, &s1, &m1), Opened::Erased);
    assert_eq!(open(&set, &s2, &m2), Opened::Text("from bob".into()));
    let set = c.prepare(None, &[&name]).await?;
    assert_eq!(events::Open::open(&set, &profile, &name), Opened::Erased);
    let refused = a
        .seal_message(&conv, "MessageSent", &m1, &ann, 2500, "again")
        .await;
    assert!(
        matches!(refused, Err(keys::KeyError::Destroyed(_))),
        "{refused:?}"
    );

    assert!(a.destroy_period(&conv, 1000).await?);
    let set = node(&store, &master)
        .prepare(Some("conv_1"), &[&s2, &s3])
        .await?;
    assert_eq!(open(&set, &s2, &m2), Opened::Expired);
    assert_eq!(open(&set, &s3, &m3), Opened::Text("later".into()));

    let stranger = Keyring::new(store.keys.clone(), MasterKey::generate(), 1000);
    let err = stranger
        .prepare(Some("conv_1"), &[&s3])
        .await
        .err()
        .context("another master key unwraps nothing")?;
    assert_eq!(err.code(), "KEY_DAMAGED");
    Ok(())
}

/// Retention: the watermark withholds what it covers at once, on every node; only the keys of
/// periods wholly before it are destroyed; shredding again changes nothing.
async fn retention_withholds_then_shreds_whole_periods(store: Store) -> anyhow::Result<()> {
    let master = MasterKey::generate();
    let a = node(&store, &master);
    let conv = ConversationId::parse("conv_r")?;
    let ann = UserId::parse("ann")?;
    let times = [1500, 2200, 2700, 3100];
    let ids: Vec<MessageId> = times
        .iter()
        .map(|t| MessageId::from_ulid(ulid::Ulid::from_parts(*t as u64, 1)))
        .collect();
    let mut sealed = Vec::new();
    for (id, t) in ids.iter().zip(times) {
        let text = format!("at {t}");
        sealed.push(
            a.seal_message(&conv, "MessageSent", id, &ann, t, &text)
                .await?,
        );
    }
    let reads = |k: Keyring| {
        let (ids, sealed) = (ids.clone(), sealed.clone());
        async move {
            let refs: Vec<&events::SealedV1> = sealed.iter().collect();
            let set = k.prepare(Some("conv_r"), &refs).await?;
            Ok::<_, anyhow::Error>(
                ids.iter()
                    .zip(&sealed)
                    .map(|(id, s)| {
                        let place = Place::message_content("conv_r", "MessageSent", id.as_str());
                        match events::Open::open(&set, &place, s) {
                            Opened::Text(_) => "text",
                            Opened::Expired => "expired",
                            Opened::Erased => "erased",
                        }
                    })
                    .collect::<Vec<_>>(),
            )
        }
    };
    let period = |k: &Keyring, start| {
        let name = keys::keyring::period_key_name("conv_r", start);
        let store = k.store().clone();
        async move { store.get(&name).await }
    };
    assert_eq!(reads(node(&store, &master)).await?, ["text"; 4]);

    assert_eq!(a.shred(&conv, 2500, 2500, Some(1500)).await?, 1);
    assert_eq!(
        reads(node(&store, &master)).await?,
        ["expired", "expired", "text", "text"]
    );
    assert_eq!(period(&a, 1000).await?, Some(Entry::Destroyed));
    assert!(matches!(period(&a, 2000).await?, Some(Entry::Live(_))));
    assert_eq!(
        a.expiry("conv_r").await?,
        keys::Expiry {
            before: 2500,
            shredded: 2000
        }
    );
    assert_eq!(
        a.shred(&conv, 2500, 2500, Some(1500)).await?,
        0,
        "idempotent"
    );
    assert_eq!(
        a.shred(&conv, 2400, 2400, Some(1500)).await?,
        0,
        "never lowered"
    );

    let b = node(&store, &master);
    assert_eq!(reads(node(&store, &master)).await?[2], "text");
    b.note_expired("conv_r", 3000);
    assert_eq!(
        reads(b).await?,
        ["expired", "expired", "expired", "text"],
        "an expiry event seen before the store is read again"
    );
    assert_eq!(a.shred(&conv, 3000, 3000, Some(1500)).await?, 1);
    assert_eq!(period(&a, 2000).await?, Some(Entry::Destroyed));
    assert_eq!(
        reads(node(&store, &master)).await?,
        ["expired", "expired", "expired", "text"]
    );
    Ok(())
}

macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn jetstream() -> anyhow::Result<()> {
                super::$scenario(super::jetstream().await?).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() -> anyhow::Result<()> {
                super::$scenario(super::embedded().await?).await
            }
        }
    )*};
}

on_both_stores!(
    entries_are_created_once_and_destroyed_for_good,
    the_keyring_seals_opens_and_shreds,
    retention_withholds_then_shreds_whole_periods
);

#[tokio::test]
async fn the_key_file_survives_a_torn_last_line_and_refuses_damage() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let keys = FileKeys::open(dir.path())?;
    keys.create("u.ann", vec![1, 2]).await?;
    let path = keys.path().await;
    drop(keys);
    let mut text = std::fs::read_to_string(&path)?;
    text.push_str("u.bob 01");
    std::fs::write(&path, &text)?;
    let keys = FileKeys::open(dir.path())?;
    assert_eq!(keys.get("u.ann").await?, Some(Entry::Live(vec![1, 2])));
    assert_eq!(keys.get("u.bob").await?, None);
    drop(keys);
    std::fs::write(&path, "chat-keys v1\nu.ann zz\n")?;
    assert!(FileKeys::open(dir.path()).is_err());
    std::fs::write(&path, "something else\n")?;
    assert!(FileKeys::open(dir.path()).is_err());
    Ok(())
}

#[tokio::test]
async fn a_read_only_view_never_writes_and_sees_keys_made_since() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let owner = FileKeys::open(dir.path())?;
    owner.create("u.ann", vec![1, 2]).await?;
    let path = owner.path().await;
    let mut torn = std::fs::read_to_string(&path)?;
    torn.push_str("u.half 0");
    std::fs::write(&path, &torn)?;
    let view = FileKeys::open_read_only(dir.path())?;
    assert_eq!(view.get("u.ann").await?, Some(Entry::Live(vec![1, 2])));
    assert_eq!(
        std::fs::read_to_string(&path)?,
        torn,
        "the torn line is left to its owner"
    );
    assert!(view.create("u.bob", vec![1]).await.is_err());
    assert!(view.destroy("u.ann").await.is_err());
    drop(owner);
    let owner = FileKeys::open(dir.path())?;
    owner.create("u.cat", vec![1, 3]).await?;
    assert_eq!(view.get("u.cat").await?, Some(Entry::Live(vec![1, 3])));
    assert!(
        FileKeys::open_read_only(&dir.path().join("none"))?
            .get("u.ann")
            .await?
            .is_none()
    );
    Ok(())
}
