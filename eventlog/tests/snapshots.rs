//! The snapshot store's contract, on both backends: missing is `None`, a save replaces the
//! whole blob (a reader racing a writer gets the old or the new one, whole), large blobs
//! survive, clear deletes every one.

use eventlog::{EventLog, SnapshotStore};
use testkit::Setup;

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
