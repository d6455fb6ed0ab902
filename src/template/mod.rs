//! The Go `text/template` subset Prometheus rule annotations and alert
//! messages use: `{{ $labels.x }}`, `{{ $value }}`, `{{ $externalLabels.x }}`,
//! `{{ .Labels.x }}`, pipes (`{{ $value | humanize }}`), `printf`, the
//! `humanize*` family, `if`/`else`/`end`, `range`, `with`, variables,
//! comments and `{{-`/`-}}` trimming.
//!
//! Written here because no Rust crate implements Go templates faithfully
//! (Tera, Handlebars and minijinja each have their own syntax, and a user's
//! pasted Prometheus rule must render exactly as Prometheus renders it).
//! Functions that query the store from a template (`query`) are refused at
//! parse time with a clear message rather than rendered wrong.

mod gofmt;

use std::collections::BTreeMap;

use gofmt::PrintfArg;

/// A value a template works on.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Absent (prints as the empty string, as Prometheus' `missingkey=zero`).
    Nil,
    /// A boolean.
    Bool(bool),
    /// A number (Go's float64).
    Num(f64),
    /// A string.
    Str(String),
    /// A map (labels, or a struct's fields).
    Map(BTreeMap<String, Value>),
    /// A list.
    List(Vec<Value>),
}

impl Value {
    /// A map from string pairs (labels).
    pub fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
                .collect(),
        )
    }

    fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Num(n) => *n != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::List(l) => !l.is_empty(),
        }
    }

    fn field(&self, name: &str) -> Value {
        match self {
            Value::Map(m) => m.get(name).cloned().unwrap_or(Value::Nil),
            _ => Value::Nil,
        }
    }

    fn as_f64(&self) -> Result<f64, String> {
        match self {
            Value::Num(n) => Ok(*n),
            Value::Str(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("cannot convert {s:?} to a number")),
            Value::Bool(b) => Ok(f64::from(u8::from(*b))),
            other => Err(format!("cannot convert {} to a number", other.render())),
        }
    }

    /// The value as `{{ . }}` prints it.
    pub fn render(&self) -> String {
        match self {
            Value::Nil => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Num(n) => gofmt::format_v(*n),
            Value::Str(s) => s.clone(),
            Value::Map(m) => {
                let inner: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.render()))
                    .collect();
                format!("map[{}]", inner.join(" "))
            }
            Value::List(l) => format!(
                "[{}]",
                l.iter().map(Value::render).collect::<Vec<_>>().join(" ")
            ),
        }
    }

    fn printf_arg(&self) -> PrintfArg {
        match self {
            Value::Num(n) => PrintfArg::Num(*n),
            Value::Str(s) => PrintfArg::Str(s.clone()),
            other => PrintfArg::Other(other.render()),
        }
    }
}

/// A template that failed to parse or to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template: {0}")]
pub struct TemplateError(pub String);

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Clone, Debug)]
struct Pipeline {
    /// Variables declared (`$x :=`) or assigned (`$x =`).
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Clone, Debug)]
enum Arg {
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Num(f64),
    Bool(bool),
    Nil,
    Func(String),
    Sub(Box<Pipeline>, Vec<String>),
}

const FUNCTIONS: &[&str] = &[
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "printf",
    "print",
    "println",
    "toUpper",
    "toLower",
    "title",
    "index",
    "len",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "not",
    "reReplaceAll",
    "match",
    "safeHtml",
    "stripPort",
    "stripDomain",
    "html",
    "js",
    "urlquery",
];

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Num(f64),
    Ident(String),
    Pipe,
    LParen,
    RParen(Vec<String>),
    Declare,
    Assign,
    Comma,
}

fn lex_fields(chars: &[char], i: &mut usize) -> Vec<String> {
    let mut fields = Vec::new();
    while *i < chars.len() && chars[*i] == '.' {
        let start = *i + 1;
        let mut j = start;
        while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        if j == start {
            break;
        }
        fields.push(chars[start..j].iter().collect());
        *i = j;
    }
    fields
}

/// Deepest nesting of parentheses, or of `if`/`range`/`with` blocks, a
/// template may have: far beyond any rule, and it keeps parsing and
/// rendering from exhausting the stack.
const MAX_NESTING: usize = 100;

