//! Connectors: one module per outside tool that sends us webhooks. Each owns its route
//! name, its settings, its signature scheme and the parsing of its payload into a
//! typed [`Event`]; nothing outside a connector's module reads that tool's JSON.
//!
//! [`ALL`] lists every connector. The webhook routes, the local stack, `recovery
//! simulate` and the benches read that list, so adding a tool is its module, its
//! fixtures and one line there.

pub mod fields;

use std::fmt;

use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{ConfigError, Env};
use crate::inbound::{Payload, Subject};
use crate::lead::{EmailAddress, LeadProfile};
use crate::signature::{
    Base64BodySignature, BodySignature, SecretSet, SignatureError, TimestampedSignature,
    WebhookSecret,
};

pub use fields::FieldMap;

/// Declares each connector's module and lists it in [`ALL`].
macro_rules! connectors {
    ($($module:ident :: $connector:ident),* $(,)?) => {
        $(pub mod $module;)*
        /// Every inbound connector, in the order they are logged and documented.
        pub static ALL: &[&dyn Connector] = &[$(&$module::$connector),*];
    };
}

// One line per tool.
connectors! {
    skipup::SkipUp,
    skipcalls::SkipCalls,
    skode::Skode,
    typeform::Typeform,
    tally::Tally,
    hubspot::HubSpot,
    forms::Forms,
    webflow::Webflow,
    calendly::Calendly,
    calcom::CalCom,
    savvycal::SavvyCal,
    bookings::Bookings,
}

/// Everything one outside tool's webhooks need.
pub trait Connector: Send + Sync {
    /// The route segment (`/webhooks/{name}`) and the provider's name in messages.
    fn name(&self) -> &'static str;

    /// The variable holding its comma-separated webhook secrets (rotation).
    fn secrets_var(&self) -> &'static str;

    /// Its verifier and parse settings, from the environment.
    fn configure(&self, env: &Env) -> Result<Settings, ConfigError>;

    /// The headers a sender adds to `delivery` signed with `secret` (for `recovery
    /// simulate`, the benches and the tests).
    fn sign(&self, secret: &WebhookSecret, delivery: &Delivery<'_>) -> Vec<(&'static str, String)>;

    /// Reads a verified delivery. Never fails: what is not understood is
    /// [`Unrecognized`], kept for an operator.
    fn parse(&self, payload: &Payload, settings: &Settings) -> Parsed;

    /// A realistic sample body and its content type, with fresh ids from `fresh` so
    /// that a receiver does not drop it as a repeat.
    fn sample(&self, fresh: &str) -> Sample;
}

/// A sample delivery for `recovery simulate`.
pub struct Sample {
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

impl Sample {
    /// A JSON fixture with `set` applied to it.
    pub(crate) fn json(fixture: &str, set: impl FnOnce(&mut serde_json::Value)) -> Self {
        let mut value: serde_json::Value =
            serde_json::from_str(fixture).expect("the fixtures are JSON");
        set(&mut value);
        Self {
            body: serde_json::to_vec(&value).expect("JSON serializes"),
            content_type: "application/json",
        }
    }
}

/// One HTTP delivery as received: what a verifier may look at.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub method: &'a str,
    /// The public URL the sender called, as far as it can be known (HubSpot signs it).
    pub url: &'a str,
    pub headers: &'a HeaderMap,
    /// The exact bytes received.
    pub body: &'a [u8],
    pub now: DateTime<Utc>,
}

impl Delivery<'_> {
    /// A header's raw value.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name).map(|v| v.as_bytes())
    }
}

/// Checks deliveries of one connector; built from its settings, secrets redacted.
pub trait Verify: Send + Sync + fmt::Debug {
    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), SignatureError>;
    fn secrets(&self) -> &SecretSet;
}

impl Verify for TimestampedSignature {
    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), SignatureError> {
        TimestampedSignature::verify(
            self,
            delivery.header(self.header()),
            delivery.body,
            delivery.now.timestamp(),
        )
    }

    fn secrets(&self) -> &SecretSet {
        TimestampedSignature::secrets(self)
    }
}

impl Verify for Base64BodySignature {
    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), SignatureError> {
        Base64BodySignature::verify(self, delivery.header(self.header()), delivery.body)
    }

    fn secrets(&self) -> &SecretSet {
        Base64BodySignature::secrets(self)
    }
}

impl Verify for BodySignature {
    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), SignatureError> {
        BodySignature::verify(self, delivery.header(self.header()), delivery.body)
    }

    fn secrets(&self) -> &SecretSet {
        BodySignature::secrets(self)
    }
}

