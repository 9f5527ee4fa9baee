//! The subset of SOQL the connectors use:
//! `SELECT f1, f2 FROM Type [WHERE f op v [AND f op v]...] [ORDER BY f [ASC|DESC]] [LIMIT n]`
//! with `op` one of `= != <> < <= > >=` and `v` a quoted string, number, `true`,
//! `false`, `null`, a date or a dateTime literal. Anything else is refused as a
//! malformed query, never answered wrongly.

use std::cmp::Ordering;

use serde_json::Value;

/// A parsed query.
#[derive(Debug, PartialEq)]
pub struct Soql {
    /// Selected fields, as written.
    pub fields: Vec<String>,
    /// The sObject type.
    pub from: String,
    /// Conditions joined by AND.
    pub conditions: Vec<Condition>,
    /// Sort field and whether descending.
    pub order_by: Option<(String, bool)>,
    /// Row limit.
    pub limit: Option<usize>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A literal in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `'text'`
    Str(String),
    /// `42`, `3.5`
    Num(f64),
    /// `true` / `false`
    Bool(bool),
    /// `null`
    Null,
    /// `2024-01-01T00:00:00Z` (milliseconds since the epoch)
    DateTime(i64),
    /// `2024-01-01`
    Date(String),
}

/// `field op literal`
#[derive(Debug, PartialEq)]
pub struct Condition {
    /// The field, as written.
    pub field: String,
    /// The operator.
    pub op: Op,
    /// The value compared with.
    pub value: Literal,
}

fn tokenize(q: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut s = String::from("'");
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(e) => s.push(e),
                        None => return Err("unterminated string literal".into()),
                    },
                    Some('\'') => break,
                    Some(ch) => s.push(ch),
                    None => return Err("unterminated string literal".into()),
                }
            }
            out.push(s);
        } else if c == ',' {
            chars.next();
            out.push(",".into());
        } else if "=!<>".contains(c) {
            let mut op = String::new();
            while let Some(&o) = chars.peek() {
                if "=!<>".contains(o) {
                    op.push(o);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(op);
        } else if c == '(' || c == ')' {
            return Err(
                "unexpected token: '('; the mock supports no subqueries or grouping".into(),
            );
        } else {
            let mut word = String::new();
            while let Some(&w) = chars.peek() {
                if w.is_whitespace() || w == ',' || "=!<>()'".contains(w) {
                    break;
                }
                word.push(w);
                chars.next();
            }
            out.push(word);
        }
    }
    Ok(out)
}

fn literal(tok: &str) -> Result<Literal, String> {
    if let Some(s) = tok.strip_prefix('\'') {
        return Ok(Literal::Str(s.to_string()));
    }
    match tok.to_ascii_lowercase().as_str() {
        "true" => return Ok(Literal::Bool(true)),
        "false" => return Ok(Literal::Bool(false)),
        "null" => return Ok(Literal::Null),
        _ => {}
    }
    if tok.contains('T') && tok.len() >= 20 {
        let t = chrono::DateTime::parse_from_rfc3339(tok)
            .or_else(|_| chrono::DateTime::parse_from_str(tok, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .map_err(|_| format!("line 1:0 no viable alternative at character '{tok}'"))?;
        return Ok(Literal::DateTime(t.timestamp_millis()));
    }
    if chrono::NaiveDate::parse_from_str(tok, "%Y-%m-%d").is_ok() {
        return Ok(Literal::Date(tok.to_string()));
    }
    tok.parse::<f64>()
        .map(Literal::Num)
        .map_err(|_| format!("unexpected token: '{tok}'"))
}

/// Parses a query or says, in Salesforce's words where it can, why not.
pub fn parse(q: &str) -> Result<Soql, String> {
    let toks = tokenize(q)?;
    let mut i = 0;
    let kw = |i: usize, k: &str| toks.get(i).is_some_and(|t| t.eq_ignore_ascii_case(k));
    if !kw(0, "SELECT") {
        return Err(format!(
            "unexpected token: '{}'",
            toks.first().map_or("", |s| s)
        ));
    }
    i += 1;
    let mut fields = Vec::new();
    loop {
        let f = toks.get(i).ok_or("unexpected end of query")?;
        if f == "," || f.eq_ignore_ascii_case("FROM") {
            return Err(format!("unexpected token: '{f}'"));
        }
        fields.push(f.clone());
        i += 1;
        if toks.get(i).is_some_and(|t| t == ",") {
            i += 1;
            continue;
        }
        break;
    }
    if !kw(i, "FROM") {
        return Err(format!(
            "unexpected token: '{}'",
            toks.get(i).map_or("<end>", |s| s)
        ));
    }
    let from = toks.get(i + 1).ok_or("unexpected end of query")?.clone();
    i += 2;
    let mut conditions = Vec::new();
    if kw(i, "WHERE") {
        i += 1;
        loop {
            let field = toks.get(i).ok_or("unexpected end of query")?.clone();
            let op = match toks.get(i + 1).map(String::as_str) {
                Some("=") => Op::Eq,
                Some("!=") | Some("<>") => Op::Ne,
                Some("<") => Op::Lt,
                Some("<=") => Op::Le,
                Some(">") => Op::Gt,
                Some(">=") => Op::Ge,
                other => return Err(format!("unexpected token: '{}'", other.unwrap_or("<end>"))),
            };
            let value = literal(toks.get(i + 2).ok_or("unexpected end of query")?)?;
            conditions.push(Condition { field, op, value });
            i += 3;
            if kw(i, "AND") {
                i += 1;
                continue;
            }
            if kw(i, "OR") {
                return Err("unexpected token: 'OR'; the mock supports only AND".into());
            }
            break;
        }
    }
    let mut order_by = None;
    if kw(i, "ORDER") && kw(i + 1, "BY") {
        let f = toks.get(i + 2).ok_or("unexpected end of query")?.clone();
        i += 3;
        let desc = if kw(i, "DESC") {
            i += 1;
            true
        } else {
            if kw(i, "ASC") {
                i += 1;
            }
            false
        };
        order_by = Some((f, desc));
    }
    let mut limit = None;
    if kw(i, "LIMIT") {
        let n = toks.get(i + 1).ok_or("unexpected end of query")?;
        limit = Some(n.parse().map_err(|_| format!("unexpected token: '{n}'"))?);
        i += 2;
    }
    if let Some(t) = toks.get(i) {
        return Err(format!("unexpected token: '{t}'"));
    }
    Ok(Soql {
        fields,
        from,
        conditions,
        order_by,
        limit,
    })
}

fn as_millis(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|d| d.timestamp_millis())
}

/// Orders two field values (absent and null first), for ORDER BY.
pub fn compare_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let a = a.unwrap_or(&Value::Null);
    let b = b.unwrap_or(&Value::Null);
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        _ => match (as_millis(a), as_millis(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => a.to_string().cmp(&b.to_string()),
        },
    }
}

