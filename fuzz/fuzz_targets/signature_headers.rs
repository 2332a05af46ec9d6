//! Signature headers and bodies as a sender, or an attacker, may send them, through
//! all three verifiers. Properties: nothing panics; a header only verifies when it
//! carries the real HMAC of the body (the empty or short `v1=` of a peer library's
//! bypass must never pass); a correctly signed body always verifies.
#![no_main]

use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use shared::signature::{BodySignature, SecretSet, TimestampedSignature, WebhookSecret};

const SECRETS: [&str; 2] = ["whsec_fuzz_current", "whsec_fuzz_previous"];
const NOW: i64 = 1_795_341_600;

fn hex_mac(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

fn secrets() -> SecretSet {
    SecretSet::parse(&SECRETS.join(","))
}

fuzz_target!(|input: (&[u8], &[u8])| {
    let (header, body) = input;
    let lowered = String::from_utf8_lossy(header).to_ascii_lowercase();

    let skipup = TimestampedSignature::new(secrets(), 300);
    if skipup.verify(Some(header), body, NOW).is_ok() {
        let timestamp = lowered
            .split(',')
            .find_map(|entry| entry.trim().strip_prefix("t="))
            .expect("a verified header has a timestamp")
            .trim();
        assert!(
            SECRETS
                .iter()
                .any(|s| lowered.contains(&hex_mac(s, &[timestamp.as_bytes(), b".", body]))),
            "a timestamped header verified without the body's HMAC"
        );
    }
    let skipcalls = BodySignature::skipcalls(secrets());
    let skode = BodySignature::skode(secrets());
    for verifier in [&skipcalls, &skode] {
        if verifier.verify(Some(header), body).is_ok() {
            assert!(
                SECRETS
                    .iter()
                    .any(|s| lowered.contains(&hex_mac(s, &[body]))),
                "a body signature verified without the body's HMAC"
            );
        }
    }

    // What an honest sender sends always verifies, with either secret.
    for secret in SECRETS {
        let key = WebhookSecret::new(secret).unwrap();
        let signed = TimestampedSignature::sign(&key, NOW - 60, body);
        assert!(skipup.verify(Some(signed.as_bytes()), body, NOW).is_ok());
        let digest = BodySignature::sign(&key, body);
        assert!(skode.verify(Some(digest.as_bytes()), body).is_ok());
        let prefixed = format!("sha256={}", digest.to_uppercase());
        assert!(skipcalls.verify(Some(prefixed.as_bytes()), body).is_ok());
    }
});
