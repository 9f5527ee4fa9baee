//! The subset of SOQL the connectors use:
//! `SELECT f1, Rel.f2 FROM Type [WHERE cond] [ORDER BY f [ASC|DESC] [, ...]] [LIMIT n]`,
//! where a condition is `f op v`, `f [NOT] IN (v, ...)`, `NOT cond`, a parenthesised
//! condition, or conditions joined by `AND` or by `OR` (mixing both needs parentheses,
//! as SOQL wants); `op` is one of `= != <> < <= > >=`, `v` a quoted string, number,
//! `true`, `false`, `null`, a date or a dateTime literal, and a field may be a parent
//! relationship one level deep (`Account.BillingCountryCode`). Anything else is refused
//! as a malformed query, never answered wrongly.

use std::cmp::Ordering;

use serde_json::Value;

/// A parsed query.
#[derive(Debug, PartialEq)]
pub struct Soql {
    /// Selected fields, as written.
    pub fields: Vec<String>,
    /// The sObject type.
    pub from: String,
    /// The WHERE clause.
    pub filter: Option<Expr>,
    /// Sort keys in order: field and whether descending.
    pub order_by: Vec<(String, bool)>,
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
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The field, as written.
    pub field: String,
    /// The operator.
    pub op: Op,
    /// The value compared with.
    pub value: Literal,
}

/// A WHERE clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `field op literal`
    Cmp(Condition),
    /// `field [NOT] IN (a, b)`
    In {
        /// The field, as written.
        field: String,
        /// The values.
        values: Vec<Literal>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `NOT expr`
    Not(Box<Expr>),
    /// Every one holds.
    And(Vec<Expr>),
    /// At least one holds.
    Or(Vec<Expr>),
}

impl Expr {
    /// Every field the clause reads, as written.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            Expr::Cmp(c) => vec![c.field.as_str()],
            Expr::In { field, .. } => vec![field.as_str()],
            Expr::Not(e) => e.fields(),
            Expr::And(v) | Expr::Or(v) => v.iter().flat_map(Expr::fields).collect(),
        }
    }

    /// Whether a record satisfies the clause; `get` gives a field's value by its name as
    /// written.
    pub fn eval(&self, get: &dyn Fn(&str) -> Option<Value>) -> bool {
        match self {
            Expr::Cmp(c) => c.matches(get(&c.field).as_ref()),
            Expr::In {
                field,
                values,
                negated,
            } => {
                let v = get(field);
                let hit = values.iter().any(|l| {
                    Condition {
                        field: field.clone(),
                        op: Op::Eq,
                        value: l.clone(),
                    }
                    .matches(v.as_ref())
                });
                hit != *negated
            }
            Expr::Not(e) => !e.eval(get),
            Expr::And(v) => v.iter().all(|e| e.eval(get)),
            Expr::Or(v) => v.iter().any(|e| e.eval(get)),
        }
    }
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
        } else if c == ',' || c == '(' || c == ')' {
            chars.next();
            out.push(c.to_string());
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

const KEYWORDS: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "ORDER", "BY", "LIMIT", "ASC", "DESC",
];

