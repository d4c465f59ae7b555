//! The fast reader against serde_yaml: whatever it accepts must read exactly as serde_yaml
//! reads it into a `Value`; what serde_yaml rejects, it must give up on.

use super::*;
use proptest::prelude::*;
use serde::Deserialize;
use serde_yaml::Value;

fn fast(text: &str) -> Result<Vec<Value>, Bail> {
    let mut out = Vec::new();
    for doc in documents(text)? {
        let mut p = Parser::new(doc);
        out.push(Value::deserialize(p.root())?);
        p.end()?;
    }
    Ok(out)
}

fn careful(text: &str) -> Result<Vec<Value>, String> {
    serde_yaml::Deserializer::from_str(text).map(|d| Value::deserialize(d).map_err(|e| e.to_string())).collect()
}

/// The two readers agree, or the fast one gives up.
fn agree(text: &str) -> bool {
    match fast(text) {
        Ok(v) => {
            assert_eq!(Ok(v), careful(text), "the fast reader reads differently:\n{text}");
            true
        }
        Err(Bail) => false,
    }
}

/// The fast reader takes it, and reads it as serde_yaml does.
#[track_caller]
fn takes(text: &str) {
    assert!(agree(text), "the fast reader gave up on:\n{text}\n(serde_yaml: {:?})", careful(text));
}

#[test]
fn block_collections_as_manifests_write_them() {
    takes("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels:\n    app: web\n");
    takes("status:\n  loadBalancer:\n    ingress:\n    - ip: 20.0.0.1\n    - ip: 20.0.0.2\n      hostname: a\n");
    takes("a:\n  - 1\n  - 2\nb: x\n");
    takes("- a: 1\n  b: [x, y]\n- - nested\n  - seq\n- c:\n  - indentless\n  d: e\n");
    takes("-\n  a: 1\n-\n- x\n");
    takes("a:\nb: ~\nc: null\nd:\n  # comment\n\ne: 1 # trailing\n");
    takes("key : spaced\n\"quoted key\": 1\n'single': 2\n-dash-key: 3\n");
    takes("  indented: doc\n  more: keys\n");
    takes("a: b#not a comment\nc: 'x # y'\n");
    takes("url: http://example.com:8080/x\ntime: 12:30\n");
    takes("");
    takes("# only a comment\n");
}

#[test]
fn scalars_resolve_as_in_a_value() {
    for s in [
        "1",
        "-1",
        "+1",
        "0",
        "-0",
        "007",
        "0x1F",
        "0o17",
        "0b101",
        "-0x10",
        "+0x10",
        "0x",
        "1.5",
        "-1.5e3",
        ".5",
        "5.",
        "1e5",
        ".inf",
        "-.Inf",
        "+.INF",
        ".nan",
        "inf",
        "nan",
        "1_000",
        "18446744073709551615",
        "9223372036854775808",
        "-9223372036854775808",
        "true",
        "True",
        "TRUE",
        "tRUE",
        "false",
        "yes",
        "no",
        "on",
        "~",
        "null",
        "Null",
        "NULL",
        "nul",
        "10.0.5.1/24",
        "20.0.0.100",
        "fd00::1",
        "65005:100",
        "a b c",
        "-",
        "--x",
        "0.",
        "+",
        "+-1",
        "1e",
        "0x-1",
        "-0o7",
        "0b",
        "v1",
        "Infinity",
        "1.2.3",
        "0xFF",
        "0XFF",
        "1e10",
        "-.5",
        "+.5",
        "0o8",
        "Inf",
        ".Nan",
        "1_0",
        "0x_1",
        "ab",
        "dead",
        "0xdead.beef",
    ] {
        agree(&format!("v: {s}\n"));
        agree(&format!("- {s}\n"));
        agree(&format!("[{s}]\n"));
        if s != "-" {
            takes(&format!("v: {s}\n"));
        }
    }
    takes("v: 340282366920938463463374607431768211456\n");
    // Too big for 64 bits but not for 128: serde_yaml's Value cannot hold it.
    assert!(!agree("v: 18446744073709551616\n"));
}

