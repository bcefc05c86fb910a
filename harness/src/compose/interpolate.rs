//! Compose's variable interpolation and `.env` files, by its documented
//! rules (compose-spec "Interpolation" and "env_file format"):
//!
//! - `$VAR` and `${VAR}`; `$$` is a literal `$`;
//! - `${VAR:-default}` (unset or empty), `${VAR-default}` (unset);
//! - `${VAR:?message}` / `${VAR?message}`: an error naming the variable;
//! - `${VAR:+alt}` / `${VAR+alt}`: `alt` when set (and not empty);
//! - defaults and alternatives are interpolated themselves (nesting);
//! - an unset variable with no default is the empty string, with a warning;
//! - the shell's environment overrides `.env`.
//!
//! `.env`: `KEY=VALUE` lines, `#` comments, an optional `export `, values in
//! single quotes (literal), double quotes (`\n`, `\"`, `\\` escapes; may
//! span lines) or bare (a ` #` starts a comment); bare and double-quoted
//! values are interpolated with the variables above them.

use std::collections::BTreeMap;

/// Where variables come from: the shell first, then the `.env` file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vars {
    pub shell: BTreeMap<String, String>,
    pub dotenv: BTreeMap<String, String>,
}

impl Vars {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.shell
            .get(name)
            .or_else(|| self.dotenv.get(name))
            .map(String::as_str)
    }
}

/// Why a value cannot be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadInterpolation(pub String);

/// `text` with its variables replaced; `unset` collects the names used
/// with no value and no default.
pub(crate) fn interpolate(
    text: &str,
    vars: &Vars,
    unset: &mut Vec<String>,
) -> Result<String, BadInterpolation> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing_brace(body).ok_or_else(|| {
                BadInterpolation(format!(
                    "`${{{}`: no closing `}}`",
                    body.chars().take(30).collect::<String>()
                ))
            })?;
            out.push_str(&braced(&body[..end], vars, unset)?);
            rest = &body[end + 1..];
        } else {
            let n = name_len(after);
            if n == 0 {
                // A `$` before anything that cannot start a name stays.
                out.push('$');
                rest = after;
            } else {
                let name = &after[..n];
                match vars.get(name) {
                    Some(v) => out.push_str(v),
                    None => unset.push(name.to_string()),
                }
                rest = &after[n..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The length of the variable name at the start of `s`.
fn name_len(s: &str) -> usize {
    let mut n = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        n = i + c.len_utf8();
    }
    n
}

/// Where the `}` closing `${` is in `body`, counting nested `${...}`.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// `NAME`, `NAME:-x`, `NAME-x`, `NAME:?x`, `NAME?x`, `NAME:+x`, `NAME+x`.
fn braced(body: &str, vars: &Vars, unset: &mut Vec<String>) -> Result<String, BadInterpolation> {
    let n = name_len(body);
    let (name, op) = body.split_at(n);
    if name.is_empty() {
        return Err(BadInterpolation(format!(
            "`${{{body}}}`: a variable name starts with a letter or `_`"
        )));
    }
    let value = vars.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    let mut sub = |s: &str| interpolate(s, vars, unset);
    let (colon, op) = match op.strip_prefix(':') {
        Some(o) => (true, o),
        None => (false, op),
    };
    let present = if colon { set_nonempty } else { value.is_some() };
    if op.is_empty() && !colon {
        return Ok(match value {
            Some(v) => v.to_string(),
            None => {
                unset.push(name.to_string());
                String::new()
            }
        });
    }
    let arg = op.get(1..).unwrap_or("");
    match op.chars().next() {
        Some('-') => match present {
            true => Ok(value.unwrap_or_default().to_string()),
            false => sub(arg),
        },
        Some('?') => match present {
            true => Ok(value.unwrap_or_default().to_string()),
            false => Err(BadInterpolation(format!(
                "required variable {name} is {}: {}",
                if value.is_some() { "empty" } else { "not set" },
                sub(arg)?
            ))),
        },
        Some('+') => match present {
            true => sub(arg),
            false => Ok(String::new()),
        },
        _ => Err(BadInterpolation(format!(
            "`${{{body}}}`: after the name comes `}}`, `:-`, `-`, `:?`, `?`, `:+` or `+`"
        ))),
    }
}

/// A `.env` line that cannot be read: its 1-based line and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadEnvLine {
    pub line: usize,
    pub message: String,
}

/// Reads a `.env` file's text; values may use the variables above them
/// (and the shell's).
pub(crate) fn parse_dotenv(
    text: &str,
    shell: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, BadEnvLine> {
    let mut vars = Vars {
        shell: shell.clone(),
        dotenv: BTreeMap::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let number = i + 1;
        let line = lines[i].trim_start();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, raw)) = line.split_once('=') else {
            return Err(BadEnvLine {
                line: number,
                message: format!("`{line}` is not KEY=VALUE"),
            });
        };
        let key = key.trim();
        if key.is_empty() || name_len(key) != key.len() {
            return Err(BadEnvLine {
                line: number,
                message: format!("`{key}` is not a variable name (letters, digits, `_`)"),
            });
        }
        let raw = raw.trim_start();
        let bad = |m: String| BadEnvLine {
            line: number,
            message: m,
        };
        let value = if let Some(body) = raw.strip_prefix('\'') {
            let end = body
                .find('\'')
                .ok_or_else(|| bad(format!("{key}: the single quote is not closed")))?;
            body[..end].to_string()
        } else if let Some(body) = raw.strip_prefix('"') {
            // A double-quoted value may go on over the next lines.
            let mut text = body.to_string();
            let end = loop {
                if let Some(e) = unescaped_quote(&text) {
                    break e;
                }
                match lines.get(i) {
                    Some(next) => {
                        text.push('\n');
                        text.push_str(next);
                        i += 1;
                    }
                    None => return Err(bad(format!("{key}: the double quote is not closed"))),
                }
            };
            // `\$` is a literal `$`: kept as `$$` through interpolation.
            let unescaped = unescape(&text[..end].replace("\\$", "\u{0}")).replace('\u{0}', "$$");
            let mut unset = Vec::new();
            interpolate(&unescaped, &vars, &mut unset).map_err(|e| bad(e.0))?
        } else {
            let bare = match raw.find(" #") {
                Some(c) => &raw[..c],
                None => raw,
            };
            let mut unset = Vec::new();
            interpolate(bare.trim_end(), &vars, &mut unset).map_err(|e| bad(e.0))?
        };
        vars.dotenv.insert(key.to_string(), value);
    }
    Ok(vars.dotenv)
}