struct Parser {
    toks: Vec<String>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.i).map(String::as_str)
    }

    fn kw(&self, k: &str) -> bool {
        self.peek().is_some_and(|t| t.eq_ignore_ascii_case(k))
    }

    fn next(&mut self) -> Result<String, String> {
        let t = self
            .toks
            .get(self.i)
            .cloned()
            .ok_or("unexpected end of query")?;
        self.i += 1;
        Ok(t)
    }

    fn unexpected(&self) -> String {
        format!("unexpected token: '{}'", self.peek().unwrap_or("<end>"))
    }

    fn field(&mut self) -> Result<String, String> {
        let f = self.next()?;
        let ok = !f.is_empty()
            && !f.starts_with('\'')
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(&f));
        if !ok {
            return Err(format!("unexpected token: '{f}'"));
        }
        if f.matches('.').count() > 1 {
            return Err(format!(
                "unexpected token: '{f}'; the mock follows parent relationships one level deep"
            ));
        }
        Ok(f)
    }

    /// `term (OR term)*` or `term (AND term)*`, never both at one level.
    fn expr(&mut self) -> Result<Expr, String> {
        let first = self.factor()?;
        let joiner = if self.kw("AND") {
            "AND"
        } else if self.kw("OR") {
            "OR"
        } else {
            return Ok(first);
        };
        let mut parts = vec![first];
        while self.kw(joiner) {
            self.i += 1;
            parts.push(self.factor()?);
        }
        let other = if joiner == "AND" { "OR" } else { "AND" };
        if self.kw(other) {
            return Err(format!(
                "unexpected token: '{other}'; use parentheses to mix AND and OR"
            ));
        }
        Ok(if joiner == "AND" {
            Expr::And(parts)
        } else {
            Expr::Or(parts)
        })
    }

    fn factor(&mut self) -> Result<Expr, String> {
        if self.peek() == Some("(") {
            self.i += 1;
            if self.kw("SELECT") {
                return Err("unexpected token: 'SELECT'; the mock supports no subqueries".into());
            }
            let e = self.expr()?;
            if self.peek() != Some(")") {
                return Err(self.unexpected());
            }
            self.i += 1;
            return Ok(e);
        }
        if self.kw("NOT") {
            self.i += 1;
            return Ok(Expr::Not(Box::new(self.factor()?)));
        }
        let field = self.field()?;
        let negated = if self.kw("NOT") {
            self.i += 1;
            if !self.kw("IN") {
                return Err(self.unexpected());
            }
            true
        } else {
            false
        };
        if self.kw("IN") {
            self.i += 1;
            if self.peek() != Some("(") {
                return Err(self.unexpected());
            }
            self.i += 1;
            if self.kw("SELECT") {
                return Err("unexpected token: 'SELECT'; the mock supports no subqueries".into());
            }
            let mut values = Vec::new();
            loop {
                values.push(literal(&self.next()?)?);
                match self.next()?.as_str() {
                    "," => continue,
                    ")" => break,
                    other => return Err(format!("unexpected token: '{other}'")),
                }
            }
            return Ok(Expr::In {
                field,
                values,
                negated,
            });
        }
        let op = match self.peek() {
            Some("=") => Op::Eq,
            Some("!=") | Some("<>") => Op::Ne,
            Some("<") => Op::Lt,
            Some("<=") => Op::Le,
            Some(">") => Op::Gt,
            Some(">=") => Op::Ge,
            _ => return Err(self.unexpected()),
        };
        self.i += 1;
        let value = literal(&self.next()?)?;
        Ok(Expr::Cmp(Condition { field, op, value }))
    }
}

