//! Webhook signature schemes. Every check runs on the exact raw body bytes, compares
//! digests in constant time, and accepts several secrets so a provider's secret can be
//! rotated without refusing deliveries.
//!
//! - [`TimestampedSignature`]: `t={unix seconds},v1={hex}` over `{t}.{body}` (SkipUp,
//!   and our own form intake and outbound webhooks; Calendly in its own header).
//! - [`BodySignature`]: hex HMAC of the body (SkipCalls, with an optional `sha256=`
//!   prefix; Skode; Cal.com; SavvyCal, with the prefix required).

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Length of a hex-encoded HMAC-SHA256 digest.
const HEX_DIGEST_LEN: usize = 64;

/// One shared secret. Keyed with the UTF-8 bytes of the configured string, as the
/// providers' reference code does. Never printed.
pub struct WebhookSecret(SecretSlice<u8>);

impl WebhookSecret {
    /// Refuses an empty or blank secret: HMAC accepts it, but it authenticates nothing.
    pub fn new(secret: &str) -> Result<Self, EmptySecret> {
        if secret.trim().is_empty() {
            return Err(EmptySecret);
        }
        Ok(Self(SecretSlice::from(secret.as_bytes().to_vec())))
    }

    /// The secret as configured, for a scheme that sends it as it is (a bearer token).
    pub(crate) fn expose_for_header(&self) -> String {
        String::from_utf8_lossy(self.0.expose_secret()).into_owned()
    }

    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes keys of any length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

/// A blank secret was configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret must not be empty")]
pub struct EmptySecret;

/// The secrets accepted for one provider; any of them may have signed a delivery.
#[derive(Debug, Default)]
pub struct SecretSet(Vec<WebhookSecret>);

impl SecretSet {
    /// Parses a comma-separated list (the `*_WEBHOOK_SECRETS` variables). Blank entries
    /// between commas are skipped, so `"a,"` is one secret; an empty string is no secret.
    pub fn parse(list: &str) -> Self {
        Self(
            list.split(',')
                .filter_map(|s| WebhookSecret::new(s.trim()).ok())
                .collect(),
        )
    }

