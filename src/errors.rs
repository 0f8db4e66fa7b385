//! Errors said in one line: an `anyhow` chain with its repeats left out (a library error that
//! prints its source, and names it as its source too, would say it twice), and, where the
//! root is the operating system's (a full disk, a denied permission), that cause first, where
//! a status line cut to the terminal's width still shows it.

/// The exit status of a command that failed.
pub const EXIT_FAILURE: u8 = 1;
/// The exit status of a command line that does not parse (clap's: an unknown flag, a value
/// that is no number).
pub const EXIT_USAGE: u8 = 2;
/// The exit status of a command refused because another process is using the run (training
/// it, or not yet done with its first checkpoint): trying again later may succeed
/// (`EX_TEMPFAIL` of sysexits.h).
pub const EXIT_BUSY: u8 = 75;

/// A refusal that lasts only while another process uses the run: its message is the whole
/// error, and the command exits with [`EXIT_BUSY`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Busy(pub String);

/// The exit status for `e`: [`EXIT_BUSY`] where a [`Busy`] refusal is anywhere in its chain,
/// [`EXIT_FAILURE`] otherwise.
pub fn exit_status(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.downcast_ref::<Busy>().is_some()) {
        EXIT_BUSY
    } else {
        EXIT_FAILURE
    }
}

/// `e`'s chain joined by `: `, each message once (one that ends the message before it is
/// left out).
pub fn one_line(e: &anyhow::Error) -> String {
    parts(e).join(": ").replace('\n', " ")
}

/// [`one_line`], with the operating system's cause first where it is the root of a longer
/// chain (`No space left on device (os error 28): at step 59: cannot write …`).
pub fn cause_first(e: &anyhow::Error) -> String {
    let mut parts = parts(e);
    let os_root = e
        .root_cause()
        .downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.raw_os_error().is_some());
    if os_root && parts.len() > 1 {
        let root = parts.pop().expect("two parts or more");
        parts.insert(0, root);
    }
    parts.join(": ").replace('\n', " ")
}

fn parts(e: &anyhow::Error) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = without_backtrace(&cause.to_string()).to_string();
        if !parts.last().is_some_and(|p| p.ends_with(&text)) {
            parts.push(text);
        }
    }
    parts
}

/// `text` without the backtrace candle prints under its message when `RUST_BACKTRACE` is set
/// (`message\n   0: frame\n             at file:line …`): a one-line error has no room for it.
fn without_backtrace(text: &str) -> &str {
    text.match_indices('\n')
        .map(|(i, _)| i)
        .find(|&i| {
            let next = text[i + 1..].trim_start();
            next.split_once(": ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map_or(text, |i| &text[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    /// An error that prints its source and gives it as its source (as candle's I/O error does).
    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_backtrace_under_a_message_is_left_out() {
        let text = "shape mismatch in add, lhs: [64], rhs: [32]\n   0: candle_core::error::Error::bt\n             at vendor/candle-core/src/error.rs:260:25\n   1: main";
        let e = anyhow::anyhow!("{text}").context("cannot restore the EMA");
        assert_eq!(
            one_line(&e),
            "cannot restore the EMA: shape mismatch in add, lhs: [64], rhs: [32]"
        );
        assert_eq!(without_backtrace("a: b\nc: d"), "a: b\nc: d");
    }

    fn full_disk() -> anyhow::Error {
        let io = std::io::Error::from_raw_os_error(28);
        Err::<(), _>(Wrapped(io))
            .context("cannot write run/ema.safetensors")
            .context("at step 59")
            .unwrap_err()
    }

    #[test]
    fn a_cause_is_said_once() {
        let e = full_disk();
        let os = std::io::Error::from_raw_os_error(28).to_string();
        assert_eq!(
            one_line(&e),
            format!("at step 59: cannot write run/ema.safetensors: {os}")
        );
        assert_eq!(
            cause_first(&e),
            format!("{os}: at step 59: cannot write run/ema.safetensors")
        );
    }

    #[test]
    fn other_errors_keep_their_order() {
        let e = anyhow::anyhow!("bad config").context("cannot resume");
        assert_eq!(cause_first(&e), "cannot resume: bad config");
        assert_eq!(one_line(&anyhow::anyhow!("alone")), "alone");
    }
}
