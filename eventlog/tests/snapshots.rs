//! The snapshot store's contract, on both backends: missing is `None`, a save replaces the
//! whole blob, large blobs survive, clear deletes every one.

use eventlog::{EventLog, SnapshotStore};
use testkit::Setup;

testkit::on_both_backends!(a_snapshot_store_keeps_the_last_blob_saved_under_each_key);

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
