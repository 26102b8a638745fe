//! Malformed Engine.IO and Socket.IO packets, as a client could send them over WebSocket or
//! long-polling: the parsers our server runs (engineioxide-core, socketioxide's common parser)
//! refuse them without panicking.
#![no_main]

use engineioxide_core::{Packet, ProtocolVersion, Str};
use libfuzzer_sys::fuzz_target;
use socketioxide_core::parser::{Parse, ParseConfig, ParserState};
use socketioxide_parser_common::CommonParser;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for protocol in [ProtocolVersion::V4, ProtocolVersion::V3] {
        let _ = Packet::parse(protocol, Str::from(text.to_owned()));
    }
    let config = ParseConfig::default();
    let state = ParserState::default();
    let _ = CommonParser.decode_str(&config, &state, Str::from(text.to_owned()));
});