/// A connector's settings: its verifier and, for form tools, the field mapping.
#[derive(Debug)]
pub struct Settings {
    pub verifier: Box<dyn Verify>,
    pub fields: FieldMap,
}

impl Settings {
    pub fn new(verifier: impl Verify + 'static) -> Self {
        Self {
            verifier: Box::new(verifier),
            fields: FieldMap::default(),
        }
    }

    /// With the explicit mapping in `{NAME}_FIELD_MAP`, when set.
    pub(crate) fn with_fields(mut self, env: &Env, var: &'static str) -> Result<Self, ConfigError> {
        if let Some(text) = env.get(var) {
            self.fields =
                FieldMap::parse(&text).map_err(|reason| ConfigError::Invalid { var, reason })?;
        }
        Ok(self)
    }
}

/// The comma-separated secrets in `var`.
pub(crate) fn secrets(env: &Env, var: &str) -> SecretSet {
    SecretSet::parse(&env.get(var).unwrap_or_default())
}

/// `WEBHOOK_TOLERANCE_SECONDS`: the freshness window of timestamped schemes.
pub(crate) fn tolerance(env: &Env) -> Result<u64, ConfigError> {
    env.u64_or(
        "WEBHOOK_TOLERANCE_SECONDS",
        crate::signature::DEFAULT_TOLERANCE_SECS,
    )
}

/// A form tool's submission as an event: the lead, or kept for an operator when it
/// has no usable email (the one field a lead cannot do without).
pub(crate) fn form_event(draft: fields::ProfileDraft, tool: &str) -> Result<Event, Unrecognized> {
    match draft.finish() {
        Ok(form) => Ok(Event::Form(Box::new(form))),
        Err(error) => Err(Unrecognized(format!("no usable email ({tool}): {error}"))),
    }
}

/// A value that is there and not blank.
fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// What a scheduling tool's delivery says about one booking, as sent.
pub(crate) struct BookingFields<'a> {
    pub change: BookingChange,
    pub booking_id: Option<&'a str>,
    pub email: Option<&'a str>,
    pub start_at: Option<&'a str>,
    pub replaces: Option<&'a str>,
}

impl BookingFields<'_> {
    /// The booking, or kept for an operator when it has no booking id or no usable
    /// email (the booking rules match by both); `id_field` and `email_field` say where
    /// `tool` keeps them. A start time that is not RFC 3339 is dropped, never a reason
    /// to refuse.
    pub(crate) fn event(
        self,
        tool: &str,
        id_field: &str,
        email_field: &str,
    ) -> Result<Event, Unrecognized> {
        let booking_id = present(self.booking_id)
            .ok_or_else(|| Unrecognized(format!("no booking id ({tool}: {id_field})")))?;
        let raw_email = present(self.email)
            .ok_or_else(|| Unrecognized(format!("no email ({tool}: {email_field})")))?;
        let email = EmailAddress::parse(raw_email).map_err(|error| {
            Unrecognized(format!("no usable email ({tool}: {email_field} {error})"))
        })?;
        Ok(Event::Booking(Booking {
            booking_id: booking_id.to_owned(),
            email,
            change: self.change,
            start_at: present(self.start_at).and_then(|at| {
                DateTime::parse_from_rfc3339(at)
                    .ok()
                    .map(|at| at.with_timezone(&Utc))
            }),
            replaces: present(self.replaces).map(str::to_owned),
        }))
    }
}

/// What a connector read from a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The tool's event id (else the message uses a hash of the body).
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// Whom the event is about, to keep one person's events in order.
    pub subject: Subject,
    pub event: Result<Event, Unrecognized>,
}

impl Parsed {
    /// A form tool's delivery, about the submission's email (one person's events stay
    /// in order).
    pub(crate) fn form(
        event_id: Option<String>,
        event_type: Option<String>,
        event: Result<Event, Unrecognized>,
    ) -> Self {
        let subject = match &event {
            Ok(Event::Form(form)) => Subject::Email(form.profile.email.as_str().to_string()),
            _ => Subject::Unknown,
        };
        Self {
            event_id,
            event_type,
            subject,
            event,
        }
    }

    /// A scheduling tool's delivery, about the booking's email (one person's events
    /// stay in order).
    pub(crate) fn booking(
        event_id: Option<String>,
        event_type: Option<String>,
        event: Result<Event, Unrecognized>,
    ) -> Self {
        let subject = match &event {
            Ok(Event::Booking(booking)) => booking.subject(),
            _ => Subject::Unknown,
        };
        Self {
            event_id,
            event_type,
            subject,
            event,
        }
    }

    pub fn unrecognized(reason: impl Into<String>) -> Self {
        Self {
            event_id: None,
            event_type: None,
            subject: Subject::Unknown,
            event: Err(Unrecognized(reason.into())),
        }
    }
}

