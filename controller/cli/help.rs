//! The examples and exit codes each command's `--help` ends with.
//!
//! A person trying berth reads `--help` before the docs: each command shows
//! two or three runnable examples (the paths are the repository's own
//! `examples/`) and the exit codes the contract fixes.

/// The exit-code table of the contract, as help text.
macro_rules! exit_codes {
    () => {
        concat!(
            "Exit codes:\n",
            "    0  success (for `plan`, also \"in sync\")\n",
            "    1  error: invalid input, provider failure, refused, or `apply` ended without converging\n",
            "    2  `plan --detailed-exitcode` found changes to make\n",
            "  130  interrupted (Ctrl-C / SIGINT)\n",
        )
    };
}

/// `berth --help`.
pub const BERTH: &str = concat!(
    "Examples:\n  \
     berth validate examples/lab\n  \
     berth plan examples/lab\n  \
     berth apply examples/lab --auto-approve\n\n",
    exit_codes!(),
    "\nDocumentation: README.md and docs/ (reference.md lists every field and output).\n"
);

/// `berth validate --help`.
pub const VALIDATE: &str = concat!(
    "Examples:\n  \
     berth validate examples/lab                    # a directory: every *.yaml/*.yml below it\n  \
     berth validate placement.yaml controller.yaml  # several files\n  \
     berth validate . && echo valid                 # in CI: exit 1 on any problem\n\n",
    exit_codes!()
);

/// `berth plan --help`.
pub const PLAN: &str = concat!(
    "Examples:\n  \
     berth plan examples/lab                                   # provider from the Controller document\n  \
     berth plan placement/ --provider sim:fleet.yaml --diff    # against a simulated fleet\n  \
     berth plan placement/ --observed snapshot.yaml --output markdown --detailed-exitcode\n\n",
    exit_codes!(),
    "\n`plan` changes nothing on the hosts.\n"
);

/// `berth apply --help`.
pub const APPLY: &str = concat!(
    "Examples:\n  \
     berth apply examples/lab                        # shows the plan, then asks at the terminal\n  \
     berth apply examples/lab --auto-approve         # no question (CI, scripts)\n  \
     berth apply placement/ --auto-approve --max-moves 5 --output json\n\n",
    exit_codes!(),
    "\nWith the simulator, times are simulated time; the summary also shows the wall-clock time.\n"
);

/// `berth watch --help`.
pub const WATCH: &str = concat!(
    "Examples:\n  \
     berth watch examples/maintenance --status-file /tmp/status.json\n  \
     berth watch /var/lib/berth/placement --metrics-addr 127.0.0.1:9184 --log-format json\n  \
     NO_COLOR=1 berth watch placement/ --provider sim:fleet.yaml 2>watch.log\n\n",
    exit_codes!(),
    "\nLogs go to stderr, coloured only on a terminal and never with NO_COLOR or --log-format json.\n"
);

/// `berth observe --help`.
pub const OBSERVE: &str = concat!(
    "Examples:\n  \
     berth observe --provider sim:examples/lab/fleet.yaml   # a simulated fleet\n  \
     berth observe examples/lab                              # the provider of the Controller document there\n  \
     berth observe --provider hyperv > snapshot.yaml         # for `berth plan --observed snapshot.yaml`\n\n",
    exit_codes!()
);

/// `berth schema --help`.
pub const SCHEMA: &str = concat!(
    "Examples:\n  \
     berth schema --out schemas     # writes placement.json, controller.json, fleet.json\n  \
     berth schema | jq 'keys'       # all three as one JSON object\n\n",
    exit_codes!()
);

/// `berth sim --help` and `berth sim reset --help`.
pub const SIM: &str = concat!(
    "Examples:\n  \
     berth sim reset examples/lab/fleet.yaml   # the next run starts from the Fleet file\n  \
     rm -r examples/lab/.berth                  # the same, by hand\n\n",
    exit_codes!()
);