    pub fn from_secrets(secrets: Vec<WebhookSecret>) -> Self {
        Self(secrets)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The first secret signs outbound deliveries.
    pub fn primary(&self) -> Option<&WebhookSecret> {
        self.0.first()
    }

    /// True when some secret's MAC over `parts` equals some candidate. Every comparison
    /// is constant time; stopping after a match only reveals that one matched.
    pub(crate) fn any_mac_matches(&self, parts: &[&[u8]], candidates: &[[u8; 32]]) -> bool {
        self.0.iter().any(|secret| {
            let expected = secret.mac(parts);
            candidates
                .iter()
                .any(|candidate| bool::from(expected.ct_eq(candidate)))
        })
    }
}

impl SecretSet {
    /// True when `digest` of some secret's bytes equals `candidate`, compared in
    /// constant time (schemes that hash the secret itself: HubSpot v2, bearer tokens).
    pub(crate) fn any_keyed_digest_matches(
        &self,
        candidate: &[u8; 32],
        digest: impl Fn(&[u8]) -> [u8; 32],
    ) -> bool {
        self.0
            .iter()
            .any(|secret| bool::from(digest(secret.0.expose_secret()).ct_eq(candidate)))
    }
}

/// Why a delivery's signature was refused. The messages are safe to return to the
/// sender and to log: they carry no secret, digest or body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is missing")]
    MissingHeader,
    #[error("signature header is malformed: {0}")]
    MalformedHeader(&'static str),
    #[error("signature digest is not a {HEX_DIGEST_LEN}-character hex string")]
    MalformedDigest,
    #[error("signature digest is not a base64-encoded SHA-256 digest")]
    MalformedBase64Digest,
    #[error("signature timestamp is older than the tolerance window")]
    TooOld,
    #[error("signature timestamp is further in the future than the tolerance window")]
    TooNew,
    #[error("no signature matches")]
    NoMatch,
    #[error("no secret is configured for this sender")]
    NoSecrets,
}

/// Decodes one hex digest; anything but exactly 64 hex digits (either case) is refused,
/// which rules out the empty `v1=` that compared equal in a peer library.
pub(crate) fn parse_hex_digest(text: &str) -> Result<[u8; 32], SignatureError> {
    if text.len() != HEX_DIGEST_LEN {
        return Err(SignatureError::MalformedDigest);
    }
    let mut digest = [0u8; 32];
    hex::decode_to_slice(text, &mut digest).map_err(|_| SignatureError::MalformedDigest)?;
    Ok(digest)
}

pub(crate) fn header_text(header: Option<&[u8]>) -> Result<&str, SignatureError> {
    let raw = header.ok_or(SignatureError::MissingHeader)?;
    let text = std::str::from_utf8(raw)
        .map_err(|_| SignatureError::MalformedHeader("not ASCII"))?
        .trim();
    if text.is_empty() {
        return Err(SignatureError::MissingHeader);
    }
    Ok(text)
}

/// A timestamp header in epoch milliseconds (Webflow, HubSpot v3), checked against
/// `now_ms` within `tolerance_secs` both ways; returns the text as sent (it is signed).
pub(crate) fn fresh_millis(
    header: Option<&[u8]>,
    now_ms: i64,
    tolerance_secs: u64,
) -> Result<&str, SignatureError> {
    let text = header_text(header)?;
    if text.len() > 15 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::MalformedHeader(
            "timestamp is not epoch milliseconds",
        ));
    }
    let millis: i64 = text
        .parse()
        .map_err(|_| SignatureError::MalformedHeader("timestamp is not epoch milliseconds"))?;
    let tolerance = i64::try_from(tolerance_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let age = now_ms.saturating_sub(millis);
    if age > tolerance {
        return Err(SignatureError::TooOld);
    }
    if age < tolerance.saturating_neg() {
        return Err(SignatureError::TooNew);
    }
    Ok(text)
}

/// Decodes one standard-base64 digest: exactly 44 characters for 32 bytes.
pub(crate) fn parse_base64_digest(text: &str) -> Result<[u8; 32], SignatureError> {
    use base64::Engine;
    if text.len() != 44 {
        return Err(SignatureError::MalformedBase64Digest);
    }
    let mut digest = [0u8; 32];
    match base64::engine::general_purpose::STANDARD.decode_slice(text, &mut digest) {
        Ok(32) => Ok(digest),
        _ => Err(SignatureError::MalformedBase64Digest),
    }
}

/// Base64 HMAC-SHA256 of the raw body in one header, optionally behind a prefix, no
/// timestamp: Typeform (`Typeform-Signature: sha256=<base64>`) and Tally
/// (`Tally-Signature: <base64>`, where a hex digest is accepted too since the
/// encoding is only third-party knowledge).
#[derive(Debug)]
pub struct Base64BodySignature {
    secrets: SecretSet,
    header: &'static str,
    prefix: Option<&'static str>,
    accepts_hex: bool,
}

impl Base64BodySignature {
    pub fn new(secrets: SecretSet, header: &'static str, prefix: Option<&'static str>) -> Self {
        Self {
            secrets,
            header,
            prefix,
            accepts_hex: false,
        }
    }

    /// Also accept a 64-character hex digest.
    pub fn accepting_hex(mut self) -> Self {
        self.accepts_hex = true;
        self
    }

    pub fn header(&self) -> &'static str {
        self.header
    }

    /// The base64 digest (without any prefix).
    pub fn sign(secret: &WebhookSecret, body: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(secret.mac(&[body]))
    }

    pub fn secrets(&self) -> &SecretSet {
        &self.secrets
    }

    pub fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
        if self.secrets.is_empty() {
            return Err(SignatureError::NoSecrets);
        }
        let text = header_text(header)?;
        let digest_text = match self.prefix {
            None => text,
            Some(prefix) => match text.get(..prefix.len()) {
                Some(p) if p.eq_ignore_ascii_case(prefix) => &text[prefix.len()..],
                _ => {
                    return Err(SignatureError::MalformedHeader(
                        "missing the sha256= prefix",
                    ));
                }
            },
        };
        let digest = if self.accepts_hex && digest_text.len() == HEX_DIGEST_LEN {
            parse_hex_digest(digest_text)?
        } else {
            parse_base64_digest(digest_text)?
        };
        if self.secrets.any_mac_matches(&[body], &[digest]) {
            Ok(())
        } else {
            Err(SignatureError::NoMatch)
        }
    }
}

