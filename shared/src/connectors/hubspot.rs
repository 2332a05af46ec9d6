//! HubSpot (`POST /webhooks/hubspot`): a workflow's "Send a webhook" action posts the
//! enrolled contact, which starts a lead.
//!
//! Signed with the app's client secret (developers.hubspot.com/docs/api/webhooks/
//! validating-requests), v3 or v2, since the docs leave open which one a workflow sends:
//! - v3: `X-HubSpot-Signature-v3` = base64 HMAC-SHA256(secret, `METHOD + URI + body +
//!   timestamp`), `X-HubSpot-Request-Timestamp` in milliseconds, refused when older
//!   than the freshness window (5 minutes); the URI with `%3A %2F %3F %40 %21 %24 %27
//!   %28 %29 %2A %2C %3B` decoded;
//! - v2: `X-HubSpot-Signature-Version: v2`, `X-HubSpot-Signature` = hex SHA-256 (not
//!   an HMAC) of `secret + METHOD + URI + body`, no timestamp.
//!
//! The URI is the public URL HubSpot called: `HUBSPOT_WEBHOOK_URL` (the URL registered
//! in HubSpot) when set, else the URL reconstructed from the request.
//!
//! The body is the contact as the object API returns it: `properties{email, firstname,
//! lastname, company, phone, jobtitle, ...}`, each a string or `{value}` (the exact
//! shape depends on the action's settings, so both are read).

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::fields::{Answer, Kind, ProfileDraft, answer_text, child};
use super::{
    Connector, Delivery, Parsed, Sample, Settings, Unrecognized, Verify, form_event,
};
use crate::config::{ConfigError, Env};
use crate::inbound::Payload;
use crate::signature::{
    SecretSet, SignatureError, WebhookSecret, fresh_millis, header_text, parse_base64_digest, parse_hex_digest,
};

pub struct HubSpot;

const V3: &str = "x-hubspot-signature-v3";
const TIMESTAMP: &str = "x-hubspot-request-timestamp";
const V2: &str = "x-hubspot-signature";
const VERSION: &str = "x-hubspot-signature-version";

impl Connector for HubSpot {
    fn name(&self) -> &'static str {
        "hubspot"
    }

    fn secrets_var(&self) -> &'static str {
        "HUBSPOT_WEBHOOK_SECRETS"
    }

    fn configure(&self, env: &Env) -> Result<Settings, ConfigError> {
        let url = env.get("HUBSPOT_WEBHOOK_URL");
        if url
            .as_deref()
            .is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://")))
        {
            return Err(ConfigError::Invalid {
                var: "HUBSPOT_WEBHOOK_URL",
                reason: "must be the http(s) URL registered in HubSpot".into(),
            });
        }
        Settings::new(HubSpotSignature {
            secrets: super::secrets(env, self.secrets_var()),
            url,
            tolerance_secs: super::tolerance(env)?,
        })
        .with_fields(env, "HUBSPOT_FIELD_MAP")
    }

    fn sign(&self, secret: &WebhookSecret, delivery: &Delivery<'_>) -> Vec<(&'static str, String)> {
        let timestamp = delivery.now.timestamp_millis().to_string();
        let uri = decode_uri(delivery.url);
        let digest = secret.mac(&[
            delivery.method.as_bytes(),
            uri.as_bytes(),
            delivery.body,
            timestamp.as_bytes(),
        ]);
        vec![(V3, BASE64.encode(digest)), (TIMESTAMP, timestamp)]
    }

    fn parse(&self, payload: &Payload, settings: &Settings) -> Parsed {
        let Some(top) = payload.object() else {
            return Parsed::unrecognized("not a JSON object");
        };
        let event = match child(top, "properties") {
            Some(properties) => form_event(draft(properties, settings), "hubspot"),
            None => Err(Unrecognized("no contact properties".into())),
        };
        // A workflow sends no event id: the body's hash stands in, so a retry
        // (the same body) is one event and a new enrollment another.
        Parsed::form(None, Some("workflow.webhook".into()), event)
    }

    fn sample(&self, fresh: &str) -> Sample {
        Sample::json(include_str!("../../fixtures/hubspot/workflow-contact.json"), |v| {
            v["properties"]["lastmodifieddate"] = Value::from(fresh);
        })
    }
}

/// v3, else v2; the secrets and the URL HubSpot signs.
#[derive(Debug)]
struct HubSpotSignature {
    secrets: SecretSet,
    url: Option<String>,
    tolerance_secs: u64,
}

