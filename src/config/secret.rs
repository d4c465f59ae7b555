//! Secrets: the TCP MD5 passwords of `authSecretRef` (RFC 2385), from a `v1` `Secret` in the
//! configuration files (`data` in base64, or `stringData`), as in a cluster.
//!
//! A Secret's values never appear in logs, errors, `Debug` output or the admin API: they are
//! held as [`SecretValue`], whose `Debug` prints only the length.

use super::error::Diag;
use super::meta::ObjectMeta;
use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The key of a Secret that holds the password, as Cilium reads it.
pub const PASSWORD_KEY: &str = "password";

/// One value of a Secret: bytes that are compared, never shown.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretValue(Arc<[u8]>);

impl SecretValue {
    pub fn new(bytes: &[u8]) -> SecretValue {
        SecretValue(bytes.into())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} octets, not shown>", self.0.len())
    }
}

/// A Secret as kbgp uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    pub namespace: String,
    pub name: String,
    pub data: BTreeMap<String, SecretValue>,
}

/// A `v1` `Secret` document as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRaw {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
}

impl Secret {
    /// Validates a Secret document: `data` values must be base64 (the error names the key,
    /// never the value). `stringData` wins over `data` for the same key, as in Kubernetes.
    pub(crate) fn from_raw(name: &str, raw: &SecretRaw, d: &mut Diag) -> Secret {
        let mut data = BTreeMap::new();
        for (k, v) in &raw.data {
            // Kubernetes accepts the standard alphabet with padding; whitespace is not allowed
            // in the API, but a folded YAML scalar may carry newlines.
            let compact: String = v.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            match base64::engine::general_purpose::STANDARD.decode(compact) {
                Ok(b) => {
                    data.insert(k.clone(), SecretValue::new(&b));
                }
                Err(_) => d.err(format!("data.{k}"), "is not valid base64 (use stringData for plain text)"),
            }
        }
        for (k, v) in &raw.string_data {
            data.insert(k.clone(), SecretValue::new(v.as_bytes()));
        }
        Secret {
            namespace: raw.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            name: name.to_string(),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;

    #[test]
    fn data_and_string_data_and_no_value_in_debug() {
        let y = "apiVersion: v1\nkind: Secret\nmetadata: {name: bgp-auth, namespace: kube-system}\n\
                 data: {password: c2VjcmV0LTE=, other: eA==}\nstringData: {other: plain}\n";
        let l = load_str(y, "t").unwrap();
        let s = &l.world.secrets[0];
        assert_eq!((s.namespace.as_str(), s.name.as_str()), ("kube-system", "bgp-auth"));
        assert_eq!(s.data["password"].bytes(), b"secret-1");
        assert_eq!(s.data["other"].bytes(), b"plain", "stringData wins");
        let shown = format!("{:?}", l.world);
        assert!(!shown.contains("secret-1") && !shown.contains("c2VjcmV0LTE"), "{shown}");
    }

    #[test]
    fn bad_base64_names_the_key_not_the_value() {
        let y = "apiVersion: v1\nkind: Secret\nmetadata: {name: bgp-auth}\ndata: {password: \"not base64!\"}\n";
        let e: Vec<String> = load_str(y, "t").unwrap_err().iter().map(|e| e.to_string()).collect();
        assert_eq!(e, vec!["bgp-auth: data.password: is not valid base64 (use stringData for plain text)"]);
    }
}
