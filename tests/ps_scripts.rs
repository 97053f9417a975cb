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

/// The texts of every node of these kinds in a script, lower-cased.
fn tokens(text: &str, kinds: &[&str]) -> std::collections::BTreeSet<String> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .expect("the PowerShell grammar loads");
    let tree = parser.parse(text, None).expect("the parser returns a tree");
    let mut found = std::collections::BTreeSet::new();
    let mut stack: Vec<Node> = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if kinds.contains(&node.kind()) {
            found.insert(text[node.start_byte()..node.end_byte()].to_ascii_lowercase());
        }
        let mut cursor = node.walk();
        stack.extend(node.children(&mut cursor));
    }
    found
}

fn source(name: &str) -> &'static str {
    scripts::SOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn the_grammar_sees_members_commands_and_parameters() {
    let t = tokens(
        "$job.ChildJobs | Get-VHD -Path $x",
        &["member_name", "command_name", "command_parameter"],
    );
    assert!(
        t.contains("childjobs") && t.contains("get-vhd") && t.contains("-path"),
        "{t:?}"
    );
}

#[test]
fn the_move_job_is_judged_by_its_error_streams_not_its_state() {
    // A Move-VM job can end Completed with its errors in $job.Error and its
    // child jobs' Error: hv_job reads them.
    let t = tokens(
        source("scripts/hv_job.ps1"),
        &["member_name", "command_name", "command_parameter"],
    );
    for want in ["error", "childjobs", "receive-job", "-errorvariable"] {
        assert!(t.contains(want), "hv_job.ps1 lacks {want}: {t:?}");
    }
}

#[test]
fn observation_reads_storage_limits_disks_volumes_and_clusters() {
    let hv = tokens(
        source("scripts/hv_observe.ps1"),
        &[
            "member_name",
            "command_name",
            "generic_token",
            "string_literal",
            "simple_name",
        ],
    );
    for want in [
        "get-vhd",
        "get-vmharddiskdrive",
        "maximumstoragemigrations",
        "virtualharddiskpath",
    ] {
        assert!(
            hv.iter().any(|t| t.contains(want)),
            "hv_observe.ps1 lacks {want}"
        );
    }
    let text = source("scripts/hv_observe.ps1").to_ascii_lowercase();
    for want in [
        "win32_volume",
        "mscluster_cluster",
        "mscluster_resourcegroup",
        "statename",
    ] {
        assert!(text.contains(want), "hv_observe.ps1 lacks {want}");
    }
    let vmm = source("scripts/scvmm_observe.ps1").to_ascii_lowercase();
    for want in [
        "livestoragemigrationmaximum",
        "get-scvirtualharddisk",
        "diskvolumes",
        "hostcluster",
    ] {
        assert!(vmm.contains(want), "scvmm_observe.ps1 lacks {want}");
    }
}

#[test]
fn an_undeclared_idle_timeout_is_left_out() {
    // hv_add_acl passes -IdleSessionTimeout only when it is given.
    let text = source("scripts/hv_add_acl.ps1");
    let t = tokens(text, &["if_statement"]);
    assert!(
        t.iter().any(|s| s.contains("idlesessiontimeout")),
        "IdleSessionTimeout is set under a condition"
    );
}