impl Condition {
    /// Whether a record's field value satisfies the condition.
    pub fn matches(&self, field: Option<&Value>) -> bool {
        let v = field.unwrap_or(&Value::Null);
        let ord = match (&self.value, v) {
            (Literal::Null, Value::Null) => Some(Ordering::Equal),
            (Literal::Null, _) => None,
            (_, Value::Null) => None,
            (Literal::Str(s), Value::String(x)) => Some(x.as_str().cmp(s.as_str())),
            (Literal::Date(s), Value::String(x)) => Some(x.as_str().cmp(s.as_str())),
            (Literal::Num(n), Value::Number(x)) => x.as_f64().and_then(|x| x.partial_cmp(n)),
            (Literal::Bool(b), Value::Bool(x)) => Some(x.cmp(b)),
            (Literal::DateTime(t), x) => as_millis(x).map(|x| x.cmp(t)),
            _ => None,
        };
        match (self.op, ord) {
            (Op::Ne, None) => !matches!(self.value, Literal::Null) || !v.is_null(),
            (_, None) => false,
            (Op::Eq, Some(o)) => o == Ordering::Equal,
            (Op::Ne, Some(o)) => o != Ordering::Equal,
            (Op::Lt, Some(o)) => o == Ordering::Less,
            (Op::Le, Some(o)) => o != Ordering::Greater,
            (Op::Gt, Some(o)) => o == Ordering::Greater,
            (Op::Ge, Some(o)) => o != Ordering::Less,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_change_feed_query() {
        let q = parse(
            "SELECT Id, AccountId FROM Opportunity WHERE IsWon = true AND SystemModstamp > 2024-01-01T00:00:00.000+0000 ORDER BY SystemModstamp LIMIT 200",
        )
        .expect("parses");
        assert_eq!(q.fields, vec!["Id", "AccountId"]);
        assert_eq!(q.from, "Opportunity");
        assert_eq!(q.conditions.len(), 2);
        assert_eq!(q.conditions[0].value, Literal::Bool(true));
        assert_eq!(q.order_by, Some(("SystemModstamp".into(), false)));
        assert_eq!(q.limit, Some(200));
        assert!(q.conditions[1].matches(Some(&json!("2024-01-02T00:00:00.000+0000"))));
        assert!(!q.conditions[1].matches(Some(&json!("2023-12-31T23:59:59.000+0000"))));
    }

    #[test]
    fn quoted_strings_keep_escapes_and_spaces() {
        let q = parse("SELECT Id FROM Account WHERE Name = 'O\\'Brien & Co'").expect("parses");
        assert_eq!(q.conditions[0].value, Literal::Str("O'Brien & Co".into()));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        assert!(parse("SELECT FROM Account").is_err());
        assert!(parse("SELECT Id FROM Account WHERE A = 'x' OR B = 'y'").is_err());
        assert!(parse("SELECT Id FROM Account WHERE Id IN ('a')").is_err());
        assert!(parse("DELETE Account").is_err());
        assert!(parse("SELECT Id FROM Account LIMIT x").is_err());
        assert!(parse("SELECT Id FROM Account WHERE Name = 'open").is_err());
    }
}
