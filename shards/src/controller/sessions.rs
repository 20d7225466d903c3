//! The active controller's broker sessions (Kafka's
//! BrokerHeartbeatManager): when each registered broker was last heard
//! from, in memory only, never in the quorum's log. A broker silent for the
//! session timeout is fenced; a fenced one heard from again is unfenced. A
//! broker that asks to shut down (controlled shutdown, KIP-631) is fenced
//! at once and stays fenced while that process lives, so that its
//! partitions get other leaders before it stops. A new active controller has heard from no one: it starts every registered
//! broker's clock at its takeover, as KRaft does.

use crate::metadata::MetadataSnapshot;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub(crate) struct BrokerSessions {
    timeout: Duration,
    /// The quorum term these sessions were kept in: in another one this
    /// voter took over anew, and what it heard before is stale.
    term: Option<u64>,
    /// By broker id; only registered brokers have one, so it is bounded by them.
    sessions: BTreeMap<i32, Session>,
}

struct Session {
    /// The broker process the session is with: a new registration starts anew.
    incarnation: Uuid,
    expires: Instant,
    /// Whether a heartbeat came (not only the clock started): only that
    /// unfences a broker.
    heard: bool,
    /// Whether the process asked to shut down: it stays fenced, though it
    /// goes on heartbeating until it stops.
    shutting_down: bool,
}

/// Brokers whose fencing a session says should change.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SessionChanges {
    pub fence: Vec<i32>,
    pub unfence: Vec<i32>,
}

impl SessionChanges {
    pub fn is_empty(&self) -> bool {
        self.fence.is_empty() && self.unfence.is_empty()
    }
}

impl BrokerSessions {
    pub fn new(timeout: Duration) -> Self {
        BrokerSessions { timeout, term: None, sessions: BTreeMap::new() }
    }

    /// Forgets every session unless they were kept in `term`, the term this
    /// voter leads in now.
    pub fn lead_in(&mut self, term: u64) {
        if self.term != Some(term) {
            self.term = Some(term);
            self.sessions.clear();
        }
    }

    /// A heartbeat from broker `id` in `incarnation`, asking to shut down
    /// or not; false (ignored) if `image` registers another process under
    /// that id, or none. Once a process asked to shut down, it stays so
    /// (heartbeats may arrive out of order).
    pub fn heard(
        &mut self,
        image: &MetadataSnapshot,
        id: i32,
        incarnation: Uuid,
        wants_shutdown: bool,
        now: Instant,
    ) -> bool {
        if !image.brokers.iter().any(|b| b.id == id && b.incarnation == incarnation) {
            return false;
        }
        let asked_before = self.sessions.get(&id).is_some_and(|s| s.incarnation == incarnation && s.shutting_down);
        let shutting_down = wants_shutdown || asked_before;
        self.sessions.insert(id, Session { incarnation, expires: now + self.timeout, heard: true, shutting_down });
        true
    }