fn too_deep() -> TemplateError {
    TemplateError(format!("nested more than {MAX_NESTING} levels deep"))
}

fn lex(action: &str) -> Result<Vec<Tok>, TemplateError> {
    let chars: Vec<char> = action.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut parens = 0usize;
    let err = |m: String| TemplateError(m);
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            '(' => {
                parens += 1;
                if parens > MAX_NESTING {
                    return Err(too_deep());
                }
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                parens = parens.saturating_sub(1);
                i += 1;
                let fields = lex_fields(&chars, &mut i);
                toks.push(Tok::RParen(fields));
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&ch) = chars.get(i) else {
                        return Err(err("unterminated quoted string".into()));
                    };
                    i += 1;
                    match ch {
                        '"' => break,
                        '\\' => {
                            let Some(&e) = chars.get(i) else {
                                return Err(err("unterminated quoted string".into()));
                            };
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                other => other,
                            });
                        }
                        other => s.push(other),
                    }
                }
                toks.push(Tok::Str(s));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or_else(|| err("unterminated raw string".into()))?;
                toks.push(Tok::Str(chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            '.' => {
                let fields = lex_fields(&chars, &mut i);
                if fields.is_empty() {
                    i += 1;
                }
                toks.push(Tok::Dot(fields));
            }
            '$' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                let fields = lex_fields(&chars, &mut i);
                toks.push(Tok::Var(name, fields));
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], '.' | '_' | '+' | '-'))
                {
                    if matches!(chars[i], '+' | '-') && !matches!(chars[i - 1], 'e' | 'E') {
                        break;
                    }
                    i += 1;
                }
                let text: String = chars[start..i].iter().filter(|&&c| c != '_').collect();
                let n = if let Some(hex) = text.strip_prefix("0x") {
                    i64::from_str_radix(hex, 16).map(|v| v as f64).ok()
                } else {
                    text.parse::<f64>().ok()
                };
                toks.push(Tok::Num(
                    n.ok_or_else(|| err(format!("bad number syntax: {text:?}")))?,
                ));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                toks.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(err(format!("unexpected {other:?} in action"))),
        }
    }
    Ok(toks)
}

struct PipeParser {
    toks: Vec<Tok>,
    pos: usize,
}