/// Parses a query or says, in Salesforce's words where it can, why not.
pub fn parse(q: &str) -> Result<Soql, String> {
    let mut p = Parser {
        toks: tokenize(q)?,
        i: 0,
    };
    if !p.kw("SELECT") {
        return Err(p.unexpected());
    }
    p.i += 1;
    let mut fields = Vec::new();
    loop {
        if p.peek() == Some("(") {
            return Err("unexpected token: '('; the mock supports no subqueries".into());
        }
        fields.push(p.field()?);
        if p.peek() == Some(",") {
            p.i += 1;
            continue;
        }
        break;
    }
    if !p.kw("FROM") {
        return Err(p.unexpected());
    }
    p.i += 1;
    let from = p.field()?;
    let filter = if p.kw("WHERE") {
        p.i += 1;
        Some(p.expr()?)
    } else {
        None
    };
    let mut order_by = Vec::new();
    if p.kw("ORDER") {
        p.i += 1;
        if !p.kw("BY") {
            return Err(p.unexpected());
        }
        p.i += 1;
        loop {
            let f = p.field()?;
            let desc = if p.kw("DESC") {
                p.i += 1;
                true
            } else {
                if p.kw("ASC") {
                    p.i += 1;
                }
                false
            };
            order_by.push((f, desc));
            if p.peek() == Some(",") {
                p.i += 1;
                continue;
            }
            break;
        }
    }
    let mut limit = None;
    if p.kw("LIMIT") {
        p.i += 1;
        let n = p.next()?;
        limit = Some(n.parse().map_err(|_| format!("unexpected token: '{n}'"))?);
    }
    if p.peek().is_some() {
        return Err(p.unexpected());
    }
    Ok(Soql {
        fields,
        from,
        filter,
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
        let Some(Expr::And(parts)) = &q.filter else {
            panic!("{:?}", q.filter)
        };
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0],
            Expr::Cmp(Condition {
                field: "IsWon".into(),
                op: Op::Eq,
                value: Literal::Bool(true)
            })
        );
        assert_eq!(q.order_by, vec![("SystemModstamp".into(), false)]);
        assert_eq!(q.limit, Some(200));
        let f = q.filter.expect("filter");
        let rec = |won: bool, stamp: &str| {
            let won = json!(won);
            let stamp = json!(stamp);
            move |n: &str| match n {
                "IsWon" => Some(won.clone()),
                "SystemModstamp" => Some(stamp.clone()),
                _ => None,
            }
        };
        assert!(f.eval(&rec(true, "2024-01-02T00:00:00.000+0000")));
        assert!(!f.eval(&rec(true, "2023-12-31T23:59:59.000+0000")));
        assert!(!f.eval(&rec(false, "2024-01-02T00:00:00.000+0000")));
    }

    /// The poller's exact cursor: `(SystemModstamp, Id)` with a tie-breaker.
    #[test]
    fn parses_or_parentheses_in_and_two_sort_keys() {
        let q = parse(
            "SELECT Id, Account.BillingCountryCode FROM Opportunity WHERE IsWon = true AND (SystemModstamp > 2024-01-01T00:00:00Z OR (SystemModstamp = 2024-01-01T00:00:00Z AND Id > '006B')) AND StageName IN ('Closed Won', 'Won') ORDER BY SystemModstamp ASC, Id DESC",
        )
        .expect("parses");
        assert_eq!(q.fields[1], "Account.BillingCountryCode");
        assert_eq!(
            q.order_by,
            vec![("SystemModstamp".into(), false), ("Id".into(), true)]
        );
        let f = q.filter.expect("filter");
        assert_eq!(
            f.fields(),
            vec![
                "IsWon",
                "SystemModstamp",
                "SystemModstamp",
                "Id",
                "StageName"
            ]
        );
        let rec = |stamp: &str, id: &str, stage: &str| {
            let (stamp, id, stage) = (json!(stamp), json!(id), json!(stage));
            move |n: &str| match n {
                "IsWon" => Some(json!(true)),
                "SystemModstamp" => Some(stamp.clone()),
                "Id" => Some(id.clone()),
                "StageName" => Some(stage.clone()),
                _ => None,
            }
        };
        assert!(f.eval(&rec("2024-01-01T00:00:00.000+0000", "006C", "Won")));
        assert!(!f.eval(&rec("2024-01-01T00:00:00.000+0000", "006A", "Won")));
        assert!(f.eval(&rec("2024-01-02T00:00:00.000+0000", "006A", "Closed Won")));
        assert!(!f.eval(&rec("2024-01-02T00:00:00.000+0000", "006A", "Lost")));
        let not_in = parse("SELECT Id FROM Lead WHERE NOT Country NOT IN ('DE')").expect("parses");
        assert!(not_in.filter.expect("filter").eval(&|_| Some(json!("DE"))));
    }

    #[test]
    fn quoted_strings_keep_escapes_and_spaces() {
        let q = parse("SELECT Id FROM Account WHERE Name = 'O\\'Brien & Co'").expect("parses");
        let Some(Expr::Cmp(c)) = q.filter else {
            panic!("one condition")
        };
        assert_eq!(c.value, Literal::Str("O'Brien & Co".into()));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        assert!(parse("SELECT FROM Account").is_err());
        assert!(parse("SELECT Id FROM Account WHERE A = 'x' AND B = 'y' OR C = 'z'").is_err());
        assert!(
            parse("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact)").is_err()
        );
        assert!(parse("SELECT Id, (SELECT Id FROM Contacts) FROM Account").is_err());
        assert!(parse("SELECT Owner.Manager.Name FROM Account").is_err());
        assert!(parse("DELETE Account").is_err());
        assert!(parse("SELECT Id FROM Account LIMIT x").is_err());
        assert!(parse("SELECT Id FROM Account WHERE Name = 'open").is_err());
        assert!(parse("SELECT Id FROM Account WHERE (Name = 'a'").is_err());
        assert!(parse("SELECT Id FROM Account WHERE Name IN ('a' 'b')").is_err());
    }
}
