//! Holding requests to the OpenAPI document the API publishes, where the framework is
//! more lenient than the document says:
//!
//! - poem-openapi reads a JSON number or boolean where a string is declared (`"email": 5`
//!   becomes `"5"`); a client that sends the wrong type has a bug it should hear about,
//!   so such a body is refused with `400` naming the field;
//! - a field the request does not define is refused with `400` naming it, instead of
//!   being ignored (the published document says so: see [`strict_document`]);
//! - a method the path does not support gets `405` with the `Allow` header RFC 9110
//!   requires, listing the methods it does support.
//!
//! The rules are read from the document itself, once, when the routes are built.

use std::collections::BTreeSet;

use poem::http::{Method, StatusCode};
use serde_json::Value;

use crate::problem::ApiError;

/// One path of the document: its segments (`None` for a parameter) and, per method, the
/// JSON schema of its request body.
#[derive(Debug)]
struct Operation {
    segments: Vec<Option<String>>,
    methods: Vec<(Method, Option<Value>)>,
}

/// The operations of the document, and its component schemas.
#[derive(Debug, Default)]
pub struct Conformance {
    prefix: String,
    operations: Vec<Operation>,
    components: Value,
}

/// What a request should get instead of reaching its handler.
#[derive(Debug)]
pub enum Refusal {
    /// The method is not supported here; these are.
    MethodNotAllowed(Vec<Method>),
    /// The body does not have the declared types.
    Malformed(ApiError),
}

impl Conformance {
    /// Reads the document served under `prefix` (`/api/v1`).
    #[must_use]
    pub fn from_document(document: &str, prefix: &str) -> Self {
        let Ok(document) = serde_json::from_str::<Value>(document) else { return Self::default() };
        let mut operations = Vec::new();
        if let Some(paths) = document.get("paths").and_then(Value::as_object) {
            for (path, item) in paths {
                let segments = path
                    .trim_matches('/')
                    .split('/')
                    .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned()))
                    .collect();
                let methods = item
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(method, operation)| {
                        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).ok()?;
                        let schema = operation
                            .pointer("/requestBody/content")
                            .and_then(Value::as_object)
                            .and_then(|content| content.iter().find(|(media, _)| media.starts_with("application/json")))
                            .and_then(|(_, media)| media.get("schema"))
                            .cloned();
                        Some((method, schema))
                    })
                    .collect();
                operations.push(Operation { segments, methods });
            }
        }
        let components = document.pointer("/components/schemas").cloned().unwrap_or(Value::Null);
        Self { prefix: prefix.trim_end_matches('/').to_owned(), operations, components }
    }

    /// Checks a request's method and, when it is JSON, its body.
    ///
    /// # Errors
    /// The [`Refusal`] the request should get.
    pub fn check(&self, method: &Method, path: &str, body: &[u8]) -> Result<(), Refusal> {
        let Some(rest) = path.strip_prefix(&self.prefix) else { return Ok(()) };
        let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
        let matching: Vec<&Operation> = self
            .operations
            .iter()
            .filter(|op| {
                op.segments.len() == segments.len()
                    && op.segments.iter().zip(&segments).all(|(s, actual)| s.as_deref().is_none_or(|s| s == *actual))
            })
            .collect();
        if matching.is_empty() {
            return Ok(());
        }
        // The most literal path that takes the method handles it (`/roles/preview` before
        // `/roles/{role}`); a method none of them takes is 405.
        let mut matching = matching;
        matching.sort_by_key(|op| std::cmp::Reverse(op.segments.iter().filter(|s| s.is_some()).count()));
        let schema = matching.iter().flat_map(|op| &op.methods).find(|(m, _)| m == method).map(|(_, s)| s);
        let Some(schema) = schema else {
            if *method == Method::HEAD && matching.iter().flat_map(|op| &op.methods).any(|(m, _)| m == Method::GET) {
                return Ok(());
            }
            // `Allow` names what the document promises for this path: the most literal one.
            let literal = |op: &&&Operation| op.segments.iter().filter(|s| s.is_some()).count();
            let most = matching.iter().map(|op| literal(&op)).max().unwrap_or(0);
            let allowed: BTreeSet<&str> = matching
                .iter()
                .filter(|op| literal(op) == most)
                .flat_map(|op| &op.methods)
                .map(|(m, _)| m.as_str())
                .collect();
            return Err(Refusal::MethodNotAllowed(
                allowed.into_iter().filter_map(|m| Method::from_bytes(m.as_bytes()).ok()).collect(),
            ));
        };
        let (Some(schema), false) = (schema, body.is_empty()) else { return Ok(()) };
        let Ok(value) = serde_json::from_slice::<Value>(body) else { return Ok(()) };
        self.conforms(&value, schema, "", 0).map_err(|problem| {
            Refusal::Malformed(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "Malformed request",
                problem,
            ))
        })
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => reference
                .strip_prefix("#/components/schemas/")
                .and_then(|name| self.components.get(name))
                .unwrap_or(&Value::Null),
            None => schema,
        }
    }

    fn conforms(&self, value: &Value, schema: &Value, at: &str, depth: usize) -> Result<(), String> {
        if depth > 16 {
            return Ok(());
        }
        let schema = self.resolve(schema);
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.conforms(value, part, at, depth + 1)?;
            }
        }
        let field = if at.is_empty() { "the body".to_owned() } else { format!("`{at}`") };
        let wrong = |expected: &str| Err(format!("{field} must be {expected}"));
        match (schema.get("type").and_then(Value::as_str), value) {
            (_, Value::Null) => Ok(()),
            (Some("string"), v) if !v.is_string() => wrong("a string"),
            (Some("boolean"), v) if !v.is_boolean() => wrong("true or false"),
            (Some("integer"), v) if !(v.is_i64() || v.is_u64()) => wrong("a whole number"),
            (Some("number"), v) if !v.is_number() => wrong("a number"),
            (Some("array"), Value::Array(items)) => {
                let item_schema = schema.get("items").unwrap_or(&Value::Null);
                items
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, item)| self.conforms(item, item_schema, &format!("{at}[{i}]"), depth + 1))
            }
            (Some("array"), _) => wrong("a list"),
            (Some("object"), Value::Object(fields)) => {
                let properties = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties");
                for (name, field_value) in fields {
                    let path = if at.is_empty() { name.clone() } else { format!("{at}.{name}") };
                    match (properties.and_then(|p| p.get(name)), additional) {
                        (Some(property), _) => self.conforms(field_value, property, &path, depth + 1)?,
                        (None, Some(additional)) if additional.is_object() => {
                            self.conforms(field_value, additional, &path, depth + 1)?;
                        }
                        (None, Some(Value::Bool(false))) => {
                            return Err(format!("`{path}` is not a field of this request; check its spelling"));
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            (Some("object"), _) => wrong("an object"),
            _ => Ok(()),
        }
    }
}

/// The document as published: every object a request body holds is declared closed
/// (`additionalProperties: false`), because [`Conformance`] refuses fields a request does
/// not define (a misspelt `defualt_role` in a PATCH would otherwise be silently ignored).
/// Objects that are parts of an `allOf` composition stay open, since each part sees only
/// some of the fields.
#[must_use]
pub fn strict_document(document: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(document) else { return document.to_owned() };
    let mut closed = BTreeSet::new();
    if let Some(paths) = value.get("paths").and_then(Value::as_object) {
        for item in paths.values().filter_map(Value::as_object) {
            for operation in item.values() {
                let Some(content) = operation.pointer("/requestBody/content").and_then(Value::as_object) else {
                    continue;
                };
                for media in content.values() {
                    if let Some(schema) = media.get("schema") {
                        collect_closed(schema, &value, &mut closed, 0);
                    }
                }
            }
        }
    }
    bound_unsigned(&mut value, 0);
    if let Some(schemas) = value.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for name in closed {
            if let Some(Value::Object(schema)) = schemas.get_mut(&name)
                && schema.contains_key("properties")
                && !schema.contains_key("additionalProperties")
            {
                schema.insert("additionalProperties".to_owned(), Value::Bool(false));
            }
        }
    }
    serde_json::to_string_pretty(&value).unwrap_or_else(|_| document.to_owned())
}

