//! Contacts: list, get, create, update, delete, contact lists (contact
//! folders), adding to a list without duplicates, and vCard 4.0 export.

use std::sync::Arc;

use m365_store::{AccountRecord, Dependencies};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::args::check_range;
use super::item_args::{
    StringOrList, check_email, emails, id_segment, param_id, require_confirm, required_text,
    strip_odata,
};
use super::{Cache, DESTRUCTIVE, READ, Target, ToolDef, ToolResult, UPDATE, WRITE};
use crate::app::App;
use crate::error::ToolError;

const FIELDS: &str = "id,displayName,givenName,middleName,surname,title,generation,nickName,\
emailAddresses,businessPhones,homePhones,mobilePhone,companyName,department,jobTitle,\
businessAddress,homeAddress,otherAddress,personalNotes,parentFolderId,birthday,imAddresses";
/// Fields copied when a contact is added to a list.
const COPIED: &[&str] = &[
    "displayName",
    "givenName",
    "middleName",
    "surname",
    "title",
    "generation",
    "nickName",
    "emailAddresses",
    "businessPhones",
    "homePhones",
    "mobilePhone",
    "companyName",
    "department",
    "jobTitle",
    "businessAddress",
    "homeAddress",
    "otherAddress",
    "personalNotes",
    "birthday",
    "imAddresses",
];
const MAX_LIST_CONTACTS: usize = 5_000;

fn default_limit() -> i64 {
    50
}
fn default_format() -> String {
    "vcard".into()
}

/// Parameters of `contact_list`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactListParams {
    /// How many contacts (1–500).
    #[serde(default = "default_limit")]
    pub limit: i64,
}

/// Parameters of tools that take one contact id.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactIdParams {
    /// The contact id.
    pub contact_id: String,
}

/// Parameters of `contact_create`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactCreateParams {
    /// First name.
    pub given_name: String,
    /// Last name.
    #[serde(default)]
    pub surname: Option<String>,
    /// Email addresses (list or comma-separated).
    #[serde(default)]
    pub email_addresses: Option<StringOrList>,
    /// Phone numbers by kind: business, home, mobile.
    #[serde(default)]
    pub phone_numbers: Option<Map<String, Value>>,
}

/// Parameters of `contact_update`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactUpdateParams {
    /// The contact id.
    pub contact_id: String,
    /// Fields to change: givenName, surname, displayName, jobTitle, companyName, department,
    /// emailAddresses (addresses or {address, name}), businessPhones, homePhones, mobilePhone.
    pub updates: Map<String, Value>,
}

/// Parameters of `contact_delete`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactDeleteParams {
    /// The contact id.
    pub contact_id: String,
    /// Must be true: the contact is deleted.
    #[serde(default)]
    pub confirm: bool,
}

/// Parameters of `contact_create_list`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactCreateListParams {
    /// Name of the new contact list.
    pub list_name: String,
}

/// Parameters of `contact_add_to_list`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactAddToListParams {
    /// The contact id.
    pub contact_id: String,
    /// The list (contact folder) id.
    pub list_id: String,
}

/// Parameters of `contact_export`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactExportParams {
    /// The contact id.
    pub contact_id: String,
    /// Export format: vcard (vCard 4.0, RFC 6350).
    #[serde(default = "default_format")]
    pub format: String,
}

/// The contact tools.
pub fn tools() -> Vec<ToolDef> {
    let write = Cache::Write {
        invalidates: contact_written,
    };
    vec![
        ToolDef::account(
            "contact_list",
            "List contacts",
            "contacts",
            READ,
            Cache::Read { deps: list_deps },
            "List contacts with names, email addresses, phones, company and job title.",
            contact_list,
        ),
        ToolDef::account(
            "contact_get",
            "Get a contact",
            "contacts",
            READ,
            Cache::Read { deps: get_deps },
            "Get one contact with all its details.",
            contact_get,
        ),
        ToolDef::account(
            "contact_create",
            "Create a contact",
            "contacts",
            WRITE,
            write,
            "Create a contact with names, email addresses and business, home or mobile phone numbers.",
            contact_create,
        ),
        ToolDef::account(
            "contact_update",
            "Update a contact",
            "contacts",
            UPDATE,
            write,
            "Change a contact's names, job, company, department, email addresses or phone numbers.",
            contact_update,
        ),
        ToolDef::account(
            "contact_delete",
            "Delete a contact",
            "contacts",
            DESTRUCTIVE,
            write,
            "Delete a contact (confirm=true required).",
            contact_delete,
        ),
        ToolDef::account(
            "contact_create_list",
            "Create a contact list",
            "contacts",
            WRITE,
            write,
            "Create a contact list (a contacts folder).",
            contact_create_list,
        ),
        ToolDef::account(
            "contact_add_to_list",
            "Add a contact to a list",
            "contacts",
            WRITE,
            write,
            "Add a copy of a contact to a contact list; a contact already in the list (same email address, or \
             same name when it has none) is reported, not duplicated.",
            contact_add_to_list,
        ),
        ToolDef::account(
            "contact_export",
            "Export a contact",
            "contacts",
            READ,
            Cache::None,
            "Export a contact as a vCard 4.0 (RFC 6350) text.",
            contact_export,
        ),
    ]
}

