//! A Lambda Runtime API emulator (the custom-runtime HTTP protocol) and a guard that
//! runs a function binary against it, so tests drive the real `bootstrap` process the
//! way Lambda does: `next` hands out an event, `response` or `error` returns it. It
//! also times what Lambda would bill and report: the first `next` poll (the end of
//! init) and each invocation from hand-out to answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// What the function returned for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    /// The function reported an error (`/error`), with the body it sent.
    Error(Value),
}

struct Invocation {
    id: String,
    event: Value,
}

/// An invocation waiting for its answer: where to send it, and when the function
/// took the event.
struct Waiting {
    answer: oneshot::Sender<(Outcome, Duration)>,
    handed_out: Option<Instant>,
}

struct Shared {
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    waiting: Mutex<HashMap<String, Waiting>>,
    init_error: Mutex<Option<Value>>,
    /// When the function first asked for an event: its init was over.
    first_poll: tokio::sync::watch::Sender<Option<Instant>>,
}

/// The emulator: one loopback HTTP server per test.
pub struct RuntimeApi {
    address: SocketAddr,
    queue: mpsc::UnboundedSender<Invocation>,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

const PREFIX: &str = "/2018-06-01/runtime";

impl RuntimeApi {
    pub async fn start() -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            next: tokio::sync::Mutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            first_poll: tokio::sync::watch::Sender::new(None),
        });
        let app = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(respond),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(fail))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("bound address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("runtime API server");
        });
        Self {
            address,
            queue,
            shared,
            server,
        }
    }

    /// `host:port`, the form `AWS_LAMBDA_RUNTIME_API` takes.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Hands `event` to the function and waits for its answer.
    pub async fn invoke(&self, event: Value) -> Outcome {
        self.invoke_timed(event).await.0
    }

    /// Hands `event` to the function and waits for its answer; also returns how long
    /// the function took, from taking the event (`next`) to answering.
    pub async fn invoke_timed(&self, event: Value) -> (Outcome, Duration) {
        let id = uuid::Uuid::new_v4().to_string();
        let (answer, rx) = oneshot::channel();
        self.shared.waiting.lock().unwrap().insert(
            id.clone(),
            Waiting {
                answer,
                handed_out: None,
            },
        );
        self.queue
            .send(Invocation { id, event })
            .expect("the emulator is running");
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(answered)) => answered,
            _ => panic!(
                "the function did not answer within 60 s (init error: {:?})",
                self.init_error()
            ),
        }
    }

    /// Waits up to `timeout` for the function's first `next` poll; when it came.
    pub async fn first_poll(&self, timeout: Duration) -> Option<Instant> {
        let mut polled = self.shared.first_poll.subscribe();
        match tokio::time::timeout(timeout, polled.wait_for(Option::is_some)).await {
            Ok(Ok(at)) => *at,
            _ => None,
        }
    }

    /// The error the function reported during init, if any.
    pub fn init_error(&self) -> Option<Value> {
        self.shared.init_error.lock().unwrap().clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Result<(HeaderMap, String), StatusCode> {
    shared.first_poll.send_if_modified(|at| {
        let first = at.is_none();
        if first {
            *at = Some(Instant::now());
        }
        first
    });
    // None once the emulator is being dropped (its function is being stopped too).
    let invocation = shared
        .next
        .lock()
        .await
        .recv()
        .await
        .ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time after 1970")
        .as_millis()
        + 30_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("header value"));
    };
    if let Some(waiting) = shared.waiting.lock().unwrap().get_mut(&invocation.id) {
        waiting.handed_out = Some(Instant::now());
    }
    set("lambda-runtime-aws-request-id", invocation.id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:under-test".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0".into(),
    );
    Ok((headers, invocation.event.to_string()))
}

fn complete(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    let answered = Instant::now();
    match shared.waiting.lock().unwrap().remove(id) {
        Some(Waiting {
            answer,
            handed_out: Some(handed_out),
        }) => {
            let _ = answer.send((outcome, answered - handed_out));
            StatusCode::ACCEPTED
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

fn parse(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn respond(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    complete(&shared, &id, Outcome::Response(parse(&body)))
}

async fn fail(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    complete(&shared, &id, Outcome::Error(parse(&body)))
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().unwrap() = Some(parse(&body));
    StatusCode::ACCEPTED
}

/// A function binary running against a [`RuntimeApi`], stopped on drop. Its output
/// (the function's logs) is collected for assertions.
pub struct FunctionProcess {
    child: Child,
    log_path: std::path::PathBuf,
    started: Instant,
}

impl FunctionProcess {
    /// Starts `binary` with a clean environment: the Lambda variables, dummy AWS
    /// credentials, and `env`.
    pub fn spawn(binary: &Path, runtime: &RuntimeApi, env: &[(&str, String)]) -> Self {
        let log_path = std::env::temp_dir().join(format!("{}.log", crate::unique_name("lambda")));
        let log = std::fs::File::create(&log_path).expect("a log file");
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "under-test")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", "DEBUG")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let started = Instant::now();
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Self {
            child,
            log_path,
            started,
        }
    }

    /// When the process was started (just before `exec`).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The most resident memory the process has used so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Waits up to `timeout` for the process to exit on its own; its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Everything the function printed so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}
