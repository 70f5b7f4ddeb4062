//! `cargo xtask run --job "CMD"`: CMD split into words as the kernel reads `job.args` and a
//! manifest reads `args` (one grammar: `enclave::values::split_words`: whitespace separates,
//! single or double quotes group, nothing is escaped or expanded), then written as the kernel's
//! `job=PROGRAM job.args="ARGS"` options.

use anyhow::{Result, bail, ensure};

/// Splits `command` into words in the manifest's grammar.
fn split(command: &str) -> Result<Vec<String>> {
    enclave::values::split_words(command).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The kernel command-line options that start `command` as a job: `job=PROGRAM`, then
/// `job.args="ARGS"` when there are arguments, each argument holding whitespace (or empty)
/// in single quotes, which the kernel honours inside `job.args`.
pub fn kernel_options(command: &str) -> Result<String> {
    let words = split(command).map_err(|e| e.context(format!("--job {command:?}")))?;
    let Some((program, args)) = words.split_first() else {
        bail!("--job {command:?}: no program to run");
    };
    ensure!(!program.is_empty(), "--job {command:?}: the program name is empty");
    for word in &words {
        // The command line's values are delimited by double quotes, and is one line of text.
        ensure!(
            !word.contains('"'),
            "--job {command:?}: {word:?} contains a double quote, which the kernel command line cannot carry"
        );
        ensure!(
            !word.chars().any(char::is_control),
            "--job {command:?}: {word:?} contains a control character (tab, newline, ...), which the kernel \
             command line cannot carry"
        );
    }
    if let Some(arg) = args.iter().find(|arg| arg.contains('\'')) {
        bail!(
            "--job {command:?}: the argument {arg:?} contains a single quote, which job.args cannot carry \
             (the kernel reads single quotes there as quoting)"
        );
    }
    let mut options = if program.contains(' ') { format!("job=\"{program}\"") } else { format!("job={program}") };
    if !args.is_empty() {
        let args: Vec<String> = args
            .iter()
            .map(|arg| if arg.is_empty() || arg.contains(' ') { format!("'{arg}'") } else { arg.clone() })
            .collect();
        options.push_str(&format!(" job.args=\"{}\"", args.join(" ")));
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(command: &str) -> Vec<String> {
        split(command).unwrap_or_else(|error| panic!("{command:?}: {error:#}"))
    }

    #[test]
    fn words_are_split_as_the_manifest_splits_them() {
        assert_eq!(words("/bin/hello a b"), ["/bin/hello", "a", "b"]);
        assert_eq!(words("  spaced \t out "), ["spaced", "out"]);
        assert!(words("").is_empty());
        assert!(words("   ").is_empty());
        assert_eq!(words("sh -c 'echo hi'"), ["sh", "-c", "echo hi"]);
        assert_eq!(words(r#"say "two words" 'and "this"'"#), ["say", "two words", "and \"this\""]);
        assert_eq!(words("a'b c'd \"e f\"g"), ["ab cd", "e fg"]);
        assert_eq!(words("'' \"\" x"), ["", "", "x"]);
        assert_eq!(words(r"no\ escapes"), [r"no\", "escapes"]);
        assert_eq!(words("$HOME *.c a|b;c"), ["$HOME", "*.c", "a|b;c"]);
    }

    #[test]
    fn unbalanced_quotes_are_errors() {
        assert!(split("sh -c 'echo").unwrap_err().to_string().contains("quote is not closed"));
        assert!(split("say \"hi").unwrap_err().to_string().contains("quote is not closed"));
    }

    #[test]
    fn a_command_becomes_job_options() {
        let options = |command| kernel_options(command).unwrap_or_else(|error| panic!("{command:?}: {error:#}"));
        assert_eq!(options("/bin/hello"), "job=/bin/hello");
        assert_eq!(options("  /bin/hello  "), "job=/bin/hello");
        assert_eq!(options("/bin/busybox sh -c 'echo hi'"), "job=/bin/busybox job.args=\"sh -c 'echo hi'\"");
        assert_eq!(options("/bin/busybox sh -c \"echo hi\""), "job=/bin/busybox job.args=\"sh -c 'echo hi'\"");
        assert_eq!(
            options("/bin/hello '--expect=a|b c|d' a 'b c' d"),
            "job=/bin/hello job.args=\"'--expect=a|b c|d' a 'b c' d\""
        );
        assert_eq!(options("/bin/hello '' x"), "job=/bin/hello job.args=\"'' x\"");
        assert_eq!(options("'/my app' x"), "job=\"/my app\" job.args=\"x\"");
        assert_eq!(options("\"/bin/it's\""), "job=/bin/it's");
    }

    #[test]
    fn commands_the_command_line_cannot_carry_are_rejected() {
        let error = |command| format!("{:#}", kernel_options(command).unwrap_err());
        assert_eq!(error(""), "--job \"\": no program to run");
        assert_eq!(error("   "), "--job \"   \": no program to run");
        assert!(error("'' a").contains("the program name is empty"));
        assert!(error("/bin/echo 'say \"hi\"'").contains("\"say \\\"hi\\\"\" contains a double quote"));
        assert!(error("'/bin/\"x' a").contains("contains a double quote"));
        assert!(error("/bin/echo \"it's\"").contains("the argument \"it's\" contains a single quote"));
        assert!(error("/bin/echo 'a\tb'").contains("control character"));
        assert_eq!(error("/bin/echo 'a"), "--job \"/bin/echo 'a\": a quote is not closed");
    }
}