#[test]
fn quoted_scalars_and_escapes() {
    takes("a: 'it''s'\nb: \"say \\\"hi\\\"\\n\\t\\\\ \\x41 \\u00e9 \\U0001F600 \\/ \\0 \\e \\N \\_ \\L \\P\"\n");
    takes("a: \"\"\nb: ''\nc: \"null\"\nd: '1'\ne: \"true\"\n");
    takes("\"a\": \"b\"\n");
    takes("a: \"x\" # comment\n");
    takes("label: \"日本語\"\nplain: 日本語 テキスト\n");
    assert!(!agree("a: \"\\q\"\n"), "an unknown escape is an error");
    assert!(!agree("a: \"\\ud800\"\n"), "a surrogate is an error");
}

#[test]
fn block_scalars() {
    takes("a: |\n  line 1\n  line 2\nb: 1\n");
    takes("a: |-\n  line 1\n\n  line 3\n\n\nb: 1\n");
    takes("a: |\n\n  after an empty line\n    more indented\n  back\n");
    takes("a: >\n  folded\n  into one\n\n  paragraph two\nb: x\n");
    takes("a: >-\n  folded\n  stripped\n");
    takes("a: |+\n  kept\n");
    takes("a: | # comment\n  text\n");
    takes("- |\n  in a sequence\n- >\n  folded item\n");
    takes(
        "metadata:\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: |\n      {\"apiVersion\":\"v1\",\"kind\":\"Service\"}\n  name: web\n",
    );
}

#[test]
fn flow_collections() {
    takes("a: {b: c, d: [1, 2, {e: f}]}\n");
    takes("a: []\nb: {}\nc: [ x , y ]\n");
    takes("metadata: {name: kind-worker, labels: {rack: rack0}}\nspec: {podCIDRs: [10.1.0.0/24, \"fd00:1::/64\"]}\n");
    takes("a: {b: c,\n  d: e}\nf: [1,\n  2]\n");
    takes("a: [x, y] # comment\n");
    takes("- {a: 1}\n- [b]\n");
    takes("[1, 2]\n");
}

#[test]
fn documents_are_counted_as_serde_yaml_counts_them() {
    takes("a: 1\n---\nb: 2\n");
    takes("---\na: 1\n---\n---\nb: 2\n---\n");
    takes("# comment\n---\na: 1\n");
    takes("a: 1\n--- # comment\nb: 2\n");
    takes("---\n# only a comment\n---\na: 1\n");
    takes("a: ----\n");
}

#[test]
fn errors_and_unsupported_syntax_give_up() {
    for text in [
        "a: b: c\n",
        "a: 1\n b: 2\n",
        "a:\n  b: 1\n c: 2\n",
        "a: 1\na: 2\n",
        "a: {b: 1, b: 2}\n",
        "a: 1\n- b\n",
        "a: [1, 2\n",
        "a: \"open\n",
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "? complex\n: key\n",
        "a:\tb\n",
        "a: b\r\n",
        "%YAML 1.2\n---\na: 1\n",
        "a: 1\n...\n",
        "--- a: 1\n",
        "a: multi\n  line plain\n",
        "a: 'multi\n  line'\n",
        "a: |2\n  explicit\n",
        "{a: 1}: b\n",
        "[a: 1]\n",
        "a: [1, , 2]\n",
        "a: {b}\n",
        "a: \"x\" junk\n",
        "\u{feff}a: 1\n",
        "a: \u{85}\n",
    ] {
        assert!(!agree(text), "should give up on {text:?}");
    }
}

#[test]
fn every_manifest_in_the_repository_reads_the_same() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut dirs: Vec<_> =
        ["examples", "deploy", "containerlab", "proto-tests", "docs"].iter().map(|d| root.join(d)).collect();
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 5, "{files:?}");
    let mut taken = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        if agree(&text) {
            taken += 1;
        }
    }
    // The seed's manifests (their comments are Chinese) are the ones users copy.
    for f in ["bgp-peering-policies.yaml", "lb-ip-pool.yaml", "nginx.yaml"] {
        takes(&std::fs::read_to_string(root.join("examples/seed").join(f)).unwrap());
    }
    assert!(taken * 2 > files.len(), "the fast reader took only {taken} of {} files", files.len());
}

