//! The `ddpm-lab` binary.

fn main() -> std::process::ExitCode {
    // Before any other thread exists: tune candle's CPU thread pool and the allocator for the
    // custom CPU ops (see `ddpm_lab::ops`).
    ddpm_lab::ops::configure_cpu_threads();
    ddpm_lab::cli::main()
}
