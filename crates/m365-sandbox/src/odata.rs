//! OData query options as Graph uses them: `$top`, `$skip`, `$skiptoken`, `$select`,
//! `$orderby`, `$filter`, `$search`, `$count`, and `@odata.nextLink` paging.

use std::cmp::Ordering;
use std::collections::HashMap;

use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::reply::GraphError;

/// Characters escaped when the sandbox writes a query value into a nextLink.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$')
    .remove(b',')
    .remove(b'/')
    .remove(b':')
    .remove(b'(')
    .remove(b')')
    .remove(b'\'');

/// Percent-decodes a query component (`+` is a space, as form encoding writes it).
pub(crate) fn decode_component(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-decodes a path segment (`+` stays a plus sign).
pub(crate) fn decode_path(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parsed query string: the raw pairs (to rebuild nextLinks) and decoded values by
/// lower-cased name without the `$` prefix.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
    values: HashMap<String, String>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let mut query = Self::default();
        let Some(raw) = raw else { return query };
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let name = decode_component(name);
            let value = decode_component(value);
            let key = name.trim_start_matches('$').to_ascii_lowercase();
            query.values.insert(key, value.clone());
            query.pairs.push((name, value));
        }
        query
    }

    /// A decoded value by name (`top` finds `$top` and `top`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// An unsigned integer option, or a Graph-style 400.
    pub fn usize(&self, name: &str) -> Result<Option<usize>, GraphError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                GraphError::bad_request(format!(
                    "Invalid value '{v}' for query option '${name}'. Expected a non-negative integer."
                ))
            }),
        }
    }

    /// A boolean option (`true`/`false`), default false.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// The same query with paging options replaced, encoded for a URL.
    pub fn encode_with(&self, replace: &[&str], extra: &[(&str, String)]) -> String {
        let mut out: Vec<String> = Vec::new();
        for (name, value) in &self.pairs {
            let key = name.trim_start_matches('$').to_ascii_lowercase();
            if replace.contains(&key.as_str()) {
                continue;
            }
            out.push(format!(
                "{}={}",
                utf8_percent_encode(name, QUERY_VALUE),
                utf8_percent_encode(value, QUERY_VALUE)
            ));
        }
        for (name, value) in extra {
            out.push(format!(
                "{name}={}",
                utf8_percent_encode(value, QUERY_VALUE)
            ));
        }
        out.join("&")
    }
}

/// How a collection pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageRule {
    /// Page size when the client gives no `$top`.
    pub default_size: usize,
    /// Largest page the sandbox returns whatever `$top` says.
    pub max_size: usize,
    /// `$skip` (Outlook collections) or an opaque `$skiptoken` (OneDrive, search).
    pub skip_token: bool,
}

impl PageRule {
    pub const OUTLOOK: PageRule = PageRule {
        default_size: 10,
        max_size: 100,
        skip_token: false,
    };
    pub const DRIVE: PageRule = PageRule {
        default_size: 200,
        max_size: 200,
        skip_token: true,
    };
}

/// What a list handler needs to build the page and its nextLink.
pub(crate) struct PageRequest<'a> {
    pub query: &'a Query,
    /// Absolute URL of the collection, without query (`http://host/v1.0/me/messages`).
    pub url: String,
}

fn skiptoken_encode(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset={offset}"))
}

fn skiptoken_decode(token: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("offset=")?.parse().ok()
}

/// Where a page starts and ends in a filtered, sorted collection, and its nextLink.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub start: usize,
    pub end: usize,
    pub total: usize,
    pub next_link: Option<String>,
    pub count: bool,
}

impl Window {
    /// Computes the page of `total` items the request asks for.
    pub fn new(page: &PageRequest<'_>, total: usize, rule: PageRule) -> Result<Self, GraphError> {
        let query = page.query;
        let mut offset = query.usize("skip")?.unwrap_or(0);
        if let Some(token) = query.get("skiptoken") {
            offset = skiptoken_decode(token)
                .ok_or_else(|| GraphError::bad_request("The $skiptoken value is not valid."))?;
        }
        let top = query.usize("top")?;
        if top == Some(0) {
            return Err(GraphError::bad_request(
                "Invalid value '0' for query option '$top'.",
            ));
        }
        let size = top.unwrap_or(rule.default_size).min(rule.max_size);
        let start = offset.min(total);
        let end = offset.saturating_add(size).min(total);
        let next_link = (end < total).then(|| {
            let next = if rule.skip_token {
                query.encode_with(
                    &["skip", "skiptoken"],
                    &[("$skiptoken", skiptoken_encode(end))],
                )
            } else {
                query.encode_with(&["skip", "skiptoken"], &[("$skip", end.to_string())])
            };
            format!("{}?{next}", page.url)
        });
        Ok(Self {
            start,
            end,
            total,
            next_link,
            count: query.flag("count"),
        })
    }