fn list_deps(_: &Value, result: &Value) -> Dependencies {
    Dependencies::container("contacts").with_items(super::listed_ids(result))
}

fn get_deps(params: &Value, result: &Value) -> Dependencies {
    let mut deps = Dependencies::none();
    for id in [param_id(params, "contact_id"), result["id"].as_str()]
        .into_iter()
        .flatten()
    {
        deps = deps.with_item(id);
    }
    deps
}

fn contact_written(params: &Value, result: &Value) -> Vec<Target> {
    let mut targets = vec![Target::all("contact_list"), Target::all("search_contacts")];
    for id in [
        param_id(params, "contact_id"),
        result["id"].as_str(),
        result["contact_id"].as_str(),
    ]
    .into_iter()
    .flatten()
    {
        let t = Target::item("contact_get", id);
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    targets
}

async fn contact_list(app: Arc<App>, account: AccountRecord, p: ContactListParams) -> ToolResult {
    let limit = check_range("limit", p.limit, 1, 500)?;
    let top = limit.min(100).to_string();
    let items = app
        .graph
        .get_paged(
            &account.account_id,
            "/me/contacts",
            &[("$select", FIELDS), ("$top", top.as_str())],
            limit,
        )
        .await?;
    let items: Vec<Value> = items
        .into_iter()
        .map(|mut c| {
            strip_odata(&mut c);
            c
        })
        .collect();
    Ok(json!({"value": items, "count": items.len(), "account_id": account.account_id}))
}

async fn fetch_contact(app: &App, account: &AccountRecord, id: &str) -> ToolResult {
    let mut contact = app
        .graph
        .get(
            &account.account_id,
            &format!("/me/contacts/{}", id_segment("contact_id", id)?),
            &[("$select", FIELDS)],
        )
        .await?;
    strip_odata(&mut contact);
    Ok(contact)
}

async fn contact_get(app: Arc<App>, account: AccountRecord, p: ContactIdParams) -> ToolResult {
    id_segment("contact_id", &p.contact_id)?;
    fetch_contact(&app, &account, &p.contact_id).await
}

fn phone_list(key: &str, value: &Value) -> Result<Vec<String>, ToolError> {
    let list: StringOrList = serde_json::from_value(value.clone()).map_err(|_| {
        ToolError::invalid(
            key,
            &value.to_string(),
            "must be a phone number or a list of them",
            "e.g. \"+1 425 555 0100\" or [\"+1 425 555 0100\"]",
        )
    })?;
    list.items().iter().map(|n| check_phone(key, n)).collect()
}

fn check_phone(param: &str, value: &str) -> Result<String, ToolError> {
    let v = value.trim();
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars().any(|c| c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_digit() || " +-().x/#*ext".contains(c.to_ascii_lowercase()));
    if !ok {
        return Err(ToolError::invalid(
            param,
            value,
            "is not a phone number",
            "digits with optional + - ( ) spaces, e.g. +1 425 555 0100",
        ));
    }
    Ok(v.to_string())
}

fn email_objects(param: &str, value: &Value) -> Result<Value, ToolError> {
    let items: Vec<Value> = match value {
        Value::Array(list) => list.clone(),
        Value::String(_) => vec![value.clone()],
        _ => {
            return Err(ToolError::invalid(
                param,
                &value.to_string(),
                "must be a list of addresses",
                "[\"a@example.com\"] or [{\"address\": \"a@example.com\", \"name\": \"A\"}]",
            ));
        }
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::String(s) => {
                for a in StringOrList::One(s).items() {
                    out.push(json!({"address": check_email(param, &a)?, "name": a}));
                }
            }
            Value::Object(o) => {
                let address = o.get("address").and_then(Value::as_str).unwrap_or_default();
                let address = check_email(param, address)?;
                let name = o
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .unwrap_or(&address)
                    .to_string();
                out.push(json!({"address": address, "name": name}));
            }
            other => {
                return Err(ToolError::invalid(
                    param,
                    &other.to_string(),
                    "is not an address",
                    "an address text or {address, name}",
                ));
            }
        }
    }
    Ok(Value::Array(out))
}

