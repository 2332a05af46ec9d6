//! `moto_server`, a local AWS API emulator, shared by the tests of one test binary.
//! Tests isolate themselves by using their own queue and table names.
//!
//! `MOTO_ENDPOINT` selects an emulator that is already running; otherwise one is
//! started from `MOTO_SERVER_BIN`, `.venv/bin/moto_server` or the `PATH`, on a free
//! loopback port, and stops when the test process exits.
//!
//! Clients built from [`Moto::sdk_config`] send moto one DynamoDB request at a time.
//! DynamoDB makes each conditional write atomic and isolates each transaction; moto,
//! serving requests on threads, does neither: it checks a condition and writes in
//! separate steps, and undoes a failed transaction by putting back a copy of every
//! table it touched, taken when the transaction began
//! (`moto/dynamodb/models/__init__.py`, `transact_write_items`:
//! `original_table_state`), which erases whatever other requests wrote in between,
//! such as a new lead or another consumer's status. One request at a time gives the
//! tests DynamoDB's guarantees on moto. SQS requests are not held back (a long poll
//! waits for up to 20 s).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

pub struct Moto {
    endpoint: String,
}

static SHARED: OnceLock<Moto> = OnceLock::new();

/// The emulator for this test process, started on first use.
pub fn moto() -> &'static Moto {
    SHARED.get_or_init(|| match std::env::var("MOTO_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Moto { endpoint },
        _ => Moto::spawn(),
    })
}

impl Moto {
    #[expect(
        clippy::zombie_processes,
        reason = "the watchdog shell outlives the handle on purpose and ends by itself"
    )]
    fn spawn() -> Self {
        let binary = std::env::var("MOTO_SERVER_BIN").unwrap_or_else(|_| {
            let venv = crate::workspace_root().join(".venv/bin/moto_server");
            if venv.exists() {
                venv.display().to_string()
            } else {
                "moto_server".to_string()
            }
        });
        let port = free_port();
        // The shell watches the test process ($PPID) and stops the emulator once it is
        // gone, so no emulator outlives its tests.
        let script = format!(
            "\"$0\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & child=$!; \
             while kill -0 $PPID 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done; \
             kill $child 2>/dev/null"
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&binary)
            // Nothing inherited: a test runner waiting for the test's output to close
            // does not wait for the watchdog.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start a shell for {binary}: {e}"));
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server ({binary}) did not listen on {address} within 60 s; \
                 run scripts/test, which installs it into .venv, or set MOTO_SERVER_BIN"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            endpoint: format!("http://{address}"),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK configuration pointed at the emulator with dummy credentials, sending it
    /// one DynamoDB request at a time (see the module's documentation).
    pub async fn sdk_config(&self) -> SdkConfig {
        let sdk = sdk_config_for(&self.endpoint).await;
        let inner = sdk.http_client().unwrap_or_else(https_client);
        sdk.into_builder()
            .http_client(OneDynamoDbRequestAtATime { inner })
            .build()
    }

    /// Creates a FIFO queue with content-based deduplication off (ids are explicit).
    pub async fn create_fifo_queue(&self, prefix: &str) -> String {
        let client = aws_sdk_sqs::Client::new(&self.sdk_config().await);
        let name = format!("{}.fifo", crate::unique_name(prefix));
        client
            .create_queue()
            .queue_name(name)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
            .send()
            .await
            .expect("moto creates the FIFO queue")
            .queue_url
            .expect("a queue URL")
    }

    /// Creates a standard queue (per-message delays allowed).
    pub async fn create_queue(&self, prefix: &str) -> String {
        let client = aws_sdk_sqs::Client::new(&self.sdk_config().await);
        client
            .create_queue()
            .queue_name(crate::unique_name(prefix))
            .send()
            .await
            .expect("moto creates the queue")
            .queue_url
            .expect("a queue URL")
    }

    /// Waits up to `wait_secs` (long polling) for messages, and deletes them.
    pub async fn receive(
        &self,
        queue_url: &str,
        wait_secs: i32,
    ) -> Vec<aws_sdk_sqs::types::Message> {
        let client = aws_sdk_sqs::Client::new(&self.sdk_config().await);
        let messages = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .wait_time_seconds(wait_secs)
            .send()
            .await
            .expect("receive from moto")
            .messages
            .unwrap_or_default();
        for message in &messages {
            client
                .delete_message()
                .queue_url(queue_url)
                .set_receipt_handle(message.receipt_handle.clone())
                .send()
                .await
                .expect("delete from moto");
        }
        messages
    }

    /// Receives (and deletes) every message waiting on `queue_url`, with its system
    /// attributes (group id, deduplication id).
    pub async fn drain_queue(&self, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        loop {
            let batch = self.receive(queue_url, 1).await;
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
        }
    }
}