/// A verified delivery whose shape was not understood, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecognized(pub String);

/// What a delivery means to the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Someone asked for a demo: a lead starts (the same intake as `POST /forms`).
    Form(Box<FormSubmission>),
    /// A SkipUp conversation moved.
    Conversation(Conversation),
    /// A SkipCalls call ended.
    Call(CallOutcome),
    /// The CRM changed a lead (Skode `lead.updated`).
    CrmLead(CrmLeadChange),
    /// A booking made outside SkipUp (a scheduling tool), or its cancellation.
    Booking(Booking),
    /// Understood, and nothing the pipeline acts on.
    Ignored,
}

/// A form submission: who the lead is, and what could not be kept as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct FormSubmission {
    pub profile: LeadProfile,
    /// Fields cut or dropped (never a reason to refuse the lead), for its timeline.
    pub warnings: Vec<fields::Warning>,
}

/// A SkipUp `meeting_request.*` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// The full event name, e.g. `meeting_request.booked`.
    pub event_type: String,
    pub meeting_request_id: String,
    /// The first participant, when the payload names one.
    pub email: Option<String>,
    /// The request's organizer, when the payload names one (`organizer_changed`).
    pub organizer_email: Option<String>,
}

/// A SkipCalls call outcome, for the lead's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Summary, failure reason and data collected, as one line.
    pub detail: String,
}

/// A lead changed in the CRM.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmLeadChange {
    pub crm_lead_id: Option<String>,
    pub email: Option<String>,
    pub status: Option<String>,
}

/// A booking made through a scheduling tool, as the booking rules need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Booking {
    /// The tool's own id of this booking (Calendly's invitee URI, Cal.com's `uid`,
    /// SavvyCal's event id): a booking's events are deduplicated by it.
    pub booking_id: String,
    /// Who booked (normalized): the lead it belongs to.
    pub email: EmailAddress,
    pub change: BookingChange,
    /// When the meeting starts, if the tool says.
    pub start_at: Option<DateTime<Utc>>,
    /// The booking this one replaces (a reschedule that issues a new id).
    pub replaces: Option<String>,
}

/// What happened to a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingChange {
    /// Booked, or requested and awaiting the host's approval: either way the
    /// prospect chose a time, so nobody contacts them.
    Booked,
    /// Moved to another time: still standing, never a cancellation.
    Rescheduled,
    /// Cancelled, declined or rejected.
    Cancelled,
}

impl Booking {
    /// The subject of a booking delivery: its email, so one person's events stay in
    /// order.
    pub fn subject(&self) -> Subject {
        Subject::Email(self.email.as_str().to_string())
    }
}

