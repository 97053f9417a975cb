//! The `berth` binary: a thin shell over [`berth::cli`].

// Loading and planning a large estate allocates millions of small strings
// and maps; glibc's allocator spent a quarter of `berth plan`'s time on a
// 100,000-VM world (docs/dependencies.md has the measurement).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    berth::cli::main()
}
