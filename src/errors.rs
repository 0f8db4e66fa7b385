//! Errors said in one line: an `anyhow` chain with its repeats left out (a library error that
//! prints its source, and names it as its source too, would say it twice), and, where the
//! root is the operating system's (a full disk, a denied permission), that cause first, where
//! a status line cut to the terminal's width still shows it.

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
        let text = cause.to_string();
        if !parts.last().is_some_and(|p| p.ends_with(&text)) {
            parts.push(text);
        }
    }
    parts
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
