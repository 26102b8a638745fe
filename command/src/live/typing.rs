//! Who is typing where on this node: one timer generation per (socket, conversation), so that a
//! new `typing:start` re-arms the server's stop and the timer it replaced does nothing. Pure:
//! the driver in `live/mod.rs` sleeps and signals. An entry lives from `typing:start` until the
//! stop (by the client, the timer, a leave or a disconnect), so the map holds only typists.

use events::ConversationId;
use socketioxide::socket::Sid;
use std::collections::HashMap;
use std::time::Duration;

/// Silence after which the server stops a typist by itself.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(6);

/// The timer armed by one `typing:start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

#[derive(Debug, Default)]
pub struct Typing {
    running: HashMap<(Sid, ConversationId), Generation>,
    generation: u64,
}

impl Typing {
    /// `typing:start` from `sid` in `conv`: the generation its timer must present.
    pub fn start(&mut self, sid: Sid, conv: &ConversationId) -> Generation {
        self.generation += 1;
        let g = Generation(self.generation);
        self.running.insert((sid, conv.clone()), g);
        g
    }

    /// The timer of `generation` ran out: whether the typist is stopped by it (no newer
    /// `typing:start`, no stop in between).
    pub fn timed_out(&mut self, sid: Sid, conv: &ConversationId, generation: Generation) -> bool {
        let key = (sid, conv.clone());
        if self.running.get(&key) == Some(&generation) {
            self.running.remove(&key);
            true
        } else {
            false
        }
    }

    /// `typing:stop`, a leave or a disconnect: whether `sid` was typing in `conv`.
    pub fn stop(&mut self, sid: Sid, conv: &ConversationId) -> bool {
        self.running.remove(&(sid, conv.clone())).is_some()
    }

    /// Typists on this node.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> ConversationId {
        ConversationId::parse("conv_1").expect("a valid id")
    }

    #[test]
    fn the_timer_stops_a_silent_typist_once() {
        let mut t = Typing::default();
        let sid = Sid::new();
        let g = t.start(sid, &conv());
        assert!(t.timed_out(sid, &conv(), g));
        assert!(!t.timed_out(sid, &conv(), g));
        assert!(!t.stop(sid, &conv()), "already stopped");
        assert!(t.is_empty());
    }

    #[test]
    fn a_new_start_rearms_and_the_old_timer_does_nothing() {
        let mut t = Typing::default();
        let sid = Sid::new();
        let first = t.start(sid, &conv());
        let second = t.start(sid, &conv());
        assert!(!t.timed_out(sid, &conv(), first));
        assert!(t.timed_out(sid, &conv(), second));
    }

    #[test]
    fn a_stop_cancels_the_timer_and_is_reported_once() {
        let mut t = Typing::default();
        let (one, two) = (Sid::new(), Sid::new());
        let g = t.start(one, &conv());
        t.start(two, &conv());
        assert!(t.stop(one, &conv()));
        assert!(!t.stop(one, &conv()));
        assert!(!t.timed_out(one, &conv(), g));
        assert_eq!(t.len(), 1, "the other socket still types");
    }
}
