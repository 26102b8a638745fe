//! The byte form of a commit: one format byte, then postcard. postcard is compact and fast,
//! but not self-describing, hence the golden-byte tests that pin every stored shape.

use crate::envelope::Commit;

/// Format byte of [`Commit`] as stored today.
pub const COMMIT_FORMAT_V1: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("empty commit")]
    Empty,
    #[error("unknown commit format {0}")]
    UnknownFormat(u8),
    #[error("malformed commit: {0}")]
    Commit(String),
    #[error("malformed event data: {0}")]
    Data(String),
    #[error("unknown event {0} v{1}")]
    UnknownEvent(String, u16),
    #[error("commit belongs to aggregate type {0}")]
    WrongAggregate(String),
}

impl CodecError {
    pub fn code(&self) -> &'static str {
        "CODEC"
    }
}

pub fn encode_commit(commit: &Commit) -> Vec<u8> {
    let mut out = vec![COMMIT_FORMAT_V1];
    // Writing owned strings, integers and byte vectors into a Vec cannot fail.
    out.extend(postcard::to_stdvec(commit).unwrap_or_default());
    out
}

pub fn decode_commit(bytes: &[u8]) -> Result<Commit, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&COMMIT_FORMAT_V1, rest)) => {
            postcard::from_bytes(rest).map_err(|e| CodecError::Commit(e.to_string()))
        }
        Some((&other, _)) => Err(CodecError::UnknownFormat(other)),
    }
}

#[cfg(test)]
mod golden {
    //! Golden bytes: if one of these fails, a stored shape changed and old logs would no
    //! longer decode. Do not update the bytes; add a new versioned struct instead.
    use super::*;
    use crate::envelope::Metadata;
    use crate::event::*;
    use crate::ids::*;
    use crate::sealed::Text;
    use crate::text::*;

    fn hex(b: &[u8]) -> String {
        ::hex::encode(b)
    }

    fn user(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    #[test]
    fn user_events() {
        let e = UserEvent::Registered(Profile::Clear(UserRegisteredV1 {
            name: "Ann".into(),
            avatar_url: Some("a".into()),
        }));
        assert_eq!(hex(&e.encode_data()), "03416e6e010161");
        assert_eq!(e.schema_version(), 1);
        let e = UserEvent::Updated(Profile::Clear(UserRegisteredV1 {
            name: "B".into(),
            avatar_url: None,
        }));
        assert_eq!(hex(&e.encode_data()), "014200");
        assert_eq!(
            postcard::to_stdvec(&UserUpdatedV1 {
                name: "B".into(),
                avatar_url: None
            })
            .expect("encodes"),
            e.encode_data()
        );
    }

    #[test]
    fn conversation_events() {
        let c = ConversationEvent::Created(ConversationCreatedV1 {
            conversation_id: ConversationId::parse("conv_1").expect("valid"),
            title: Some("T".into()),
            created_by: user("u1"),
        });
        assert_eq!(
            hex(&c.encode_data()),
            "06636f6e765f310101540275 31".replace(' ', "")
        );
        let a = ConversationEvent::ParticipantAdded(ParticipantAddedV1 {
            user_id: user("u2"),
            role: ParticipantRole::Admin,
        });
        assert_eq!(hex(&a.encode_data()), "02753200");
        let r = ConversationEvent::ParticipantRemoved(ParticipantRemovedV1 {
            user_id: user("u2"),
        });
        assert_eq!(hex(&r.encode_data()), "027532");
        let m = ConversationEvent::MessageSent(MessageSent {
            message_id: MessageId::parse("msg_1").expect("valid"),
            sender_id: user("u1"),
            content: Text::Clear("hi".into()),
            temp_id: Some(TempId::parse("t").expect("valid")),
            seq: 300,
            sent_at: 1,
            reply: None,
            mentions: vec![],
        });
        assert_eq!(
            hex(&m.encode_data()),
            "056d73675f31027531026869 010174 ac02 02".replace(' ', "")
        );
    }

    #[test]
    fn commit_round_trip_and_bytes() {
        let meta = Metadata {
            command_id: "c".into(),
            correlation_id: "r".into(),
            actor: "u1".into(),
            occurred_at: 1,
        };
        let events = vec![ConversationEvent::ParticipantRemoved(
            ParticipantRemovedV1 {
                user_id: user("u2"),
            },
        )];
        let commit = Commit::new("conv_1", 2, [7; 32], &meta, &events);
        let bytes = encode_commit(&commit);
        assert_eq!(
            hex(&bytes),
            concat!(
                "01",
                "0c636f6e766572736174696f6e",
                "06636f6e765f31",
                "02",
                "0163",
                "0172",
                "027531",
                "02",
                "0707070707070707070707070707070707070707070707070707070707070707",
                "01",
                "03632d30",
                "12506172746963697061 6e7452656d6f766564",
                "01",
                "03027532"
            )
            .replace(' ', "")
        );
        let back = decode_commit(&bytes).expect("decodes");
        assert_eq!(back, commit);
        let decoded = back.decode_events::<ConversationEvent>().expect("decodes");
        assert_eq!(decoded[0].number, 3);
        assert_eq!(decoded[0].event, events[0]);
        assert_eq!(decoded[0].event_id, "c-0");
        assert!(back.decode_events::<UserEvent>().is_err());
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        assert_eq!(decode_commit(&[]), Err(CodecError::Empty));
        assert_eq!(decode_commit(&[9, 1]), Err(CodecError::UnknownFormat(9)));
        assert!(decode_commit(&[1, 0xff, 0xff]).is_err());
        assert!(UserEvent::decode("UserRegistered", 1, &[0xff]).is_err());
        assert!(matches!(
            UserEvent::decode("Nope", 1, &[]),
            Err(CodecError::UnknownEvent(_, 1))
        ));
    }
}

#[cfg(test)]
mod golden_v1_more {
    //! Golden bytes of the events added with the full Socket.IO surface.
    use crate::event::*;
    use crate::ids::*;
    use crate::sealed::Text;
    use crate::text::*;

