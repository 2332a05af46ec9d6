//! Reading people out of payloads: the small JSON helpers every connector uses, and
//! the field mapping of form tools (which answer is the email, the name, the company).

use serde_json::{Map, Value};

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn phone_numbers_keep_a_plus_and_their_digits() {
        assert_eq!(
            normalize_phone("+1 (415) 555-0142").as_deref(),
            Some("+14155550142")
        );
        assert_eq!(normalize_phone("call me"), None);
    }
}
