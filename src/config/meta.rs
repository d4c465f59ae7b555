//! Kubernetes object metadata and label selectors (the subset kbgp reads).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `metadata` of any object. Unknown fields (uid, managedFields, ...) are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub creation_timestamp: Option<String>,
}

/// A label requirement.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// In, NotIn, Exists or DoesNotExist.
    #[schemars(extend("enum" = ["In", "NotIn", "Exists", "DoesNotExist"]))]
    pub operator: String,
    /// Values for In and NotIn; empty for Exists and DoesNotExist.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A label selector: every matchLabels pair and every expression must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements on labels.
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// Why a selector did or did not match, for `kbgp why`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectorMatch {
    Matched,
    /// The selector has no terms.
    Empty,
    /// The first term that failed, in words.
    Failed(String),
}

impl LabelSelector {
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// The selector in the short form `kubectl get -l` takes: `app=web,tier in (a,b),!legacy`.
    pub fn describe(&self) -> String {
        let mut terms: Vec<String> = self.match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for e in &self.match_expressions {
            terms.push(match e.operator.as_str() {
                "Exists" => e.key.clone(),
                "DoesNotExist" => format!("!{}", e.key),
                "In" => format!("{} in ({})", e.key, e.values.join(",")),
                "NotIn" => format!("{} notin ({})", e.key, e.values.join(",")),
                op => format!("{} {op} ({})", e.key, e.values.join(",")),
            });
        }
        if terms.is_empty() { "{}".into() } else { terms.join(",") }
    }

    /// Checks the operators and values (as the API server would). Returns (path, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        for (i, e) in self.match_expressions.iter().enumerate() {
            let p = format!("matchExpressions[{i}]");
            match e.operator.as_str() {
                "In" | "NotIn" if e.values.is_empty() => {
                    errs.push((format!("{p}.values"), format!("must not be empty for operator {}", e.operator)))
                }
                "Exists" | "DoesNotExist" if !e.values.is_empty() => {
                    errs.push((format!("{p}.values"), format!("must be empty for operator {}", e.operator)))
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => errs.push((
                    format!("{p}.operator"),
                    format!("{other:?} is not one of In, NotIn, Exists, DoesNotExist"),
                )),
            }
            if e.key.is_empty() {
                errs.push((format!("{p}.key"), "must not be empty".into()));
            }
        }
        errs
    }

    /// Kubernetes semantics: an empty selector matches everything.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !matches!(self.explain(labels), SelectorMatch::Failed(_))
    }

    /// Like [`matches`](Self::matches), saying which term failed.
    pub fn explain(&self, labels: &BTreeMap<String, String>) -> SelectorMatch {
        if self.is_empty() {
            return SelectorMatch::Empty;
        }
        for (k, v) in &self.match_labels {
            match labels.get(k) {
                Some(x) if x == v => {}
                Some(x) => return SelectorMatch::Failed(format!("label {k}={x:?}, selector wants {v:?}")),
                None => return SelectorMatch::Failed(format!("no label {k} (selector wants {k}={v:?})")),
            }
        }
        for e in &self.match_expressions {
            let have = labels.get(&e.key);
            let ok = match e.operator.as_str() {
                "In" => have.is_some_and(|v| e.values.contains(v)),
                "NotIn" => !have.is_some_and(|v| e.values.contains(v)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            };
            if !ok {
                let what = match have {
                    Some(v) => format!("label {}={v:?}", e.key),
                    None => format!("no label {}", e.key),
                };
                return SelectorMatch::Failed(format!(
                    "{what}, selector wants {} {} {:?}",
                    e.key, e.operator, e.values
                ));
            }
        }
        SelectorMatch::Matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn sel(yaml: &str) -> LabelSelector {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn match_labels_and_expressions() {
        let l = labels(&[("rack", "rack0"), ("advertise-bgp", "true")]);
        let cases = [
            ("matchLabels: {rack: rack0}", true),
            ("matchLabels: {rack: rack1}", false),
            ("matchLabels: {zone: a}", false),
            ("matchExpressions: [{key: rack, operator: In, values: [rack0, rack9]}]", true),
            ("matchExpressions: [{key: rack, operator: NotIn, values: [rack0]}]", false),
            ("matchExpressions: [{key: somekey, operator: NotIn, values: [never-used-value]}]", true),
            ("matchExpressions: [{key: rack, operator: Exists}]", true),
            ("matchExpressions: [{key: rack, operator: DoesNotExist}]", false),
            ("matchExpressions: [{key: zone, operator: DoesNotExist}]", true),
            ("{}", true),
        ];
        for (y, want) in cases {
            assert_eq!(sel(y).matches(&l), want, "{y}");
        }
    }

    #[test]
    fn describe_reads_like_a_kubectl_selector() {
        let s = sel(
            "{matchLabels: {app: web}, matchExpressions: [{key: tier, operator: In, values: [a, b]}, {key: legacy, operator: DoesNotExist}, {key: x, operator: Exists}]}",
        );
        assert_eq!(s.describe(), "app=web,tier in (a,b),!legacy,x");
        assert_eq!(sel("{}").describe(), "{}");
    }

    #[test]
    fn explanations_name_the_failing_label() {
        let s = sel("matchLabels: {advertise-bgp: \"true\"}");
        assert_eq!(
            s.explain(&labels(&[])),
            SelectorMatch::Failed("no label advertise-bgp (selector wants advertise-bgp=\"true\")".into())
        );
        assert_eq!(s.explain(&labels(&[("advertise-bgp", "true")])), SelectorMatch::Matched);
    }

    #[test]
    fn validation() {
        assert!(sel("matchExpressions: [{key: a, operator: In, values: []}]").validate()[0].0.ends_with(".values"));
        assert!(
            sel("matchExpressions: [{key: a, operator: Equals, values: [x]}]").validate()[0].0.ends_with(".operator")
        );
        assert!(
            sel("matchExpressions: [{key: a, operator: Exists, values: [x]}]").validate()[0].0.ends_with(".values")
        );
        assert!(sel("matchExpressions: [{key: a, operator: Exists}]").validate().is_empty());
    }
}