/// A connector, as named in queue messages: compared, printed and serialized by name.
#[derive(Clone, Copy)]
pub struct Provider(&'static dyn Connector);

impl Provider {
    pub const SKIPUP: Provider = Provider(&skipup::SkipUp);
    pub const SKIPCALLS: Provider = Provider(&skipcalls::SkipCalls);
    pub const SKODE: Provider = Provider(&skode::Skode);

    /// Every connector, in the order of [`ALL`].
    pub fn all() -> impl Iterator<Item = Provider> {
        ALL.iter().map(|c| Provider(*c))
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::all().find(|p| p.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        self.0.name()
    }

    /// The route its deliveries arrive on, the same in Lambda and in the local stack.
    pub fn route(self) -> String {
        format!("/webhooks/{}", self.as_str())
    }

    pub fn from_route(path: &str) -> Option<Self> {
        Self::named(path.strip_prefix("/webhooks/")?)
    }

    pub fn connector(self) -> &'static dyn Connector {
        self.0
    }
}

impl PartialEq for Provider {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Provider {}

impl std::hash::Hash for Provider {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Provider({})", self.as_str())
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Provider {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Provider::named(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown provider {name:?}")))
    }
}

/// Every connector's settings, in the order of [`ALL`].
#[derive(Debug)]
pub struct Connectors(Vec<(Provider, Settings)>);

impl Connectors {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Provider::all()
            .map(|p| Ok((p, p.connector().configure(env)?)))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn get(&self, provider: Provider) -> &Settings {
        &self
            .0
            .iter()
            .find(|(p, _)| *p == provider)
            .expect("every connector is configured")
            .1
    }

    pub fn iter(&self) -> impl Iterator<Item = (Provider, &Settings)> {
        self.0.iter().map(|(p, s)| (*p, s))
    }

    /// Reads a verified delivery through its connector.
    pub fn parse(&self, provider: Provider, payload: &Payload) -> Parsed {
        provider.connector().parse(payload, self.get(provider))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connector_has_its_own_route_and_secrets() {
        let mut names: Vec<&str> = ALL.iter().map(|c| c.name()).collect();
        let mut vars: Vec<&str> = ALL.iter().map(|c| c.secrets_var()).collect();
        names.sort_unstable();
        names.dedup();
        vars.sort_unstable();
        vars.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(vars.len(), ALL.len());
        for provider in Provider::all() {
            assert_eq!(Provider::from_route(&provider.route()), Some(provider));
        }
        assert_eq!(Provider::from_route("/webhooks/nobody"), None);
        assert_eq!(Provider::from_route("/forms"), None);
    }

    #[test]
    fn an_unusable_field_map_or_hubspot_url_stops_the_cold_start_with_its_name() {
        let err = Connectors::from_env(&Env::from_pairs([("TALLY_FIELD_MAP", "mail=Email")]))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("TALLY_FIELD_MAP is invalid: unknown target"),
            "{err}"
        );
        let err = Connectors::from_env(&Env::from_pairs([(
            "HUBSPOT_WEBHOOK_URL",
            "leads.example.com/webhooks/hubspot",
        )]))
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("HUBSPOT_WEBHOOK_URL is invalid"),
            "{err}"
        );
    }

    #[test]
    fn a_provider_travels_by_name() {
        let json = serde_json::to_string(&Provider::SKIPCALLS).unwrap();
        assert_eq!(json, r#""skipcalls""#);
        let back: Provider = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Provider::SKIPCALLS);
        assert!(serde_json::from_str::<Provider>(r#""nobody""#).is_err());
    }

    #[test]
    fn a_connector_without_secrets_refuses_everything() {
        let connectors = Connectors::from_env(&Env::from_pairs([("X", "y")])).unwrap();
        let headers = HeaderMap::new();
        for (provider, settings) in connectors.iter() {
            let delivery = Delivery {
                method: "POST",
                url: "https://example.com/webhooks/x",
                headers: &headers,
                body: b"{}",
                now: Utc::now(),
            };
            assert_eq!(
                settings.verifier.verify(&delivery),
                Err(SignatureError::NoSecrets),
                "{provider}"
            );
        }
    }

    #[test]
    fn every_sample_signed_with_its_secret_is_accepted_and_understood() {
        let now = Utc::now();
        let pairs: Vec<(&str, String)> = ALL
            .iter()
            .map(|c| (c.secrets_var(), format!("whsec_test_{}", c.name())))
            .collect();
        let connectors = Connectors::from_env(&Env::from_pairs(pairs)).unwrap();
        for (provider, settings) in connectors.iter() {
            let connector = provider.connector();
            let sample = connector.sample("t1");
            let url = format!("https://leads.example.com{}", provider.route());
            let unsigned = HeaderMap::new();
            let mut delivery = Delivery {
                method: "POST",
                url: &url,
                headers: &unsigned,
                body: &sample.body,
                now,
            };
            let secret = WebhookSecret::new(&format!("whsec_test_{provider}")).unwrap();
            let mut headers = HeaderMap::new();
            for (name, value) in connector.sign(&secret, &delivery) {
                headers.insert(name, value.parse().unwrap());
            }
            delivery.headers = &headers;
            assert_eq!(settings.verifier.verify(&delivery), Ok(()), "{provider}");
            let payload = Payload::from_body(&sample.body);
            let parsed = connectors.parse(provider, &payload);
            assert!(parsed.event.is_ok(), "{provider}: {:?}", parsed.event);
            let other = WebhookSecret::new("whsec_someone_else").unwrap();
            let mut forged = HeaderMap::new();
            for (name, value) in connector.sign(&other, &delivery) {
                forged.insert(name, value.parse().unwrap());
            }
            let forged = Delivery {
                headers: &forged,
                ..delivery
            };
            assert_eq!(
                settings.verifier.verify(&forged),
                Err(SignatureError::NoMatch),
                "{provider}"
            );
            // Where the scheme signs the body (all but a bearer secret), a changed
            // body no longer verifies.
            let mut tampered = sample.body.clone();
            tampered[sample.body.len() / 2] ^= 1;
            let signs_body = connector.sign(&secret, &delivery)
                != connector.sign(
                    &secret,
                    &Delivery {
                        body: &tampered,
                        ..delivery
                    },
                );
            delivery.body = &tampered;
            if signs_body {
                assert_eq!(
                    settings.verifier.verify(&delivery),
                    Err(SignatureError::NoMatch),
                    "{provider}"
                );
            } else {
                assert!(
                    ["forms", "bookings"].contains(&provider.as_str()),
                    "{provider}"
                );
            }
        }
    }
}