async fn contact_create(
    app: Arc<App>,
    account: AccountRecord,
    p: ContactCreateParams,
) -> ToolResult {
    let given = required_text("given_name", &p.given_name, 255)?;
    let mut body = json!({"givenName": given});
    if let Some(surname) = p
        .surname
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        body["surname"] = json!(surname);
    }
    let addresses = emails("email_addresses", p.email_addresses.as_ref(), 3)?;
    if !addresses.is_empty() {
        body["emailAddresses"] = Value::Array(
            addresses
                .iter()
                .map(|a| json!({"address": a, "name": a}))
                .collect(),
        );
    }
    for (kind, value) in p.phone_numbers.iter().flatten() {
        let param = format!("phone_numbers.{kind}");
        match kind.as_str() {
            "business" => body["businessPhones"] = json!(phone_list(&param, value)?),
            "home" => body["homePhones"] = json!(phone_list(&param, value)?),
            "mobile" => {
                let list = phone_list(&param, value)?;
                if list.len() > 1 {
                    return Err(ToolError::invalid(
                        &param,
                        &value.to_string(),
                        "holds more than one number",
                        "one mobile number",
                    ));
                }
                body["mobilePhone"] = json!(list.first());
            }
            other => {
                return Err(ToolError::invalid(
                    "phone_numbers",
                    other,
                    "is not a phone kind",
                    "business, home or mobile",
                ));
            }
        }
    }
    let mut contact = app
        .graph
        .post(&account.account_id, "/me/contacts", Some(&body))
        .await?;
    strip_odata(&mut contact);
    Ok(contact)
}

const TEXT_KEYS: &[&str] = &[
    "givenName",
    "surname",
    "displayName",
    "jobTitle",
    "companyName",
    "department",
];
const UPDATE_KEYS: &str = "givenName, surname, displayName, jobTitle, companyName, department, \
emailAddresses, businessPhones, homePhones, mobilePhone";

async fn contact_update(
    app: Arc<App>,
    account: AccountRecord,
    p: ContactUpdateParams,
) -> ToolResult {
    let id = id_segment("contact_id", &p.contact_id)?;
    if p.updates.is_empty() {
        return Err(ToolError::invalid(
            "updates",
            "{}",
            "names nothing to change",
            &format!("at least one of {UPDATE_KEYS}"),
        ));
    }
    let mut body = Map::new();
    for (key, value) in &p.updates {
        let param = format!("updates.{key}");
        let checked = match key.as_str() {
            k if TEXT_KEYS.contains(&k) => match value {
                Value::String(s) => json!(s.trim()),
                Value::Null if k != "givenName" => Value::Null,
                _ => {
                    return Err(ToolError::invalid(
                        &param,
                        &value.to_string(),
                        "must be a string",
                        "a text value",
                    ));
                }
            },
            "emailAddresses" => email_objects(&param, value)?,
            "businessPhones" | "homePhones" => json!(phone_list(&param, value)?),
            "mobilePhone" => match value {
                Value::Null => Value::Null,
                Value::String(s) => json!(check_phone(&param, s)?),
                _ => {
                    return Err(ToolError::invalid(
                        &param,
                        &value.to_string(),
                        "must be a phone number or null",
                        "a text value or null",
                    ));
                }
            },
            _ => {
                return Err(ToolError::invalid(
                    "updates",
                    key,
                    "is not a field that can be changed",
                    &format!("keys among {UPDATE_KEYS}"),
                ));
            }
        };
        body.insert(key.clone(), checked);
    }
    let mut contact = app
        .graph
        .patch(
            &account.account_id,
            &format!("/me/contacts/{id}"),
            &Value::Object(body),
        )
        .await?;
    strip_odata(&mut contact);
    Ok(contact)
}

async fn contact_delete(
    app: Arc<App>,
    account: AccountRecord,
    p: ContactDeleteParams,
) -> ToolResult {
    let id = id_segment("contact_id", &p.contact_id)?;
    require_confirm(p.confirm, "Deleting a contact")?;
    app.graph
        .delete(&account.account_id, &format!("/me/contacts/{id}"))
        .await?;
    Ok(json!({"status": "deleted", "contact_id": p.contact_id.trim()}))
}