impl Verify for HubSpotSignature {
    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), SignatureError> {
        if self.secrets.is_empty() {
            return Err(SignatureError::NoSecrets);
        }
        let url = self.url.as_deref().unwrap_or(delivery.url);
        if delivery.header(V3).is_some() {
            return self.verify_v3(delivery, url);
        }
        match header_text(delivery.header(VERSION)) {
            Ok(version) if version.eq_ignore_ascii_case("v2") => {
                let digest = parse_hex_digest(header_text(delivery.header(V2))?)?;
                let matched = self.secrets.any_keyed_digest_matches(&digest, |secret| {
                    let mut hash = Sha256::new();
                    for part in [secret, delivery.method.as_bytes(), url.as_bytes(), delivery.body] {
                        hash.update(part);
                    }
                    hash.finalize().into()
                });
                if matched { Ok(()) } else { Err(SignatureError::NoMatch) }
            }
            Ok(_) => Err(SignatureError::MalformedHeader("only signature versions v3 and v2 are accepted")),
            Err(_) => Err(SignatureError::MissingHeader),
        }
    }

    fn secrets(&self) -> &SecretSet {
        &self.secrets
    }
}

impl HubSpotSignature {
    fn verify_v3(&self, delivery: &Delivery<'_>, url: &str) -> Result<(), SignatureError> {
        let digest = parse_base64_digest(header_text(delivery.header(V3))?)?;
        let timestamp = fresh_millis(
            delivery.header(TIMESTAMP),
            delivery.now.timestamp_millis(),
            self.tolerance_secs,
        )?;
        let uri = decode_uri(url);
        let parts: [&[u8]; 4] = [
            delivery.method.as_bytes(),
            uri.as_bytes(),
            delivery.body,
            timestamp.as_bytes(),
        ];
        if self.secrets.any_mac_matches(&parts, &[digest]) {
            Ok(())
        } else {
            Err(SignatureError::NoMatch)
        }
    }
}

