//! Every PowerShell script berth ships parses cleanly under
//! tree-sitter-powershell: no ERROR and no MISSING nodes, in the files as
//! written and in the texts berth actually sends (common.ps1 + script).

use berth::provider::powershell::scripts;
use tree_sitter::{Node, Parser};

fn problems(text: &str) -> Vec<String> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .expect("the PowerShell grammar loads");
    let tree = parser.parse(text, None).expect("the parser returns a tree");
    let mut found = Vec::new();
    let mut stack: Vec<Node> = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            let p = node.start_position();
            let snippet: String = text
                [node.start_byte()..node.end_byte().min(node.start_byte() + 60)]
                .chars()
                .collect();
            found.push(format!(
                "{} at line {}, column {}: {snippet:?}",
                if node.is_missing() {
                    format!("MISSING {}", node.kind())
                } else {
                    "ERROR".to_string()
                },
                p.row + 1,
                p.column + 1
            ));
        }
        let mut cursor = node.walk();
        stack.extend(node.children(&mut cursor));
    }
    found
}

#[test]
fn every_source_file_parses_without_errors() {
    assert!(scripts::SOURCES.len() >= 14);
    let mut all = Vec::new();
    for (name, text) in scripts::SOURCES {
        for p in problems(text) {
            all.push(format!("{name}: {p}"));
        }
    }
    assert!(all.is_empty(), "syntax problems:\n{}", all.join("\n"));
}

#[test]
fn every_script_as_sent_parses_without_errors() {
    let mut all = Vec::new();
    for s in scripts::HYPERV.iter().chain(scripts::SCVMM) {
        for p in problems(s.text) {
            all.push(format!("{}: {p}", s.name));
        }
    }
    assert!(all.is_empty(), "syntax problems:\n{}", all.join("\n"));
}

#[test]
fn the_check_finds_a_broken_script() {
    // The test above would be worthless if the grammar accepted anything.
    assert!(!problems("function f { if ($a -eq ) { ").is_empty());
    assert!(!problems("$x = @{ a = 1").is_empty());
}

#[test]
fn scripts_are_ascii_and_every_file_is_shipped() {
    for (name, text) in scripts::SOURCES {
        assert!(text.is_ascii(), "{name} holds non-ASCII text");
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("controller/provider/scripts");
    for entry in std::fs::read_dir(&dir).expect("scripts dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "ps1") {
            let file = format!("scripts/{}", path.file_name().unwrap().to_string_lossy());
            assert!(
                scripts::SOURCES.iter().any(|(n, _)| *n == file),
                "{file} is not embedded"
            );
        }
    }
}
