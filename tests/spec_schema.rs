//! The committed JSON Schemas match the code, and the shipped examples are
//! valid documents.

use std::path::{Path, PathBuf};

use berth::cli::render::spec_error_plain;
use berth::spec::{self, ProviderSpec};

const REGENERATE: &str = "run `cargo run -- schema --out schemas` and commit the result";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A schema file's text exactly as `berth schema --out` writes it.
fn rendered(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).expect("a schema serializes") + "\n"
}

#[test]
fn committed_schemas_match_the_code() {
    let dir = repo().join("schemas");
    assert!(dir.is_dir(), "{} is missing; {REGENERATE}", dir.display());
    let mut stale = Vec::new();
    for (name, value) in spec::schemas() {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) if text == rendered(&value) => {}
            Ok(_) => stale.push(format!("schemas/{name} differs from spec::schemas()")),
            Err(e) => stale.push(format!("schemas/{name} cannot be read: {e}")),
        }
    }
    assert!(stale.is_empty(), "{}; {REGENERATE}", stale.join("; "));

    // No schema file is left over from a kind that no longer exists.
    let known: Vec<&str> = spec::schemas().iter().map(|(n, _)| *n).collect();
    for entry in std::fs::read_dir(&dir).expect("read schemas/") {
        let name = entry.expect("a directory entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".json") {
            assert!(
                known.contains(&name.as_ref()),
                "schemas/{name} is not produced by spec::schemas(); delete it or {REGENERATE}"
            );
        }
    }
}

#[test]
fn schemas_describe_the_three_kinds() {
    let schemas = spec::schemas();
    let names: Vec<&str> = schemas.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["placement.json", "controller.json", "fleet.json"]);
    for ((name, value), kind) in schemas.iter().zip(["Placement", "Controller", "Fleet"]) {
        assert_eq!(
            value["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        assert_eq!(
            value["$id"],
            format!("https://berth.dev/schemas/{}.json", kind.to_lowercase()),
            "{name}"
        );
        assert_eq!(
            value["properties"]["apiVersion"]["const"], "berth/v1",
            "{name}"
        );
        assert_eq!(value["properties"]["kind"]["const"], kind, "{name}");
        assert_eq!(value["additionalProperties"], false, "{name}");
        let required = value["required"].as_array().expect("required fields");
        assert!(required.iter().any(|r| r == "spec"), "{name}: {required:?}");
    }
}

#[test]
fn schema_command_writes_the_committed_files() {
    let out = tempfile::tempdir().expect("a temporary directory");
    assert_cmd::Command::cargo_bin("berth")
        .expect("the berth binary")
        .args(["schema", "--out"])
        .arg(out.path())
        .assert()
        .success();
    for (name, value) in spec::schemas() {
        let written = std::fs::read_to_string(out.path().join(name)).expect("a written schema");
        assert_eq!(written, rendered(&value), "{name}");
    }
}

fn check_example(name: &str) {
    let dir: PathBuf = repo().join("examples").join(name);
    assert!(
        dir.is_dir(),
        "the example directory {} is missing",
        dir.display()
    );
    let desired = match spec::load(std::slice::from_ref(&dir)) {
        Ok(d) => d,
        Err(e) => panic!("examples/{name} is invalid:\n{}", spec_error_plain(&e)),
    };
    assert!(
        !desired.hosts.is_empty(),
        "examples/{name} declares no hosts"
    );
    assert!(!desired.vms.is_empty(), "examples/{name} declares no VMs");
    // The Controller's simulator world exists and loads on its own.
    let controller = desired
        .controller
        .unwrap_or_else(|| panic!("examples/{name} has no Controller document"));
    if let ProviderSpec::Sim { fleet } = &controller.provider
        && let Err(e) = spec::load_fleet(fleet)
    {
        panic!(
            "examples/{name}: the Fleet {} does not load:\n{}",
            fleet.display(),
            spec_error_plain(&e)
        );
    }
}

#[test]
fn the_lab_example_is_valid() {
    check_example("lab");
}

#[test]
fn the_maintenance_example_is_valid() {
    check_example("maintenance");
}