async fn contact_create_list(
    app: Arc<App>,
    account: AccountRecord,
    p: ContactCreateListParams,
) -> ToolResult {
    let name = required_text("list_name", &p.list_name, 255)?;
    let mut folder = app
        .graph
        .post(
            &account.account_id,
            "/me/contactFolders",
            Some(&json!({"displayName": name})),
        )
        .await?;
    strip_odata(&mut folder);
    Ok(folder)
}

fn addresses_of(contact: &Value) -> Vec<String> {
    contact["emailAddresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["address"].as_str())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Whether two contacts are the same person: a shared address, or the same
/// display name when neither has an address.
fn same_person(a: &Value, b: &Value) -> bool {
    let (ea, eb) = (addresses_of(a), addresses_of(b));
    if !ea.is_empty() || !eb.is_empty() {
        return ea.iter().any(|x| eb.contains(x));
    }
    let name = |c: &Value| {
        c["displayName"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_lowercase()
    };
    !name(a).is_empty() && name(a) == name(b)
}

async fn contact_add_to_list(
    app: Arc<App>,
    account: AccountRecord,
    p: ContactAddToListParams,
) -> ToolResult {
    id_segment("contact_id", &p.contact_id)?;
    let list = id_segment("list_id", &p.list_id)?;
    let contact = fetch_contact(&app, &account, &p.contact_id).await?;
    let list_path = format!("/me/contactFolders/{list}/contacts");
    if contact["parentFolderId"].as_str() == Some(p.list_id.trim()) {
        return Ok(json!({
            "status": "already_present",
            "contact_id": contact["id"],
            "list_id": p.list_id.trim(),
        }));
    }
    let members = app
        .graph
        .get_paged(
            &account.account_id,
            &list_path,
            &[
                ("$select", "id,displayName,emailAddresses"),
                ("$top", "100"),
            ],
            MAX_LIST_CONTACTS,
        )
        .await?;
    if let Some(existing) = members.iter().find(|m| same_person(m, &contact)) {
        return Ok(json!({
            "status": "already_present",
            "contact_id": existing["id"],
            "list_id": p.list_id.trim(),
        }));
    }
    let mut copy = Map::new();
    for key in COPIED {
        if let Some(v) = contact.get(*key).filter(|v| !v.is_null()) {
            copy.insert((*key).to_string(), v.clone());
        }
    }
    let mut created = app
        .graph
        .post(&account.account_id, &list_path, Some(&Value::Object(copy)))
        .await?;
    strip_odata(&mut created);
    Ok(json!({
        "status": "added",
        "id": created["id"],
        "contact_id": created["id"],
        "source_contact_id": p.contact_id.trim(),
        "list_id": p.list_id.trim(),
        "contact": created,
    }))
}

/// Escapes a vCard text value (RFC 6350 §3.4): backslash, comma, semicolon, newline.
pub fn vcard_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Folds a content line at 75 octets (RFC 6350 §3.2), never inside a
/// UTF-8 sequence; continuation lines start with one space.
pub fn vcard_fold(line: &str) -> String {
    let mut out = String::new();
    let mut width = 0usize;
    for c in line.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
    out
}

fn text(contact: &Value, key: &str) -> String {
    contact[key].as_str().unwrap_or_default().trim().to_string()
}

/// A contact as vCard 4.0.
pub fn to_vcard(contact: &Value) -> String {
    let mut lines: Vec<String> = vec!["BEGIN:VCARD".into(), "VERSION:4.0".into()];
    let given = text(contact, "givenName");
    let surname = text(contact, "surname");
    let mut display = text(contact, "displayName");
    if display.is_empty() {
        display = format!("{given} {surname}").trim().to_string();
    }
    if display.is_empty() {
        display = addresses_of(contact).first().cloned().unwrap_or_default();
    }
    lines.push(format!("FN:{}", vcard_escape(&display)));
    let n: Vec<String> = ["surname", "givenName", "middleName", "title", "generation"]
        .iter()
        .map(|k| vcard_escape(&text(contact, k)))
        .collect();
    lines.push(format!("N:{}", n.join(";")));
    let nick = text(contact, "nickName");
    if !nick.is_empty() {
        lines.push(format!("NICKNAME:{}", vcard_escape(&nick)));
    }
    for e in contact["emailAddresses"].as_array().into_iter().flatten() {
        if let Some(a) = e["address"].as_str().filter(|a| !a.is_empty()) {
            lines.push(format!("EMAIL;TYPE=work:{}", vcard_escape(a)));
        }
    }
    for (key, kind) in [
        ("businessPhones", "work,voice"),
        ("homePhones", "home,voice"),
    ] {
        for p in contact[key].as_array().into_iter().flatten() {
            if let Some(p) = p.as_str().filter(|p| !p.is_empty()) {
                lines.push(format!(
                    "TEL;TYPE=\"{kind}\";VALUE=text:{}",
                    vcard_escape(p)
                ));
            }
        }
    }
    let mobile = text(contact, "mobilePhone");
    if !mobile.is_empty() {
        lines.push(format!(
            "TEL;TYPE=\"cell,voice\";VALUE=text:{}",
            vcard_escape(&mobile)
        ));
    }
    let company = text(contact, "companyName");
    let department = text(contact, "department");
    if !company.is_empty() || !department.is_empty() {
        let org = if department.is_empty() {
            vcard_escape(&company)
        } else {
            format!("{};{}", vcard_escape(&company), vcard_escape(&department))
        };
        lines.push(format!("ORG:{org}"));
    }
    let title = text(contact, "jobTitle");
    if !title.is_empty() {
        lines.push(format!("TITLE:{}", vcard_escape(&title)));
    }
    for (key, kind) in [
        ("businessAddress", "work"),
        ("homeAddress", "home"),
        ("otherAddress", ""),
    ] {
        let a = &contact[key];
        let parts: Vec<String> = ["street", "city", "state", "postalCode", "countryOrRegion"]
            .iter()
            .map(|k| vcard_escape(a[*k].as_str().unwrap_or_default().trim()))
            .collect();
        if parts.iter().any(|p| !p.is_empty()) {
            let param = if kind.is_empty() {
                String::new()
            } else {
                format!(";TYPE={kind}")
            };
            lines.push(format!("ADR{param}:;;{}", parts.join(";")));
        }
    }
    if let Some(b) = contact["birthday"].as_str().and_then(|b| b.get(..10))
        && b.chars().all(|c| c.is_ascii_digit() || c == '-')
    {
        lines.push(format!("BDAY:{}", b.replace('-', "")));
    }
    let notes = text(contact, "personalNotes");
    if !notes.is_empty() {
        lines.push(format!("NOTE:{}", vcard_escape(&notes)));
    }
    if let Some(id) = contact["id"].as_str() {
        lines.push(format!("UID:{}", vcard_escape(id)));
    }
    lines.push("END:VCARD".into());
    lines.iter().map(|l| vcard_fold(l)).collect()
}

async fn contact_export(
    app: Arc<App>,
    account: AccountRecord,
    p: ContactExportParams,
) -> ToolResult {
    id_segment("contact_id", &p.contact_id)?;
    let format = p.format.trim().to_ascii_lowercase();
    if !matches!(format.as_str(), "vcard" | "vcf") {
        return Err(ToolError::invalid(
            "format",
            &p.format,
            "is not a supported format",
            "vcard",
        ));
    }
    let contact = fetch_contact(&app, &account, &p.contact_id).await?;
    let vcard = to_vcard(&contact);
    Ok(json!({
        "contact_id": contact["id"],
        "display_name": contact["displayName"],
        "format": "vcard",
        "version": "4.0",
        "vcard": vcard,
        "size_bytes": vcard.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_lines_folded() {
        assert_eq!(vcard_escape("a\\b,c;d\r\ne\nf"), "a\\\\b\\,c\\;d\\ne\\nf");
        let long = format!("NOTE:{}", "é".repeat(60));
        let folded = vcard_fold(&long);
        for line in folded.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(line.len() <= 75, "{} octets", line.len());
        }
        assert_eq!(folded.replace("\r\n ", "").trim_end(), long);
    }

    #[test]
    fn a_contact_becomes_a_vcard_4() {
        let card = to_vcard(&json!({
            "id": "C1", "givenName": "Ann", "surname": "O'Neil; Jr", "displayName": "Ann, O'Neil",
            "emailAddresses": [{"address": "ann@example.com"}], "businessPhones": ["+1 425 555 0100"],
            "mobilePhone": "+1 425 555 0101", "companyName": "Contoso, Ltd", "jobTitle": "Lead",
            "personalNotes": "line1\nline2",
        }));
        assert!(card.starts_with("BEGIN:VCARD\r\nVERSION:4.0\r\n"));
        assert!(card.contains("FN:Ann\\, O'Neil\r\n"));
        assert!(card.contains("N:O'Neil\\; Jr;Ann;;;\r\n"));
        assert!(card.contains("EMAIL;TYPE=work:ann@example.com\r\n"));
        assert!(card.contains("ORG:Contoso\\, Ltd\r\n"));
        assert!(card.contains("NOTE:line1\\nline2\r\n"));
        assert!(card.ends_with("END:VCARD\r\n"));
    }
}
