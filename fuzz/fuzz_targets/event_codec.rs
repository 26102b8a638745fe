//! The log's codec, from arbitrary bytes (a corrupted or hostile log record): decoding a
//! commit and its events never panics nor allocates without bound, and whatever decodes
//! encodes back to a record that decodes to the same commit.
#![no_main]

use events::codec::{decode_commit, encode_commit};
use events::{ConversationEvent, UserEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(commit) = decode_commit(data) else {
        return;
    };
    let _ = commit.decode_events::<ConversationEvent>();
    let _ = commit.decode_events::<UserEvent>();
    let again = decode_commit(&encode_commit(&commit)).expect("a decoded commit re-encodes");
    assert_eq!(again, commit);
});
