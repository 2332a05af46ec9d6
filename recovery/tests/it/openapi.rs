//! `openapi.json` against the code: the routes it describes are the ones served (the
//! template's two production routes, the local stack's three reads), its
//! `{connector}` values are the connectors, and each operation's example, sent to
//! the local stack signed as its sender signs, and again unsigned or to a foreign
//! Host, gets a documented status with a body holding the documented fields. The
//! schemathesis run in `.ci/run` (`scripts/api-fuzz`) fuzzes the same document.

use std::collections::BTreeSet;

use recovery::simulate::{Sender, send};
use recovery::stack::{Options, Stack, first_secret, local_defaults};
use serde_json::{Value, json};
use shared::config::Env;
use shared::connectors::Provider;
use skipup_sandbox::SandboxConfig;

fn spec() -> Value {
    serde_json::from_str(include_str!("../../../openapi.json")).expect("openapi.json is JSON")
}

/// `schema` with its `$ref`s followed.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(pointer) => resolve(
            spec,
            spec.pointer(pointer.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{pointer} names nothing")),
        ),
        None => schema,
    }
}

/// The fields `schema` requires, through `allOf`.
fn required(spec: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = resolve(spec, schema);
    let mut fields: BTreeSet<String> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        fields.extend(required(spec, part));
    }
    fields
}

/// Fails unless `status` is documented for the operation and `body` has the fields
/// its schema requires.
fn conforms(spec: &Value, path: &str, method: &str, status: u16, body: &str) {
    let operation = &spec["paths"][path][method];
    let response = &operation["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path}: {status} is not documented ({body})"
    );
    let schema = &response["content"]["application/json"]["schema"];
    let body: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{method} {path} {status}: not JSON ({e}): {body}"));
    for field in required(spec, schema) {
        assert!(
            body.get(&field).is_some(),
            "{method} {path} {status}: no {field:?} in {body}"
        );
    }
}

#[test]
fn the_document_names_the_routes_served_and_every_connector() {
    let spec = spec();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1."));
    let tagged = |tag: &str| -> BTreeSet<String> {
        spec["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, item)| {
                item.as_object()
                    .unwrap()
                    .values()
                    .any(|op| op["tags"].as_array().unwrap().contains(&json!(tag)))
            })
            .map(|(path, _)| path.clone())
            .collect()
    };
    // The production routes are the template's API events.
    let template = include_str!("../../../template.yaml");
    let served: BTreeSet<String> = template
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Path: "))
        .map(str::to_string)
        .collect();
    assert_eq!(tagged("production"), served);
    assert_eq!(
        tagged("local"),
        BTreeSet::from(["/leads".into(), "/leads/{lead_id}".into(), "/report".into()])
    );
    assert_eq!(spec["paths"].as_object().unwrap().len(), served.len() + 3);

    let documented: BTreeSet<&str> = spec["paths"]["/webhooks/{connector}"]["post"]["parameters"]
        [0]["schema"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let connectors: BTreeSet<&str> = Provider::all().map(Provider::as_str).collect();
    assert_eq!(documented, connectors, "a connector added or removed");

    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(operation["operationId"].is_string(), "{method} {path}");
            for (status, response) in operation["responses"].as_object().unwrap() {
                let schema = &response["content"]["application/json"]["schema"];
                assert!(
                    resolve(&spec, schema).is_object(),
                    "{method} {path} {status}: a schema that resolves"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_answers_as_documented_on_the_local_stack() {
    let spec = spec();
    let env = Env::from_pairs(local_defaults());
    let stack = Stack::start(Options {
        port: 0,
        env: env.clone(),
        sandbox: SandboxConfig::default(),
        hubspot: None,
        salesforce: None,
        retry_scale: 60.0,
        workers: 1,
        sdk: None,
        allow_aws: false,
        controls: Default::default(),
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let base = stack.url().to_string();

    // POST /forms with its example, signed, then unsigned.
    let form = serde_json::to_vec(
        &spec["paths"]["/forms"]["post"]["requestBody"]["content"]["application/json"]["example"],
    )
    .unwrap();
    let secret = first_secret(&env, "FORM_WEBHOOK_SECRETS").unwrap();
    let url = format!("{base}/forms");
    let (status, body) = send(&http, Sender::Form, &url, &secret, &form)
        .await
        .unwrap();
    assert_eq!(status, 202, "{body}");
    conforms(&spec, "/forms", "post", status, &body);
    let lead_id = serde_json::from_str::<Value>(&body).unwrap()["lead_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = send(&http, Sender::Form, &url, "whsec_wrong", &form)
        .await
        .unwrap();
    assert_eq!(status, 401);
    conforms(&spec, "/forms", "post", status, &body);
    let (status, body) = send(
        &http,
        Sender::Form,
        &url,
        &secret,
        br#"{"name":"No Email"}"#,
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    conforms(&spec, "/forms", "post", status, &body);

    // POST /webhooks/{connector}: each connector's sample, signed; one unsigned.
    for provider in Provider::all() {
        let sender = Sender::Connector(provider);
        let secret = first_secret(&env, sender.secret_variable()).unwrap();
        let url = format!("{base}{}", sender.route());
        let (status, body) = send(&http, sender, &url, &secret, &sender.sample())
            .await
            .unwrap();
        assert_eq!(status, 200, "{}: {body}", provider.as_str());
        conforms(&spec, "/webhooks/{connector}", "post", status, &body);
    }
    let (status, body) = send(
        &http,
        Sender::SKODE,
        &format!("{base}/webhooks/skode"),
        "whsec_wrong",
        &Sender::SKODE.sample(),
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    conforms(&spec, "/webhooks/{connector}", "post", status, &body);

    // The local reads, found and not, and refused for a foreign Host.
    let get = async |path: &str| {
        let answer = http.get(format!("{base}{path}")).send().await.unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    };
    for (path, operation, expected) in [
        (format!("/leads/{lead_id}"), "/leads/{lead_id}", 200),
        (
            "/leads/l_000000000000000000000000".into(),
            "/leads/{lead_id}",
            404,
        ),
        ("/leads/someone".into(), "/leads/{lead_id}", 400),
        (
            "/leads?email=dana.ruiz@northwind.example".into(),
            "/leads",
            200,
        ),
        ("/leads?email=nobody".into(), "/leads", 400),
        ("/report".into(), "/report", 200),
    ] {
        let (status, body) = get(&path).await;
        assert_eq!(status, expected, "{path}: {body}");
        conforms(&spec, operation, "get", status, &body);
    }
    let answer = http
        .get(format!("{base}/report"))
        .header("Host", "attacker.example")
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    assert_eq!(status, 403);
    conforms(
        &spec,
        "/report",
        "get",
        status,
        &answer.text().await.unwrap(),
    );
}
