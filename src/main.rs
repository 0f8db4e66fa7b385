//! The `ddpm-lab` binary: the lab (no arguments) or a headless subcommand.

fn main() -> std::process::ExitCode {
    ddpm_lab::cli::main()
}