/// `X-Webhook-Signature: t={unix seconds},v1={hex}[,v1={hex}...]`, HMAC-SHA256 over
/// the timestamp exactly as sent, a dot, and the raw body. Entries of other schemes
/// (`v0=`, ...) are ignored, but at least one `v1` must be present and well formed.
/// The same scheme in another header with [`TimestampedSignature::in_header`]
/// (Calendly's `Calendly-Webhook-Signature`).
#[derive(Debug)]
pub struct TimestampedSignature {
    secrets: SecretSet,
    tolerance_secs: i64,
    header: &'static str,
}

/// Default freshness window, both past and future.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

impl TimestampedSignature {
    pub const HEADER: &'static str = "x-webhook-signature";

    /// Read from [`Self::HEADER`].
    pub fn new(secrets: SecretSet, tolerance_secs: u64) -> Self {
        Self {
            secrets,
            tolerance_secs: i64::try_from(tolerance_secs).unwrap_or(i64::MAX),
            header: Self::HEADER,
        }
    }

    /// Read from `header` (lowercase) instead.
    pub fn in_header(mut self, header: &'static str) -> Self {
        self.header = header;
        self
    }

    /// The (lowercase) header the signature travels in.
    pub fn header(&self) -> &'static str {
        self.header
    }

    /// The header value a sender puts on `body` at `timestamp`.
    pub fn sign(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let digest = secret.mac(&[ts.as_bytes(), b".", body]);
        format!("t={ts},v1={}", hex::encode(digest))
    }

    pub fn secrets(&self) -> &SecretSet {
        &self.secrets
    }

    pub fn verify(
        &self,
        header: Option<&[u8]>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), SignatureError> {
        if self.secrets.is_empty() {
            return Err(SignatureError::NoSecrets);
        }
        let parsed = ParsedTimestamped::parse(header_text(header)?)?;
        let age = now_unix.saturating_sub(parsed.timestamp);
        if age > self.tolerance_secs {
            return Err(SignatureError::TooOld);
        }
        if age < self.tolerance_secs.saturating_neg() {
            return Err(SignatureError::TooNew);
        }
        let parts: [&[u8]; 3] = [parsed.timestamp_text.as_bytes(), b".", body];
        if self.secrets.any_mac_matches(&parts, &parsed.digests) {
            Ok(())
        } else {
            Err(SignatureError::NoMatch)
        }
    }
}

struct ParsedTimestamped<'a> {
    timestamp_text: &'a str,
    timestamp: i64,
    digests: Vec<[u8; 32]>,
}

impl<'a> ParsedTimestamped<'a> {
    /// Longest timestamp accepted: seconds until the year 33658, and no overflow.
    const MAX_TIMESTAMP_DIGITS: usize = 12;
    /// A header with more `v1` entries than this is not a rotation, it is an attack.
    const MAX_DIGESTS: usize = 8;

    fn parse(header: &'a str) -> Result<Self, SignatureError> {
        let mut timestamp = None;
        let mut digests = Vec::new();
        for item in header.split(',') {
            let (key, value) = item
                .split_once('=')
                .ok_or(SignatureError::MalformedHeader("an entry has no '='"))?;
            match key.trim() {
                "t" => {
                    if timestamp.is_some() {
                        return Err(SignatureError::MalformedHeader("more than one timestamp"));
                    }
                    timestamp = Some(value.trim());
                }
                "v1" => {
                    if digests.len() == Self::MAX_DIGESTS {
                        return Err(SignatureError::MalformedHeader("too many signatures"));
                    }
                    digests.push(parse_hex_digest(value.trim())?);
                }
                _ => {}
            }
        }
        let timestamp_text =
            timestamp.ok_or(SignatureError::MalformedHeader("no timestamp (t=)"))?;
        if timestamp_text.is_empty()
            || timestamp_text.len() > Self::MAX_TIMESTAMP_DIGITS
            || !timestamp_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(SignatureError::MalformedHeader(
                "timestamp is not unix seconds",
            ));
        }
        if digests.is_empty() {
            return Err(SignatureError::MalformedHeader("no v1 signature"));
        }
        let timestamp = timestamp_text
            .parse()
            .map_err(|_| SignatureError::MalformedHeader("timestamp is not unix seconds"))?;
        Ok(Self {
            timestamp_text,
            timestamp,
            digests,
        })
    }
}