    /// Writes `@odata.count`, `value` and `@odata.nextLink` in Graph's order.
    pub fn write(&self, out: &mut Map<String, Value>, value: Vec<Value>) {
        if self.count {
            out.insert("@odata.count".into(), Value::from(self.total));
        }
        out.insert("value".into(), Value::Array(value));
        if let Some(link) = &self.next_link {
            out.insert("@odata.nextLink".into(), Value::String(link.clone()));
        }
    }
}

/// Cuts one page out of `items` (already filtered and sorted) and writes `value`,
/// `@odata.nextLink` and `@odata.count` into `out`.
pub(crate) fn page_into(
    out: &mut Map<String, Value>,
    items: Vec<Value>,
    page: &PageRequest<'_>,
    rule: PageRule,
) -> Result<(), GraphError> {
    let window = Window::new(page, items.len(), rule)?;
    let value: Vec<Value> = items
        .into_iter()
        .skip(window.start)
        .take(window.end - window.start)
        .map(|v| select(v, page.query.get("select")))
        .collect();
    window.write(out, value);
    Ok(())
}

/// Applies `$select` to one object: keeps the listed properties plus `id` and `@odata.*`.
pub(crate) fn select(item: Value, select: Option<&str>) -> Value {
    let Some(select) = select.map(str::trim).filter(|s| !s.is_empty()) else {
        return item;
    };
    let wanted: Vec<&str> = select.split(',').map(str::trim).collect();
    match item {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| {
                    k == "id"
                        || k.starts_with("@odata.")
                        || wanted.iter().any(|w| w.eq_ignore_ascii_case(k))
                })
                .collect(),
        ),
        other => other,
    }
}

/// Follows a `/`-separated property path.
pub(crate) fn path_get<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        current = current.as_object()?.iter().find_map(|(k, v)| {
            if k.eq_ignore_ascii_case(part) {
                Some(v)
            } else {
                None
            }
        })?;
    }
    Some(current)
}

fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    // Graph's dateTimeTimeZone values have no offset ("2024-01-01T10:00:00.0000000").
    let with_z = format!("{}Z", text.trim_end_matches('Z'));
    OffsetDateTime::parse(&with_z, &Rfc3339).ok()
}

/// Orders two JSON values the way `$orderby` and comparisons need.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => {
            if let (Some(tx), Some(ty)) = (parse_instant(x), parse_instant(y)) {
                tx.cmp(&ty)
            } else {
                x.to_lowercase().cmp(&y.to_lowercase())
            }
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// Parses an `$orderby` expression (`receivedDateTime desc,subject`) into (path, descending).
pub(crate) fn parse_order(orderby: &str) -> Result<Vec<(String, bool)>, GraphError> {
    let mut keys = Vec::new();
    for part in orderby.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut words = part.split_whitespace();
        let path = words.next().unwrap_or_default().to_string();
        let desc = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(GraphError::bad_request(format!(
                    "Invalid $orderby direction '{other}'."
                )));
            }
        };
        keys.push((path, desc));
    }
    Ok(keys)
}

/// Compares two items by parsed `$orderby` keys.
pub(crate) fn compare_by(keys: &[(String, bool)], a: &Value, b: &Value) -> Ordering {
    for (path, desc) in keys {
        let va = path_get(a, path).unwrap_or(&Value::Null);
        let vb = path_get(b, path).unwrap_or(&Value::Null);
        let ord = compare_values(va, vb);
        let ord = if *desc { ord.reverse() } else { ord };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// Sorts by an `$orderby` expression (`receivedDateTime desc,subject`).
pub(crate) fn order_by(items: &mut [Value], orderby: &str) -> Result<(), GraphError> {
    let keys = parse_order(orderby)?;
    items.sort_by(|a, b| compare_by(&keys, a, b));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// $filter

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Literal(String),
    Open,
    Close,
    Comma,
    Colon,
}

fn tokenize(input: &str) -> Result<Vec<Token>, GraphError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            ':' => {
                tokens.push(Token::Colon);
                i += 1;
            }
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(filter_error("unterminated string literal")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            text.push(*ch);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Str(text));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"(),".contains(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::Literal(chars[start..i].iter().collect()));
            }
            c if c.is_alphanumeric() || c == '_' || c == '@' || c == '/' || c == '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || "_@/.".contains(chars[i])) {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(filter_error(&format!("unexpected character '{other}'"))),
        }
    }
    Ok(tokens)
}

fn filter_error(detail: &str) -> GraphError {
    GraphError::bad_request(format!("Invalid filter clause: {detail}."))
}

#[derive(Debug, Clone)]
enum Operand {
    Path(String),
    Value(Value),
}

