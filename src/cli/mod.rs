//! The command line: `ddpm-lab` opens the lab (TUI); subcommands run the engine headless.

pub mod bench_cmd;
pub mod check_device_cmd;
pub mod classifier_cmd;
pub mod data_cmd;
pub mod eval_cmd;
pub mod forward_cmd;
pub mod import_cmd;
pub mod lab_cmd;
pub mod model_args;
pub mod runs_cmd;
pub mod sample_cmd;
pub mod sampler_args;
pub mod schedules_cmd;
pub mod train_cmd;

use std::process::ExitCode;

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::{Parser, Subcommand};

/// `--dataset`'s parser: a name or a path, as text. A path that is not UTF-8 is refused with
/// the reason (a run records its data's path in its config.json, which is JSON text), where
/// clap's own check named no flag.
pub fn dataset_arg() -> impl TypedValueParser<Value = String> {
    OsStringValueParser::new().try_map(|s| {
        s.into_string().map_err(|_| {
            "not valid UTF-8, and a run records its data's path as text: give a link to it \
             with a UTF-8 name (ln -s)"
        })
    })
}

/// A terminal lab for denoising diffusion models (DDPM): train a UNet on Fashion-MNIST, compare
/// beta schedules and step through denoising. Run without a command to open the lab.
#[derive(Debug, Parser)]
#[command(
    name = "ddpm-lab",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    lab: lab_cmd::LabArgs,
}

/// Headless commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Train a UNet (progress bar, or JSON lines with --json)
    // `--steps -5` is a bad value (said as such), not an unknown flag `-5`.
    #[command(allow_negative_numbers = true)]
    Train(Box<train_cmd::TrainArgs>),
    /// Generate images from a trained run: PNG grid and denoising GIF
    // `--n -1` is a bad value (said as such), not an unknown flag `-1`.
    #[command(allow_negative_numbers = true)]
    Sample(sample_cmd::SampleArgs),
    /// Print or plot the four beta schedules and their derived tables
    Schedules(schedules_cmd::SchedulesArgs),
    /// Run the UNet once on tensors from a safetensors file (PyTorch parity tool)
    Forward(forward_cmd::ForwardArgs),
    /// Download (if needed) and summarise a dataset
    Data(data_cmd::DataArgs),
    /// Time a training step, a forward pass and a sampling run (JSON with --json)
    // A flag given twice takes its last value (scripts append their own to the user's).
    #[command(args_override_self = true)]
    Bench(bench_cmd::BenchArgs),
    /// Check that a device (a GPU) computes the UNet's output and gradients as the CPU does
    CheckDevice(check_device_cmd::CheckDeviceArgs),
    /// Score a run's samples against real images (Fréchet distance, share recognised, classes)
    #[command(allow_negative_numbers = true)]
    Eval(eval_cmd::EvalArgs),
    /// List the runs under the runs directory, newest first (JSON lines with --json)
    Runs(runs_cmd::RunsArgs),
    /// Make a run of weights trained elsewhere (a PyTorch state_dict in safetensors), for
    /// sample, eval, the lab and train --resume
    Import(Box<import_cmd::ImportArgs>),
    /// Train the classifier `eval` scores with (for developers: writes assets/classifier/,
    /// which ships inside the binary)
    TrainClassifier(classifier_cmd::ClassifierArgs),
}

/// The `error` event of `--json`: what failed, on stdout for a script that reads only that.
fn error_event(message: &str) -> serde_json::Value {
    serde_json::json!({ "event": "error", "message": message })
}