impl PipeParser {
    fn pipeline(&mut self, allow_decl: bool) -> Result<Pipeline, TemplateError> {
        let mut decl = Vec::new();
        let mut assign = false;
        if allow_decl {
            // `$x :=`, `$i, $e :=` or `$x =`.
            let mut look = self.pos;
            let mut names = Vec::new();
            while let Some(Tok::Var(name, fields)) = self.toks.get(look) {
                if !fields.is_empty() {
                    break;
                }
                names.push(name.clone());
                look += 1;
                if self.toks.get(look) == Some(&Tok::Comma) {
                    look += 1;
                } else {
                    break;
                }
            }
            match self.toks.get(look) {
                Some(Tok::Declare) if !names.is_empty() => {
                    decl = names;
                    self.pos = look + 1;
                }
                Some(Tok::Assign) if names.len() == 1 => {
                    decl = names;
                    assign = true;
                    self.pos = look + 1;
                }
                _ => {}
            }
        }
        let mut cmds = Vec::new();
        loop {
            let mut args = Vec::new();
            while let Some(tok) = self.toks.get(self.pos).cloned() {
                match tok {
                    Tok::Pipe | Tok::RParen(_) => break,
                    Tok::LParen => {
                        self.pos += 1;
                        let inner = self.pipeline(false)?;
                        match self.toks.get(self.pos).cloned() {
                            Some(Tok::RParen(fields)) => {
                                self.pos += 1;
                                args.push(Arg::Sub(Box::new(inner), fields));
                            }
                            _ => return Err(TemplateError("unclosed left paren".into())),
                        }
                    }
                    Tok::Dot(f) => {
                        self.pos += 1;
                        args.push(Arg::Dot(f));
                    }
                    Tok::Var(n, f) => {
                        self.pos += 1;
                        args.push(Arg::Var(n, f));
                    }
                    Tok::Str(s) => {
                        self.pos += 1;
                        args.push(Arg::Str(s));
                    }
                    Tok::Num(n) => {
                        self.pos += 1;
                        args.push(Arg::Num(n));
                    }
                    Tok::Ident(id) => {
                        self.pos += 1;
                        args.push(match id.as_str() {
                            "true" => Arg::Bool(true),
                            "false" => Arg::Bool(false),
                            "nil" => Arg::Nil,
                            "query" => {
                                return Err(TemplateError(
                                    "function \"query\" is not supported by infermon's templates"
                                        .into(),
                                ));
                            }
                            f if FUNCTIONS.contains(&f) => Arg::Func(id),
                            _ => return Err(TemplateError(format!("function {id:?} not defined"))),
                        });
                    }
                    other => return Err(TemplateError(format!("unexpected {other:?} in command"))),
                }
            }
            if args.is_empty() {
                return Err(TemplateError("missing value for command".into()));
            }
            cmds.push(args);
            if self.toks.get(self.pos) == Some(&Tok::Pipe) {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(Pipeline { decl, assign, cmds })
    }
}

fn parse_pipeline(text: &str, allow_decl: bool) -> Result<Pipeline, TemplateError> {
    let mut p = PipeParser {
        toks: lex(text)?,
        pos: 0,
    };
    let pipe = p.pipeline(allow_decl)?;
    if p.pos != p.toks.len() {
        return Err(TemplateError(format!(
            "unexpected {:?} in {text:?}",
            p.toks[p.pos]
        )));
    }
    Ok(pipe)
}

enum Item {
    Text(String),
    Action(String),
}

/// Splits into text and actions, applying `{{-` / `-}}` trimming.
fn split(src: &str) -> Result<Vec<Item>, TemplateError> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let trim_before =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_before {
            text = text.trim_end();
        }
        items.push(Item::Text(text.to_string()));
        let body_start = if trim_before { 1 } else { 0 };
        let after = &after[body_start..];
        let end = if after.trim_start().starts_with("/*") {
            after
                .find("*/")
                .and_then(|c| after[c..].find("}}").map(|e| c + e))
        } else {
            find_close(after)
        }
        .ok_or_else(|| TemplateError("unclosed action".into()))?;
        let mut body = &after[..end];
        trim_next = body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-");
        if trim_next {
            body = &body[..body.len() - 1];
        }
        items.push(Item::Action(body.trim().to_string()));
        rest = &after[end + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    items.push(Item::Text(text.to_string()));
    Ok(items)
}

/// Position of the `}}` that closes an action, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match quote {
            Some(q) => {
                if b[i] == b'\\' && q == b'"' {
                    i += 1;
                } else if b[i] == q {
                    quote = None;
                }
            }
            None => {
                if b[i] == b'"' || b[i] == b'`' {
                    quote = Some(b[i]);
                } else if b[i] == b'}' && b.get(i + 1) == Some(&b'}') {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

enum Stop {
    Eof,
    End,
    Else(Option<String>),
}

fn parse_nodes(
    items: &mut std::iter::Peekable<std::vec::IntoIter<Item>>,
) -> Result<(Vec<Node>, Stop), TemplateError> {
    let mut nodes = Vec::new();
    while let Some(item) = items.next() {
        let action = match item {
            Item::Text(t) => {
                if !t.is_empty() {
                    nodes.push(Node::Text(t));
                }
                continue;
            }
            Item::Action(a) => a,
        };
        if action.starts_with("/*") {
            continue;
        }
        let (word, rest) = match action.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (action.as_str(), ""),
        };
        match word {
            "end" => return Ok((nodes, Stop::End)),
            "else" => {
                return Ok((
                    nodes,
                    Stop::Else((!rest.is_empty()).then(|| rest.to_string())),
                ));
            }
            "if" | "range" | "with" => nodes.push(parse_block(word, rest, items)?),
            "define" | "template" | "block" | "break" | "continue" => {
                return Err(TemplateError(format!("{{{{{word}}}}} is not supported")));
            }
            _ => nodes.push(Node::Action(parse_pipeline(&action, true)?)),
        }
    }
    Ok((nodes, Stop::Eof))
}

/// Parses a block whose opening action (`if`, `range`, `with`) was read,
/// up to its `{{ end }}`. `{{ else if x }}` is an `if` nested in the else
/// branch that shares the same `{{ end }}`.
fn parse_block(
    word: &str,
    rest: &str,
    items: &mut std::iter::Peekable<std::vec::IntoIter<Item>>,
) -> Result<Node, TemplateError> {
    let pipe = parse_pipeline(rest, word != "if")?;
    let (body, end) = parse_nodes(items)?;
    let otherwise = match end {
        Stop::End => Vec::new(),
        Stop::Eof => {
            return Err(TemplateError(format!(
                "unexpected EOF: {{{{{word}}}}} without {{{{end}}}}"
            )));
        }
        Stop::Else(None) => {
            let (nodes, e) = parse_nodes(items)?;
            if !matches!(e, Stop::End) {
                return Err(TemplateError("expected {{end}} after {{else}}".into()));
            }
            nodes
        }
        Stop::Else(Some(chain)) => {
            let (kw, cond) = chain
                .split_once(char::is_whitespace)
                .unwrap_or((&chain, ""));
            if kw != "if" && kw != "with" {
                return Err(TemplateError(format!("unexpected {{{{else {chain}}}}}")));
            }
            vec![parse_block(kw, cond.trim(), items)?]
        }
    };
    Ok(match word {
        "if" => Node::If {
            cond: pipe,
            then: body,
            otherwise,
        },
        "range" => Node::Range {
            pipe,
            body,
            otherwise,
        },
        _ => Node::With {
            pipe,
            body,
            otherwise,
        },
    })
}

/// Refuses blocks nested deeper than [`MAX_NESTING`] before the recursive
/// parser sees them. An `{{ else if }}` nests inside its block and shares
/// its `{{ end }}`.
fn check_block_depth(items: &[Item]) -> Result<(), TemplateError> {
    let mut chains: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    for item in items {
        let Item::Action(action) = item else { continue };
        let mut words = action.split_whitespace();
        match (words.next(), words.next()) {
            (Some("if" | "range" | "with"), _) => chains.push(1),
            (Some("else"), Some("if" | "with")) => {
                if let Some(top) = chains.last_mut() {
                    *top += 1;
                }
            }
            (Some("end"), _) => {
                chains.pop();
            }
            _ => {}
        }
        let now: usize = chains.iter().sum();
        depth = depth.max(now);
        if depth > MAX_NESTING {
            return Err(too_deep());
        }
    }
    Ok(())
}

impl Template {
    /// Parses template text.
    pub fn parse(src: &str) -> Result<Self, TemplateError> {
        let items = split(src)?;
        check_block_depth(&items)?;
        let mut items = items.into_iter().peekable();
        let (nodes, end) = parse_nodes(&mut items)?;
        match end {
            Stop::Eof => Ok(Template { nodes }),
            Stop::End => Err(TemplateError("unexpected {{end}}".into())),
            Stop::Else(_) => Err(TemplateError("unexpected {{else}}".into())),
        }
    }

    /// Renders with `dot` as `.` and `vars` as predeclared `$name`s.
    pub fn render(&self, dot: &Value, vars: &[(&str, Value)]) -> Result<String, TemplateError> {
        let mut scope: Vec<(String, Value)> = vec![("$".to_string(), dot.clone())];
        scope.extend(
            vars.iter()
                .map(|(n, v)| (format!("${}", n.trim_start_matches('$')), v.clone())),
        );
        let mut out = String::new();
        exec(&self.nodes, dot, &mut scope, &mut out, 0)?;
        Ok(out)
    }
}

const MAX_DEPTH: usize = 100;

fn exec(
    nodes: &[Node],
    dot: &Value,
    scope: &mut Vec<(String, Value)>,
    out: &mut String,
    depth: usize,
) -> Result<(), TemplateError> {
    if depth > MAX_DEPTH {
        return Err(TemplateError("exceeded maximum template depth".into()));
    }
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval_pipeline(p, dot, scope)?;
                if p.decl.is_empty() {
                    out.push_str(&v.render());
                }
            }
            Node::If {
                cond,
                then,
                otherwise,
            } => {
                let mark = scope.len();
                let branch = if eval_pipeline(cond, dot, scope)?.truthy() {
                    then
                } else {
                    otherwise
                };
                exec(branch, dot, scope, out, depth + 1)?;
                scope.truncate(mark);
            }
            Node::With {
                pipe,
                body,
                otherwise,
            } => {
                let mark = scope.len();
                let v = eval_pipeline(pipe, dot, scope)?;
                if v.truthy() {
                    exec(body, &v, scope, out, depth + 1)?;
                } else {
                    exec(otherwise, dot, scope, out, depth + 1)?;
                }
                scope.truncate(mark);
            }
            Node::Range {
                pipe,
                body,
                otherwise,
            } => {
                let mark = scope.len();
                let plain = Pipeline {
                    decl: Vec::new(),
                    assign: false,
                    cmds: pipe.cmds.clone(),
                };
                let v = eval_pipeline(&plain, dot, scope)?;
                let entries: Vec<(Value, Value)> = match v {
                    Value::List(l) => l
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Value::Num(i as f64), v))
                        .collect(),
                    Value::Map(m) => m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
                    Value::Num(n) if n >= 0.0 && n.fract() == 0.0 => (0..n as usize)
                        .map(|i| (Value::Num(i as f64), Value::Num(i as f64)))
                        .collect(),
                    Value::Nil => Vec::new(),
                    other => {
                        return Err(TemplateError(format!(
                            "range can't iterate over {}",
                            other.render()
                        )));
                    }
                };
                if entries.is_empty() {
                    exec(otherwise, dot, scope, out, depth + 1)?;
                }
                for (key, elem) in entries {
                    let inner = scope.len();
                    match pipe.decl.as_slice() {
                        [] => {}
                        [e] => scope.push((e.clone(), elem.clone())),
                        [k, e, ..] => {
                            scope.push((k.clone(), key));
                            scope.push((e.clone(), elem.clone()));
                        }
                    }
                    exec(body, &elem, scope, out, depth + 1)?;
                    scope.truncate(inner);
                }
                scope.truncate(mark);
            }
        }
    }
    Ok(())
}

