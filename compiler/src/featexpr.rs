//! Row-level feature expressions (`expression = "log1p(amount) / (balance + 1)"`): a small
//! arithmetic language over a source's columns, parsed at compile time (so a typo is a
//! diagnostic, not a runtime failure) and evaluated by the runtime per row.

use serde::{Deserialize, Serialize};

/// Functions an expression may call, with their arity.
pub const FUNCTIONS: &[(&str, usize)] = &[
    ("log", 1),
    ("log1p", 1),
    ("exp", 1),
    ("sqrt", 1),
    ("abs", 1),
    ("hour", 1),
    ("day_of_week", 1),
    ("is_null", 1),
    ("min", 2),
    ("max", 2),
];

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// A number literal.
    Num(f64),
    /// A column.
    Col(String),
    /// `-x`
    Neg(Box<Expr>),
    /// `a op b` with op one of + - * /.
    Bin(char, Box<Expr>, Box<Expr>),
    /// `f(args)`.
    Call(String, Vec<Expr>),
}

/// A parse error at a byte offset of the expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// What is wrong.
    pub message: String,
    /// Byte offset in the expression.
    pub offset: usize,
}

impl Expr {
    /// Columns read, in first-use order, without repeats.
    pub fn columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Col(c) = e {
                if !out.contains(c) {
                    out.push(c.clone());
                }
            }
        });
        out
    }

    fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Neg(a) => a.walk(f),
            Expr::Bin(_, a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.walk(f)),
            Expr::Num(_) | Expr::Col(_) => {}
        }
    }

    /// Evaluates against a row; `col` gives a column's numeric value (timestamps as Unix
    /// seconds), `None` for null. Nulls propagate as NaN, except through `is_null`.
    pub fn eval(&self, col: &dyn Fn(&str) -> Option<f64>) -> f64 {
        match self {
            Expr::Num(n) => *n,
            Expr::Col(c) => col(c).unwrap_or(f64::NAN),
            Expr::Neg(a) => -a.eval(col),
            Expr::Bin(op, a, b) => {
                let (a, b) = (a.eval(col), b.eval(col));
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    _ => a / b,
                }
            }
            Expr::Call(name, args) => {
                if name == "is_null" {
                    return match &args[..] {
                        [Expr::Col(c)] => f64::from(u8::from(col(c).is_none())),
                        [a] => f64::from(u8::from(a.eval(col).is_nan())),
                        _ => f64::NAN,
                    };
                }
                let v: Vec<f64> = args.iter().map(|a| a.eval(col)).collect();
                match (name.as_str(), &v[..]) {
                    ("log", [x]) => x.ln(),
                    ("log1p", [x]) => x.ln_1p(),
                    ("exp", [x]) => x.exp(),
                    ("sqrt", [x]) => x.sqrt(),
                    ("abs", [x]) => x.abs(),
                    ("hour", [t]) => (t.rem_euclid(86_400.0) / 3_600.0).floor(),
                    // 1970-01-01 was a Thursday; Monday = 0.
                    ("day_of_week", [t]) => ((t / 86_400.0).floor() + 3.0).rem_euclid(7.0),
                    ("min", [a, b]) => a.min(*b),
                    ("max", [a, b]) => a.max(*b),
                    _ => f64::NAN,
                }
            }
        }
    }
}

/// Parses an expression.
pub fn parse(text: &str) -> Result<Expr, ExprError> {
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let e = p.expr()?;
    p.ws();
    if p.i < p.s.len() {
        return Err(p.err(format!("unexpected `{}`", p.char_at())));
    }
    Ok(e)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> ExprError {
        ExprError { message: message.into(), offset: self.i }
    }

    /// The (possibly multi-byte) character at the cursor, for messages.
    fn char_at(&self) -> char {
        std::str::from_utf8(&self.s[self.i..]).ok().and_then(|t| t.chars().next()).unwrap_or('?')
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn expr(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.term()?;
        while let Some(c @ (b'+' | b'-')) = self.peek() {
            self.i += 1;
            let rhs = self.term()?;
            lhs = Expr::Bin(c as char, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn term(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.unary()?;
        while let Some(c @ (b'*' | b'/')) = self.peek() {
            self.i += 1;
            let rhs = self.unary()?;
            lhs = Expr::Bin(c as char, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.peek() == Some(b'-') {
            self.i += 1;
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, ExprError> {
        match self.peek() {
            None => Err(self.err("expression ends too early")),
            Some(b'(') => {
                self.i += 1;
                let e = self.expr()?;
                if self.peek() != Some(b')') {
                    return Err(self.err("expected `)`"));
                }
                self.i += 1;
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => {
                let start = self.i;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_digit() || matches!(self.s[self.i], b'.' | b'e' | b'E'))
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                text.parse::<f64>()
                    .map(Expr::Num)
                    .map_err(|_| ExprError { message: format!("`{text}` is not a number"), offset: start })
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_') {
                    self.i += 1;
                }
                let name = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                if self.peek() != Some(b'(') {
                    return Ok(Expr::Col(name));
                }
                let Some((_, arity)) = FUNCTIONS.iter().find(|(f, _)| *f == name) else {
                    return Err(ExprError {
                        message: format!(
                            "unknown function `{name}` (functions: {})",
                            FUNCTIONS.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ")
                        ),
                        offset: start,
                    });
                };
                self.i += 1;
                let mut args = Vec::new();
                if self.peek() != Some(b')') {
                    loop {
                        args.push(self.expr()?);
                        match self.peek() {
                            Some(b',') => self.i += 1,
                            Some(b')') => break,
                            _ => return Err(self.err("expected `,` or `)`")),
                        }
                    }
                }
                self.i += 1;
                if args.len() != *arity {
                    return Err(ExprError {
                        message: format!("`{name}` takes {arity} argument(s), got {}", args.len()),
                        offset: start,
                    });
                }
                Ok(Expr::Call(name, args))
            }
            Some(_) => Err(self.err(format!("unexpected `{}`", self.char_at()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_precedence_and_columns() {
        let e = parse("log1p(amount) / (balance + 1) - 2 * x").unwrap();
        assert_eq!(e.columns(), vec!["amount", "balance", "x"]);
        let v = e.eval(&|c| match c {
            "amount" => Some(0.0),
            "balance" => Some(1.0),
            "x" => Some(3.0),
            _ => None,
        });
        assert_eq!(v, -6.0);
    }

    #[test]
    fn reports_errors_with_offsets() {
        assert_eq!(parse("amount +").unwrap_err().offset, 8);
        assert!(parse("lgo(amount)").unwrap_err().message.contains("unknown function `lgo`"));
        assert!(parse("min(a)").unwrap_err().message.contains("takes 2"));
        assert!(parse("(a + b").unwrap_err().message.contains("expected `)`"));
        assert!(parse("a $ b").is_err());
        assert_eq!(parse("a é").unwrap_err().message, "unexpected `é`");
    }

    #[test]
    fn time_functions_and_nulls() {
        // 2026-11-27T07:00:00Z is a Friday (4 with Monday = 0).
        let t = 1_795_762_800.0;
        assert_eq!(parse("hour(t)").unwrap().eval(&|_| Some(t)), 7.0);
        assert_eq!(parse("day_of_week(t)").unwrap().eval(&|_| Some(t)), 4.0);
        assert_eq!(parse("is_null(t)").unwrap().eval(&|_| None), 1.0);
        assert!(parse("t + 1").unwrap().eval(&|_| None).is_nan());
    }
}
