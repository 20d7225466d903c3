//! Tests of the stores and of a cluster on them.

use std::io;

use crate::StateMachine;

mod cluster;
mod node;
mod restart;
mod suite;

/// A state machine for tests: adds numbers, answers the new total.
#[derive(Default)]
pub struct Counter {
    pub total: u64,
}

impl StateMachine for Counter {
    type Command = u64;
    type Response = u64;

    fn apply(&mut self, add: u64) -> u64 {
        self.total += add;
        self.total
    }

    fn snapshot(&self) -> Vec<u8> {
        self.total.to_le_bytes().to_vec()
    }

    fn restore(&mut self, snapshot: &[u8]) -> io::Result<()> {
        let bytes = snapshot.try_into().map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        self.total = u64::from_le_bytes(bytes);
        Ok(())
    }
}
