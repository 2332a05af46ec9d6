//! What the CRM doubles share: serving on a loopback port, injected faults, a rolling
//! rate-limit window, and the record of contract violations.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;

/// How often a double misbehaves, and how.
#[derive(Debug, Clone)]
pub struct FaultConfig {
    /// Share of requests answered with a fault, 0.0 to 1.0: a rate-limit answer
    /// (30% of faults), a 5xx (30%), or a slow answer that still takes effect (40%).
    pub fault_rate: f64,
    /// How long a slow answer takes (longer than the client waits, to be a timeout).
    pub slow_delay: Duration,
    /// Requests allowed per `rate_window`, faults aside.
    pub rate_limit: usize,
    pub rate_window: Duration,
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            fault_rate: 0.0,
            slow_delay: Duration::from_secs(7),
            rate_limit: 100,
            rate_window: Duration::from_secs(10),
            seed: 11,
        }
    }
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fault {
    RateLimited,
    ServerError(u16),
    /// Answer after `slow_delay`, having done the work.
    Slow,
}

/// The fault dice and the rate window of one double.
pub(crate) struct Faults {
    config: FaultConfig,
    rng: Mutex<fastrand::Rng>,
    window: Mutex<VecDeque<Instant>>,
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Self {
            rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
            window: Mutex::new(VecDeque::new()),
            config,
        }
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    pub fn roll(&self) -> Option<Fault> {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        if rng.f64() >= self.config.fault_rate {
            return None;
        }
        Some(match rng.u8(0..10) {
            0..=2 => Fault::RateLimited,
            3 => Fault::ServerError(500),
            4 => Fault::ServerError(502),
            5 => Fault::ServerError(503),
            _ => Fault::Slow,
        })
    }

    /// Takes a slot of the rolling window: `Ok(slots left)`, or `Err(())` when full.
    pub fn take_slot(&self) -> Result<usize, ()> {
        let now = Instant::now();
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.config.rate_window)
        {
            window.pop_front();
        }
        if window.len() >= self.config.rate_limit {
            return Err(());
        }
        window.push_back(now);
        Ok(self.config.rate_limit - window.len())
    }
}

/// Contract violations a double saw (each also answered with an error).
#[derive(Default)]
pub(crate) struct Violations(Mutex<Vec<String>>);

impl Violations {
    pub fn record(&self, what: impl Into<String>) {
        let what = what.into();
        tracing::warn!(violation = %what, "a CRM double refused a request");
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(what);
    }

    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A double's HTTP server; dropping it stops the server.
pub(crate) struct Server {
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serves `app` on `address` (port 0 for any free one).
    pub async fn start(app: Router, address: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "CRM double stopped");
            }
        });
        Ok(Self { address, task })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
