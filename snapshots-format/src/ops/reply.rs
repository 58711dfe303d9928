//! A reader's answer for one file, sent once. A folder's entries each wait
//! for theirs until they go into its listing, and a folder of 180,000 new
//! files (teletransmission receipts) held one channel each: 600 bytes
//! apiece (cache-padded queues), most of the snapshot's memory. This slot
//! is about a hundred (and since the listing is saved as the folder is
//! walked, at most a few thousand wait at once).

use std::sync::{Arc, Condvar, Mutex};

enum State<T> {
    Waiting,
    Sent(T),
    /// The sender went away without sending (its thread panicked).
    Dropped,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

/// The sending half; dropping it unsent tells the receiver.
pub(crate) struct Sender<T>(Option<Arc<Shared<T>>>);

/// The receiving half.
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

/// A new slot.
pub(crate) fn pair<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::Waiting),
        ready: Condvar::new(),
    });
    (Sender(Some(shared.clone())), Receiver(shared))
}

impl<T> Shared<T> {
    fn set(&self, state: State<T>) {
        let mut slot = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*slot, State::Waiting) {
            *slot = state;
        }
        self.ready.notify_all();
    }
}

impl<T> Sender<T> {
    /// Hands `value` over.
    pub(crate) fn send(mut self, value: T) {
        if let Some(shared) = self.0.take() {
            shared.set(State::Sent(value));
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.set(State::Dropped);
        }
    }
}

impl<T> Receiver<T> {
    /// Waits for the value; `None` when the sender went away without one.
    pub(crate) fn recv(self) -> Option<T> {
        let mut slot = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match std::mem::replace(&mut *slot, State::Dropped) {
                State::Sent(value) => return Some(value),
                State::Dropped => return None,
                State::Waiting => {
                    *slot = State::Waiting;
                    slot = self.0.ready.wait(slot).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }

    /// Whether [`Receiver::recv`] would return at once.
    pub(crate) fn is_ready(&self) -> bool {
        let slot = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        !matches!(*slot, State::Waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_sent_from_another_thread_arrives() {
        let (tx, rx) = pair();
        assert!(!rx.is_ready());
        let t = std::thread::spawn(move || tx.send(42));
        assert_eq!(rx.recv(), Some(42));
        t.join().unwrap();
    }

    #[test]
    fn a_sender_gone_unsent_is_seen() {
        let (tx, rx) = pair::<u32>();
        let t = std::thread::spawn(move || drop(tx));
        t.join().unwrap();
        assert!(rx.is_ready());
        assert_eq!(rx.recv(), None);
    }
}