    fn hex(e: &impl EventKind) -> String {
        ::hex::encode(e.encode_data())
    }
    fn u(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }
    fn m(s: &str) -> MessageId {
        MessageId::parse(s).expect("valid")
    }
    fn r(s: &str) -> ReactionId {
        ReactionId::parse(s).expect("valid")
    }
    fn refs() -> Vec<MessageRefV1> {
        vec![MessageRefV1 {
            message_id: m("m1"),
            sender_id: u("u1"),
        }]
    }

    #[test]
    fn user_events() {
        assert_eq!(
            hex(&UserEvent::Suspended(UserSuspendedV1 {
                reason: Some("x".into())
            })),
            "010178"
        );
        assert_eq!(hex(&UserEvent::Reinstated(UserReinstatedV1 {})), "");
        assert_eq!(
            hex(&UserEvent::LastSeen(UserLastSeenV1 { last_seen_at: 2 })),
            "04"
        );
        assert_eq!(
            hex(&UserEvent::Erased(UserErasedV1 {
                reason: Some("gdpr".into())
            })),
            "010467647072"
        );
        let held = HoldPlacedV1 {
            reason: "case 7".into(),
        };
        assert_eq!(hex(&UserEvent::Held(held.clone())), "06636173652037");
        assert_eq!(hex(&ConversationEvent::Held(held)), "06636173652037");
        assert_eq!(hex(&UserEvent::Released(HoldReleasedV1 {})), "");
        assert_eq!(hex(&ConversationEvent::Released(HoldReleasedV1 {})), "");
    }

    #[test]
    fn retention_events() {
        assert_eq!(
            hex(&ConversationEvent::RetentionSet(RetentionSetV1 {
                retention_seconds: Some(86_400)
            })),
            "0180a305"
        );
        assert_eq!(
            hex(&ConversationEvent::RetentionSet(RetentionSetV1 {
                retention_seconds: None
            })),
            "00"
        );
        assert_eq!(
            hex(&ConversationEvent::MessagesExpired(MessagesExpiredV1 {
                before: 1_700_000_000_000,
                upto_seq: 42
            })),
            "80a0abfef9622a"
        );
    }