#[derive(Debug, Clone)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, String, Operand),
    Call(String, Vec<Operand>),
    Lambda {
        collection: String,
        all: bool,
        var: String,
        body: Box<Expr>,
    },
    Truthy(Operand),
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, token: Token) -> Result<(), GraphError> {
        match self.next() {
            Some(t) if t == token => Ok(()),
            _ => Err(filter_error(&format!("expected {token:?}"))),
        }
    }

    fn or(&mut self) -> Result<Expr, GraphError> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, GraphError> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, GraphError> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect(Token::Close)?;
            return Ok(inner);
        }
        // Function calls and lambdas.
        if let (Some(Token::Ident(name)), Some(Token::Open)) = (
            self.tokens.get(self.pos).cloned(),
            self.tokens.get(self.pos + 1),
        ) {
            let lower = name.to_ascii_lowercase();
            if lower.ends_with("/any") || lower.ends_with("/all") {
                self.pos += 2;
                let collection = name[..name.len() - 4].to_string();
                let all = lower.ends_with("/all");
                let var = match self.next() {
                    Some(Token::Ident(v)) => v,
                    _ => return Err(filter_error("expected a lambda variable")),
                };
                self.expect(Token::Colon)?;
                let body = self.or()?;
                self.expect(Token::Close)?;
                return Ok(Expr::Lambda {
                    collection,
                    all,
                    var,
                    body: Box::new(body),
                });
            }
            self.pos += 2;
            let mut args = Vec::new();
            loop {
                args.push(self.operand()?);
                match self.next() {
                    Some(Token::Comma) => continue,
                    Some(Token::Close) => break,
                    _ => return Err(filter_error("expected ',' or ')'")),
                }
            }
            let call = Expr::Call(lower, args);
            return self.maybe_compare_call(call);
        }
        let left = self.operand()?;
        match self.peek() {
            Some(Token::Ident(op))
                if ["eq", "ne", "gt", "ge", "lt", "le"]
                    .contains(&op.to_ascii_lowercase().as_str()) =>
            {
                let op = op.to_ascii_lowercase();
                self.pos += 1;
                let right = self.operand()?;
                Ok(Expr::Compare(left, op, right))
            }
            _ => Ok(Expr::Truthy(left)),
        }
    }

    /// `startswith(a,'b') eq true` is accepted as well as the bare call.
    fn maybe_compare_call(&mut self, call: Expr) -> Result<Expr, GraphError> {
        if self.peek_word("eq") || self.peek_word("ne") {
            let negate = self.peek_word("ne");
            self.pos += 1;
            let right = self.operand()?;
            let expected = matches!(right, Operand::Value(Value::Bool(true)));
            return Ok(if expected != negate {
                call
            } else {
                Expr::Not(Box::new(call))
            });
        }
        Ok(call)
    }

    fn operand(&mut self) -> Result<Operand, GraphError> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Operand::Value(Value::String(s))),
            Some(Token::Literal(l)) => {
                if let Ok(n) = l.parse::<i64>() {
                    Ok(Operand::Value(Value::from(n)))
                } else if let Ok(f) = l.parse::<f64>() {
                    Ok(Operand::Value(Value::from(f)))
                } else {
                    Ok(Operand::Value(Value::String(l)))
                }
            }
            Some(Token::Ident(word)) => match word.to_ascii_lowercase().as_str() {
                "true" => Ok(Operand::Value(Value::Bool(true))),
                "false" => Ok(Operand::Value(Value::Bool(false))),
                "null" => Ok(Operand::Value(Value::Null)),
                _ => Ok(Operand::Path(word)),
            },
            other => Err(filter_error(&format!("unexpected token {other:?}"))),
        }
    }
}

/// A parsed `$filter`.
#[derive(Debug, Clone)]
pub(crate) struct Filter(Expr);

impl Filter {
    pub fn parse(text: &str) -> Result<Self, GraphError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, pos: 0 };
        let expr = parser.or()?;
        if parser.pos != parser.tokens.len() {
            return Err(filter_error("trailing tokens"));
        }
        Ok(Self(expr))
    }

    pub fn matches(&self, item: &Value) -> bool {
        eval(&self.0, item, &[])
    }
}

fn resolve<'a>(operand: &'a Operand, item: &'a Value, vars: &[(&str, &'a Value)]) -> Value {
    match operand {
        Operand::Value(v) => v.clone(),
        Operand::Path(path) => {
            let (head, rest) = path.split_once('/').unwrap_or((path.as_str(), ""));
            for (name, value) in vars.iter().rev() {
                if *name == head {
                    return if rest.is_empty() {
                        (*value).clone()
                    } else {
                        path_get(value, rest).cloned().unwrap_or(Value::Null)
                    };
                }
            }
            path_get(item, path).cloned().unwrap_or(Value::Null)
        }
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            x.eq_ignore_ascii_case(y)
                || matches!((parse_instant(x), parse_instant(y)), (Some(p), Some(q)) if p == q)
        }
        (Value::Number(_), Value::Number(_)) => compare_values(a, b) == Ordering::Equal,
        _ => a == b,
    }
}

