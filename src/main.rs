//! The `ddpm-lab` binary.

fn main() -> std::process::ExitCode {
    ddpm_lab::cli::main()
}