/// The URI as v3 signs it: these escapes decoded, every other byte as sent.
fn decode_uri(url: &str) -> String {
    const DECODED: [(&str, char); 12] = [
        ("%3A", ':'),
        ("%2F", '/'),
        ("%3F", '?'),
        ("%40", '@'),
        ("%21", '!'),
        ("%24", '$'),
        ("%27", '\''),
        ("%28", '('),
        ("%29", ')'),
        ("%2A", '*'),
        ("%2C", ','),
        ("%3B", ';'),
    ];
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape.and_then(|e| DECODED.iter().find(|(code, _)| code.eq_ignore_ascii_case(e))) {
            Some((_, c)) => {
                out.push(*c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// HubSpot's own bookkeeping properties, which say nothing about the prospect.
fn internal(name: &str) -> bool {
    name.starts_with("hs_")
        || matches!(
            name,
            "createdate" | "lastmodifieddate" | "lifecyclestage" | "hubspot_owner_id"
        )
}

fn draft(properties: &Map<String, Value>, settings: &Settings) -> ProfileDraft {
    let value = |v: &Value| match v {
        Value::Object(o) => o.get("value").and_then(answer_text),
        other => answer_text(other),
    };
    let answers = properties
        .iter()
        .filter(|(name, _)| !internal(name))
        .filter_map(|(name, v)| {
            let kind = match name.as_str() {
                "email" => Kind::Email,
                "phone" | "mobilephone" => Kind::Phone,
                _ => Kind::Other,
            };
            Some(Answer::new(name.clone(), kind, value(v)?))
        })
        .collect();
    let mut draft = ProfileDraft::from_answers(answers, &settings.fields);
    draft.form_id = Some("hubspot-workflow".into());
    draft.source = Some("hubspot".into());
    if draft.timezone.is_none() {
        draft.timezone = properties
            .get("hs_timezone")
            .and_then(value)
            .map(|tz| iana_name(&tz));
    }
    draft
}

/// HubSpot writes time zones as `america_slash_los_angeles`.
fn iana_name(hubspot: &str) -> String {
    hubspot
        .split("_slash_")
        .map(|part| {
            part.split('_')
                .map(|word| {
                    let mut chars = word.chars();
                    chars.next().map_or_else(String::new, |first| {
                        first.to_uppercase().chain(chars).collect()
                    })
                })
                .collect::<Vec<_>>()
                .join("_")
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Event;

    const CONTACT: &str = include_str!("../../fixtures/hubspot/workflow-contact.json");
    const CALLED: &str = "https://leads.example.com/webhooks/hubspot?next=%2Fdone%3Fa%3Db%40c";
    const BODY: &[u8] = br#"{"objectId":51}"#;
    const TS: &str = "1763800000000";
    // Computed independently with Python's hmac and hashlib (client secret
    // "hubspot_client_secret"): v3 over the URI with the listed escapes decoded
    // (`%3D` is not one of them, so it stays), v2 over the URI as called.
    const V3_DIGEST: &str = "RrSTXJE7hOu+WA8HYZQlz6O5SESYY3gFApfVs9nM7+g=";
    const V2_DIGEST: &str = "2328673bd560cd55a32bc216d9035e4c33f9e8cf26ea8bb3acbafaa5d615ab52";

    fn settings(extra: &[(&str, &str)]) -> Settings {
        let mut pairs = vec![("HUBSPOT_WEBHOOK_SECRETS", "hubspot_client_secret")];
        pairs.extend_from_slice(extra);
        HubSpot.configure(&Env::from_pairs(pairs.iter().copied())).unwrap()
    }

    fn verify(settings: &Settings, url: &str, headers: &[(&str, &str)], body: &[u8], now_ms: i64) -> Result<(), SignatureError> {
        let headers: http::HeaderMap = headers
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect();
        settings.verifier.verify(&Delivery {
            method: "POST",
            url,
            headers: &headers,
            body,
            now: chrono::DateTime::from_timestamp_millis(now_ms).unwrap(),
        })
    }

    #[test]
    fn v3_verifies_over_the_decoded_uri_within_five_minutes() {
        let s = settings(&[]);
        let now = 1_763_800_000_000 + 1_000;
        let v3 = [(V3, V3_DIGEST), (TIMESTAMP, TS)];
        assert_eq!(verify(&s, CALLED, &v3, BODY, now), Ok(()));
        assert_eq!(verify(&s, CALLED, &v3, b"{}", now), Err(SignatureError::NoMatch));
        assert_eq!(
            verify(&s, "https://other.example/webhooks/hubspot", &v3, BODY, now),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(&s, CALLED, &v3, BODY, now + 300_000),
            Err(SignatureError::TooOld)
        );
        assert_eq!(
            verify(&s, CALLED, &[(V3, V3_DIGEST)], BODY, now),
            Err(SignatureError::MissingHeader)
        );
    }

    #[test]
    fn the_registered_url_is_the_uri_when_set() {
        let s = settings(&[("HUBSPOT_WEBHOOK_URL", CALLED)]);
        let now = 1_763_800_000_000;
        let v3 = [(V3, V3_DIGEST), (TIMESTAMP, TS)];
        assert_eq!(verify(&s, "https://abc.execute-api.example/webhooks/hubspot", &v3, BODY, now), Ok(()));
    }

    #[test]
    fn v2_verifies_a_plain_sha256_and_nothing_else_is_accepted() {
        let s = settings(&[]);
        let v2 = [(VERSION, "v2"), (V2, V2_DIGEST)];
        assert_eq!(verify(&s, CALLED, &v2, BODY, 0), Ok(()));
        assert_eq!(verify(&s, CALLED, &v2, b"{}", 0), Err(SignatureError::NoMatch));
        let v1 = [(VERSION, "v1"), (V2, V2_DIGEST)];
        assert!(matches!(verify(&s, CALLED, &v1, BODY, 0), Err(SignatureError::MalformedHeader(_))));
        assert_eq!(verify(&s, CALLED, &[], BODY, 0), Err(SignatureError::MissingHeader));
    }

    #[test]
    fn hubspot_time_zones_read_as_iana_names() {
        assert_eq!(iana_name("america_slash_los_angeles"), "America/Los_Angeles");
        assert_eq!(iana_name("europe_slash_berlin"), "Europe/Berlin");
    }

    #[test]
    fn only_the_documented_escapes_are_decoded() {
        assert_eq!(
            decode_uri("https://a.example/x?q=%3a%2F%20%25"),
            "https://a.example/x?q=:/%20%25"
        );
    }

    #[test]
    fn the_enrolled_contact_becomes_a_lead() {
        let Ok(Event::Form(form)) = HubSpot
            .parse(&Payload::from_body(CONTACT.as_bytes()), &settings(&[]))
            .event
        else {
            panic!("a form submission");
        };
        let p = &form.profile;
        assert_eq!(p.email.as_str(), "lee.morgan@hooli.example");
        assert_eq!(p.name, "Lee Morgan");
        assert_eq!(p.company.as_deref(), Some("Hooli"));
        assert_eq!(p.role.as_deref(), Some("CTO"));
        assert_eq!(p.phone.as_deref(), Some("+1 650 555 0123"));
        assert_eq!(p.answers.len(), 1, "{:?}", p.answers);
        let legacy = include_str!("../../fixtures/hubspot/workflow-contact-legacy-v1.json");
        let Ok(Event::Form(form)) = HubSpot
            .parse(&Payload::from_body(legacy.as_bytes()), &settings(&[]))
            .event
        else {
            panic!("a form submission from {{value}} properties");
        };
        assert!(form.profile.email.as_str().contains('@'));
    }
}
