//! Canonical formatting behind `mlops fmt`, in the style of `terraform fmt`.
//!
//! In: the text of one HCL file. Out: the same configuration laid out canonically — two-space
//! indentation per bracket level, one space around `=` with the `=` signs of consecutive
//! single-line attributes aligned, normalized spacing inside expressions, at most one blank
//! line in a row, LF line endings, no trailing whitespace and exactly one final newline.
//! Comments are kept (re-indented); string literals, templates and heredoc bodies are kept
//! byte-for-byte (trailing whitespace included). Text that does not parse is refused with a [`FormatError`] and never rewritten.
//!
//! The formatter works on tokens rather than on the syntax tree: a small lexer that understands
//! strings (with nested `${...}`), heredocs and comments splits the text into tokens, the
//! original line structure is kept, and each line is re-emitted with computed indentation and
//! spacing. Line breaks are never added or removed (except blank lines), so the meaning of the
//! configuration cannot change; as a safety net the result is re-parsed and compared with the
//! input, and the input is returned unchanged (apart from line endings) if they differ.

use std::fmt;

use hcl_edit::expr::{Array, FuncArgs, Object};
use hcl_edit::parser::parse_body;
use hcl_edit::structure::Body;
use hcl_edit::visit_mut::{self, VisitMut};

/// Why a text could not be formatted: it is not valid HCL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// The parser's description of the syntax error.
    pub message: String,
    /// Byte offset into the input at which the error was detected.
    pub offset: usize,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "syntax error at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for FormatError {}

/// Formats one HCL file canonically.
///
/// Formatting is idempotent: formatting the output again returns it unchanged.
///
/// # Errors
///
/// A [`FormatError`] with the parser's message and byte offset into `text` if `text` is not
/// valid HCL.
pub fn format_source(text: &str) -> Result<String, FormatError> {
    let parsed = parse_body(text)
        .map_err(|err| FormatError { message: err.message().to_owned(), offset: err.location().offset() })?;
    // CRLF → LF first, so everything downstream sees one kind of line ending. This changes the
    // value of heredocs written with CRLF, which is the point: the file becomes LF-only.
    let normalized = text.replace("\r\n", "\n");
    let reference = if normalized.len() == text.len() { Some(parsed) } else { parse_body(&normalized).ok() };
    let Some(mut reference) = reference else {
        return Ok(text.to_owned());
    };
    let formatted = format_valid(&normalized);
    // Safety net: a lexer corner case must never change what the file means.
    let equivalent = parse_body(&formatted).is_ok_and(|mut body| same_meaning(&mut body, &mut reference));
    Ok(if equivalent { formatted } else { normalized })
}

/// Compares two parsed bodies, ignoring layout. `Body`'s `PartialEq` already ignores
/// whitespace and comments around nodes, but not the text between the last element of a
/// tuple, object or argument list and its closing bracket, so that is cleared first.
fn same_meaning(a: &mut Body, b: &mut Body) -> bool {
    struct ClearTrailing;
    impl VisitMut for ClearTrailing {
        fn visit_array_mut(&mut self, node: &mut Array) {
            node.set_trailing("");
            visit_mut::visit_array_mut(self, node);
        }
        fn visit_object_mut(&mut self, node: &mut Object) {
            node.set_trailing("");
            visit_mut::visit_object_mut(self, node);
        }
        fn visit_func_args_mut(&mut self, node: &mut FuncArgs) {
            node.set_trailing("");
            visit_mut::visit_func_args_mut(self, node);
        }
    }
    ClearTrailing.visit_body_mut(a);
    ClearTrailing.visit_body_mut(b);
    a == b
}

/// Formats text that is already known to parse, without the final equivalence check.
fn format_valid(src: &str) -> String {
    let mut toks = lex(src);
    classify(&mut toks);
    let lines = split_lines(&toks);
    let infos = analyse_lines(&toks, &lines);
    let emitted = drop_blank_lines(&toks, &lines);
    render(src, &toks, &lines, &infos, &emitted)
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bracket {
    Brace,
    Square,
    Paren,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Number,
    /// A quoted string or template, kept verbatim (hcl-edit lets it span lines).
    Str,
    /// A heredoc from `<<` through its closing marker, kept verbatim.
    Heredoc,
    LineComment,
    BlockComment,
    Newline,
    Open(Bracket),
    Close(Bracket),
    Comma,
    Dot,
    Ellipsis,
    DoubleColon,
    /// Binary operators, `=`, `?`, `:` and `=>` (and `-`/`*`, whose role is decided later).
    Op,
    Bang,
    /// Anything else; only reachable for text the parser would not accept.
    Other,
}

/// What a token does in context, where the token kind alone is ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Plain,
    /// Prefix `-` (negation).
    Unary,
    /// `*` of a splat (`.*`, `[*]`).
    Splat,
    /// `for`, `in` or `if` of a for expression.
    Keyword,
    /// An opening bracket that starts a for expression.
    ForOpen,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    /// Byte offset in the (LF-normalized) source.
    start: usize,
    role: Role,
}

impl Token<'_> {
    fn is_trivia(&self) -> bool {
        matches!(self.kind, Kind::Newline | Kind::LineComment | Kind::BlockComment)
    }

    fn is_comment(&self) -> bool {
        matches!(self.kind, Kind::LineComment | Kind::BlockComment)
    }

    fn spans_lines(&self) -> bool {
        self.kind != Kind::Newline && self.text.contains('\n')
    }

    /// Whether an expression can end with this token (so `-` after it is binary, `[` an index).
    fn ends_value(&self) -> bool {
        match self.kind {
            Kind::Ident => self.role != Role::Keyword,
            Kind::Number | Kind::Str | Kind::Heredoc | Kind::Close(_) => true,
            Kind::Op => self.role == Role::Splat,
            _ => false,
        }
    }
}

/// The byte at `i`, or 0 past the end (0 never occurs in valid HCL outside strings).
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

// Any non-ASCII byte outside strings and comments belongs to an identifier in valid HCL, so
// treating all of them as identifier bytes keeps multi-byte characters whole.
fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_continue(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c >= 0x80
}

fn ident_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ident_continue(b[i]) {
        i += 1;
    }
    i
}