/// The SDK's own HTTP client, for a configuration that has none.
pub(crate) fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_https()
}

/// Whose turn it is to send moto a DynamoDB request, across every client and test
/// runtime of this process (one emulator per process).
static DYNAMODB_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug)]
struct OneDynamoDbRequestAtATime {
    inner: SharedHttpClient,
}

impl HttpClient for OneDynamoDbRequestAtATime {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(OneAtATimeConnector {
            inner: self.inner.http_connector(settings, components),
        })
    }
}

#[derive(Debug)]
struct OneAtATimeConnector {
    inner: SharedHttpConnector,
}

impl HttpConnector for OneAtATimeConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let dynamodb = request
            .headers()
            .get("x-amz-target")
            .is_some_and(|target| target.starts_with("DynamoDB_"));
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move {
            // Held until moto has answered: the request starts only once it is ours.
            let _turn = if dynamodb {
                Some(DYNAMODB_TURN.lock().await)
            } else {
                None
            };
            inner.call(request).await
        })
    }
}

/// SDK configuration for an endpoint (the emulator, or an address nothing listens on).
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "testing", "testing", None, None, "testkit",
        ))
        .load()
        .await
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_types::body::SdkBody;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Barrier;

    const SENT: usize = 8;

    /// An emulator that notes how many requests it serves at once. Each request takes
    /// 20 ms, or, with `together`, waits until all [`SENT`] are being served.
    #[derive(Debug)]
    struct Busy {
        now: AtomicUsize,
        most: AtomicUsize,
        together: Option<Barrier>,
    }

    #[derive(Debug)]
    struct BusyConnector(Arc<Busy>);

    impl HttpConnector for BusyConnector {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            let busy = self.0.clone();
            HttpConnectorFuture::new(async move {
                let now = busy.now.fetch_add(1, Ordering::SeqCst) + 1;
                busy.most.fetch_max(now, Ordering::SeqCst);
                match &busy.together {
                    Some(barrier) => _ = barrier.wait().await,
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                busy.now.fetch_sub(1, Ordering::SeqCst);
                Ok(HttpResponse::new(200.try_into().unwrap(), SdkBody::empty()))
            })
        }
    }

    /// The most requests with this `X-Amz-Target` that the emulator served at once
    /// when [`SENT`] were sent together.
    async fn most_at_once(target: &str, together: bool) -> usize {
        let busy = Arc::new(Busy {
            now: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            together: together.then(|| Barrier::new(SENT)),
        });
        let connector = SharedHttpConnector::new(OneAtATimeConnector {
            inner: SharedHttpConnector::new(BusyConnector(busy.clone())),
        });
        let calls: Vec<_> = (0..SENT)
            .map(|_| {
                let mut request = HttpRequest::empty();
                request
                    .headers_mut()
                    .insert("x-amz-target", target.to_string());
                tokio::spawn(connector.call(request))
            })
            .collect();
        for call in calls {
            // Requests held back one after another would never all meet.
            tokio::time::timeout(Duration::from_secs(10), call)
                .await
                .expect("the requests were served together")
                .unwrap()
                .unwrap();
        }
        busy.most.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn moto_gets_one_dynamodb_request_at_a_time_and_sqs_requests_together() {
        let dynamodb = most_at_once("DynamoDB_20120810.TransactWriteItems", false).await;
        assert_eq!(dynamodb, 1);
        assert_eq!(most_at_once("AmazonSQS.ReceiveMessage", true).await, SENT);
    }
}