/// Sized integers (`format: uint32`, `int64`, ...) get the `minimum` and `maximum` the
/// format implies, so that the document says what the server accepts: JSON Schema treats
/// `format` as a hint, so a negative number, or one beyond 64 bits (which the server
/// refuses as not a whole number it can hold), would otherwise count as valid.
fn bound_unsigned(value: &mut Value, depth: usize) {
    if depth > 64 {
        return;
    }
    match value {
        Value::Object(map) => {
            let maximum = match map.get("format").and_then(Value::as_str) {
                Some("uint8") => Some(u64::from(u8::MAX)),
                Some("uint16") => Some(u64::from(u16::MAX)),
                Some("uint32") => Some(u64::from(u32::MAX)),
                Some("uint64") => Some(u64::MAX),
                _ => Some(0),
            };
            let integer = map.get("type").and_then(Value::as_str) == Some("integer");
            if integer && maximum != Some(0) {
                map.entry("minimum").or_insert(Value::from(0));
                if let Some(maximum) = maximum {
                    map.entry("maximum").or_insert(Value::from(maximum));
                }
            } else if integer && map.get("format").and_then(Value::as_str) == Some("int64") {
                map.entry("minimum").or_insert(Value::from(i64::MIN));
                map.entry("maximum").or_insert(Value::from(i64::MAX));
            }
            for child in map.values_mut() {
                bound_unsigned(child, depth + 1);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| bound_unsigned(item, depth + 1)),
        _ => {}
    }
}

/// The names of the component schemas `schema` uses directly as whole objects.
fn collect_closed(schema: &Value, document: &Value, closed: &mut BTreeSet<String>, depth: usize) {
    if depth > 16 {
        return;
    }
    if let Some(name) = schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        if closed.insert(name.to_owned())
            && let Some(target) = document.pointer(&format!("/components/schemas/{name}"))
        {
            collect_closed(target, document, closed, depth + 1);
        }
        return;
    }
    // `allOf: [{$ref}, {description}]` is how a described field refers to an object: the
    // object is still whole there. Any other composition splits the fields between parts.
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let refs: Vec<&Value> = parts.iter().filter(|p| p.get("$ref").is_some()).collect();
        let only_described = parts.iter().all(|p| p.get("$ref").is_some() || p.get("properties").is_none());
        if refs.len() == 1 && only_described {
            collect_closed(refs[0], document, closed, depth + 1);
        }
        return;
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for property in properties.values() {
            collect_closed(property, document, closed, depth + 1);
        }
    }
    if let Some(items) = schema.get("items") {
        collect_closed(items, document, closed, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    const DOCUMENT: &str = r##"{
      "paths": {
        "/things": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}}}},
        "/things/{id}": {"get": {}, "delete": {}},
        "/things/special": {"put": {}}
      },
      "components": {"schemas": {"Thing": {"type": "object", "properties": {
        "name": {"type": "string"}, "count": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}
      }}}}
    }"##;

    fn conformance() -> Conformance {
        Conformance::from_document(DOCUMENT, "/api/v1")
    }

    #[test]
    fn a_number_where_a_string_is_declared_is_refused_naming_the_field() {
        let refusal = conformance().check(&Method::POST, "/api/v1/things", br#"{"name": 5}"#).unwrap_err();
        let Refusal::Malformed(error) = refusal else { panic!("expected a malformed body") };
        assert_eq!(error.0.detail, "`name` must be a string");
        let refusal = conformance().check(&Method::POST, "/api/v1/things", br#"{"tags": ["a", true]}"#).unwrap_err();
        let Refusal::Malformed(error) = refusal else { panic!("expected a malformed body") };
        assert_eq!(error.0.detail, "`tags[1]` must be a string");
    }

    #[test]
    fn well_typed_bodies_and_nulls_pass() {
        let body = br#"{"name": "a", "count": 2, "tags": ["x"], "extra": 1}"#;
        assert!(conformance().check(&Method::POST, "/api/v1/things", body).is_ok());
        assert!(conformance().check(&Method::POST, "/api/v1/things", br#"{"name": null}"#).is_ok());
    }

    #[test]
    fn an_unsupported_method_lists_the_supported_ones() {
        let Err(Refusal::MethodNotAllowed(allowed)) = conformance().check(&Method::PATCH, "/api/v1/things/1", b"")
        else {
            panic!("expected 405")
        };
        assert_eq!(allowed, vec![Method::DELETE, Method::GET]);
        assert!(
            conformance().check(&Method::GET, "/api/v1/things/special", b"").is_ok(),
            "a literal path without the method falls back to the parameter path that has it"
        );
        let Err(Refusal::MethodNotAllowed(allowed)) =
            conformance().check(&Method::PATCH, "/api/v1/things/special", b"")
        else {
            panic!("expected 405")
        };
        assert_eq!(allowed, vec![Method::PUT], "Allow names the methods documented for the literal path");
        assert!(conformance().check(&Method::HEAD, "/api/v1/things/1", b"").is_ok());
        assert!(conformance().check(&Method::GET, "/elsewhere", b"").is_ok());
    }

    #[test]
    fn sized_integers_carry_the_bounds_their_format_implies() {
        let document = r#"{"components": {"schemas": {"Run": {"type": "object", "properties": {
            "counts": {"type": "object", "additionalProperties": {"type": "integer", "format": "uint64"}},
            "limit": {"type": "integer", "format": "int64", "maximum": 200},
            "offset": {"type": "integer", "format": "int64"},
            "small": {"type": "integer", "format": "uint16"}
        }}}}}"#;
        let strict: Value = serde_json::from_str(&strict_document(document)).unwrap();
        let field = |name: &str| strict.pointer(&format!("/components/schemas/Run/properties/{name}")).unwrap().clone();
        let counts = field("counts")["additionalProperties"].clone();
        assert_eq!((counts["minimum"].as_u64(), counts["maximum"].as_u64()), (Some(0), Some(u64::MAX)));
        assert_eq!(
            (field("limit")["minimum"].as_i64(), field("limit")["maximum"].as_i64()),
            (Some(i64::MIN), Some(200))
        );
        assert_eq!(
            (field("offset")["minimum"].as_i64(), field("offset")["maximum"].as_i64()),
            (Some(i64::MIN), Some(i64::MAX))
        );
        assert_eq!(field("small")["maximum"].as_u64(), Some(u64::from(u16::MAX)));
    }
}
