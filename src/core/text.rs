//! Text from the repository or a server, made safe for where weir writes it: commit
//! messages, logs, Markdown cells, short revisions.

/// Makes a value safe for a commit message or a log line: control characters (newlines
/// included) become spaces, runs of spaces collapse, and it is cut at `max` characters.
pub fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    let mut last_space = false;
    let mut count = 0;
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && last_space {
            continue;
        }
        if count == max {
            out.push_str("...");
            break;
        }
        last_space = c == ' ';
        out.push(c);
        count += 1;
    }
    out.trim().to_string()
}

/// The first 7 characters of a revision, as git shows commits (by character, so a
/// hand-edited value cannot split one).
pub fn short(rev: &str) -> &str {
    match rev.char_indices().nth(7) {
        Some((i, _)) => &rev[..i],
        None => rev,
    }
}

/// Text from the repository, safe inside a Markdown table cell or inline code: no pipes,
/// backticks or line breaks that would break out of it.
pub fn cell(s: &str) -> String {
    s.replace(['|', '`', '\n', '\r'], " ")
}