fn line_end(b: &[u8], i: usize) -> usize {
    b[i.min(b.len())..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p)
}

/// End of a `/* */` comment whose body starts at `i`.
fn block_comment_end(b: &[u8], i: usize) -> usize {
    let mut j = i;
    while j < b.len() {
        if b[j] == b'*' && at(b, j + 1) == b'/' {
            return j + 2;
        }
        j += 1;
    }
    b.len()
}

fn number_end(b: &[u8], mut i: usize) -> usize {
    while at(b, i).is_ascii_digit() {
        i += 1;
    }
    if at(b, i) == b'.' && at(b, i + 1).is_ascii_digit() {
        i += 1;
        while at(b, i).is_ascii_digit() {
            i += 1;
        }
    }
    if matches!(at(b, i), b'e' | b'E') {
        let sign = usize::from(matches!(at(b, i + 1), b'+' | b'-'));
        if at(b, i + 1 + sign).is_ascii_digit() {
            i += 1 + sign;
            while at(b, i).is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

/// End of a quoted string whose body starts at `i` (just after the opening quote).
fn quoted_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b'"' => return i + 1,
            b'\\' => i += 2,
            b'$' | b'%' => i = template_marker(b, i),
            _ => i += 1,
        }
    }
    b.len()
}

/// Skips a `$`/`%` in template text: over an escaped `$${`/`%%{`, or a whole `${ }`/`%{ }`.
fn template_marker(b: &[u8], i: usize) -> usize {
    let c = b[i];
    if at(b, i + 1) == c && at(b, i + 2) == b'{' {
        i + 3
    } else if at(b, i + 1) == b'{' {
        interpolation_end(b, i + 2)
    } else {
        i + 1
    }
}

/// End of an interpolation or directive whose body starts at `i` (just after the `{`).
fn interpolation_end(b: &[u8], mut i: usize) -> usize {
    let mut depth = 1usize;
    while i < b.len() {
        match b[i] {
            b'"' => i = quoted_end(b, i + 1),
            b'{' => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return i;
                }
            }
            b'#' => i = line_end(b, i),
            b'/' if at(b, i + 1) == b'/' => i = line_end(b, i),
            b'/' if at(b, i + 1) == b'*' => i = block_comment_end(b, i + 2),
            b'<' => i = heredoc_end(b, i).unwrap_or(i + 1),
            _ => i += 1,
        }
    }
    b.len()
}

/// If a heredoc starts at `i` (`<<ID` or `<<-ID` then a newline), the end of its closing marker.
fn heredoc_end(b: &[u8], i: usize) -> Option<usize> {
    if at(b, i) != b'<' || at(b, i + 1) != b'<' {
        return None;
    }
    let mut j = i + 2;
    if at(b, j) == b'-' {
        j += 1;
    }
    if !is_ident_start(at(b, j)) {
        return None;
    }
    let k = ident_end(b, j);
    if at(b, k) != b'\n' {
        return None;
    }
    let delim = &b[j..k];
    let body = k + 1;
    // The closing marker is a line holding only (indentation and) the delimiter; an empty
    // heredoc has it straight away.
    let marker_at = |s: usize| -> Option<usize> {
        let mut m = s;
        while matches!(at(b, m), b' ' | b'\t') {
            m += 1;
        }
        let end = m + delim.len();
        (b.get(m..end) == Some(delim) && !is_ident_continue(at(b, end))).then_some(end)
    };
    if let Some(end) = marker_at(body) {
        return Some(end);
    }
    let mut p = body;
    while p < b.len() {
        match b[p] {
            b'\n' => {
                if let Some(end) = marker_at(p + 1) {
                    return Some(end);
                }
                p += 1;
            }
            b'$' | b'%' => p = template_marker(b, p),
            _ => p += 1,
        }
    }
    Some(b.len())
}

fn lex(src: &str) -> Vec<Token<'_>> {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let c = b[i];
        let two = |second: u8| at(b, i + 1) == second;
        let (kind, len) = match c {
            b' ' | b'\t' | b'\r' | 0x0b | 0x0c => {
                i += 1;
                continue;
            }
            b'\n' => (Kind::Newline, 1),
            b'#' => (Kind::LineComment, line_end(b, i) - i),
            b'/' if two(b'/') => (Kind::LineComment, line_end(b, i) - i),
            b'/' if two(b'*') => (Kind::BlockComment, block_comment_end(b, i + 2) - i),
            b'"' => (Kind::Str, quoted_end(b, i + 1) - i),
            b'<' if heredoc_end(b, i).is_some() => (Kind::Heredoc, heredoc_end(b, i).unwrap_or(i + 1) - i),
            b'0'..=b'9' => (Kind::Number, number_end(b, i) - i),
            c if is_ident_start(c) => (Kind::Ident, ident_end(b, i) - i),
            b'{' => (Kind::Open(Bracket::Brace), 1),
            b'[' => (Kind::Open(Bracket::Square), 1),
            b'(' => (Kind::Open(Bracket::Paren), 1),
            b'}' => (Kind::Close(Bracket::Brace), 1),
            b']' => (Kind::Close(Bracket::Square), 1),
            b')' => (Kind::Close(Bracket::Paren), 1),
            b',' => (Kind::Comma, 1),
            b'.' if two(b'.') && at(b, i + 2) == b'.' => (Kind::Ellipsis, 3),
            b'.' => (Kind::Dot, 1),
            b':' if two(b':') => (Kind::DoubleColon, 2),
            b'!' if two(b'=') => (Kind::Op, 2),
            b'!' => (Kind::Bang, 1),
            b'=' if two(b'=') || two(b'>') => (Kind::Op, 2),
            b'<' | b'>' if two(b'=') => (Kind::Op, 2),
            b'&' if two(b'&') => (Kind::Op, 2),
            b'|' if two(b'|') => (Kind::Op, 2),
            b'=' | b':' | b'<' | b'>' | b'+' | b'-' | b'*' | b'/' | b'%' | b'?' => (Kind::Op, 1),
            _ => (Kind::Other, 1),
        };
        i = (start + len.max(1)).min(b.len());
        // Every end above falls on a character boundary; `get` keeps a mistake from panicking.
        let text = src.get(start..i).unwrap_or("");
        toks.push(Token { kind, text, start, role: Role::Plain });
    }
    toks
}