fn lookup(scope: &[(String, Value)], name: &str) -> Result<Value, TemplateError> {
    scope
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .ok_or_else(|| TemplateError(format!("undefined variable {name:?}")))
}

fn fields(mut v: Value, fields: &[String]) -> Value {
    for f in fields {
        v = v.field(f);
    }
    v
}

fn eval_pipeline(
    p: &Pipeline,
    dot: &Value,
    scope: &mut Vec<(String, Value)>,
) -> Result<Value, TemplateError> {
    let mut piped: Option<Value> = None;
    for cmd in &p.cmds {
        piped = Some(eval_command(cmd, dot, scope, piped)?);
    }
    let v = piped.unwrap_or(Value::Nil);
    if p.assign {
        let name = &p.decl[0];
        let slot = scope
            .iter_mut()
            .rev()
            .find(|(n, _)| n == name)
            .ok_or_else(|| TemplateError(format!("undefined variable {name:?}")))?;
        slot.1 = v.clone();
    } else if let Some(name) = p.decl.last() {
        scope.push((name.clone(), v.clone()));
    }
    Ok(v)
}

fn eval_arg(
    a: &Arg,
    dot: &Value,
    scope: &mut Vec<(String, Value)>,
) -> Result<Value, TemplateError> {
    Ok(match a {
        Arg::Dot(f) => fields(dot.clone(), f),
        Arg::Var(n, f) => fields(lookup(scope, n)?, f),
        Arg::Str(s) => Value::Str(s.clone()),
        Arg::Num(n) => Value::Num(*n),
        Arg::Bool(b) => Value::Bool(*b),
        Arg::Nil => Value::Nil,
        Arg::Func(f) => call(f, Vec::new())?,
        Arg::Sub(p, f) => fields(eval_pipeline(p, dot, scope)?, f),
    })
}