/// HMAC-SHA256 of the raw body as hex, no timestamp (replays are caught by
/// deduplicating on the event id):
/// - SkipCalls, `X-Webhook-Signature`: the encoding is undocumented, so hex in either
///   case is accepted, with or without a `sha256=` prefix;
/// - Skode, `X-Skode-Signature`: hex in either case;
/// - any other header and [`DigestPrefix`] with [`BodySignature::new`] (Cal.com,
///   SavvyCal).
#[derive(Debug)]
pub struct BodySignature {
    secrets: SecretSet,
    header: &'static str,
    prefix: DigestPrefix,
}

/// Whether a `sha256=` prefix (in either case) comes before a hex digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestPrefix {
    /// The bare digest.
    None,
    /// With or without the prefix.
    Optional,
    /// Always with it.
    Required,
}

impl BodySignature {
    pub const SKIPCALLS_HEADER: &'static str = "x-webhook-signature";
    pub const SKODE_HEADER: &'static str = "x-skode-signature";

    /// The digest in `header` (lowercase).
    pub fn new(secrets: SecretSet, header: &'static str, prefix: DigestPrefix) -> Self {
        Self {
            secrets,
            header,
            prefix,
        }
    }

    pub fn skipcalls(secrets: SecretSet) -> Self {
        Self::new(secrets, Self::SKIPCALLS_HEADER, DigestPrefix::Optional)
    }

    pub fn skode(secrets: SecretSet) -> Self {
        Self::new(secrets, Self::SKODE_HEADER, DigestPrefix::None)
    }