/// Prints the `error` event of `--json` on stdout (a reader that is gone is no reason to fail
/// louder).
fn print_json_error(message: &str) {
    use std::io::Write as _;
    let line = error_event(message);
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Whether the arguments (after the program's name) ask for JSON of a command that has it.
fn json_asked(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    use clap::CommandFactory as _;
    let args: Vec<std::ffi::OsString> = args.collect();
    let cli = Cli::command();
    // The subcommand named first, where it has a `--json` flag (clap's own list).
    let has_json = args
        .first()
        .and_then(|a| cli.find_subcommand(a.to_str()?))
        .is_some_and(|sub| sub.get_arguments().any(|a| a.get_id() == "json"));
    has_json && args.iter().any(|a| a == "--json")
}

/// What to try instead of a command line clap refuses, where there is a likelier meaning:
/// `train --resume RUN --run-dir DIR` (a copy of the run trained elsewhere) is `--branch DIR`.
fn usage_tip(e: &clap::Error, args: impl Iterator<Item = std::ffi::OsString>) -> Option<String> {
    let args: Vec<std::ffi::OsString> = args.collect();
    let given = |flag: &str| {
        args.iter().any(|a| {
            a.to_str()
                .is_some_and(|a| a == flag || a.starts_with(&format!("{flag}=")))
        })
    };
    let branch = e.kind() == clap::error::ErrorKind::ArgumentConflict
        && args.first().is_some_and(|a| a == "train")
        && given("--resume")
        && given("--run-dir");
    branch.then(|| {
        "tip: to train a copy of the run in another folder, leaving the run as it is, give \
         --branch DIR instead of --run-dir DIR"
            .to_string()
    })
}

/// Parses the command line and runs it; errors are printed as one line on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        // `--json` promises its reader an `error` event for every failure: a usage error too
        // (`--steps 3 --epochs 1`), before clap says it on stderr (exit status 2).
        if e.use_stderr() && json_asked(std::env::args_os().skip(1)) {
            // clap's first line, without its `error: ` (the rest is usage and a tip).
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            print_json_error(first.trim_start_matches("error: "));
        }
        if let Some(tip) = usage_tip(&e, std::env::args_os().skip(1)) {
            use std::io::Write as _;
            let _ = e.print();
            let _ = writeln!(std::io::stderr(), "\n{tip}");
            std::process::exit(e.exit_code());
        }
        e.exit()
    });
    // A closed stdout ends a command that only prints or writes files, as it ends `cat`. Not
    // `train` (whose trainer must checkpoint first: it stops on a closed stdout by itself) nor
    // the lab (a terminal, with its own shutdown).
    if !matches!(cli.command, None | Some(Command::Train(_))) {
        crate::signals::die_on_closed_stdout();
    }
    // JSON asked of a command that leaves its errors to this function (`train` prints its own
    // `error` event, in the order of its other events).
    let json_errors =
        !matches!(cli.command, Some(Command::Train(_))) && json_asked(std::env::args_os().skip(1));
    let result = crate::failpoints_from_env().and_then(|()| match cli.command {
        None => lab_cmd::run(cli.lab),
        Some(Command::Train(a)) => train_cmd::run(*a),
        Some(Command::Sample(a)) => sample_cmd::run(a),
        Some(Command::Schedules(a)) => schedules_cmd::run(a),
        Some(Command::Forward(a)) => forward_cmd::run(a),
        Some(Command::Data(a)) => data_cmd::run(a),
        Some(Command::Bench(a)) => bench_cmd::run(a),
        Some(Command::CheckDevice(a)) => check_device_cmd::run(a),
        Some(Command::Eval(a)) => eval_cmd::run(a),
        Some(Command::Runs(a)) => runs_cmd::run(a),
        Some(Command::Import(a)) => import_cmd::run(*a),
        Some(Command::TrainClassifier(a)) => classifier_cmd::run(a),
    });
    match result {
        // A run stopped by a signal (checkpointed): the process ends as that signal would have
        // ended it, so a script does not take the stopped run for a finished one.
        Ok(()) if crate::signals::received() > 0 => {
            use std::io::Write;
            let _ = std::io::stdout().flush();
            crate::signals::end_as_signalled()
        }
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = crate::errors::one_line(&e);
            // Not `eprintln!`, which panics where stderr is gone (the lab's closed terminal).
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {msg}");
            if json_errors {
                print_json_error(&msg);
            }
            ExitCode::from(crate::errors::exit_status(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A usage error gets its `error` event where the subcommand has `--json` (clap's list,
    /// not one kept by hand) and `--json` was given.
    #[test]
    fn json_is_asked_of_the_subcommands_that_have_it() {
        let asked = |args: &[&str]| json_asked(args.iter().map(std::ffi::OsString::from));
        for sub in [
            "train",
            "sample",
            "eval",
            "runs",
            "schedules",
            "data",
            "bench",
        ] {
            assert!(asked(&[sub, "--bogus", "--json"]), "{sub}");
            assert!(!asked(&[sub, "--bogus"]), "{sub}");
        }
        assert!(!asked(&["import", "--json"]), "import has no --json");
        assert!(!asked(&["--json"]), "the lab has none");
    }

    /// `train --resume RUN --run-dir DIR` is refused by clap with a tip towards `--branch`.
    #[test]
    fn a_resume_into_another_folder_points_at_branch() {
        let tip = |args: &[&str]| {
            let full = std::iter::once("ddpm-lab").chain(args.iter().copied());
            let e = Cli::try_parse_from(full).unwrap_err();
            usage_tip(&e, args.iter().map(std::ffi::OsString::from))
        };
        let said = tip(&["train", "--resume", "runs/a", "--run-dir", "runs/b"]).unwrap();
        assert!(
            said.contains("--branch DIR instead of --run-dir DIR"),
            "{said}"
        );
        assert_eq!(tip(&["train", "--steps", "3", "--epochs", "1"]), None);
    }
}
