//! The snapshot store's contract, on both backends (and on JetStream's object store without
//! the node's copies in front of it): missing is `None`, a save replaces the whole blob (a
//! reader racing a writer gets the old or the new one, whole), large blobs survive, clear
//! deletes every one. Then the node's copies: read first, fetched once by a new node.

use eventlog::{EventLog, JetStreamSnapshots, SnapshotStore, Snapshots};
use std::time::{Duration, Instant};
use testkit::Setup;

/// The production setup with its snapshots in the object store alone.
async fn shared_only() -> anyhow::Result<Setup<eventlog::JetStreamLog>> {
    let mut on = testkit::production().await?;
    on.snapshots = Snapshots::jetstream(JetStreamSnapshots::open(&on.log, 1).await?, None);
    Ok(on)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_store_alone_keeps_the_contract() -> anyhow::Result<()> {
    a_snapshot_store_keeps_the_last_blob_saved_under_each_key(shared_only().await?).await?;
    a_snapshot_read_while_it_is_replaced_is_the_old_or_the_new_one_whole(shared_only().await?).await
}

fn shared(on: &Snapshots) -> anyhow::Result<&JetStreamSnapshots> {
    match on {
        Snapshots::JetStream { shared, .. } => Ok(shared),
        Snapshots::Embedded(_) => anyhow::bail!("not the JetStream pairing"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reads_its_own_copy_first_and_a_new_node_fetches_one_and_keeps_it()
-> anyhow::Result<()> {
    let on = testkit::production().await?;
    let key = "conversation.conv_c";
    on.snapshots.save(key, b"v1".to_vec()).await?;
    assert_eq!(shared(&on.snapshots)?.clear().await?, 1);
    assert_eq!(
        on.snapshots.load(key).await?.as_deref(),
        Some(&b"v1"[..]),
        "the node's copy outlives the shared blob"
    );

    on.snapshots.save(key, b"v2".to_vec()).await?;
    let disk = tempfile::tempdir()?;
    let fresh = Snapshots::jetstream(
        JetStreamSnapshots::open(&on.log, 1).await?,
        Some(disk.path()),
    );
    assert_eq!(fresh.load(key).await?.as_deref(), Some(&b"v2"[..]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read(disk.path().join(key)).ok().as_deref() != Some(&b"v2"[..]) {
        anyhow::ensure!(Instant::now() < deadline, "the new node kept no copy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared(&fresh)?.clear().await?;
    assert_eq!(fresh.load(key).await?.as_deref(), Some(&b"v2"[..]));
    assert_eq!(fresh.clear().await?, 1);
    assert_eq!(fresh.load(key).await?, None);

    // A node whose disk cannot hold copies works from the object store alone.
    let no_disk = Snapshots::jetstream(
        JetStreamSnapshots::open(&on.log, 1).await?,
        Some(std::path::Path::new("/proc/no-such-dir")),
    );
    no_disk.save(key, b"v3".to_vec()).await?;
    assert_eq!(no_disk.load(key).await?.as_deref(), Some(&b"v3"[..]));
    assert_eq!(
        on.snapshots.load(key).await?.as_deref(),
        Some(&b"v2"[..]),
        "a node keeps its older copy; the loader reads the tail after it"
    );
    Ok(())
}

testkit::on_both_backends!(
    a_snapshot_store_keeps_the_last_blob_saved_under_each_key,
    a_snapshot_read_while_it_is_replaced_is_the_old_or_the_new_one_whole,
);

async fn a_snapshot_store_keeps_the_last_blob_saved_under_each_key<L: EventLog>(
    on: Setup<L>,
) -> anyhow::Result<()> {
    let store = &on.snapshots;
    assert_eq!(store.load("conversation.conv_a").await?, None);
    store.save("conversation.conv_a", b"first".to_vec()).await?;
    store
        .save("conversation.conv_a", b"second".to_vec())
        .await?;
    assert_eq!(
        store.load("conversation.conv_a").await?.as_deref(),
        Some(&b"second"[..])
    );
    let large: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    store.save("user.ann", large.clone()).await?;
    assert_eq!(store.load("user.ann").await?, Some(large));
    assert_eq!(store.clear().await?, 2);
    assert_eq!(store.load("conversation.conv_a").await?, None);
    assert_eq!(store.load("user.ann").await?, None);
    assert_eq!(store.clear().await?, 0);
    Ok(())
}

async fn a_snapshot_read_while_it_is_replaced_is_the_old_or_the_new_one_whole<L: EventLog>(
    on: Setup<L>,
) -> anyhow::Result<()> {
    let blob = |n: u8| vec![n; 2_500_000];
    on.snapshots.save("conversation.conv_r", blob(0)).await?;
    let writer = {
        let store = on.snapshots.clone();
        tokio::spawn(async move {
            for n in 1..=8u8 {
                store.save("conversation.conv_r", blob(n)).await?;
            }
            anyhow::Ok(())
        })
    };
    while !writer.is_finished() {
        let got = on
            .snapshots
            .load("conversation.conv_r")
            .await?
            .unwrap_or_default();
        let first = got.first().copied().unwrap_or(u8::MAX);
        assert!(
            got == blob(first),
            "a torn or missing snapshot of {} bytes",
            got.len()
        );
    }
    writer.await??;
    assert_eq!(
        on.snapshots.load("conversation.conv_r").await?,
        Some(blob(8))
    );
    Ok(())
}