/// Resolves the roles of ambiguous tokens: unary vs binary `-`, splat vs multiplication `*`,
/// and for-expression keywords.
fn classify(toks: &mut [Token<'_>]) {
    let mut for_stack: Vec<bool> = Vec::new();
    let mut prev: Option<Token<'_>> = None;
    for i in 0..toks.len() {
        let tok = toks[i];
        let role = match tok.kind {
            Kind::Open(_) => {
                let is_for = starts_for_expr(&toks[i + 1..]);
                for_stack.push(is_for);
                if is_for {
                    Role::ForOpen
                } else {
                    Role::Plain
                }
            }
            Kind::Close(_) => {
                for_stack.pop();
                Role::Plain
            }
            Kind::Ident if for_stack.last() == Some(&true) && matches!(tok.text, "for" | "in" | "if") => Role::Keyword,
            Kind::Op if tok.text == "-" && !prev.is_some_and(|p| p.ends_value()) => Role::Unary,
            Kind::Op
                if tok.text == "*"
                    && prev.is_some_and(|p| matches!(p.kind, Kind::Dot | Kind::Open(Bracket::Square))) =>
            {
                Role::Splat
            }
            _ => Role::Plain,
        };
        toks[i].role = role;
        if !toks[i].is_trivia() {
            prev = Some(toks[i]);
        }
    }
}

/// Whether the tokens after an opening bracket begin a for expression (`for <ident>`).
fn starts_for_expr(rest: &[Token<'_>]) -> bool {
    let mut significant = rest.iter().filter(|t| !t.is_trivia());
    matches!(
        (significant.next(), significant.next()),
        (Some(a), Some(b)) if a.kind == Kind::Ident && a.text == "for" && b.kind == Kind::Ident
    )
}

/// Whether a single space goes between two adjacent tokens on one line.
fn space_between(prev: &Token<'_>, next: &Token<'_>) -> bool {
    use Bracket::{Brace, Paren, Square};
    use Kind::{Bang, BlockComment, Close, Comma, Dot, DoubleColon, Ellipsis, Ident, LineComment, Op, Open};
    let unary = |t: &Token<'_>| t.kind == Bang || (t.kind == Op && t.role == Role::Unary);
    let splat = |t: &Token<'_>| t.kind == Op && t.role == Role::Splat;
    if next.kind == LineComment {
        return true;
    }
    if next.kind == BlockComment {
        return !matches!(prev.kind, Open(Square | Paren));
    }
    if prev.kind == BlockComment {
        return !matches!(next.kind, Comma | Close(Square | Paren));
    }
    match (prev.kind, next.kind) {
        (_, Comma) => false,
        (Comma, Close(Square | Paren)) => false,
        (Comma, _) => true,
        (Dot | DoubleColon, _) | (_, Dot | DoubleColon | Ellipsis) => false,
        // Braces get inner padding, `{}` stays tight: `{ a = 1 }`.
        (Open(Brace), Close(Brace)) => false,
        (Open(Brace), _) | (_, Close(Brace)) => true,
        (Open(Square | Paren), _) | (_, Close(Square | Paren)) => false,
        (Ellipsis, _) => true,
        _ if unary(prev) || splat(prev) || splat(next) => false,
        // A call: `f(x)`; for-expression keywords are not function names.
        (Ident, Open(Paren)) => prev.role == Role::Keyword,
        // An index: `a[0]`, `f(x)[0]`; otherwise a new tuple: `= [1]`.
        (_, Open(Square)) => !prev.ends_value(),
        _ => true,
    }
}

// ---------------------------------------------------------------------------------------------
// Lines

/// A line of tokens (indices into the token list), excluding its newline. A multi-line string,
/// heredoc or block comment stays inside the line it starts on.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
}

impl Line {
    fn is_blank(&self) -> bool {
        self.start == self.end
    }
}

fn split_lines(toks: &[Token<'_>]) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, tok) in toks.iter().enumerate() {
        if tok.kind == Kind::Newline {
            lines.push(Line { start, end: i });
            start = i + 1;
        }
    }
    lines.push(Line { start, end: toks.len() });
    lines
}

/// Layout facts about one line.
#[derive(Debug, Clone, Copy, Default)]
struct LineInfo {
    /// Indentation level (two spaces each).
    indent: usize,
    /// For a single-line `key = value` (or `key: value`) line directly in a block body or an
    /// object: the index of the `=`/`:` token, so runs of such lines can be aligned.
    assign: Option<usize>,
}

/// Computes indentation and finds alignable attribute lines.
///
/// Indentation counts lines, not brackets: a line that leaves brackets open indents the
/// following lines by one level however many it opened (`foo({` indents once), and the level
/// is left once all of them are closed — so `})` lines up with the `foo({` line.
fn analyse_lines(toks: &[Token<'_>], lines: &[Line]) -> Vec<LineInfo> {
    // Open brackets still unclosed, per indenting line.
    let mut levels: Vec<usize> = Vec::new();
    // The bracket stack itself: does the bracket admit attributes/object elements?
    let mut brackets: Vec<bool> = Vec::new();
    let close_one = |levels: &mut Vec<usize>| {
        if let Some(top) = levels.last_mut() {
            *top -= 1;
            if *top == 0 {
                levels.pop();
            }
        }
    };
    let mut infos = Vec::with_capacity(lines.len());
    for line in lines {
        let toks_of_line = &toks[line.start..line.end];
        let leading_closers = toks_of_line.iter().take_while(|t| matches!(t.kind, Kind::Close(_))).count();
        for _ in 0..leading_closers {
            close_one(&mut levels);
            brackets.pop();
        }
        let indent = levels.len();
        let in_body = brackets.last().copied().unwrap_or(true);
        let assign =
            if in_body && leading_closers == 0 { assignment_of(toks_of_line).map(|k| line.start + k) } else { None };
        let mut opened = 0usize;
        for tok in &toks_of_line[leading_closers..] {
            match tok.kind {
                Kind::Open(kind) => {
                    opened += 1;
                    brackets.push(kind == Bracket::Brace && tok.role != Role::ForOpen);
                }
                Kind::Close(_) => {
                    if opened > 0 {
                        opened -= 1;
                    } else {
                        close_one(&mut levels);
                    }
                    brackets.pop();
                }
                _ => {}
            }
        }
        if opened > 0 {
            levels.push(opened);
        }
        infos.push(LineInfo { indent, assign });
    }
    infos
}

/// If `line` is a complete single-line `key = value` / `key: value`, the position of its
/// `=`/`:`. Lines whose value continues on later lines, and conditionals, do not qualify.
fn assignment_of(line: &[Token<'_>]) -> Option<usize> {
    let mut depth = 0usize;
    let mut assign = None;
    for (i, tok) in line.iter().enumerate() {
        if tok.spans_lines() {
            return None;
        }
        match tok.kind {
            Kind::Open(_) => depth += 1,
            Kind::Close(_) => depth = depth.checked_sub(1)?,
            Kind::Op if depth == 0 && assign.is_none() => match tok.text {
                "=" | ":" if i > 0 => assign = Some(i),
                _ => return None,
            },
            _ => {}
        }
    }
    assign.filter(|_| depth == 0)
}

/// Which lines are emitted: at most one blank line in a row, none at the start or end of the
/// file, none right after a line ending in an opening bracket or right before a closing one.
fn drop_blank_lines(toks: &[Token<'_>], lines: &[Line]) -> Vec<Option<usize>> {
    let mut emitted = Vec::new();
    let mut pending_blank = false;
    let mut after_opener = true;
    for (idx, line) in lines.iter().enumerate() {
        if line.is_blank() {
            pending_blank = true;
            continue;
        }
        let toks_of_line = &toks[line.start..line.end];
        let starts_with_closer = matches!(toks_of_line[0].kind, Kind::Close(_));
        if pending_blank && !after_opener && !starts_with_closer {
            emitted.push(None);
        }
        pending_blank = false;
        after_opener =
            toks_of_line.iter().rev().find(|t| !t.is_comment()).is_some_and(|t| matches!(t.kind, Kind::Open(_)));
        emitted.push(Some(idx));
    }
    emitted
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// Joins `toks` with canonical spacing. `reindent` is `(old, new)` indentation for a block
/// comment that opens the line, so its continuation lines move with it.
fn join_tokens(out: &mut String, toks: &[Token<'_>], reindent: Option<(&str, &str)>) {
    for (i, tok) in toks.iter().enumerate() {
        if i > 0 && space_between(&toks[i - 1], tok) {
            out.push(' ');
        }
        match tok.kind {
            Kind::LineComment => out.push_str(tok.text.trim_end()),
            Kind::BlockComment => {
                let reindent = if i == 0 { reindent } else { None };
                push_block_comment(out, tok.text, reindent);
            }
            _ => out.push_str(tok.text),
        }
    }
}

fn push_block_comment(out: &mut String, text: &str, reindent: Option<(&str, &str)>) {
    for (n, part) in text.split('\n').enumerate() {
        let part = part.trim_end();
        if n == 0 {
            out.push_str(part);
            continue;
        }
        out.push('\n');
        match reindent {
            Some((old, new)) if !part.is_empty() => match part.strip_prefix(old) {
                Some(rest) => {
                    out.push_str(new);
                    out.push_str(rest);
                }
                None => out.push_str(part),
            },
            _ => out.push_str(part),
        }
    }
}

/// The whitespace before byte `pos` on its line in `src`.
fn original_indent(src: &str, pos: usize) -> &str {
    let before = src.get(..pos).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    before.get(line_start..).unwrap_or("")
}

/// A line split into cells for alignment: `lead` (the key, or the whole code), `rest` (from
/// the `=`/`:` on) and a trailing line comment.
struct Cells {
    indent: String,
    lead: String,
    rest: Option<String>,
    comment: Option<String>,
}

impl Cells {
    fn code_width(&self, lead_width: usize) -> usize {
        self.rest.as_ref().map_or(self.lead.chars().count(), |rest| lead_width + 1 + rest.chars().count())
    }
}

fn render(src: &str, toks: &[Token<'_>], lines: &[Line], infos: &[LineInfo], emitted: &[Option<usize>]) -> String {
    let mut cells: Vec<Option<Cells>> = Vec::with_capacity(emitted.len());
    for slot in emitted {
        let Some(idx) = *slot else {
            cells.push(None);
            continue;
        };
        let (line, info) = (lines[idx], infos[idx]);
        let indent = "  ".repeat(info.indent);
        let mut code_end = line.end;
        let mut comment = None;
        if line.end - line.start > 1 && toks[line.end - 1].kind == Kind::LineComment {
            code_end -= 1;
            comment = Some(toks[line.end - 1].text.trim_end().to_owned());
        }
        let first = &toks[line.start];
        let old_indent = original_indent(src, first.start);
        let reindent = Some((old_indent, indent.as_str()));
        let mut lead = String::new();
        let rest = match info.assign {
            Some(eq) => {
                join_tokens(&mut lead, &toks[line.start..eq], reindent);
                let mut rest = String::from(toks[eq].text);
                if eq + 1 < code_end {
                    rest.push(' ');
                    join_tokens(&mut rest, &toks[eq + 1..code_end], None);
                }
                Some(rest)
            }
            None => {
                join_tokens(&mut lead, &toks[line.start..code_end], reindent);
                None
            }
        };
        cells.push(Some(Cells { indent, lead, rest, comment }));
    }

    let mut out = String::new();
    let mut i = 0;
    while i < cells.len() {
        // A run of consecutive alignable lines (a lone line is a run of one).
        let mut j = i + 1;
        if matches!(&cells[i], Some(c) if c.rest.is_some()) {
            while matches!(cells.get(j), Some(Some(c)) if c.rest.is_some()) {
                j += 1;
            }
        }
        let run = &cells[i..j];
        let lead_width =
            run.iter().flatten().filter(|c| c.rest.is_some()).map(|c| c.lead.chars().count()).max().unwrap_or(0);
        // Trailing comments of consecutive lines in the run share a column.
        let mut comment_cols = vec![0usize; run.len()];
        let mut k = 0;
        while k < run.len() {
            let mut m = k;
            let mut width = 0;
            while let Some(Some(c)) = run.get(m) {
                if c.comment.is_none() {
                    break;
                }
                width = width.max(c.code_width(lead_width));
                m += 1;
            }
            for col in &mut comment_cols[k..m] {
                *col = width + 1;
            }
            k = m.max(k + 1);
        }
        for (cell, comment_col) in run.iter().zip(comment_cols) {
            let Some(c) = cell else {
                out.push('\n');
                continue;
            };
            out.push_str(&c.indent);
            out.push_str(&c.lead);
            if let Some(rest) = &c.rest {
                let pad = lead_width.saturating_sub(c.lead.chars().count()) + 1;
                out.push_str(&" ".repeat(pad));
                out.push_str(rest);
            }
            if let Some(comment) = &c.comment {
                let pad = comment_col.saturating_sub(c.code_width(lead_width)).max(1);
                out.push_str(&" ".repeat(pad));
                out.push_str(comment);
            }
            out.push('\n');
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Formats valid `input` and checks the properties every result must have.
    fn fmt(input: &str) -> String {
        let out = format_source(input).unwrap_or_else(|e| panic!("{input:?} rejected: {e}"));
        check_properties(input, &out);
        out
    }

    fn check_properties(input: &str, out: &str) {
        let normalized = input.replace("\r\n", "\n");
        // The formatter itself produced the result, not the safety net.
        assert_eq!(format_valid(&normalized), out, "safety net used for {input:?}");
        assert_eq!(format_source(out).as_deref(), Ok(out), "not idempotent: {input:?}");
        let mut before = parse_body(&normalized).expect("input parses");
        let mut after = parse_body(out).unwrap_or_else(|e| panic!("output invalid: {e}\n{out}"));
        assert!(same_meaning(&mut before, &mut after), "meaning changed:\n{input}\n{out}");
        assert_eq!(comments(&normalized), comments(out), "comments changed:\n{out}");
        assert_eq!(verbatim(&normalized), verbatim(out), "strings/heredocs changed:\n{out}");
        assert!(!out.contains('\r'));
        assert!(out.is_empty() || (out.ends_with('\n') && !out.ends_with("\n\n")));
        assert!(!out.starts_with('\n'));
        // Layout rules hold everywhere except inside verbatim strings and heredocs.
        let raw: Vec<(usize, usize)> = lex(out)
            .iter()
            .filter(|t| matches!(t.kind, Kind::Str | Kind::Heredoc))
            .map(|t| (t.start, t.start + t.text.len()))
            .collect();
        let inside_raw = |pos: usize| raw.iter().any(|&(s, e)| s < pos && pos <= e);
        let (mut pos, mut blank_run) = (0, 0);
        for line in out.split('\n') {
            let end = pos + line.len();
            if !inside_raw(pos) {
                blank_run = if line.is_empty() { blank_run + 1 } else { 0 };
                assert!(blank_run < 2 || end == out.len(), "blank-line run:\n{out}");
            }
            if line.ends_with([' ', '\t']) {
                assert!(inside_raw(end), "trailing whitespace:\n{out}");
            }
            pos = end + 1;
        }
    }

    /// Comment texts in order, whitespace removed (comments are re-indented, not rewritten).
    fn comments(src: &str) -> Vec<String> {
        lex(src).iter().filter(|t| t.is_comment()).map(|t| t.text.split_whitespace().collect()).collect()
    }

    /// Strings, templates and heredocs, which must survive byte-for-byte.
    fn verbatim(src: &str) -> Vec<&str> {
        lex(src).into_iter().filter(|t| matches!(t.kind, Kind::Str | Kind::Heredoc)).map(|t| t.text).collect()
    }

    fn assert_formats(cases: &[(&str, &str)]) {
        for (input, want) in cases {
            assert_eq!(fmt(input), *want, "input: {input:?}");
        }
    }

    const CANONICAL: &str = r#"# Fraud detection for card transactions.
source "transactions" {
  format = "csv"
  path   = "data/transactions.csv"
  schema {
    account_id = "string"
    amount     = "float"
  }
}

feature_view "account_activity" {
  source = source.transactions
  feature "amount_sum_24h" { column = "amount" }
  feature "txn_count_7d" {
    column    = "amount"
    aggregate = "count" # rolling count
    window    = "7d"
  }
}

model "fraud" {
  features = [
    feature_view.account_activity.features.amount_sum_24h,
    feature_view.account_activity.features.txn_count_7d,
  ]
  params    = { learning_rate = 0.05, max_depth = 6 }
  threshold = var.strict ? 0.9 : 0.5
  labels    = [for l in var.labels : lower(l) if l != ""]
  notes     = "trained ${var.cadence}"
  sql = <<-EOT
    SELECT account_id, SUM(amount)
      FROM transactions
  EOT
}
"#;

    #[test]
    fn canonical_input_is_unchanged() {
        assert_eq!(fmt(CANONICAL), CANONICAL);
    }

    #[test]
    fn messy_example_formats_exactly() {
        let messy = "# Fraud model\r\n\r\n\r\nsource \"transactions\"   {\r\n\tformat = \"csv\"\r\n      path=\"data/transactions.csv\"   # raw export   \r\n  schema {\r\n\r\n      account_id   =    \"string\"\r\n   amount = \"float\"\r\n\r\n   }\r\n}\r\n\r\n\r\n\r\nfeature_view \"account_activity\"{\r\nsource= source.transactions\r\n  entities = [ \"account\" ,\"merchant\" ]\r\n\tfeature \"amount_sum_24h\" {column=\"amount\"}\r\n  feature \"txn_count_7d\" {\r\n    column=\"amount\"\r\n    aggregate =\"count\"\r\n      window= \"7d\" // rolling\r\n  }\r\n}\r\nmodel \"fraud\" {\r\n  features = [\r\n  feature_view.account_activity.features.amount_sum_24h,\r\n    feature_view.account_activity.features.txn_count_7d,\r\n  ]\r\n  params = {learning_rate=0.05, max_depth = 6}\r\n  threshold = var.strict?0.9:0.5\r\n  notes = <<EOT\r\n   trained   nightly\r\nEOT\r\n}\r\n\r\n\r\n";
        let want = r#"# Fraud model

source "transactions" {
  format = "csv"
  path   = "data/transactions.csv" # raw export
  schema {
    account_id = "string"
    amount     = "float"
  }
}

feature_view "account_activity" {
  source   = source.transactions
  entities = ["account", "merchant"]
  feature "amount_sum_24h" { column = "amount" }
  feature "txn_count_7d" {
    column    = "amount"
    aggregate = "count"
    window    = "7d" // rolling
  }
}
model "fraud" {
  features = [
    feature_view.account_activity.features.amount_sum_24h,
    feature_view.account_activity.features.txn_count_7d,
  ]
  params    = { learning_rate = 0.05, max_depth = 6 }
  threshold = var.strict ? 0.9 : 0.5
  notes = <<EOT
   trained   nightly
EOT
}
"#;
        assert_eq!(fmt(messy), want);
    }

    #[test]
    fn attributes_and_alignment() {
        assert_formats(&[
            ("a=1", "a = 1\n"),
            ("a   =    1   \n", "a = 1\n"),
            ("a = 1\nbungle = 2\n", "a      = 1\nbungle = 2\n"),
            // A blank line, a comment line or a block ends the run.
            ("a = 1\n\nbungle = 2\n", "a = 1\n\nbungle = 2\n"),
            ("a = 1\n# note\nbungle = 2\n", "a = 1\n# note\nbungle = 2\n"),
            ("a = 1\nb {\n}\nccc = 2\n", "a = 1\nb {\n}\nccc = 2\n"),
            // So does an attribute whose value spans lines.
            ("a = 1\nbungle = [\n1,\n]\nc = 2\n", "a = 1\nbungle = [\n  1,\n]\nc = 2\n"),
            ("a = 1\nbb = <<EOF\nx\nEOF\nccc = 2\n", "a = 1\nbb = <<EOF\nx\nEOF\nccc = 2\n"),
            // Runs are per nesting level.
            ("outer = 1\nb {\nx = 1\nlonger = 2\n}\n", "outer = 1\nb {\n  x      = 1\n  longer = 2\n}\n"),
            // Trailing comments of a run share a column.
            ("a = 1 # foo\nbungle = \"bonce\" # baz\n", "a      = 1       # foo\nbungle = \"bonce\" # baz\n"),
            (
                "a = 1 # foo\nbungle = \"bonce\"\nzebra = \"striped\" # baz\n",
                "a      = 1 # foo\nbungle = \"bonce\"\nzebra  = \"striped\" # baz\n",
            ),
            // Widths count characters, not bytes.
            ("𝒜 = 1 # foo\nbungle = \"🇬🇧\" # baz\n", "𝒜      = 1    # foo\nbungle = \"🇬🇧\" # baz\n"),
        ]);
    }

    #[test]
    fn blocks() {
        assert_formats(&[
            ("resource   \"a\"    \"b\"{\n}\n", "resource \"a\" \"b\" {\n}\n"),
            ("block a  b {\n}\n", "block a b {\n}\n"),
            ("b{}", "b {}\n"),
            ("b { }", "b {}\n"),
            ("feature \"x\" {column=\"amount\"}\n", "feature \"x\" { column = \"amount\" }\n"),
            ("feature \"x\" {   column   =   \"amount\"   }\n", "feature \"x\" { column = \"amount\" }\n"),
            ("a {\n\tb {\n\t\tc = 1\n\t}\n}\n", "a {\n  b {\n    c = 1\n  }\n}\n"),
            ("a {\n        b {\nc = 1\n              }\n  }\n", "a {\n  b {\n    c = 1\n  }\n}\n"),
        ]);
    }

    #[test]
    fn expression_spacing() {
        assert_formats(&[
            ("x = ( a+2 )*-b", "x = (a + 2) * -b\n"),
            ("x = foo(1, -2,a*b, b,c)", "x = foo(1, -2, a * b, b, c)\n"),
            ("x = foo (1)", "x = foo(1)\n"),
            ("x = a.b[0].c[ \"k\" ]", "x = a.b[0].c[\"k\"]\n"),
            ("x = foo()[0]", "x = foo()[0]\n"),
            ("x = [\"a\"] [0]", "x = [\"a\"][0]\n"),
            ("x = a.*.b\ny = a[ * ].b\n", "x = a.*.b\ny = a[*].b\n"),
            ("x = a==1?\"y\":\"n\"", "x = a == 1 ? \"y\" : \"n\"\n"),
            ("x = !a&&b||c!=d", "x = !a && b || c != d\n"),
            ("x = a<=b&&c>=d&&e<f&&g>h", "x = a <= b && c >= d && e < f && g > h\n"),
            ("x = a%2+b/3", "x = a % 2 + b / 3\n"),
            ("x = a --1", "x = a - -1\n"),
            ("x = !!a", "x = !!a\n"),
            ("x = -(1)", "x = -(1)\n"),
            ("x = a-b\ny = a - b\n", "x = a-b\ny = a - b\n"),
            ("x = 1.5e-3+2E10", "x = 1.5e-3 + 2E10\n"),
            ("x = a.0.b", "x = a.0.b\n"),
            ("x = provider :: aws :: arn(1)", "x = provider::aws::arn(1)\n"),
            ("x = [ [ ] ]", "x = [[]]\n"),
            ("x = {}\ny = [ ]\nz = f( )\n", "x = {}\ny = []\nz = f()\n"),
            ("x = [1, 2, ]", "x = [1, 2,]\n"),
            ("x = f(xs ...)", "x = f(xs...)\n"),
            ("x = {a=1,\"b\":2}", "x = { a = 1, \"b\" : 2 }\n"),
            ("x = {(k)=1}", "x = { (k) = 1 }\n"),
        ]);
    }

    #[test]
    fn for_expressions() {
        assert_formats(&[
            ("x = [for s in var.l: upper(s) if s!=\"\"]", "x = [for s in var.l : upper(s) if s != \"\"]\n"),
            ("x = {for k,v in m: k=>v...}", "x = { for k, v in m : k => v... }\n"),
            ("x = [for v in xs: -v]", "x = [for v in xs : -v]\n"),
            ("x = [for v in xs: v if(v)]", "x = [for v in xs : v if (v)]\n"),
            ("x = [for v in [1,2]: v]", "x = [for v in [1, 2] : v]\n"),
            // A for expression's `:` is not an object element's.
            ("x = {\nfor k, v in m:\nk => v\n}\n", "x = {\n  for k, v in m :\n  k => v\n}\n"),
            // Keywords are only keywords inside a for expression.
            ("x = { in = 1, if = 2 }", "x = { in = 1, if = 2 }\n"),
        ]);
    }

    #[test]
    fn multi_line_collections() {
        assert_formats(&[
            ("x = [\n1,\n- 2,\na*b,\n]\n", "x = [\n  1,\n  -2,\n  a * b,\n]\n"),
            ("x = {\na: 1\nbbb: 2\n}\n", "x = {\n  a   : 1\n  bbb : 2\n}\n"),
            ("x = {\n  a = 1,\n      bb = 2\n}\n", "x = {\n  a  = 1,\n  bb = 2\n}\n"),
            ("x = foo({\na = 1\n})\n", "x = foo({\n  a = 1\n})\n"),
            ("x = [{\n# ...\n}]\n", "x = [{\n  # ...\n}]\n"),
            ("x = [\n{\na = 1\n},\n{\nb = 2\n}\n]\n", "x = [\n  {\n    a = 1\n  },\n  {\n    b = 2\n  }\n]\n"),
            ("x = foo(\na,\nbar(\nb\n)\n)\n", "x = foo(\n  a,\n  bar(\n    b\n  )\n)\n"),
            ("x = foo(1,\nbar(2))\n", "x = foo(1,\n  bar(2))\n"),
            ("x = (\na\n? b\n: c\n)\n", "x = (\n  a\n  ? b\n  : c\n)\n"),
            // Lines inside a parenthesised expression are not attributes.
            ("x = (\n  a ? b : c\n)\ny = 2\n", "x = (\n  a ? b : c\n)\ny = 2\n"),
        ]);
    }

    #[test]
    fn blank_lines_and_line_endings() {
        assert_formats(&[
            ("\n\n\na = 1\n\n\n\nb = 2\n\n\n", "a = 1\n\nb = 2\n"),
            ("a {\n\n  b = 1\n\n}\n", "a {\n  b = 1\n}\n"),
            ("x = [\n\n  1,\n\n  2,\n\n]\n", "x = [\n  1,\n\n  2,\n]\n"),
            ("a {\n}\n\n\n\nb {\n}\n", "a {\n}\n\nb {\n}\n"),
            ("a = 1\r\nbb = 2\r\n", "a  = 1\nbb = 2\n"),
            ("a = 1", "a = 1\n"),
            ("a = 1\n\n\n", "a = 1\n"),
            ("", ""),
            ("\n\n  \n\t\n", ""),
            ("# only a comment", "# only a comment\n"),
            ("a = 1   \nb = 2\t\n", "a = 1\nb = 2\n"),
        ]);
    }

    #[test]
    fn comments_are_kept_and_reindented() {
        assert_formats(&[
            ("# top\n// slash\n/* block */\na = 1 // trailing\n", "# top\n// slash\n/* block */\na = 1 // trailing\n"),
            ("a {\n      # deep\nb = 1 #   x   \n}\n", "a {\n  # deep\n  b = 1 #   x\n}\n"),
            ("a = 1# tight\n", "a = 1 # tight\n"),
            ("a {\n/*\n * doc\n */\nb = 1\n}\n", "a {\n  /*\n   * doc\n   */\n  b = 1\n}\n"),
            ("a {\n\t/* x\n\t   y */\n\tb = 1\n}\n", "a {\n  /* x\n     y */\n  b = 1\n}\n"),
            ("x = foo(/* first */ 1, 2 /* two */)", "x = foo(/* first */ 1, 2 /* two */)\n"),
            ("x = [ # list\n1,\n]\n", "x = [ # list\n  1,\n]\n"),
            ("x = [\n1, # one\n2,\n]\n", "x = [\n  1, # one\n  2,\n]\n"),
            ("b {\n  a = 1\n  # last\n}\n", "b {\n  a = 1\n  # last\n}\n"),
            ("a = 1 /* note */\n", "a = 1 /* note */\n"),
        ]);
    }

    #[test]
    fn heredocs_are_untouched() {
        assert_formats(&[
            (
                "a {\ndoc = <<EOT\n  keep   \n\tthis\n\n\n\nEOT\n}\n",
                "a {\n  doc = <<EOT\n  keep   \n\tthis\n\n\n\nEOT\n}\n",
            ),
            (
                "a {\n      doc = <<-EOT\n        indented\n          more\n      EOT\n}\n",
                "a {\n  doc = <<-EOT\n        indented\n          more\n      EOT\n}\n",
            ),
            ("x = <<EOF\nEOF\n", "x = <<EOF\nEOF\n"),
            ("x = jsonencode(<<EOF\n{\"a\": 1}\nEOF\n)\n", "x = jsonencode(<<EOF\n{\"a\": 1}\nEOF\n)\n"),
            ("x = f(<<EOF\nhi\nEOF)\n", "x = f(<<EOF\nhi\nEOF)\n"),
            (
                "x = <<EOF\n${jsonencode({a = \"}\"})}\nEOFX\n  EOF\ny=1\n",
                "x = <<EOF\n${jsonencode({a = \"}\"})}\nEOFX\n  EOF\ny = 1\n",
            ),
            ("x = [<<A\none\nA\n, <<B\ntwo\nB\n]\n", "x = [<<A\none\nA\n  , <<B\ntwo\nB\n]\n"),
        ]);
    }

    #[test]
    fn strings_and_templates_are_verbatim() {
        assert_formats(&[
            ("x = \"a  ${ b }  c\"", "x = \"a  ${ b }  c\"\n"),
            ("x = \"esc \\\" ${\"nested}\"} $${lit} %%{lit}\"", "x = \"esc \\\" ${\"nested}\"} $${lit} %%{lit}\"\n"),
            ("x = \"%{ if a }yes%{ else }no%{ endif }\"", "x = \"%{ if a }yes%{ else }no%{ endif }\"\n"),
            ("x = \"${\nfoo  \n}\"\ny = 1\n", "x = \"${\nfoo  \n}\"\ny = 1\n"),
            ("x = \"#not a comment\" # comment\n", "x = \"#not a comment\" # comment\n"),
            ("x = \"ünïcödé  ✓\"", "x = \"ünïcödé  ✓\"\n"),
        ]);
    }

    #[test]
    fn invalid_input_is_refused() {
        for (input, offset) in [
            ("a = 1\nb = = 2\n", 10),
            ("x {\n  a = 1\n", 11),
            ("a = [1, 2\n", 9),
            ("a = 1 b = 2", 6),
            // Strict HCL: a one-line block holds at most one attribute.
            ("f \"x\" { a = 1 b = 2 }\n", 14),
        ] {
            let err = format_source(input).expect_err(input);
            assert_eq!(err.offset, offset, "{input:?}: {err}");
            assert!(!err.message.is_empty());
            let parser = parse_body(input).expect_err(input);
            assert_eq!(err.message, parser.message());
        }
        for input in ["= 1", "a = \"open\n", "a = <<EOF\nnever closed\n", "{", "a = (1"] {
            let err = format_source(input).expect_err(input);
            assert!(err.offset <= input.len(), "{input:?}: {err}");
        }
    }

    #[test]
    fn error_offsets_refer_to_the_original_text() {
        // CRLF line endings must not shift the reported offset.
        let input = "a = 1\r\nb = = 2\r\n";
        assert_eq!(format_source(input).unwrap_err().offset, 11);
    }

    #[test]
    fn crlf_heredoc_becomes_lf() {
        let out = fmt("x = <<EOF\r\nline\r\nEOF\r\n");
        assert_eq!(out, "x = <<EOF\nline\nEOF\n");
    }

    #[test]
    fn safety_net_keeps_meaning_for_odd_input() {
        // Whatever the formatter does, the result parses to the same configuration.
        for input in [CANONICAL, "a = 1\n", "x = [\n  1\n  , 2\n]\n"] {
            let out = format_source(input).unwrap();
            let (mut a, mut b) = (parse_body(input).unwrap(), parse_body(&out).unwrap());
            assert!(same_meaning(&mut a, &mut b));
        }
    }

    /// Pieces for generated configurations: expressions with deliberately odd spacing.
    const VALUES: &[&str] = &[
        "1",
        "\"s\"",
        "a.b.c",
        "a  +b*  2",
        "[ 1,2 ,3 ]",
        "{a=1,b = \"x\"}",
        "f( x , y )",
        "c?1:2",
        "[for x in xs: x if x!=0]",
        "{for k,v in m: k=>v}",
        "-a",
        "!b",
        "a[*].id",
        "\"${x}  y\"",
        "[\n1,\n2\n]",
        "{\n  k = 1\n    kk = 2\n}",
        "<<EOT\n  raw   \nEOT",
        "foo(\n1,\n  2)",
    ];

    fn generated_config() -> impl Strategy<Value = String> {
        let ws = prop::sample::select(vec!["", " ", "  ", "\t", " \t "]);
        let comment = prop::sample::select(vec!["", " # c", "// c2", " /* c3 */"]);
        let attr =
            (ws.clone(), "[a-z][a-z_]{0,8}", ws.clone(), ws.clone(), prop::sample::select(VALUES.to_vec()), comment)
                .prop_map(|(lead, key, s1, s2, value, comment)| {
                    let comment = if value.contains("<<") { "" } else { comment };
                    format!("{lead}{key}{s1}={s2}{value}{comment}")
                });
        let line = prop_oneof![
            4 => attr,
            1 => Just(String::new()),
            1 => Just("# note".to_owned()),
            1 => Just("  /* multi\n line */".to_owned()),
        ];
        let block_body = prop::collection::vec(line.clone(), 0..6);
        let block = (ws.clone(), "[a-z]{1,6}", prop::option::of("[a-z]{1,4}"), block_body).prop_map(
            |(lead, kind, label, body)| {
                let label = label.map(|l| format!(" \"{l}\"")).unwrap_or_default();
                let mut keys = std::collections::HashSet::new();
                let body: Vec<String> = body.into_iter().filter(|l| unique_key(l, &mut keys)).collect();
                format!("{lead}{kind}{label}{{\n{}\n}}", body.join("\n"))
            },
        );
        let item = prop_oneof![3 => line, 2 => block];
        (prop::collection::vec(item, 0..8), prop::bool::ANY).prop_map(|(items, crlf)| {
            let mut keys = std::collections::HashSet::new();
            let items: Vec<String> = items.into_iter().filter(|l| unique_key(l, &mut keys)).collect();
            let text = items.join("\n");
            if crlf {
                text.replace('\n', "\r\n")
            } else {
                text
            }
        })
    }

    /// Keeps attribute keys unique within a body (duplicates are a parse error).
    fn unique_key(line: &str, keys: &mut std::collections::HashSet<String>) -> bool {
        let trimmed = line.trim_start();
        match trimmed.split_once('=') {
            Some((key, _)) if !trimmed.contains('{') || key.len() < trimmed.find('{').unwrap_or(0) => {
                keys.insert(key.trim().to_owned())
            }
            _ => true,
        }
    }

    proptest! {
        // No regression files: the tests must not write into the source tree.
        #![proptest_config(ProptestConfig {
            cases: 300,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn generated_configs_format_well(src in generated_config()) {
            if parse_body(&src).is_ok() {
                fmt(&src);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(src in "[a-z0-9 \t\n\r=\\{\\}\\[\\]\\(\\),.:?\"#/*<>!+\\-$%~é]{0,80}") {
            if let Ok(out) = format_source(&src) {
                prop_assert_eq!(format_source(&out), Ok(out.clone()));
            }
        }

        #[test]
        fn mutated_sample_never_panics(at in 0usize..CANONICAL.len(), len in 0usize..6, insert in "[ \n{}\\[\\]\"#=<]{0,3}") {
            let mut src = CANONICAL.as_bytes().to_vec();
            let end = (at + len).min(src.len());
            src.splice(at..end, insert.bytes());
            let src = String::from_utf8_lossy(&src).into_owned();
            if let Ok(out) = format_source(&src) {
                prop_assert_eq!(format_source(&out), Ok(out.clone()));
                check_properties(&src, &out);
            }
        }
    }
}