    #[test]
    fn conversation_events() {
        let c = Content::parse("hi").expect("valid");
        assert_eq!(
            hex(&ConversationEvent::MessageEdited(MessageEdited {
                message_id: m("m1"),
                content: Text::Clear(c.as_str().into()),
                edited_at: 3
            })),
            "026d3102686906"
        );
        assert_eq!(
            hex(&ConversationEvent::MessageDeleted(MessageDeletedV1 {
                message_id: m("m1"),
                deleted_by: u("u1"),
                deleted_at: 3
            })),
            "026d3102753106"
        );
        assert_eq!(
            hex(&ConversationEvent::MessagesDelivered(MessagesDeliveredV1 {
                recipients: vec![u("u2")],
                messages: refs(),
                delivered_at: 1
            })),
            "01027532 01 026d31 027531 02".replace(' ', "")
        );
        assert_eq!(
            hex(&ConversationEvent::MessagesRead(MessagesReadV1 {
                reader: u("u2"),
                messages: refs(),
                read_at: 1
            })),
            "027532 01 026d31 027531 02".replace(' ', "")
        );
        let emoji = Emoji::parse("👍").expect("valid");
        assert_eq!(
            hex(&ConversationEvent::ReactionAdded(ReactionAddedV1 {
                reaction_id: r("r1"),
                message_id: m("m1"),
                user_id: u("u1"),
                emoji,
                created_at: 1
            })),
            "027231 026d31 027531 04f09f918d 02".replace(' ', "")
        );
        assert_eq!(
            hex(&ConversationEvent::ReactionRemoved(ReactionRemovedV1 {
                reaction_id: r("r1"),
                message_id: m("m1"),
                user_id: u("u1")
            })),
            "027231 026d31 027531".replace(' ', "")
        );
    }

    #[test]
    fn every_event_round_trips_through_its_type_and_version() {
        let e = ConversationEvent::MessagesRead(MessagesReadV1 {
            reader: u("u2"),
            messages: refs(),
            read_at: 1,
        });
        let back = ConversationEvent::decode(e.event_type(), e.schema_version(), &e.encode_data())
            .expect("decodes");
        assert_eq!(back, e);
    }
}

#[cfg(test)]
mod golden_v2_sealed {
    //! Golden bytes of the sealed versions (contract 4.2): `MessageSent` and `MessageEdited`
    //! v2, `UserRegistered` and `UserUpdated` v2. The v1 shapes above still decode, upcast to
    //! `Text::Clear`, and encode back to their own bytes.
    use crate::event::*;
    use crate::ids::*;
    use crate::sealed::tests::Unsealed;
    use crate::sealed::*;

    fn sealed(user: &str, period: Option<i64>, text: &str) -> SealedV1 {
        SealedV1 {
            user: UserId::parse(user).expect("valid"),
            period,
            nonce: [9; 24],
            ciphertext: text.as_bytes().to_vec(),
        }
    }

    fn round_trip<E: EventKind + PartialEq + std::fmt::Debug>(e: &E, version: u16) -> String {
        assert_eq!(e.schema_version(), version);
        let back = E::decode(e.event_type(), version, &e.encode_data()).expect("decodes");
        assert_eq!(&back, e);
        ::hex::encode(e.encode_data())
    }

    const NONCE: &str = "090909090909090909090909090909090909090909090909";

    #[test]
    fn message_sent_and_edited_v2() {
        let sent = ConversationEvent::MessageSent(MessageSent {
            message_id: MessageId::parse("m1").expect("valid"),
            sender_id: UserId::parse("u1").expect("valid"),
            content: Text::Sealed(sealed("u1", Some(3600000), "hi")),
            temp_id: None,
            seq: 1,
            sent_at: 2,
            reply: None,
            mentions: vec![],
        });
        assert_eq!(
            round_trip(&sent, 2),
            format!("026d31 027531 027531 01 80bab703 {NONCE} 026869 00 01 04").replace(' ', "")
        );
        let edited = ConversationEvent::MessageEdited(MessageEdited {
            message_id: MessageId::parse("m1").expect("valid"),
            content: Text::Sealed(sealed("u1", Some(0), "yo")),
            edited_at: 3,
        });
        assert_eq!(
            round_trip(&edited, 2),
            format!("026d31 027531 01 00 {NONCE} 02796f 06").replace(' ', "")
        );
        let json = edited.to_json(&Unsealed, "conv_1");
        assert_eq!(
            json,
            serde_json::json!({"messageId": "m1", "content": "yo", "editedAt": "1970-01-01T00:00:00.003Z"})
        );
    }