fn eval(expr: &Expr, item: &Value, vars: &[(&str, &Value)]) -> bool {
    match expr {
        Expr::And(a, b) => eval(a, item, vars) && eval(b, item, vars),
        Expr::Or(a, b) => eval(a, item, vars) || eval(b, item, vars),
        Expr::Not(a) => !eval(a, item, vars),
        Expr::Truthy(op) => resolve(op, item, vars) == Value::Bool(true),
        Expr::Compare(l, op, r) => {
            let a = resolve(l, item, vars);
            let b = resolve(r, item, vars);
            match op.as_str() {
                "eq" => values_equal(&a, &b),
                "ne" => !values_equal(&a, &b),
                _ if a.is_null() || b.is_null() => false,
                "gt" => compare_values(&a, &b) == Ordering::Greater,
                "ge" => compare_values(&a, &b) != Ordering::Less,
                "lt" => compare_values(&a, &b) == Ordering::Less,
                "le" => compare_values(&a, &b) != Ordering::Greater,
                _ => false,
            }
        }
        Expr::Call(name, args) => {
            let values: Vec<Value> = args.iter().map(|a| resolve(a, item, vars)).collect();
            let text = |i: usize| {
                values
                    .get(i)
                    .and_then(Value::as_str)
                    .map(str::to_lowercase)
                    .unwrap_or_default()
            };
            match name.as_str() {
                "startswith" => {
                    values.first().is_some_and(Value::is_string) && text(0).starts_with(&text(1))
                }
                "endswith" => {
                    values.first().is_some_and(Value::is_string) && text(0).ends_with(&text(1))
                }
                "contains" => {
                    values.first().is_some_and(Value::is_string) && text(0).contains(&text(1))
                }
                _ => false,
            }
        }
        Expr::Lambda {
            collection,
            all,
            var,
            body,
        } => {
            let items = resolve(&Operand::Path(collection.clone()), item, vars);
            let Value::Array(elements) = items else {
                return *all;
            };
            let check = |element: &Value| {
                let mut scope: Vec<(&str, &Value)> = vars.to_vec();
                scope.push((var.as_str(), element));
                eval(body, item, &scope)
            };
            if *all {
                elements.iter().all(check)
            } else {
                elements.iter().any(check)
            }
        }
    }
}

/// The text of a `$search` option without its quotes, lower-cased.
pub(crate) fn search_terms(raw: &str) -> String {
    raw.trim().trim_matches('"').trim().to_lowercase()
}

/// True when every word of `terms` (or a `field:value` pair) occurs in one of `fields` of `item`.
pub(crate) fn search_matches(item: &Value, terms: &str, fields: &[&str]) -> bool {
    let haystack: Vec<String> = fields
        .iter()
        .filter_map(|f| path_get(item, f))
        .map(|v| match v {
            Value::String(s) => s.to_lowercase(),
            other => other.to_string().to_lowercase(),
        })
        .collect();
    terms.split_whitespace().all(|word| {
        let word = word.trim_matches('"');
        let word = word.split_once(':').map_or(word, |(_, w)| w);
        haystack.iter().any(|h| h.contains(word))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn filter_forms_used_by_the_tools() {
        let item = json!({
            "isRead": false,
            "hasAttachments": true,
            "receivedDateTime": "2025-03-01T10:00:00Z",
            "from": {"emailAddress": {"address": "Ann@Contoso.com"}},
            "categories": ["Red category", "Blue"],
            "displayName": "Ann Smith"
        });
        let ok = |f: &str| Filter::parse(f).map(|f| f.matches(&item)).unwrap_or(false);
        assert!(ok("isRead eq false"));
        assert!(!ok("isRead eq true"));
        assert!(ok("receivedDateTime ge 2025-02-28T00:00:00Z"));
        assert!(!ok("receivedDateTime ge 2025-03-02T00:00:00Z"));
        assert!(ok("from/emailAddress/address eq 'ann@contoso.com'"));
        assert!(ok("hasAttachments eq true and isRead eq false"));
        assert!(ok("categories/any(c:c eq 'Blue')"));
        assert!(!ok("categories/any(c:c eq 'Green')"));
        assert!(ok(
            "startswith(displayName,'ann') or startswith(givenName,'x')"
        ));
        assert!(ok("not (isRead eq true)"));
        assert!(Filter::parse("isRead eq").is_err());
        assert!(Filter::parse("subject eq 'open").is_err());
    }
}
