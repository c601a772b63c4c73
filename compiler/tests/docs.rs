//! docs/language.md is generated from the schema (`mlops schema --format markdown`); this test
//! fails when they drift apart. `BLESS=1` rewrites the file.

use std::path::Path;

#[test]
fn language_reference_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/language.md");
    let generated = mlops_compiler::json_schema::markdown_reference();
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/language.md is out of date: run `BLESS=1 cargo test -p mlops-compiler --test docs`"
    );
}

#[test]
fn reference_lists_every_block_attribute_function_and_code() {
    let md = mlops_compiler::json_schema::markdown_reference();
    for b in mlops_compiler::schema::all_blocks() {
        assert!(
            md.contains(&format!("`{}", b.kind)) || md.contains(&format!("\"{}\"`", b.kind)),
            "block {} missing",
            b.kind
        );
        for a in b.attrs {
            assert!(md.contains(&format!("| `{}` |", a.name)), "attribute {}.{} missing", b.kind, a.name);
        }
    }
    for f in mlops_compiler::functions::FUNCTIONS {
        assert!(md.contains(&format!("| `{}` |", f.name)), "function {} missing", f.name);
    }
    for (code, _) in mlops_compiler::codes::ALL {
        assert!(md.contains(code), "code {code} missing");
    }
}

#[test]
fn json_schema_covers_the_language() {
    let s = mlops_compiler::json_schema::json_schema();
    let props = s["properties"].as_object().unwrap();
    for b in mlops_compiler::schema::TOP_LEVEL {
        assert!(props.contains_key(b.kind), "{} missing from the JSON Schema", b.kind);
    }
    // A labelled resource: kind → name → body; required attributes are listed.
    let source = &s["properties"]["source"]["additionalProperties"];
    assert_eq!(source["required"], serde_json::json!(["format", "schema"]));
    assert_eq!(source["properties"]["format"]["enum"], serde_json::json!(["csv", "parquet", "postgres"]));
    let job = &s["properties"]["training_job"]["additionalProperties"];
    assert_eq!(job["properties"]["label"]["x-mlops-requires-replace"], serde_json::json!(true));
    assert!(job["x-mlops-exports"].as_array().unwrap().iter().any(|e| e["name"] == "version" && e["computed"] == true));
}