    /// Threads and mentions (contract 4.4): a reply or a send with mentions is v3; a plain send
    /// stays v2 (above). To change either, add a new versioned struct.
    #[test]
    fn message_sent_v3_and_pins() {
        let reply = ConversationEvent::MessageSent(MessageSent {
            message_id: MessageId::parse("m2").expect("valid"),
            sender_id: UserId::parse("u2").expect("valid"),
            content: Text::Sealed(sealed("u2", Some(0), "ok")),
            temp_id: None,
            seq: 2,
            sent_at: 5,
            reply: Some(ReplyV1 {
                parent_id: MessageId::parse("m1").expect("valid"),
                reply_count: 1,
                participant_ids: vec![UserId::parse("u2").expect("valid")],
            }),
            mentions: vec![UserId::parse("u1").expect("valid")],
        });
        assert_eq!(
            round_trip(&reply, 3),
            format!(
                "026d32 027532 027532 01 00 {NONCE} 026f6b 00 02 0a 01 026d31 01 01 027532 01 027531"
            )
            .replace(' ', "")
        );
        assert_eq!(
            reply.to_json(&Unsealed, "conv_1"),
            serde_json::json!({
                "messageId": "m2", "senderId": "u2", "content": "ok", "tempId": null, "seq": 2,
                "createdAt": "1970-01-01T00:00:00.005Z", "parentId": "m1", "replyCount": 1,
                "threadParticipantIds": ["u2"], "mentions": ["u1"]
            })
        );
        let pinned = ConversationEvent::MessagePinned(MessagePinnedV1 {
            message_id: MessageId::parse("m1").expect("valid"),
            pinned_by: UserId::parse("u1").expect("valid"),
            pinned_at: 7,
        });
        assert_eq!(pinned.event_type(), "MessagePinned");
        assert_eq!(round_trip(&pinned, 1), "026d31 027531 0e".replace(' ', ""));
        let unpinned = ConversationEvent::MessageUnpinned(MessageUnpinnedV1 {
            message_id: MessageId::parse("m1").expect("valid"),
            unpinned_by: UserId::parse("u1").expect("valid"),
            unpinned_at: 8,
        });
        assert_eq!(unpinned.event_type(), "MessageUnpinned");
        assert_eq!(
            round_trip(&unpinned, 1),
            "026d31 027531 10".replace(' ', "")
        );
        assert!(pinned.is_room_event() && unpinned.is_room_event());
    }

    #[test]
    fn profile_v2() {
        let e = UserEvent::Registered(Profile::Sealed(ProfileV2 {
            name: sealed("ann", None, "A"),
            avatar_url: None,
            fingerprint: [7; 32],
        }));
        assert_eq!(
            round_trip(&e, 2),
            format!("03616e6e 00 {NONCE} 0141 00 {}", "07".repeat(32)).replace(' ', "")
        );
        let updated = UserEvent::Updated(Profile::Sealed(ProfileV2 {
            name: sealed("gone", None, "A"),
            avatar_url: Some(sealed("gone", None, "x")),
            fingerprint: [0; 32],
        }));
        round_trip(&updated, 2);
        assert_eq!(
            updated.to_json(&Unsealed, "gone"),
            serde_json::json!({"name": null, "avatarUrl": null, "erased": true})
        );
    }

    #[test]
    fn v1_decodes_as_clear_text() {
        let v1 = postcard::to_stdvec(&MessageEditedV1 {
            message_id: MessageId::parse("m1").expect("valid"),
            content: crate::Content::parse("old").expect("valid"),
            edited_at: 1,
        })
        .expect("encodes");
        let e = ConversationEvent::decode("MessageEdited", 1, &v1).expect("decodes");
        let ConversationEvent::MessageEdited(m) = &e else {
            panic!("not an edit: {e:?}");
        };
        assert_eq!(m.content, Text::Clear("old".into()));
        assert_eq!(e.encode_data(), v1);
        assert!(ConversationEvent::decode("MessageEdited", 3, &v1).is_err());
    }
}
