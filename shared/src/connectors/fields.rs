//! Reading people out of payloads: the small JSON helpers every connector uses, and
//! the field mapping of form tools (which answer is the email, the name, the company).

use serde_json::{Map, Value};

use crate::lead::{EmailAddress, LeadProfile, TimeZoneName};

/// The first non-blank string among `keys`.
pub(crate) fn text<'a>(object: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .filter_map(|k| object.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .find(|s| !s.is_empty())
}

pub(crate) fn child<'a>(
    object: &'a Map<String, Value>,
    key: &str,
) -> Option<&'a Map<String, Value>> {
    object.get(key).and_then(Value::as_object)
}

/// Trimmed and lowercase, when it looks like an address (for grouping only; intake
/// parses it properly).
pub(crate) fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    (email.contains('@') && !email.contains(char::is_whitespace)).then_some(email)
}

/// Keeps a leading `+` and the digits; too few digits is no phone number.
pub(crate) fn normalize_phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return None;
    }
    Some(if raw.trim_start().starts_with('+') {
        format!("+{digits}")
    } else {
        digits
    })
}

/// The lead fields a form's answers can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Email,
    Name,
    FirstName,
    LastName,
    Company,
    Phone,
    Role,
    Timezone,
    RepEmail,
}

impl Target {
    const ALL: [(Target, &'static str); 9] = [
        (Target::Email, "email"),
        (Target::Name, "name"),
        (Target::FirstName, "first_name"),
        (Target::LastName, "last_name"),
        (Target::Company, "company"),
        (Target::Phone, "phone"),
        (Target::Role, "job_title"),
        (Target::Timezone, "timezone"),
        (Target::RepEmail, "rep_email"),
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name.trim()))
            .map(|(t, _)| *t)
    }
}

/// An explicit mapping for a form whose fields are named otherwise: `{TOOL}_FIELD_MAP`
/// as `target=field` pairs separated by commas, where a field is matched by its id,
/// ref, key or label (case-insensitive), e.g.
/// `email=Work address,company=Organisation,name=Who are you?`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMap(Vec<(Target, String)>);

impl FieldMap {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pairs = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (target, field) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not target=field"))?;
            let target = Target::parse(target).ok_or_else(|| {
                let names: Vec<&str> = Target::ALL.iter().map(|(_, n)| *n).collect();
                format!(
                    "unknown target {:?} (one of {})",
                    target.trim(),
                    names.join(", ")
                )
            })?;
            let field = field.trim();
            if field.is_empty() {
                return Err(format!("no field named for {item:?}"));
            }
            pairs.push((target, field.to_string()));
        }
        Ok(Self(pairs))
    }

    /// The target this mapping gives a field with these names, if any.
    pub fn target_of(&self, names: &[&str]) -> Option<Target> {
        self.0
            .iter()
            .find(|(_, field)| names.iter().any(|n| n.trim().eq_ignore_ascii_case(field)))
            .map(|(t, _)| *t)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the mapping names a field for `target` (which then is not guessed).
    fn maps(&self, target: Target) -> bool {
        self.0.iter().any(|(t, _)| *t == target)
    }
}

/// What kind of field a form tool says an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Email,
    Phone,
    /// A hidden field (set by the page, not typed by the prospect).
    Hidden,
    Other,
}

/// One answer, as a connector read it from its tool's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The question as the prospect saw it (kept under this title).
    pub title: String,
    /// Other names the field goes by (id, ref, key), for the mapping.
    pub aliases: Vec<String>,
    pub kind: Kind,
    pub value: String,
}

impl Answer {
    pub fn new(title: impl Into<String>, kind: Kind, value: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            aliases: Vec::new(),
            kind,
            value: value.into(),
        }
    }

    pub fn alias(mut self, name: impl Into<String>) -> Self {
        self.aliases.push(name.into());
        self
    }

    fn names(&self) -> Vec<&str> {
        std::iter::once(self.title.as_str())
            .chain(self.aliases.iter().map(String::as_str))
            .collect()
    }
}

/// A JSON value as answer text: strings trimmed, lists joined, yes/no for booleans.
pub(crate) fn answer_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(answer_text).collect();
            (!parts.is_empty()).then(|| parts.join(", "))
        }
        Value::Object(_) => Some(value.to_string()),
    }
}