    /// The (lowercase) header the signature travels in.
    pub fn header(&self) -> &'static str {
        self.header
    }

    pub fn sign(secret: &WebhookSecret, body: &[u8]) -> String {
        hex::encode(secret.mac(&[body]))
    }

    pub fn secrets(&self) -> &SecretSet {
        &self.secrets
    }

    pub fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
        if self.secrets.is_empty() {
            return Err(SignatureError::NoSecrets);
        }
        let text = header_text(header)?;
        let prefixed = text
            .get(..7)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("sha256="));
        let digest_text = match (self.prefix, prefixed) {
            (DigestPrefix::Optional | DigestPrefix::Required, true) => &text[7..],
            (DigestPrefix::Required, false) => {
                return Err(SignatureError::MalformedHeader(
                    "missing the sha256= prefix",
                ));
            }
            _ => text,
        };
        let digest = parse_hex_digest(digest_text)?;
        if self.secrets.any_mac_matches(&[body], &[digest]) {
            Ok(())
        } else {
            Err(SignatureError::NoMatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Known answers computed independently with Python's hmac module:
    //   hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    const SKIPUP_SECRET: &str = "whsec_skipup_test_secret";
    const SKIPUP_BODY: &[u8] =
        br#"{"type":"meeting_request.booked","data":{"id":"mr_01JKAT0000000000000000001"}}"#;
    const SKIPUP_TS: i64 = 1_763_800_000;
    const SKIPUP_DIGEST: &str = "f6d9167f83392b0d718770bd0b15610ff212d7a78484a68efea912f37f988ba1";

    const SKIPCALLS_SECRET: &str = "skipcalls_test_secret";
    const SKIPCALLS_BODY: &[u8] = br#"{"event":"CALL_COMPLETED","call":{"id":"call_kat_1"}}"#;
    const SKIPCALLS_DIGEST: &str =
        "94f989ba3313d965243acd5e4bb68dab914616e54b8e4e8e1fd953005c65a927";

    const SKODE_SECRET: &str = "whsec_skode_test_secret";
    const SKODE_BODY: &[u8] = br#"{"id":"evt_kat1","event":"lead.created","created_at":"2026-11-22T10:00:00Z","data":{"id":"lead_kat1"}}"#;
    const SKODE_DIGEST: &str = "2e7093dfa1d92717db086070e4a1f5d4bc3de26dcfb3b4817da75be45445917c";

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::new(s).unwrap()
    }

    fn skipup() -> TimestampedSignature {
        TimestampedSignature::new(SecretSet::parse(SKIPUP_SECRET), DEFAULT_TOLERANCE_SECS)
    }

    fn kat_header() -> String {
        format!("t={SKIPUP_TS},v1={SKIPUP_DIGEST}")
    }

    fn verify_skipup(header: &str) -> Result<(), SignatureError> {
        skipup().verify(Some(header.as_bytes()), SKIPUP_BODY, SKIPUP_TS + 10)
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        assert_eq!(
            hex::encode(secret("Jefe").mac(&[b"what do ya want for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signing_reproduces_the_python_known_answer() {
        assert_eq!(
            TimestampedSignature::sign(&secret(SKIPUP_SECRET), SKIPUP_TS, SKIPUP_BODY),
            kat_header()
        );
        assert_eq!(
            BodySignature::sign(&secret(SKIPCALLS_SECRET), SKIPCALLS_BODY),
            SKIPCALLS_DIGEST
        );
        assert_eq!(
            BodySignature::sign(&secret(SKODE_SECRET), SKODE_BODY),
            SKODE_DIGEST
        );
    }

    #[test]
    fn a_skipup_delivery_signed_with_the_known_answer_is_accepted() {
        assert_eq!(verify_skipup(&kat_header()), Ok(()));
    }

    #[test]
    fn an_uppercase_digest_and_spaces_around_entries_are_accepted() {
        let header = format!("t={SKIPUP_TS}, v1={}", SKIPUP_DIGEST.to_uppercase());
        assert_eq!(verify_skipup(&header), Ok(()));
    }

    #[test]
    fn any_of_several_v1_entries_may_match() {
        let other = "0".repeat(64);
        let header = format!("t={SKIPUP_TS},v1={other},v1={SKIPUP_DIGEST}");
        assert_eq!(verify_skipup(&header), Ok(()));
        let header = format!("t={SKIPUP_TS},v1={SKIPUP_DIGEST},v0=abc");
        assert_eq!(verify_skipup(&header), Ok(()));
    }

    #[test]
    fn any_configured_secret_may_have_signed_during_rotation() {
        let verifier = TimestampedSignature::new(
            SecretSet::parse(&format!("new_secret_after_rotation, {SKIPUP_SECRET}")),
            DEFAULT_TOLERANCE_SECS,
        );
        assert_eq!(verifier.secrets().len(), 2);
        assert_eq!(
            verifier.verify(Some(kat_header().as_bytes()), SKIPUP_BODY, SKIPUP_TS),
            Ok(())
        );
    }

    #[test]
    fn an_empty_v1_is_refused_and_never_compares_equal() {
        assert_eq!(
            verify_skipup(&format!("t={SKIPUP_TS},v1=")),
            Err(SignatureError::MalformedDigest)
        );
        assert_eq!(
            verify_skipup(&format!("t={SKIPUP_TS},v1=,v1={SKIPUP_DIGEST}")),
            Err(SignatureError::MalformedDigest)
        );
    }

    #[test]
    fn short_long_and_non_hex_digests_are_refused() {
        for digest in [
            &SKIPUP_DIGEST[..63],
            &SKIPUP_DIGEST[..32],
            &format!("{SKIPUP_DIGEST}00"),
            &format!("{}zz", &SKIPUP_DIGEST[..62]),
        ] {
            assert_eq!(
                verify_skipup(&format!("t={SKIPUP_TS},v1={digest}")),
                Err(SignatureError::MalformedDigest),
                "{digest}"
            );
        }
    }

    #[test]
    fn a_header_without_a_timestamp_or_without_v1_is_refused() {
        assert_eq!(
            verify_skipup(&format!("v1={SKIPUP_DIGEST}")),
            Err(SignatureError::MalformedHeader("no timestamp (t=)"))
        );
        assert_eq!(
            verify_skipup(&format!("t={SKIPUP_TS},v0={SKIPUP_DIGEST}")),
            Err(SignatureError::MalformedHeader("no v1 signature"))
        );
        assert_eq!(
            verify_skipup(&format!("t={SKIPUP_TS}")),
            Err(SignatureError::MalformedHeader("no v1 signature"))
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in [
            "garbage".to_string(),
            format!("t=,v1={SKIPUP_DIGEST}"),
            format!("t=-5,v1={SKIPUP_DIGEST}"),
            format!("t=1e9,v1={SKIPUP_DIGEST}"),
            format!("t=99999999999999999999,v1={SKIPUP_DIGEST}"),
            format!("t={SKIPUP_TS},t={SKIPUP_TS},v1={SKIPUP_DIGEST}"),
            SKIPUP_DIGEST.to_string(),
        ] {
            assert!(
                matches!(
                    verify_skipup(&header),
                    Err(SignatureError::MalformedHeader(_))
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn a_missing_or_blank_header_is_refused() {
        let v = skipup();
        assert_eq!(
            v.verify(None, SKIPUP_BODY, SKIPUP_TS),
            Err(SignatureError::MissingHeader)
        );
        assert_eq!(
            v.verify(Some(b"  "), SKIPUP_BODY, SKIPUP_TS),
            Err(SignatureError::MissingHeader)
        );
    }

    #[test]
    fn timestamps_outside_the_window_are_refused_both_ways() {
        let v = skipup();
        let header = kat_header();
        let at = |now| v.verify(Some(header.as_bytes()), SKIPUP_BODY, now);
        assert_eq!(at(SKIPUP_TS + 300), Ok(()));
        assert_eq!(at(SKIPUP_TS - 300), Ok(()));
        assert_eq!(at(SKIPUP_TS + 301), Err(SignatureError::TooOld));
        assert_eq!(at(SKIPUP_TS - 301), Err(SignatureError::TooNew));
        assert_eq!(at(i64::MIN), Err(SignatureError::TooNew));
        assert_eq!(at(i64::MAX), Err(SignatureError::TooOld));
    }

    #[test]
    fn the_tolerance_window_is_configurable() {
        let v = TimestampedSignature::new(SecretSet::parse(SKIPUP_SECRET), 30);
        let header = kat_header();
        assert_eq!(
            v.verify(Some(header.as_bytes()), SKIPUP_BODY, SKIPUP_TS + 31),
            Err(SignatureError::TooOld)
        );
    }

    #[test]
    fn a_wrong_secret_does_not_match() {
        let v = TimestampedSignature::new(SecretSet::parse("another"), DEFAULT_TOLERANCE_SECS);
        assert_eq!(
            v.verify(Some(kat_header().as_bytes()), SKIPUP_BODY, SKIPUP_TS),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_re_serialized_body_does_not_match() {
        let value: serde_json::Value = serde_json::from_slice(SKIPUP_BODY).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        assert_eq!(
            skipup().verify(Some(kat_header().as_bytes()), &pretty, SKIPUP_TS),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_verifier_without_secrets_refuses_everything() {
        let v = TimestampedSignature::new(SecretSet::parse(" , "), DEFAULT_TOLERANCE_SECS);
        assert_eq!(
            v.verify(Some(kat_header().as_bytes()), SKIPUP_BODY, SKIPUP_TS),
            Err(SignatureError::NoSecrets)
        );
        let calls = BodySignature::skipcalls(SecretSet::default());
        assert_eq!(
            calls.verify(Some(SKIPCALLS_DIGEST.as_bytes()), SKIPCALLS_BODY),
            Err(SignatureError::NoSecrets)
        );
        let skode = BodySignature::skode(SecretSet::default());
        assert_eq!(
            skode.verify(Some(SKODE_DIGEST.as_bytes()), SKODE_BODY),
            Err(SignatureError::NoSecrets)
        );
    }

    #[test]
    fn skipcalls_accepts_hex_in_either_case_with_or_without_prefix() {
        let v = BodySignature::skipcalls(SecretSet::parse(SKIPCALLS_SECRET));
        for header in [
            SKIPCALLS_DIGEST.to_string(),
            SKIPCALLS_DIGEST.to_uppercase(),
            format!("sha256={SKIPCALLS_DIGEST}"),
            format!("SHA256={}", SKIPCALLS_DIGEST.to_uppercase()),
        ] {
            assert_eq!(
                v.verify(Some(header.as_bytes()), SKIPCALLS_BODY),
                Ok(()),
                "{header}"
            );
        }
    }

    #[test]
    fn skipcalls_refuses_tampering_and_empty_or_malformed_digests() {
        let v = BodySignature::skipcalls(SecretSet::parse(SKIPCALLS_SECRET));
        assert_eq!(
            v.verify(Some(SKIPCALLS_DIGEST.as_bytes()), b"{}"),
            Err(SignatureError::NoMatch)
        );
        for header in ["sha256=", "sha256", "sha1=abc", &SKIPCALLS_DIGEST[1..]] {
            assert_eq!(
                v.verify(Some(header.as_bytes()), SKIPCALLS_BODY),
                Err(SignatureError::MalformedDigest),
                "{header}"
            );
        }
        assert_eq!(
            v.verify(None, SKIPCALLS_BODY),
            Err(SignatureError::MissingHeader)
        );
    }

    #[test]
    fn skode_accepts_its_known_answer_and_refuses_tampering() {
        let v = BodySignature::skode(SecretSet::parse(SKODE_SECRET));
        assert_eq!(v.verify(Some(SKODE_DIGEST.as_bytes()), SKODE_BODY), Ok(()));
        let mut body = SKODE_BODY.to_vec();
        body.push(b' ');
        assert_eq!(
            v.verify(Some(SKODE_DIGEST.as_bytes()), &body),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            v.verify(Some(b"sha256="), SKODE_BODY),
            Err(SignatureError::MalformedDigest)
        );
        assert_eq!(
            v.verify(None, SKODE_BODY),
            Err(SignatureError::MissingHeader)
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let set = SecretSet::parse("super-secret-value,another-one");
        let printed = format!("{set:?} {:?}", skipup());
        assert!(!printed.contains("super-secret-value"));
        assert!(!printed.contains(SKIPUP_SECRET));
        assert!(printed.contains("REDACTED"));
    }

    #[test]
    fn blank_secrets_are_rejected() {
        assert_eq!(WebhookSecret::new(" ").unwrap_err(), EmptySecret);
        assert!(SecretSet::parse("").is_empty());
        assert_eq!(SecretSet::parse("a,,b,").len(), 2);
    }

    /// A replacement for one hex digit that is a different digit.
    fn other_hex_digit(c: u8, shift: u8) -> u8 {
        let digits = b"0123456789abcdef";
        let at = digits.iter().position(|d| *d == c).unwrap();
        digits[(at + 1 + usize::from(shift % 15)) % 16]
    }

    proptest! {
        #[test]
        fn any_change_to_the_body_is_rejected(
            body in proptest::collection::vec(any::<u8>(), 1..512),
            index in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let s = secret("prop-secret");
            let header = TimestampedSignature::sign(&s, SKIPUP_TS, &body);
            let v = TimestampedSignature::new(SecretSet::from_secrets(vec![s]), 300);
            prop_assert_eq!(v.verify(Some(header.as_bytes()), &body, SKIPUP_TS), Ok(()));
            let mut tampered = body.clone();
            tampered[index.index(body.len())] ^= flip;
            prop_assert_eq!(
                v.verify(Some(header.as_bytes()), &tampered, SKIPUP_TS),
                Err(SignatureError::NoMatch)
            );
            let calls_header = BodySignature::sign(&secret("prop-secret"), &body);
            let calls = BodySignature::skipcalls(SecretSet::parse("prop-secret"));
            prop_assert_eq!(calls.verify(Some(calls_header.as_bytes()), &body), Ok(()));
            prop_assert_eq!(
                calls.verify(Some(calls_header.as_bytes()), &tampered),
                Err(SignatureError::NoMatch)
            );
            let skode = BodySignature::skode(SecretSet::parse("prop-secret"));
            prop_assert_eq!(
                skode.verify(Some(calls_header.as_bytes()), &tampered),
                Err(SignatureError::NoMatch)
            );
        }

        #[test]
        fn any_change_to_the_timestamp_is_rejected(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            delta in -300i64..=300,
        ) {
            prop_assume!(delta != 0);
            let s = secret("prop-secret");
            let header = TimestampedSignature::sign(&s, SKIPUP_TS, &body);
            let digest = header.split_once(",v1=").unwrap().1;
            let moved = format!("t={},v1={digest}", SKIPUP_TS + delta);
            let v = TimestampedSignature::new(SecretSet::from_secrets(vec![s]), 300);
            prop_assert_eq!(
                v.verify(Some(moved.as_bytes()), &body, SKIPUP_TS),
                Err(SignatureError::NoMatch)
            );
        }

        #[test]
        fn any_change_to_the_digest_is_rejected(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            index in 0usize..64,
            shift in any::<u8>(),
        ) {
            let s = secret("prop-secret");
            let header = TimestampedSignature::sign(&s, SKIPUP_TS, &body);
            let (prefix, digest) = header.split_once(",v1=").unwrap();
            let mut changed = digest.as_bytes().to_vec();
            changed[index] = other_hex_digit(changed[index], shift);
            let changed = String::from_utf8(changed).unwrap();
            let v = TimestampedSignature::new(SecretSet::from_secrets(vec![s]), 300);
            let tampered = format!("{prefix},v1={changed}");
            prop_assert_eq!(
                v.verify(Some(tampered.as_bytes()), &body, SKIPUP_TS),
                Err(SignatureError::NoMatch)
            );
            let skode = BodySignature::skode(SecretSet::parse("prop-secret"));
            prop_assert_eq!(
                skode.verify(Some(changed.as_bytes()), &body),
                Err(SignatureError::NoMatch)
            );
        }
    }
}
