//! Sampled log lines: a flood of refused requests must not become a flood of log
//! lines (CloudWatch Logs bills per byte ingested, and the real refusals drown). A
//! [`LogSample`] lets the first [`REFUSALS_PER_WINDOW`] lines of each
//! [`REFUSAL_WINDOW`] through and counts the others; the next line let through says
//! how many were left out. The API's access log still has one line per request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refusal lines logged per window by one function instance.
pub const REFUSALS_PER_WINDOW: u32 = 20;
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Window {
    started: Option<Instant>,
    logged: u32,
    /// Left out since the last line let through.
    unlogged: u64,
}

/// A per-process budget of log lines per window.
#[derive(Debug)]
pub struct LogSample {
    per_window: u32,
    window: Duration,
    state: Mutex<Window>,
}

impl LogSample {
    pub const fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window,
            state: Mutex::new(Window {
                started: None,
                logged: 0,
                unlogged: 0,
            }),
        }
    }

    /// Whether to log this line now: `Some(n)` with the `n` lines left out before it,
    /// or `None` to leave it out.
    pub fn take(&self) -> Option<u64> {
        self.take_at(Instant::now())
    }

    pub fn take_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state
            .started
            .is_none_or(|started| now.saturating_duration_since(started) >= self.window)
        {
            state.started = Some(now);
            state.logged = 0;
        }
        if state.logged < self.per_window {
            state.logged += 1;
            Some(std::mem::take(&mut state.unlogged))
        } else {
            state.unlogged += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_logged_up_to_the_budget_and_the_next_window_says_how_much_was_left_out() {
        let sample = LogSample::new(3, Duration::from_secs(60));
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let first: Vec<_> = (0..10).map(|_| sample.take_at(at(1))).collect();
        assert_eq!(
            first,
            [
                Some(0),
                Some(0),
                Some(0),
                None,
                None,
                None,
                None,
                None,
                None,
                None
            ]
        );
        // Still the same window at 60 s minus a moment.
        assert_eq!(sample.take_at(at(59)), None);
        // A new window: let through, naming the eight left out.
        assert_eq!(sample.take_at(at(61)), Some(8));
        assert_eq!(sample.take_at(at(62)), Some(0));
        // A quiet process logs every refusal.
        let quiet = LogSample::new(3, Duration::from_secs(60));
        for minute in 0..5 {
            assert_eq!(quiet.take_at(at(minute * 60)), Some(0));
        }
    }
}