    /// Which brokers of `image` to fence (unfenced, session expired or
    /// shutting down) and to unfence (fenced, heard from within the
    /// timeout, not shutting down). A broker with no
    /// session in its registered incarnation (after a takeover, or newly
    /// registered) gets one whose clock starts now.
    pub fn changes(&mut self, image: &MetadataSnapshot, now: Instant) -> SessionChanges {
        self.sessions.retain(|id, _| image.brokers.iter().any(|b| b.id == *id));
        let mut changes = SessionChanges::default();
        for broker in &image.brokers {
            let started = || Session {
                incarnation: broker.incarnation,
                expires: now + self.timeout,
                heard: false,
                shutting_down: false,
            };
            let session = self.sessions.entry(broker.id).or_insert_with(started);
            if session.incarnation != broker.incarnation {
                *session = started();
            }
            let live = now < session.expires;
            if !broker.fenced && (!live || session.shutting_down) {
                changes.fence.push(broker.id);
            } else if broker.fenced && live && session.heard && !session.shutting_down {
                changes.unfence.push(broker.id);
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{BrokerRegistration, MetadataChanges};

    fn image(ids: &[i32]) -> MetadataSnapshot {
        let mut changes = MetadataChanges::new(&MetadataSnapshot::default());
        for &id in ids {
            let incarnation = Uuid::from_u128(id as u128);
            changes.register_broker(BrokerRegistration {
                id,
                incarnation,
                host: "localhost".into(),
                port: 9092,
                rack: None,
                fenced: false,
                endpoints: Vec::new(),
            });
        }
        changes.image().clone()
    }

    const TIMEOUT: Duration = Duration::from_millis(2000);

    /// The sessions of a controller that took over (in term 7) a cluster
    /// with brokers `ids`, and its image.
    fn taken_over(ids: &[i32]) -> (BrokerSessions, MetadataSnapshot) {
        let mut sessions = BrokerSessions::new(TIMEOUT);
        sessions.lead_in(7);
        (sessions, image(ids))
    }

    /// `image` with broker `id` fenced.
    fn fenced(image: &MetadataSnapshot, id: i32) -> MetadataSnapshot {
        let mut fencing = MetadataChanges::new(image);
        fencing.fence_broker(id);
        fencing.image().clone()
    }

    #[test]
    fn silent_brokers_are_fenced_after_the_timeout_and_unfenced_when_heard_again() {
        let start = Instant::now();
        let (mut sessions, image) = taken_over(&[1, 2]);
        // The clocks start at takeover: nobody is fenced before the timeout.
        assert!(sessions.changes(&image, start).is_empty());
        assert!(sessions.heard(&image, 1, Uuid::from_u128(1), false, start + TIMEOUT / 2));
        assert!(!sessions.heard(&image, 2, Uuid::from_u128(99), false, start), "another incarnation is ignored");
        let expired = sessions.changes(&image, start + TIMEOUT);
        assert_eq!(expired, SessionChanges { fence: vec![2], unfence: vec![] });

        let image = fenced(&image, 2);
        assert!(sessions.changes(&image, start + TIMEOUT).is_empty(), "fenced, not heard: stays fenced");
        assert!(sessions.heard(&image, 2, Uuid::from_u128(2), false, start + TIMEOUT * 2));
        let back = sessions.changes(&image, start + TIMEOUT * 2);
        assert_eq!(back, SessionChanges { fence: vec![1], unfence: vec![2] });

        // A new term (this voter lost and regained the lead) starts the clocks again.
        sessions.lead_in(8);
        assert!(sessions.changes(&image, start + TIMEOUT * 2).is_empty());
    }

    #[test]
    fn a_broker_shutting_down_is_fenced_at_once_and_stays_fenced_until_it_starts_anew() {
        let start = Instant::now();
        let (mut sessions, image) = taken_over(&[1, 2]);
        assert!(sessions.heard(&image, 2, Uuid::from_u128(2), true, start));
        assert_eq!(sessions.changes(&image, start), SessionChanges { fence: vec![2], unfence: vec![] });

        let mut image = fenced(&image, 2);
        // A heartbeat sent before it asked, arriving late, does not call the shutdown off.
        assert!(sessions.heard(&image, 2, Uuid::from_u128(2), false, start));
        assert!(sessions.changes(&image, start).is_empty(), "heard while shutting down: stays fenced");

        // The broker restarted: a new process, registered anew, is unfenced.
        let restarted = Uuid::from_u128(22);
        let mut registering = MetadataChanges::new(&image);
        let mut broker = image.brokers.iter().find(|b| b.id == 2).unwrap().clone();
        broker.incarnation = restarted;
        registering.register_broker(broker);
        image = registering.image().clone();
        assert!(image.brokers.iter().any(|b| b.id == 2 && !b.fenced));
        assert!(sessions.heard(&image, 2, restarted, false, start));
        assert!(sessions.changes(&image, start).is_empty(), "the new process is not shutting down");
    }
}