/// Pieces of lines that exercise indentation, keys, sequences, scalars and flow.
fn line() -> impl Strategy<Value = String> {
    let indent = prop::sample::select(vec!["", " ", "  ", "   ", "    ", "      "]);
    let scalar = prop::sample::select(vec![
        "x",
        "1",
        "-2",
        "0x1f",
        "1.5",
        "true",
        "~",
        "null",
        "",
        "a b",
        "'q'",
        "\"d\\n\"",
        "'it''s'",
        "[a, b]",
        "{a: 1}",
        "[]",
        "{}",
        "|",
        ">-",
        "a:b",
        "b#c",
        "# c",
        "007",
        ".inf",
        "- x",
        "\"k\": v",
        "[a, {b: c}]",
        "{a: [1, 2]}",
        "20.0.0.1",
        "fd00::1",
    ]);
    let key = prop::sample::select(vec!["a", "b", "c", "ip", "\"q\"", "'s'", "a b", "-k"]);
    let shape = prop::sample::select(vec![0u8, 1, 2, 3, 4, 5, 6]);
    (indent, key, scalar, shape).prop_map(|(i, k, s, shape)| match shape {
        0 => format!("{i}{k}: {s}"),
        1 => format!("{i}- {s}"),
        2 => format!("{i}- {k}: {s}"),
        3 => format!("{i}{k}:"),
        4 => format!("{i}{s}"),
        5 => format!("{i}---"),
        _ => format!("{i}-"),
    })
}

/// Values as documents hold them, to be written out by serde_yaml's emitter.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Number(i.into())),
        (-1e6f64..1e6).prop_map(|f| Value::Number(f.into())),
        prop::sample::select(vec![
            "",
            "x",
            "a b",
            "1",
            "true",
            "null",
            "~",
            "0x1f",
            "007",
            "it's",
            "say \"hi\"",
            "a: b",
            "- x",
            "#c",
            "日本",
            "10.0.5.1/24",
            "fd00::1",
            "line\nbreak",
            "trailing ",
            " leading",
            "[x]",
            "{y}",
            "a,b",
            "*",
            "&",
            "!",
            "%",
            "@",
            "`",
            "|",
            ">",
            "?",
            ":",
            "-",
            "---",
            "...",
            "\\",
            "tab\tin",
            "20.0.0.1",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Sequence),
            prop::collection::btree_map(
                prop::sample::select(vec!["a", "b", "ip", "name", "key with space", "1", "true", "x:y", "-k"]),
                inner,
                0..5
            )
            .prop_map(|m| Value::Mapping(m.into_iter().map(|(k, v)| (Value::String(k.to_string()), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_yaml_reads_the_same_or_gives_up(lines in prop::collection::vec(line(), 1..10), nl in any::<bool>()) {
        let mut text = lines.join("\n");
        if nl {
            text.push('\n');
        }
        agree(&text);
    }

    #[test]
    fn mangled_manifests_read_the_same_or_give_up(
        edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec!["", " ", "  ", "\n", ":", "- ", "#", "'", "\"", "[", "]", "{", "}", ",", "|", ">", "x", "1"]), 0..3usize), 1..4)
    ) {
        let mut text = String::from(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: {app: web, tier: \"1\"}\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n    protocol: TCP\nstatus:\n  loadBalancer:\n    ingress:\n    - ip: 20.0.0.1\n    - ip: 20.0.0.2\n---\na: |\n  text\n  more\nb: [1, 2]\n",
        );
        for (at, piece, cut) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            let end = (i + cut).min(text.len());
            if text.is_char_boundary(end) {
                text.replace_range(i..end, piece);
            }
        }
        agree(&text);
    }

    #[test]
    fn what_serde_yaml_writes_reads_the_same(v in value()) {
        let text = serde_yaml::to_string(&v).unwrap();
        agree(&text);
    }
}
