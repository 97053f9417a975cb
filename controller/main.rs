//! The `berth` binary: a thin shell over [`berth::cli`].

// Loading and planning a large estate allocates millions of small strings
// and maps; glibc's allocator spent a quarter of `berth plan`'s time on a
// 100,000-VM world (docs/dependencies.md has the measurement).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the same index in
/// its v2 and v3 headers); libmimalloc-sys names only the older options.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // `watch` gives freed memory back to the system at once rather than
    // after a delay: it re-reads and re-plans the whole estate on every
    // change, and with the default delay its resident size kept the last
    // pass's garbage (at 100,000 VMs, 1.19 GiB after a few changes against
    // 0.84 GiB). One-shot commands keep the default: on `plan` the
    // immediate purge cost up to a third more system time here.
    if std::env::args_os().nth(1).is_some_and(|a| a == "watch") {
        // SAFETY: sets an option before any thread is started; mimalloc
        // reads it when it next purges.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    berth::cli::main()
}
