//! Room names: which sockets an event reaches. `conversation-{id}` (contract section 1),
//! `user-{id}` (every socket of a user, on every node), `catchup-{id}` (sockets catching up on
//! a conversation, see `catchup`).

use events::{ConversationId, UserId};
use socketioxide::extract::SocketRef;

pub fn conversation_room(id: &ConversationId) -> String {
    format!("conversation-{id}")
}

pub fn user_room(id: &UserId) -> String {
    format!("user-{id}")
}

pub fn catchup_room(id: &ConversationId) -> String {
    format!("catchup-{id}")
}

pub fn in_room(socket: &SocketRef, conv: &ConversationId) -> bool {
    let room = conversation_room(conv);
    socket.rooms().iter().any(|r| r.as_ref() == room)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_contracts() {
        let c = ConversationId::parse("c1").expect("valid");
        let u = UserId::parse("u1").expect("valid");
        assert_eq!(conversation_room(&c), "conversation-c1");
        assert_eq!(user_room(&u), "user-u1");
        assert_eq!(catchup_room(&c), "catchup-c1");
    }
}
