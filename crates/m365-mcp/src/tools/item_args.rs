//! Argument helpers shared by the tool families: ids bound for a URL,
//! confirmations, e-mail addresses and recipient lists, free text.

use m365_graph::{encode_segment, validate_id};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ToolError;

/// A string (comma-separated when it holds several values) or a list of strings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StringOrList {
    /// One value, or several separated by commas.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl StringOrList {
    /// The values: a single string is comma-split, a list is taken as
    /// given (a path may contain a comma); trimmed, empty ones dropped,
    /// duplicates (ignoring ASCII case) removed, order kept.
    pub fn items(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for value in self.entries() {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&value)) {
                out.push(value);
            }
        }
        out
    }

    /// The values as given — trimmed, empty ones dropped — without removing
    /// repeats (a repeated attachment is still an attachment to count).
    pub fn entries(&self) -> Vec<String> {
        let raw: Vec<&str> = match self {
            StringOrList::One(s) => s.split(',').collect(),
            StringOrList::Many(list) => list.iter().map(String::as_str).collect(),
        };
        raw.into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// Refuses an action the user has not confirmed.
pub fn require_confirm(confirm: bool, action: &str) -> Result<(), ToolError> {
    if confirm {
        return Ok(());
    }
    Err(ToolError::invalid(
        "confirm",
        "false",
        &format!("{action} requires confirm=true to proceed"),
        "confirm=true, after the user agreed to this action",
    ))
}

/// Checks an id for use in a URL and returns it percent-encoded as one segment.
pub fn id_segment(param: &str, value: &str) -> Result<String, ToolError> {
    Ok(encode_segment(validate_id(param, value.trim())?))
}

/// A trimmed, non-empty text of at most `max` characters.
pub fn required_text(param: &str, value: &str, max: usize) -> Result<String, ToolError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ToolError::invalid(
            param,
            value,
            "must not be empty",
            "a non-empty text",
        ));
    }
    if trimmed.chars().count() > max {
        return Err(ToolError::invalid(
            param,
            value,
            "is too long",
            &format!("at most {max} characters"),
        ));
    }
    Ok(trimmed.to_string())
}

/// True for a plain e-mail address (`local@domain`).
pub fn is_address(address: &str) -> bool {
    const LOCAL_EXTRA: &str = ".!#$%&'*+/=?^_`{|}~-";
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || LOCAL_EXTRA.contains(c))
        && !domain.is_empty()
        && domain.len() <= 255
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Checks an e-mail address and returns it trimmed.
pub fn check_email(param: &str, value: &str) -> Result<String, ToolError> {
    let address = value.trim();
    if !is_address(address) {
        return Err(ToolError::invalid(
            param,
            value,
            "is not an email address",
            "an address such as name@example.com",
        ));
    }
    Ok(address.to_string())
}

/// The checked addresses of a recipient list, at most `max` of them.
pub fn emails(
    param: &str,
    list: Option<&StringOrList>,
    max: usize,
) -> Result<Vec<String>, ToolError> {
    let items = list.map(StringOrList::items).unwrap_or_default();
    if items.len() > max {
        return Err(ToolError::invalid(
            param,
            &format!("{} addresses", items.len()),
            "too many addresses",
            &format!("at most {max}"),
        ));
    }
    items.iter().map(|a| check_email(param, a)).collect()
}

/// Graph's recipient list for addresses.
pub fn recipients(addresses: &[String]) -> Value {
    Value::Array(
        addresses
            .iter()
            .map(|a| json!({"emailAddress": {"address": a}}))
            .collect(),
    )
}

/// Removes `@odata.context` (and other `@odata.*` annotations) from an object.
pub fn strip_odata(value: &mut Value) {
    if let Some(obj) = value.as_object_mut() {
        obj.retain(|k, _| !k.starts_with("@odata."));
    }
}

/// An optional text parameter, trimmed; empty counts as absent.
pub fn optional(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|s| !s.is_empty())
}

/// A trimmed id from canonical parameters, for cache targets.
pub fn param_id<'a>(params: &'a Value, key: &str) -> Option<&'a str> {
    params[key]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_trim_and_dedupe() {
        let one = StringOrList::One("a@x.com, b@x.com,,A@X.com".into());
        assert_eq!(one.items(), vec!["a@x.com", "b@x.com"]);
        let many = StringOrList::Many(vec!["c@x.com".into(), " d@x.com ".into()]);
        assert_eq!(many.items(), vec!["c@x.com", "d@x.com"]);
    }

    #[test]
    fn addresses_and_confirmations_are_checked() {
        assert!(check_email("to", "a@b.com").is_ok());
        for bad in ["a", "a@", "@b", "a b@c.com", "a@b@c", "<a@b.com>"] {
            assert!(check_email("to", bad).is_err(), "{bad}");
        }
        let e = require_confirm(false, "Deleting an event")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Invalid confirm 'false': Deleting an event requires confirm=true"));
        assert!(id_segment("event_id", "../x").is_err());
        assert_eq!(id_segment("event_id", " AB+c= ").unwrap(), "AB%2Bc%3D");
    }
}