fn eval_command(
    cmd: &[Arg],
    dot: &Value,
    scope: &mut Vec<(String, Value)>,
    piped: Option<Value>,
) -> Result<Value, TemplateError> {
    match &cmd[0] {
        Arg::Func(name) => {
            let mut args = Vec::with_capacity(cmd.len());
            for a in &cmd[1..] {
                args.push(eval_arg(a, dot, scope)?);
            }
            args.extend(piped);
            call(name, args)
        }
        first => {
            if cmd.len() > 1 || piped.is_some() {
                return Err(TemplateError(
                    "can't give arguments to a non-function".into(),
                ));
            }
            eval_arg(first, dot, scope)
        }
    }
}

fn num_arg(name: &str, args: &[Value]) -> Result<f64, TemplateError> {
    match args {
        [v] => v
            .as_f64()
            .map_err(|e| TemplateError(format!("{name}: {e}"))),
        _ => Err(TemplateError(format!(
            "wrong number of args for {name}: want 1 got {}",
            args.len()
        ))),
    }
}

fn str_arg(name: &str, args: &[Value], i: usize) -> Result<String, TemplateError> {
    args.get(i)
        .map(Value::render)
        .ok_or_else(|| TemplateError(format!("wrong number of args for {name}")))
}

fn compare(name: &str, a: &Value, b: &Value) -> Result<std::cmp::Ordering, TemplateError> {
    match (a, b) {
        (Value::Num(x), Value::Num(y)) => x
            .partial_cmp(y)
            .ok_or_else(|| TemplateError(format!("{name}: NaN"))),
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) if name == "eq" || name == "ne" => Ok(x.cmp(y)),
        (Value::Nil, Value::Nil) => Ok(std::cmp::Ordering::Equal),
        _ => Err(TemplateError(format!(
            "{name}: incompatible types for comparison"
        ))),
    }
}

