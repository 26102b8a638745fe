//! Every socket event's payload, from arbitrary bytes: `Request::parse` checks shape, ids and
//! the text rules (content, emoji, tempId) at once. Nothing may panic; a refusal is always
//! `INVALID_INPUT`.
#![no_main]

use command::edge::socket::request::{EVENTS, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    // Mostly a known event; sometimes the bytes' own text as the event name.
    let own = String::from_utf8_lossy(rest).into_owned();
    let event = EVENTS
        .get(usize::from(pick) % (EVENTS.len() + 1))
        .copied()
        .unwrap_or(&own);
    let payload = serde_json::from_slice::<serde_json::Value>(rest).map_err(|e| e.to_string());
    if let Err(e) = Request::parse(event, &payload) {
        assert_eq!(e.code, api::ErrorCode::InvalidInput, "{event}: {e:?}");
    }
});