/// Lowercase words only: `What's your name?` reads `what s your name`.
fn words(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The field a name reads like, with no mapping configured (connectors.md, section 1).
fn guess(name: &str) -> Option<Target> {
    let w = words(name);
    let is = |options: &[&str]| options.contains(&w.as_str());
    // `words` has turned `rep_email` into `rep email`.
    if is(&["rep email", "assigned rep email"]) {
        Some(Target::RepEmail)
    } else if is(&[
        "email",
        "e mail",
        "work email",
        "email address",
        "business email",
        "your email",
        "work email address",
        "what s your email",
        "what is your email",
    ]) {
        Some(Target::Email)
    } else if is(&[
        "first name",
        "firstname",
        "given name",
        "first",
        "vorname",
        "prenom",
    ]) {
        Some(Target::FirstName)
    } else if is(&[
        "last name",
        "lastname",
        "surname",
        "family name",
        "last",
        "nachname",
    ]) {
        Some(Target::LastName)
    } else if is(&[
        "name",
        "full name",
        "fullname",
        "your name",
        "what s your name",
        "what is your name",
        "contact name",
    ]) {
        Some(Target::Name)
    } else if is(&[
        "company",
        "company name",
        "organization",
        "organisation",
        "organization name",
        "organisation name",
        "business name",
        "account name",
    ]) {
        Some(Target::Company)
    } else if is(&[
        "phone",
        "phone number",
        "mobile",
        "mobile phone",
        "mobilephone",
        "telephone",
        "tel",
        "work phone",
        "phone no",
    ]) {
        Some(Target::Phone)
    } else if is(&[
        "job title",
        "jobtitle",
        "role",
        "job role",
        "position",
        "job title role",
    ]) {
        Some(Target::Role)
    } else if is(&[
        "timezone",
        "time zone",
        "tz",
        "your time zone",
        "your timezone",
    ]) {
        Some(Target::Timezone)
    } else {
        None
    }
}

/// A submission on its way to a [`LeadProfile`]: the raw text of each field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileDraft {
    pub email: Option<String>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub role: Option<String>,
    pub phone: Option<String>,
    pub timezone: Option<String>,
    pub rep_email: Option<String>,
    pub form_id: Option<String>,
    pub submission_id: Option<String>,
    pub source: Option<String>,
    pub skode_lead_id: Option<String>,
    /// Question and answer, in the order sent.
    pub answers: Vec<(String, String)>,
    /// Problems met before [`ProfileDraft::finish`] (a field of the wrong type).
    pub warnings: Vec<Warning>,
}

/// Something in a submission that could not be kept as sent. The lead is recorded all
/// the same; the warning goes on its timeline (the log names the field only).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub field: String,
    pub message: String,
}