fn call(name: &str, args: Vec<Value>) -> Result<Value, TemplateError> {
    let s = |v: String| Ok(Value::Str(v));
    match name {
        "humanize" => s(gofmt::humanize(num_arg(name, &args)?)),
        "humanize1024" => s(gofmt::humanize1024(num_arg(name, &args)?)),
        "humanizeDuration" => s(gofmt::humanize_duration(num_arg(name, &args)?)),
        "humanizePercentage" => s(gofmt::humanize_percentage(num_arg(name, &args)?)),
        "humanizeTimestamp" => {
            let t = num_arg(name, &args)?;
            if !t.is_finite() {
                return s(gofmt::format_g(t, Some(4)));
            }
            s(humanize_timestamp(t)?)
        }
        "printf" => {
            let Some(Value::Str(format)) = args.first() else {
                return Err(TemplateError(
                    "printf: first argument must be a format string".into(),
                ));
            };
            let rest: Vec<PrintfArg> = args[1..].iter().map(Value::printf_arg).collect();
            s(gofmt::sprintf(format, &rest))
        }
        "print" | "println" => {
            let mut out = String::new();
            for (i, a) in args.iter().enumerate() {
                // Go's Sprint adds spaces only between operands that are not strings.
                let is_str = |v: &Value| matches!(v, Value::Str(_));
                if i > 0 && (name == "println" || (!is_str(a) && !is_str(&args[i - 1]))) {
                    out.push(' ');
                }
                out.push_str(&a.render());
            }
            if name == "println" {
                out.push('\n');
            }
            s(out)
        }
        "toUpper" => s(str_arg(name, &args, 0)?.to_uppercase()),
        "toLower" => s(str_arg(name, &args, 0)?.to_lowercase()),
        "title" => s(str_arg(name, &args, 0)?
            .split(' ')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" ")),
        "safeHtml" | "html" | "js" => s(str_arg(name, &args, 0)?),
        "urlquery" => s(percent_encoding::utf8_percent_encode(
            &str_arg(name, &args, 0)?,
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string()),
        "stripPort" => {
            let h = str_arg(name, &args, 0)?;
            s(split_host_port(&h).map_or(h.clone(), |(host, _)| host.to_string()))
        }
        "stripDomain" => {
            let h = str_arg(name, &args, 0)?;
            let (host, port) = split_host_port(&h).unwrap_or((&h, ""));
            if host.parse::<std::net::IpAddr>().is_ok() {
                return s(h);
            }
            let first = host.split('.').next().unwrap_or("");
            s(match (port, first.contains(':')) {
                ("", _) => first.to_string(),
                (port, true) => format!("[{first}]:{port}"),
                (port, false) => format!("{first}:{port}"),
            })
        }
        "index" => {
            let mut it = args.into_iter();
            let mut v = it
                .next()
                .ok_or_else(|| TemplateError("index of nothing".into()))?;
            for key in it {
                v = match (&v, &key) {
                    (Value::Map(m), k) => m.get(&k.render()).cloned().unwrap_or(Value::Nil),
                    (Value::List(l), Value::Num(i)) => l
                        .get(*i as usize)
                        .cloned()
                        .ok_or_else(|| TemplateError(format!("index out of range: {i}")))?,
                    _ => return Err(TemplateError("can't index item".into())),
                };
            }
            Ok(v)
        }
        "len" => match args.as_slice() {
            [Value::Str(x)] => Ok(Value::Num(x.len() as f64)),
            [Value::Map(m)] => Ok(Value::Num(m.len() as f64)),
            [Value::List(l)] => Ok(Value::Num(l.len() as f64)),
            _ => Err(TemplateError("len of this value".into())),
        },
        "eq" => {
            let (first, rest) = args
                .split_first()
                .ok_or_else(|| TemplateError("eq: missing arguments".into()))?;
            for other in rest {
                if compare(name, first, other)? == std::cmp::Ordering::Equal {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            let [a, b] = args.as_slice() else {
                return Err(TemplateError(format!(
                    "wrong number of args for {name}: want 2"
                )));
            };
            let o = compare(name, a, b)?;
            use std::cmp::Ordering::*;
            Ok(Value::Bool(match name {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            }))
        }
        "and" => Ok(args
            .iter()
            .find(|v| !v.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil)),
        "or" => Ok(args
            .iter()
            .find(|v| v.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil)),
        "not" => match args.as_slice() {
            [v] => Ok(Value::Bool(!v.truthy())),
            _ => Err(TemplateError("wrong number of args for not: want 1".into())),
        },
        "reReplaceAll" => {
            let (pat, repl, text) = (
                str_arg(name, &args, 0)?,
                str_arg(name, &args, 1)?,
                str_arg(name, &args, 2)?,
            );
            let re =
                regex::Regex::new(&pat).map_err(|e| TemplateError(format!("reReplaceAll: {e}")))?;
            s(re.replace_all(&text, repl.as_str()).into_owned())
        }
        "match" => {
            let (pat, text) = (str_arg(name, &args, 0)?, str_arg(name, &args, 1)?);
            let re = regex::Regex::new(&pat).map_err(|e| TemplateError(format!("match: {e}")))?;
            Ok(Value::Bool(re.is_match(&text)))
        }
        other => Err(TemplateError(format!("function {other:?} not defined"))),
    }
}

/// Go's `net.SplitHostPort`: `host:port` or `[host]:port` → (host, port);
/// `None` when there is no port or too many colons.
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    let colon = hostport.rfind(':')?;
    let (host, after_host) = if let Some(rest) = hostport.strip_prefix('[') {
        let end = rest.find(']')? + 1;
        // The port's colon must follow the bracket directly.
        if end + 1 != colon {
            return None;
        }
        (&hostport[1..end], end + 1)
    } else {
        let host = &hostport[..colon];
        if host.contains(':') {
            return None;
        }
        (host, 0)
    };
    if hostport[1.min(hostport.len())..].contains('[') || hostport[after_host..].contains(']') {
        return None;
    }
    Some((host, &hostport[colon + 1..]))
}

/// Prometheus' `humanizeTimestamp`: seconds since the epoch as Go prints a
/// UTC time, to the millisecond (Prometheus' `model.Time`).
fn humanize_timestamp(t: f64) -> Result<String, TemplateError> {
    let nanos = t * 1e9;
    if nanos > i64::MAX as f64 || nanos < i64::MIN as f64 {
        return Err(TemplateError(format!(
            "humanizeTimestamp: {} cannot be represented as a nanoseconds timestamp since it overflows int64",
            gofmt::format_v(t)
        )));
    }
    let ms = (nanos as i64) / 1_000_000;
    let dt = chrono::DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| TemplateError(format!("humanizeTimestamp: {t} out of range")))?;
    // Go's time.String: the fraction without trailing zeros, none when zero.
    let fraction = format!("{:03}", ms.rem_euclid(1000));
    let fraction = fraction.trim_end_matches('0');
    let dot = if fraction.is_empty() { "" } else { "." };
    Ok(format!(
        "{}{dot}{fraction} +0000 UTC",
        dt.format("%Y-%m-%d %H:%M:%S")
    ))
}