fn unescaped_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars {
            shell: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dotenv: BTreeMap::new(),
        }
    }

    fn run(text: &str, v: &Vars) -> Result<String, BadInterpolation> {
        interpolate(text, v, &mut Vec::new())
    }

    #[test]
    fn every_form_compose_documents() {
        let v = vars(&[("SET", "x"), ("EMPTY", "")]);
        let cases = [
            ("${SET}", "x"),
            ("$SET/y", "x/y"),
            ("${UNSET:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${UNSET-d}", "d"),
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET+alt}", ""),
            ("${UNSET:-${SET}}", "x"),
            ("${UNSET:-a${UNSET2:-b}c}", "abc"),
            ("$$SET", "$SET"),
            ("cost: 5$", "cost: 5$"),
            ("${SET:?needed}", "x"),
        ];
        for (text, want) in cases {
            assert_eq!(run(text, &v).unwrap(), want, "{text}");
        }
        let e = run("${UNSET:?set the password}", &v).unwrap_err();
        assert!(
            e.0.contains("UNSET") && e.0.contains("set the password"),
            "{e:?}"
        );
        assert!(run("${SET", &v).is_err());
        assert!(run("${1X}", &v).is_err());
        let mut unset = Vec::new();
        interpolate("${A} $B", &v, &mut unset).unwrap();
        assert_eq!(unset, ["A", "B"]);
    }

    #[test]
    fn the_shell_overrides_the_env_file() {
        let shell: BTreeMap<String, String> = [("USER_X".to_string(), "shell".to_string())].into();
        let dotenv = parse_dotenv(
            "# comment\nUSER_X=file\nexport DB=wss   # trailing\nQ='lit $DB'\nD=\"a\\n${DB}\"\nM=\"one\ntwo\"\nE=\"cost \\$DB\"\n",
            &shell,
        )
        .unwrap();
        let v = Vars { shell, dotenv };
        assert_eq!(v.get("USER_X"), Some("shell"));
        assert_eq!(v.get("DB"), Some("wss"));
        assert_eq!(v.get("Q"), Some("lit $DB"));
        assert_eq!(v.get("D"), Some("a\nwss"));
        assert_eq!(v.get("M"), Some("one\ntwo"));
        assert_eq!(v.get("E"), Some("cost $DB"));
        let e = parse_dotenv("OK=1\nnot a pair\n", &BTreeMap::new()).unwrap_err();
        assert_eq!(e.line, 2);
    }

    proptest! {
        /// Text without `$` comes through unchanged; a `$` written as `$$`
        /// comes back as one `$`: nothing a user wrote is lost or changed.
        #[test]
        fn dollars_escaped_come_back_as_written(text in "\\PC{0,60}") {
            let escaped = text.replace('$', "$$");
            prop_assert_eq!(run(&escaped, &vars(&[])).unwrap(), text);
        }

        /// A set variable's value is put in as it is, whatever it holds
        /// (values are never interpolated twice).
        #[test]
        fn values_go_in_verbatim(value in "\\PC{0,40}", prefix in "[a-z /:]{0,10}") {
            let v = vars(&[("V", &value)]);
            prop_assert_eq!(run(&format!("{prefix}${{V}}"), &v).unwrap(), format!("{prefix}{value}"));
            prop_assert_eq!(run(&format!("{prefix}${{V:-zz}}"), &v).unwrap(),
                if value.is_empty() { format!("{prefix}zz") } else { format!("{prefix}{value}") });
        }
    }
}