impl Warning {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

/// Why a submission cannot start a lead: its email is missing or not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("email {0}")]
pub struct NoEmail(pub &'static str);

/// Longest name, company or job title kept.
pub const MAX_TEXT: usize = 200;
/// Most answers kept.
pub const MAX_ANSWERS: usize = 50;
/// Longest answer kept (SkipUp's context has room for a few of these).
pub const MAX_ANSWER: usize = 2_000;

impl ProfileDraft {
    /// Sorts a form tool's answers into the profile: the explicit mapping first, then
    /// the first email-typed field, then fields whose names read like a profile field;
    /// every other answer is kept under its question's title.
    pub fn from_answers(answers: Vec<Answer>, map: &FieldMap) -> Self {
        let mut draft = Self::default();
        let typed_email = !map.maps(Target::Email) && answers.iter().any(|a| a.kind == Kind::Email);
        for answer in answers {
            let names = answer.names();
            let target = map.target_of(&names).or_else(|| {
                if answer.kind == Kind::Email && typed_email {
                    return Some(Target::Email);
                }
                let guessed = names.iter().find_map(|n| guess(n))?;
                // A mapped or email-typed field wins over one that only reads like one.
                let typed = guessed == Target::Email && typed_email;
                (!map.maps(guessed) && !typed).then_some(guessed)
            });
            // A phone-typed field is the phone, unless the mapping names another.
            let typed_phone = answer.kind == Kind::Phone && !map.maps(Target::Phone);
            let target = target.or(typed_phone.then_some(Target::Phone));
            match target.map(|t| draft.slot(t)) {
                Some(slot) if slot.is_none() => *slot = Some(answer.value),
                _ => draft.answers.push((answer.title, answer.value)),
            }
        }
        draft
    }

    fn slot(&mut self, target: Target) -> &mut Option<String> {
        match target {
            Target::Email => &mut self.email,
            Target::Name => &mut self.name,
            Target::FirstName => &mut self.first_name,
            Target::LastName => &mut self.last_name,
            Target::Company => &mut self.company,
            Target::Phone => &mut self.phone,
            Target::Role => &mut self.role,
            Target::Timezone => &mut self.timezone,
            Target::RepEmail => &mut self.rep_email,
        }
    }

    /// The profile, with every optional field that cannot be kept as sent cut or
    /// dropped and a warning saying so. Only the email can refuse the submission.
    pub fn finish(self) -> Result<super::FormSubmission, NoEmail> {
        let mut warnings = self.warnings;
        let email = match self.email.as_deref().map(str::trim) {
            None | Some("") => return Err(NoEmail("is required")),
            Some(raw) => EmailAddress::parse(raw).map_err(NoEmail)?,
        };
        let mut text = |field: &str, value: Option<String>, max: usize| -> Option<String> {
            let value = clean(&value?, false);
            if value.is_empty() {
                return None;
            }
            Some(cut(field, value, max, &mut warnings))
        };
        let full_name = text("name", self.name, MAX_TEXT);
        let first = text("first_name", self.first_name, MAX_TEXT);
        let last = text("last_name", self.last_name, MAX_TEXT);
        let company = text("company", self.company, MAX_TEXT);
        let role = text("job_title", self.role, MAX_TEXT);
        let form_id = text("form_id", self.form_id, MAX_TEXT);
        let submission_id = text("submission_id", self.submission_id, MAX_TEXT);
        let source = text("source", self.source, 100);
        let phone_text = text("phone", self.phone, MAX_TEXT);
        let tz_text = text("timezone", self.timezone, MAX_TEXT);
        let rep_text = text("rep_email", self.rep_email, 254);
        let mut extra = Vec::new();
        let name = match (full_name, first, last) {
            (Some(name), first, last) => {
                // Nothing the prospect typed is lost: the parts go with the answers.
                extra.extend(first.map(|f| ("First name".to_string(), f)));
                extra.extend(last.map(|l| ("Last name".to_string(), l)));
                name
            }
            // Each part is within the limit, the two together may not be.
            (None, Some(first), Some(last)) => {
                cut("name", format!("{first} {last}"), MAX_TEXT, &mut warnings)
            }
            (None, Some(only), None) | (None, None, Some(only)) => only,
            (None, None, None) => {
                warnings.push(Warning::new(
                    "name",
                    "is missing: the address stands in for it",
                ));
                email
                    .as_str()
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            }
        };
        let phone = phone_text.and_then(|raw| match parse_phone(&raw) {
            Ok(phone) => Some(phone),
            Err(reason) => {
                warnings.push(Warning::new("phone", format!("{raw:?} dropped: {reason}")));
                extra.push(("Phone".to_string(), raw));
                None
            }
        });
        let timezone = tz_text.and_then(|raw| match TimeZoneName::parse(&raw) {
            Ok(tz) => Some(tz),
            Err(reason) => {
                warnings.push(Warning::new(
                    "timezone",
                    format!("{raw:?} dropped: {reason}"),
                ));
                extra.push(("Time zone".to_string(), raw));
                None
            }
        });
        let assigned_rep_email = rep_text.and_then(|raw| match EmailAddress::parse(&raw) {
            Ok(rep) => Some(rep),
            Err(reason) => {
                warnings.push(Warning::new("rep_email", format!("dropped: {reason}")));
                extra.push(("Rep email".to_string(), raw));
                None
            }
        });
        let answers = answers(self.answers.into_iter().chain(extra), &mut warnings);
        Ok(super::FormSubmission {
            profile: LeadProfile {
                email,
                name,
                company,
                role,
                phone,
                timezone,
                assigned_rep_email,
                form_id,
                submission_id,
                answers,
                source,
                skode_lead_id: self.skode_lead_id,
            },
            warnings,
        })
    }
}

/// Control characters become spaces (newlines and tabs too, unless `multiline`).
fn clean(text: &str, multiline: bool) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' if multiline => c,
            c if c.is_control() => ' ',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// `value` cut to `max` characters, with a warning when it was longer.
fn cut(field: &str, value: String, max: usize, warnings: &mut Vec<Warning>) -> String {
    let length = value.chars().count();
    if length <= max {
        return value;
    }
    warnings.push(Warning::new(
        field,
        format!("cut to {max} characters (it had {length})"),
    ));
    value.chars().take(max).collect()
}

fn answers(
    pairs: impl Iterator<Item = (String, String)>,
    warnings: &mut Vec<Warning>,
) -> Vec<(String, String)> {
    let mut kept = Vec::new();
    let mut dropped = 0;
    for (question, answer) in pairs {
        let question = clean(&question, false);
        let answer = clean(&answer, true);
        if answer.is_empty() {
            continue;
        }
        if kept.len() == MAX_ANSWERS {
            dropped += 1;
            continue;
        }
        let question = if question.is_empty() {
            "Answer".to_string()
        } else {
            cut("question", question, MAX_TEXT, warnings)
        };
        let field = format!("answer {question:?}");
        let answer = cut(&field, answer, MAX_ANSWER, warnings);
        kept.push((question, answer));
    }
    if dropped > 0 {
        warnings.push(Warning::new(
            "answers",
            format!("only the first {MAX_ANSWERS} kept ({dropped} more dropped)"),
        ));
    }
    kept
}

/// Digits with the usual separators, 6 to 20 digits.
pub(crate) fn parse_phone(raw: &str) -> Result<String, &'static str> {
    let digits = raw.chars().filter(char::is_ascii_digit).count();
    let allowed = raw
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if allowed && (6..=20).contains(&digits) {
        Ok(raw.to_string())
    } else {
        Err("is not a phone number")
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs (`+` is a space). A malformed
/// escape stays as it was sent and invalid UTF-8 is replaced, so one odd value never
/// costs the submission; `None` only for a body that has no `key=value` pair at all.
pub(crate) fn form_urlencoded(body: &[u8]) -> Option<Vec<(String, String)>> {
    fn decode(part: &str) -> String {
        let bytes = part.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
            match (bytes[i], hex) {
                (b'%', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (b'+', _) => {
                    out.push(b' ');
                    i += 1;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    let text = String::from_utf8_lossy(body);
    let pairs: Vec<(String, String)> = text
        .trim()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    (!pairs.is_empty()).then_some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_and_last_name_within_the_limit_each_are_cut_together() {
        // Found by the `form` fuzz target: a HubSpot contact with a 205-character
        // last name joined to its first name made a 209-character name.
        let draft = ProfileDraft {
            email: Some("lee.morgan@hooli.example".into()),
            first_name: Some("Lee".into()),
            last_name: Some("M".repeat(199)),
            ..ProfileDraft::default()
        };
        let form = draft.finish().unwrap();
        assert_eq!(form.profile.name.chars().count(), MAX_TEXT);
        assert!(form.profile.name.starts_with("Lee M"));
        assert!(
            form.warnings.iter().any(|w| w.to_string().contains("name")),
            "{:?}",
            form.warnings
        );
    }

    #[test]
    fn a_field_map_names_targets_and_fields() {
        let map = FieldMap::parse("email = Work address, company=Organisation ,").unwrap();
        assert_eq!(map.target_of(&["q1", "work ADDRESS"]), Some(Target::Email));
        assert_eq!(map.target_of(&["organisation"]), Some(Target::Company));
        assert_eq!(map.target_of(&["Name"]), None);
        assert!(
            FieldMap::parse("mail=x")
                .unwrap_err()
                .contains("unknown target")
        );
        assert!(FieldMap::parse("email").is_err());
        assert!(FieldMap::parse("email=").is_err());
        assert!(FieldMap::parse("").unwrap().is_empty());
    }

    #[test]
    fn a_mapped_phone_wins_over_a_phone_typed_field_and_nothing_typed_is_lost() {
        let map = FieldMap::parse("phone=Work phone").unwrap();
        let draft = ProfileDraft::from_answers(
            vec![
                Answer::new("Email", Kind::Email, "a@b.example"),
                Answer::new("Mobile", Kind::Phone, "+1 555 0100 100"),
                Answer::new("Work phone", Kind::Other, "+1 555 0199 199"),
                Answer::new("Name", Kind::Other, "Ada Lovelace"),
                Answer::new("First name", Kind::Other, "Ada"),
                Answer::new("Title", Kind::Other, "Dr"),
                Answer::new("rep_email", Kind::Hidden, "not-an-address"),
            ],
            &map,
        );
        let form = draft.finish().unwrap();
        let p = &form.profile;
        assert_eq!(p.phone.as_deref(), Some("+1 555 0199 199"));
        assert_eq!(p.role, None, "an honorific is not a job title");
        let questions: Vec<&str> = p.answers.iter().map(|(q, _)| q.as_str()).collect();
        assert_eq!(questions, ["Mobile", "Title", "First name", "Rep email"]);
    }

    #[test]
    fn a_malformed_escape_in_form_data_costs_nothing_else() {
        let pairs = form_urlencoded(b"email=a%40b.example&note=100%+sure&x=%zz&bad=%E9").unwrap();
        assert_eq!(
            pairs,
            [
                ("email".to_string(), "a@b.example".to_string()),
                ("note".to_string(), "100% sure".to_string()),
                ("x".to_string(), "%zz".to_string()),
                ("bad".to_string(), "\u{fffd}".to_string()),
            ]
        );
        assert_eq!(form_urlencoded(b"no pairs here"), None);
    }

    #[test]
    fn phone_numbers_keep_a_plus_and_their_digits() {
        assert_eq!(
            normalize_phone("+1 (415) 555-0142").as_deref(),
            Some("+14155550142")
        );
        assert_eq!(normalize_phone("call me"), None);
    }
}