/// The data Prometheus gives an alerting rule's labels and annotations:
/// `$labels`, `$externalLabels`, `$externalURL`, `$value` and the same as
/// `.Labels`, `.ExternalLabels`, `.ExternalURL`, `.Value`.
pub fn expand_alert_text(
    text: &str,
    labels: &crate::model::Labels,
    external_labels: &BTreeMap<String, String>,
    external_url: &str,
    value: f64,
) -> Result<String, TemplateError> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    let tmpl = Template::parse(text)?;
    let labels = Value::string_map(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())));
    let external = Value::string_map(
        external_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let mut dot = BTreeMap::new();
    dot.insert("Labels".to_string(), labels.clone());
    dot.insert("ExternalLabels".to_string(), external.clone());
    dot.insert(
        "ExternalURL".to_string(),
        Value::Str(external_url.to_string()),
    );
    dot.insert("Value".to_string(), Value::Num(value));
    let vars = [
        ("labels", labels),
        ("externalLabels", external),
        ("externalURL", Value::Str(external_url.to_string())),
        ("value", Value::Num(value)),
    ];
    tmpl.render(&Value::Map(dot), &vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn alert(text: &str, value: f64) -> String {
        let labels = Labels::new([
            ("model", "bge-m3"),
            ("route", "/v1/embeddings"),
            ("instance", "gpu-07:8080"),
        ]);
        let ext: BTreeMap<String, String> = [("box".to_string(), "gpu-07".to_string())].into();
        expand_alert_text(text, &labels, &ext, "http://infermon:8080", value).unwrap()
    }

    #[test]
    fn prometheus_annotation_forms() {
        assert_eq!(
            alert("P95 of {{ $labels.model }} is {{ $value }}s", 2.5),
            "P95 of bge-m3 is 2.5s"
        );
        assert_eq!(alert("{{ $value | humanizeDuration }}", 2.5), "2.5s");
        assert_eq!(alert("{{ printf \"%.2f\" $value }}", 0.031234), "0.03");
        assert_eq!(alert("{{ $value | printf \"%.1f\" }}%", 7.26), "7.3%");
        assert_eq!(alert("{{ humanizePercentage $value }}", 0.0456), "4.56%");
        assert_eq!(alert("{{ $value | humanize }}B", 1234567.0), "1.235MB");
        assert_eq!(
            alert("on {{ $externalLabels.box }}/{{ .Labels.instance }}", 0.0),
            "on gpu-07/gpu-07:8080"
        );
        assert_eq!(alert("[{{ $labels.missing }}]", 0.0), "[]");
        assert_eq!(alert("{{ $labels.instance | stripPort }}", 0.0), "gpu-07");
        assert_eq!(
            alert("{{ if gt $value 2.0 }}slow{{ else }}ok{{ end }}", 2.5),
            "slow"
        );
        assert_eq!(alert("{{- /* note */ -}}  a  {{- \" b\" }}", 0.0), "a b");
        assert_eq!(
            alert("{{ $x := toUpper $labels.model }}{{ $x }}", 0.0),
            "BGE-M3"
        );
        assert_eq!(
            alert(
                "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
                0.0
            ),
            "instance=gpu-07:8080;model=bge-m3;route=/v1/embeddings;"
        );
    }

    #[test]
    fn parse_errors_are_reported() {
        for bad in [
            "{{ $value",
            "{{ nosuchfunc $value }}",
            "{{ if $value }}x",
            "{{ end }}",
            "{{ query \"up\" }}",
            "{{ \"x }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad} should not parse");
        }
        let t = Template::parse("{{ $nope }}").unwrap();
        assert!(t.render(&Value::Nil, &[]).is_err());
    }
}

#[cfg(test)]
mod prometheus_cases;
